//! Key names in the MicroCloud, defined once.
//!
//! Every key a probe writes to a MicroCloud node, and every key its own
//! Redis-protocol server shows, is built here, so a monitoring application
//! can select keys with one glob pattern (`KEYS streamon:*:ip:192.0.2.*`)
//! the way the MicroCloud paper (§III-B) organises its trees.
//!
//! # Layout
//!
//! | tree | name |
//! |---|---|
//! | per host | `streamon:<probe>:ip:<addr>:<metric>` |
//! | per application state | `streamon:<probe>:app:<app>:state:<key>` |
//! | per application counter | `streamon:<probe>:app:<app>:metric:<metric>` |
//! | pub/sub channel of an app | `streamon:<probe>:app:<app>:events` |
//!
//! `:` separates levels. Each *segment* (probe id, address, metric, app,
//! state key) is escaped with [`escape_segment`], so a segment never
//! contains `:` (IPv6 addresses do), a glob metacharacter (`* ? [ ] \`),
//! `%`, whitespace or a control byte: these bytes become `%XX` (upper-case
//! hex). Everything else passes through, so IPv4 addresses, metric names
//! and most app keys read as written. The escaping is a bijection
//! ([`unescape_segment`] inverts it), and because escaped segments hold no
//! metacharacter, a pattern built from literal escaped segments and `*`
//! selects exactly what it says.
//!
//! IPv6 addresses are written in their canonical compressed form
//! (`std::net::Ipv6Addr`'s `Display`), escaped: `2001:db8::1` becomes
//! `2001%3Adb8%3A%3A1`.
//!
//! # Patterns
//!
//! [`glob_match`] is Redis' own `stringmatchlen` (`src/util.c`), byte for
//! byte: `*` (any run of bytes, `:` included: Redis has no separator
//! notion), `?` (one byte), `[abc]`, `[^abc]`, `[a-z]` (reversed ranges
//! are swapped), `\x` (literal `x`, also inside brackets), an unterminated
//! `[` runs to the end of the pattern. Matching is case sensitive. Like
//! Redis it gives up (no match) past 1000 levels of `*` nesting, and it
//! stops trying longer matches for an earlier `*` once a later `*` failed,
//! so a pattern cannot take exponential time. The tests compare it with a
//! real `redis-server`'s `KEYS`.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Prefix of every key streamon writes.
pub const ROOT: &str = "streamon";

/// Separator between levels of a key name.
pub const SEPARATOR: u8 = b':';

/// True if `b` must be escaped inside a segment.
fn needs_escape(b: u8) -> bool {
    matches!(b, b':' | b'%' | b'*' | b'?' | b'[' | b']' | b'\\')
        || b.is_ascii_whitespace()
        || b.is_ascii_control()
        || b >= 0x80
}

