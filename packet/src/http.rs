//! HTTP/1.x requests (RFC 9112 §3): the method, the request target and the
//! `Host` header of a TCP payload that starts a request.
//!
//! A payload is taken as a request when it starts with a known method token
//! followed by a space ([`METHODS`]); on any port, since HTTP runs on many.
//! Everything is borrowed from the payload, nothing is decoded or
//! lower-cased, and only the one segment is looked at: a request whose
//! headers continue in the next segment simply has no host here.
//!
//! Guarantees: never panics, never allocates, and looks at each byte of
//! the payload at most a few times.

/// Method tokens recognised at the start of a payload: RFC 9110 §9, PATCH
/// (RFC 5789) and the common WebDAV ones (RFC 4918).
pub const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
];

/// Longest method token in [`METHODS`].
const MAX_METHOD_LEN: usize = 9;

/// The request line and `Host` header of one HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    method: &'a [u8],
    url: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    malformed: bool,
}

impl<'a> HttpRequest<'a> {
    /// Reads the request that starts `payload`, or `None` when the payload
    /// does not start with a method token and a space.
    pub fn parse(payload: &'a [u8]) -> Option<HttpRequest<'a>> {
        let sp = payload
            .iter()
            .take(MAX_METHOD_LEN + 1)
            .position(|&b| b == b' ')?;
        let method = &payload[..sp];
        if !METHODS.contains(&method) {
            return None;
        }
        let mut req = HttpRequest {
            method,
            url: None,
            host: None,
            malformed: false,
        };

        let line_end = find(payload, b'\n').unwrap_or(payload.len());
        let line = trim_cr(&payload[sp + 1..line_end]);
        let (target, version) = match find(line, b' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if target.is_empty() {
            req.malformed = true;
            return Some(req);
        }
        // A target that runs to the end of the segment may be cut short.
        if version.is_none() && line_end == payload.len() {
            req.malformed = true;
            return Some(req);
        }
        req.url = Some(target);
        if !version.is_some_and(|v| v.starts_with(b"HTTP/")) {
            // HTTP/0.9-style or garbage after the target.
            req.malformed = true;
        }

        // Header lines up to the empty line or the end of the segment. A
        // last line without its LF may be cut, so it is not used.
        let mut rest = payload.get(line_end + 1..).unwrap_or(&[]);
        while let Some(end) = find(rest, b'\n') {
            let line = trim_cr(&rest[..end]);
            rest = &rest[end + 1..];
            if line.is_empty() {
                break;
            }
            let Some(colon) = find(line, b':') else {
                req.malformed = true;
                continue;
            };
            if line[..colon].eq_ignore_ascii_case(b"host") {
                req.host = Some(trim_ows(&line[colon + 1..]));
                break;
            }
        }
        Some(req)
    }

    /// The method token, e.g. `GET`.
    pub fn method(&self) -> &'a [u8] {
        self.method
    }

    /// The request target as sent (`/index.html`, or an absolute URL
    /// through a proxy).
    pub fn url(&self) -> Option<&'a [u8]> {
        self.url
    }

    /// The `Host` header value, trimmed of surrounding blanks.
    pub fn host(&self) -> Option<&'a [u8]> {
        self.host
    }

    /// True when the request line is cut or lacks its `HTTP/` version, or
    /// a header line has no colon.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

fn find(s: &[u8], byte: u8) -> Option<usize> {
    s.iter().position(|&b| b == byte)
}

fn trim_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

/// Trims optional whitespace (SP, HTAB) on both sides.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const REQUEST: &[u8] =
        b"GET /wiki/Main_Page HTTP/1.1\r\nUser-Agent: x\r\nHost:  en.wikipedia.org \r\n\r\n";

    #[test]
    fn request_line_and_host() {
        let r = HttpRequest::parse(REQUEST).unwrap();
        assert_eq!(r.method(), b"GET");
        assert_eq!(r.url(), Some(&b"/wiki/Main_Page"[..]));
        assert_eq!(r.host(), Some(&b"en.wikipedia.org"[..]));
        assert!(!r.malformed());
    }

    #[test]
    fn not_a_request() {
        assert_eq!(HttpRequest::parse(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(HttpRequest::parse(b"GETX / HTTP/1.1\r\n"), None);
        assert_eq!(HttpRequest::parse(b"get / HTTP/1.1\r\n"), None);
        assert_eq!(HttpRequest::parse(b"\x16\x03\x01\x02\x00"), None);
        assert_eq!(HttpRequest::parse(b""), None);
    }

    #[test]
    fn host_after_body_separator_is_ignored() {
        let r = HttpRequest::parse(b"POST /a HTTP/1.0\r\n\r\nHost: evil\r\n").unwrap();
        assert_eq!(r.method(), b"POST");
        assert_eq!(r.host(), None);
    }

    #[test]
    fn cut_requests_are_malformed_but_keep_what_is_there() {
        let r = HttpRequest::parse(b"GET /some/pa").unwrap();
        assert!(r.malformed());
        assert_eq!(r.url(), None);
        let r = HttpRequest::parse(b"GET /x HTTP/1.1\r\nHost: a.b").unwrap();
        assert!(!r.malformed());
        assert_eq!(r.url(), Some(&b"/x"[..]));
        assert_eq!(r.host(), None);
        let r = HttpRequest::parse(b"GET /x\r\n").unwrap();
        assert!(r.malformed());
        assert_eq!(r.url(), Some(&b"/x"[..]));
        let r = HttpRequest::parse(b"GET  HTTP/1.1\r\n").unwrap();
        assert!(r.malformed());
        assert_eq!(r.url(), None);
    }

    #[test]
    fn every_truncation_is_safe() {
        for n in 0..REQUEST.len() {
            let r = HttpRequest::parse(&REQUEST[..n]);
            if n < 4 {
                assert!(r.is_none());
            } else {
                assert_eq!(r.unwrap().method(), b"GET");
            }
        }
    }
}
