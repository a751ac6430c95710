//! The Redis serialization protocol (RESP2), as much as a read-only server
//! needs: an incremental request parser that never trusts a length, and a
//! reply encoder.
//!
//! # Requests
//!
//! [`parse_request`] takes the bytes a connection has buffered and returns
//! either one complete command (its arguments and how many bytes it used),
//! `Ok(None)` if more bytes are needed, or a [`ProtocolError`] after which
//! the connection must be closed (as Redis does: the stream cannot be
//! resynchronised). Two request forms are accepted, as in Redis:
//!
//! - multibulk: `*<n>\r\n` then `n` times `$<len>\r\n<len bytes>\r\n`;
//! - inline: one line of arguments separated by spaces or tabs, ended by
//!   `\n` (a `\r` before it is dropped). Quotes are *not* interpreted
//!   (Redis' `sdssplitargs` does); an empty line is skipped.
//!
//! Limits ([`Limits`]) are checked on the declared lengths, before any
//! byte of the body is awaited, so a client announcing a 4 GiB bulk string
//! gets an error at once instead of making the server buffer it.
//! Differences from Redis: a negative multibulk count (`*-1`) is an error
//! (Redis silently skips it), and the `\r\n` after a bulk string is
//! checked (Redis skips two bytes blindly).
//!
//! # Guarantees
//!
//! The parser never panics, never allocates more than the declared (and
//! bounded) sizes of the arguments of one command, and on `Ok(Some((_,
//! used)))` always has `0 < used <= buf.len()`. The fuzz target
//! `fuzz/fuzz_targets/resp_parser.rs` checks these on arbitrary bytes.

use std::fmt;

/// Bounds on what one request may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted bulk string (one argument), in bytes. Default
    /// 64 KiB: keys and patterns are short; Redis allows 512 MiB.
    pub max_bulk_len: usize,
    /// Largest accepted argument count of one command. Default 1024.
    pub max_args: usize,
    /// Longest accepted inline request or `*`/`$` header line, in bytes.
    /// Default 64 KiB (Redis' `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 64 * 1024,
            max_args: 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Why a request could not be parsed. The connection is closed after
/// replying with [`ProtocolError::reply`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<n>` with `n` not an integer, negative, or above `max_args`.
    #[error("invalid multibulk length")]
    MultibulkLength,
    /// `$<len>` with `len` not an integer, negative, or above
    /// `max_bulk_len`.
    #[error("invalid bulk length")]
    BulkLength,
    /// An argument of a multibulk request does not start with `$`.
    #[error("expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    /// A bulk string is not followed by `\r\n`.
    #[error("bulk string not terminated by CRLF")]
    BulkTerminator,
    /// A header or inline line longer than `max_inline_len`.
    #[error("too big inline request")]
    LineTooLong,
}

impl ProtocolError {
    /// The RESP error line Redis would send: `-ERR Protocol error: ...`.
    pub fn reply(&self) -> Reply {
        Reply::Error(format!("ERR Protocol error: {self}"))
    }
}

/// One parsed command: its arguments, the name first.
pub type Args = Vec<Vec<u8>>;

/// Parses one request from the front of `buf`. See the module doc.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, ProtocolError> {
    let mut pos = 0;
    loop {
        let Some(&first) = buf.get(pos) else {
            return Ok(None);
        };
        if first == b'*' {
            return parse_multibulk(buf, pos, limits);
        }
        // Inline request.
        let Some(nl) = find_byte(&buf[pos..], b'\n', limits.max_inline_len + 1) else {
            if buf.len() - pos > limits.max_inline_len {
                return Err(ProtocolError::LineTooLong);
            }
            return Ok(None);
        };
        if nl > limits.max_inline_len {
            return Err(ProtocolError::LineTooLong);
        }
        let mut line = &buf[pos..pos + nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        pos += nl + 1;
        let args: Args = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if args.len() > limits.max_args {
            return Err(ProtocolError::MultibulkLength);
        }
        if !args.is_empty() {
            return Ok(Some((args, pos)));
        }
        // Empty line: skipped, like Redis; try the next request.
    }
}

/// Position of the first `needle` in `hay[..limit]`.
fn find_byte(hay: &[u8], needle: u8, limit: usize) -> Option<usize> {
    hay[..hay.len().min(limit)]
        .iter()
        .position(|&b| b == needle)
}

/// Reads a `\r\n`-terminated header line starting at `pos` (after its
/// type byte) as a signed integer. `Ok(None)`: incomplete.
fn header_int(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    bad: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = &buf[pos..];
    let Some(cr) = find_byte(rest, b'\r', limits.max_inline_len + 1) else {
        if rest.len() > limits.max_inline_len {
            return Err(ProtocolError::LineTooLong);
        }
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(bad),
    }
    let n = parse_i64(&rest[..cr]).ok_or(bad)?;
    Ok(Some((n, pos + cr + 2)))
}

/// Strict decimal integer: optional `-`, digits, no spaces, no `+`, no
/// overflow (Redis' `string2ll`).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