/// Appends `segment`, escaped, to `out` (see the module doc).
pub fn escape_segment_into(segment: &str, out: &mut String) {
    for &b in segment.as_bytes() {
        if needs_escape(b) {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

/// Escapes one segment: `:`, `%`, glob metacharacters, whitespace, control
/// bytes and non-ASCII bytes become `%XX`.
pub fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    escape_segment_into(segment, &mut out);
    out
}

/// Inverts [`escape_segment`]. Returns `None` for a malformed escape
/// (`%` not followed by two hex digits) or a result that is not UTF-8.
pub fn unescape_segment(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a key name into its unescaped segments, or `None` if a segment
/// is malformed.
pub fn split(key: &str) -> Option<Vec<String>> {
    key.split(SEPARATOR as char).map(unescape_segment).collect()
}

/// Builds a key name from already-chosen segments, escaping each and
/// starting with [`ROOT`].
///
/// ```
/// use streamon_microcloud::names::KeyName;
/// let k = KeyName::probe("edge-1").push("ip").push("192.0.2.7").push("dns.queries");
/// assert_eq!(k.as_str(), "streamon:edge-1:ip:192.0.2.7:dns.queries");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// `streamon:<probe>`.
    pub fn probe(probe: &str) -> Self {
        let mut s = String::with_capacity(64);
        s.push_str(ROOT);
        s.push(SEPARATOR as char);
        escape_segment_into(probe, &mut s);
        KeyName(s)
    }

    /// Appends one escaped segment.
    pub fn push(mut self, segment: &str) -> Self {
        self.0.push(SEPARATOR as char);
        escape_segment_into(segment, &mut self.0);
        self
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as bytes (what goes on the wire).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The key, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<KeyName> for String {
    fn from(k: KeyName) -> String {
        k.0
    }
}

/// `streamon:<probe>:ip:<addr>:<metric>`: a per-host metric or field.
pub fn host_metric(probe: &str, addr: IpAddr, metric: &str) -> KeyName {
    KeyName::probe(probe)
        .push("ip")
        .push(&addr.to_string())
        .push(metric)
}

/// `streamon:<probe>:ip:<addr>`: a per-host hash (one field per metric).
pub fn host(probe: &str, addr: IpAddr) -> KeyName {
    KeyName::probe(probe).push("ip").push(&addr.to_string())
}

/// `streamon:<probe>:app:<app>:state:<key>`: one entry of an app's state.
pub fn app_state(probe: &str, app: &str, key: &str) -> KeyName {
    KeyName::probe(probe)
        .push("app")
        .push(app)
        .push("state")
        .push(key)
}

/// `streamon:<probe>:app:<app>:metric:<metric>`: an app-level counter.
pub fn app_metric(probe: &str, app: &str, metric: &str) -> KeyName {
    KeyName::probe(probe)
        .push("app")
        .push(app)
        .push("metric")
        .push(metric)
}

/// `streamon:<probe>:app:<app>:events`: the pub/sub channel an app
/// publishes its alerts on.
pub fn app_events(probe: &str, app: &str) -> KeyName {
    KeyName::probe(probe).push("app").push(app).push("events")
}

/// Pattern selecting one host's keys on every probe:
/// `streamon:*:ip:<addr>:*`.
pub fn host_pattern_all_probes(addr: IpAddr) -> String {
    let mut s = format!("{ROOT}:*:ip:");
    escape_segment_into(&addr.to_string(), &mut s);
    s.push_str(":*");
    s
}

/// Escapes `literal` so that [`glob_match`] (and Redis) match it only
/// literally inside a pattern.
pub fn glob_escape(literal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(literal.len());
    for &b in literal {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Redis' nesting limit for `*` in `stringmatchlen`.
const MAX_NESTING: u32 = 1000;

/// Matches `string` against the glob `pattern` with Redis' `KEYS` / `SCAN
/// MATCH` semantics (see the module doc).
///
/// One Redis detail lives in the callers, not here: `KEYS *` and a `SCAN`
/// without `MATCH` (or with `MATCH *`) list every key, the empty key
/// included, while `glob_match(b"*", b"")` is false as in Redis.
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, &mut skip_longer, 0)
}

/// A transliteration of `stringmatchlen_impl` (Redis 7, `src/util.c`),
/// with indices instead of pointers. `p`/`s` are the remaining pattern and
/// string.
fn match_impl(mut p: &[u8], mut s: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                // No match for the rest of the pattern from anywhere in
                // the rest of the string: a longer match for an earlier
                // `*` cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        // Unterminated class: Redis steps back one byte so
                        // the common `p++` below lands at the end.
                        break;
                    } else if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == s[0] {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        // Redis compares `char`s, signed on the platforms
                        // it ships on.
                        let (mut start, mut end) = (p[0] as i8, p[2] as i8);
                        let c = s[0] as i8;
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p = &p[2..];
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if p[0] == s[0] {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                // `p` is at the `]` (or at the end): the common step below
                // consumes it.
                if p.is_empty() {
                    // The unterminated case: nothing to consume.
                    if s.is_empty() {
                        break;
                    }
                    continue;
                }
            }
            b'\\' => {
                if p.len() >= 2 {
                    p = &p[1..];
                }
                if p[0] != s[0] {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if c != s[0] {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn host_metric_ipv4_reads_as_written() {
        let k = host_metric(
            "edge-1",
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            "dns.queries",
        );
        assert_eq!(k.as_str(), "streamon:edge-1:ip:192.0.2.7:dns.queries");
        assert!(glob_match(b"streamon:*:ip:192.0.2.*", k.as_bytes()));
    }

    #[test]
    fn ipv6_colons_are_escaped() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let k = host_metric("p", IpAddr::V6(a), "bytes");
        assert_eq!(k.as_str(), "streamon:p:ip:2001%3Adb8%3A%3A1:bytes");
        assert_eq!(
            split(k.as_str()).unwrap(),
            ["streamon", "p", "ip", "2001:db8::1", "bytes"]
        );
    }

    #[test]
    fn app_state_escapes_separators_and_metacharacters() {
        let k = app_state("p:1", "dns storm", "a*b?[c]\\d%e");
        assert_eq!(
            k.as_str(),
            "streamon:p%3A1:app:dns%20storm:state:a%2Ab%3F%5Bc%5D%5Cd%25e"
        );
        assert_eq!(split(k.as_str()).unwrap()[5], "a*b?[c]\\d%e");
        assert_eq!(split(k.as_str()).unwrap()[1], "p:1");
    }

    #[test]
    fn escape_round_trips_unicode() {
        for s in ["", "é", "a b\tc\n", "%%", "::", "日本"] {
            assert_eq!(unescape_segment(&escape_segment(s)).unwrap(), s);
            assert!(!escape_segment(s).contains(':'));
        }
        assert_eq!(unescape_segment("%4"), None);
        assert_eq!(unescape_segment("%zz"), None);
    }

    #[test]
    fn pattern_helpers() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let p = host_pattern_all_probes(a);
        assert_eq!(p, "streamon:*:ip:10.0.0.1:*");
        assert!(glob_match(
            p.as_bytes(),
            host_metric("x", a, "m").as_bytes()
        ));
        assert!(!glob_match(
            p.as_bytes(),
            host_metric("x", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)), "m").as_bytes()
        ));
        assert!(glob_match(&glob_escape(b"a*[b]?\\"), b"a*[b]?\\"));
        assert!(!glob_match(&glob_escape(b"a*"), b"ab"));
    }

    /// Cases worked out by hand from `stringmatchlen`.
    #[test]
    fn glob_semantics() {
        let yes: &[(&str, &str)] = &[
            ("*", "abc"),
            ("a*", "a"),
            ("a*c", "abbbc"),
            ("a?c", "abc"),
            ("[abc]", "b"),
            ("[^abc]", "d"),
            ("[a-c]x", "bx"),
            ("[c-a]x", "bx"),
            ("\\*", "*"),
            ("[\\]]", "]"),
            ("h[a-]", "h^"),
            ("a[bc", "ab"),
            ("a[bc", "ac"),
            ("a\\", "a\\"),
            ("**a", "a"),
            ("a**", "a"),
            ("*:ip:*", "streamon:p:ip:1.2.3.4:x"),
        ];
        let no: &[(&str, &str)] = &[
            ("*", ""),
            ("a?c", "ac"),
            ("[^abc]", "a"),
            ("[a-c]", "d"),
            ("\\*", "a"),
            ("abc", "ab"),
            ("ab", "abc"),
            ("a[bc", "a"),
            ("A", "a"),
            // `a-]` is a range (0x5D..=0x61) and the class is unterminated.
            ("h[a-]", "h-"),
        ];
        for (p, s) in yes {
            assert!(glob_match(p.as_bytes(), s.as_bytes()), "{p} !~ {s}");
        }
        for (p, s) in no {
            assert!(!glob_match(p.as_bytes(), s.as_bytes()), "{p} ~ {s}");
        }
    }

    #[test]
    fn glob_does_not_take_exponential_time() {
        let p = "*a".repeat(40) + "b";
        let s = "a".repeat(200);
        let t = std::time::Instant::now();
        assert!(!glob_match(p.as_bytes(), s.as_bytes()));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