fn parse_multibulk(
    buf: &[u8],
    start: usize,
    limits: &Limits,
) -> Result<Option<(Args, usize)>, ProtocolError> {
    let Some((n, mut pos)) = header_int(buf, start + 1, limits, ProtocolError::MultibulkLength)?
    else {
        return Ok(None);
    };
    if n < 0 || n as u64 > limits.max_args as u64 {
        return Err(ProtocolError::MultibulkLength);
    }
    let n = n as usize;
    // First pass: check every header and that all bytes are there, without
    // copying, so an incomplete request costs nothing but a scan.
    let mut spans = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let Some(&t) = buf.get(pos) else {
            return Ok(None);
        };
        if t != b'$' {
            return Err(ProtocolError::ExpectedBulk(t));
        }
        let Some((len, body)) = header_int(buf, pos + 1, limits, ProtocolError::BulkLength)? else {
            return Ok(None);
        };
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(ProtocolError::BulkLength);
        }
        let end = body + len as usize;
        match (buf.get(end), buf.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => {}
            (None, _) | (Some(b'\r'), None) => return Ok(None),
            _ => return Err(ProtocolError::BulkTerminator),
        }
        spans.push(body..end);
        pos = end + 2;
    }
    let args = spans.into_iter().map(|r| buf[r].to_vec()).collect();
    Ok(Some((args, pos)))
}

/// A reply, encoded by [`Reply::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the text must start with the error code (`ERR`,
    /// `WRONGTYPE`, `READONLY`) and hold no CR or LF.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`, or `$-1` for `None` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`, or `*-1` for `None`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// A bulk string.
    pub fn bulk(b: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(Some(b.into()))
    }

    /// An error reply.
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// Appends the RESP2 encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Integer(i) => line(out, b':', i.to_string().as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(Some(items)) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

/// `<t><text>\r\n`, with CR and LF in `text` replaced by spaces so a
/// simple string or error can never break the framing.
fn line(out: &mut Vec<u8>, t: u8, text: &[u8]) {
    out.push(t);
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.encode(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Option<(Args, usize)>, ProtocolError> {
        parse_request(b, &Limits::default())
    }

    fn args(v: &[&str]) -> Args {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    const GET_FOO: &[u8] = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n";

    #[test]
    fn multibulk_round_trip() {
        assert_eq!(
            parse(GET_FOO),
            Ok(Some((args(&["GET", "foo"]), GET_FOO.len())))
        );
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for n in 0..GET_FOO.len() {
            assert_eq!(parse(&GET_FOO[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let mut buf = GET_FOO.to_vec();
        buf.extend_from_slice(b"PING\r\n");
        let (a, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(a, args(&["GET", "foo"]));
        let (b, used2) = parse(&buf[used..]).unwrap().unwrap();
        assert_eq!(b, args(&["PING"]));
        assert_eq!(used + used2, buf.len());
    }

    #[test]
    fn inline_requests() {
        assert_eq!(
            parse(b"\r\n\nKEYS  streamon:*\t\r\n"),
            Ok(Some((args(&["KEYS", "streamon:*"]), 22)))
        );
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(parse(b"\r\n"), Ok(None));
    }

    #[test]
    fn binary_safe_bulk() {
        let b = b"*1\r\n$4\r\na\r\nb\r\n";
        assert_eq!(parse(b), Ok(Some((vec![b"a\r\nb".to_vec()], b.len()))));
        assert_eq!(parse(b"*1\r\n$0\r\n\r\n"), Ok(Some((vec![vec![]], 10))));
    }

    #[test]
    fn malformed_requests() {
        use ProtocolError::*;
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*-1\r\n", MultibulkLength),
            (b"*x\r\n", MultibulkLength),
            (b"*+1\r\n", MultibulkLength),
            (b"* 1\r\n", MultibulkLength),
            (b"*01\r\n", MultibulkLength),
            (b"*99999999999999999999\r\n", MultibulkLength),
            (b"*1025\r\n", MultibulkLength),
            (b"*1\r\n$-1\r\n", BulkLength),
            (b"*1\r\n$4294967296\r\n", BulkLength),
            (b"*1\r\n$65537\r\n", BulkLength),
            (b"*1\r\n:1\r\n", ExpectedBulk(b':')),
            (b"*1\r\n$1\r\nab\r\n", BulkTerminator),
            (b"*1\rX", MultibulkLength),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(parse(&long), Err(LineTooLong));
        let mut long_header = b"*".to_vec();
        long_header.extend(vec![b'1'; 64 * 1024 + 1]);
        assert_eq!(parse(&long_header), Err(LineTooLong));
    }

    #[test]
    fn empty_multibulk_is_consumed() {
        assert_eq!(parse(b"*0\r\n"), Ok(Some((vec![], 4))));
    }

    #[test]
    fn encode_replies() {
        let r = Reply::Array(Some(vec![
            Reply::ok(),
            Reply::err("ERR bad\r\nthing"),
            Reply::Integer(-2),
            Reply::bulk("ab"),
            Reply::Bulk(None),
            Reply::Array(None),
        ]));
        assert_eq!(
            r.to_string(),
            "*6\r\n+OK\r\n-ERR bad  thing\r\n:-2\r\n$2\r\nab\r\n$-1\r\n*-1\r\n"
        );
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_i64(bad), None);
        }
    }
}
