//! A character cursor over one attribute value, shared by the selector,
//! expression, key, action and text parsers. Offsets are bytes into the
//! value; the checker maps them back to line/column.

use std::ops::Range;

/// Byte range inside an attribute value.
pub(crate) type Span = Range<usize>;

/// A syntax error inside an attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Byte offset in the value.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl SyntaxError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        SyntaxError {
            offset,
            message: message.into(),
        }
    }
}

pub(crate) type PResult<T> = Result<T, SyntaxError>;

/// How deep parentheses and unary operators may nest. Keeps the recursive
/// descent parsers (and whoever walks their trees) far from the stack limit
/// on hostile input.
pub(crate) const MAX_NESTING: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    pub src: &'a str,
    pub pos: usize,
    /// Where `src` ends for this parser (a sub-range of the value).
    pub end: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Cursor {
            src,
            pos: 0,
            end: src.len(),
        }
    }

    /// A cursor over `src[range]`, offsets still relative to `src`.
    pub(crate) fn sub(src: &'a str, range: Span) -> Self {
        Cursor {
            src,
            pos: range.start,
            end: range.end,
        }
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.src[self.pos..self.end]
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn peek2(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next();
        it.next()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(crate) fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    /// Consumes `s` if the input continues with it.
    pub(crate) fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Consumes the keyword `kw` if it is followed by a non-identifier
    /// character.
    pub(crate) fn eat_word(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(kw) && !rest[kw.len()..].starts_with(is_ident_continue) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    /// Reads an identifier `[A-Za-z_][A-Za-z0-9_]*`.
    pub(crate) fn ident(&mut self) -> Option<(&'a str, Span)> {
        let start = self.pos;
        let first = self.peek()?;
        if !is_ident_start(first) {
            return None;
        }
        self.bump();
        while let Some(c) = self.peek() {
            if is_ident_continue(c) {
                self.bump();
            } else {
                break;
            }
        }
        Some((&self.src[start..self.pos], start..self.pos))
    }

    /// A "found `x`" phrase describing what is at the cursor.
    pub(crate) fn found(&self) -> String {
        match self.peek() {
            None => "end of text".to_string(),
            Some(c) if is_ident_continue(c) => {
                let word: String = self
                    .rest()
                    .chars()
                    .take_while(|c| is_ident_continue(*c))
                    .collect();
                format!("`{word}`")
            }
            Some(c) => format!("`{c}`"),
        }
    }
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses a number literal at the cursor: decimal integer or float
/// (`12`, `1.5`, `.5`, `1e-3`) or hexadecimal integer (`0x1F`).
/// Returns `None` (cursor unmoved) if no number starts here.
pub(crate) fn number(c: &mut Cursor<'_>) -> Option<PResult<(f64, Span)>> {
    let start = c.pos;
    let rest = c.rest();
    let first = rest.chars().next()?;
    let starts_number = first.is_ascii_digit()
        || (first == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit()));
    if !starts_number {
        return None;
    }
    if rest.starts_with("0x") || rest.starts_with("0X") {
        c.pos += 2;
        let digits_start = c.pos;
        while c.peek().is_some_and(|d| d.is_ascii_hexdigit()) {
            c.bump();
        }
        let digits = &c.src[digits_start..c.pos];
        if c.peek().is_some_and(is_ident_continue) || digits.is_empty() {
            return Some(Err(invalid_number(c, start)));
        }
        return Some(match u64::from_str_radix(digits, 16) {
            Ok(v) => Ok((v as f64, start..c.pos)),
            Err(_) => Err(SyntaxError::new(start, "hexadecimal number too large")),
        });
    }
    while c.peek().is_some_and(|d| d.is_ascii_digit()) {
        c.bump();
    }
    if c.peek() == Some('.')
        && c.peek2()
            .is_none_or(|d| d.is_ascii_digit() || !is_ident_start(d))
    {
        c.bump();
        while c.peek().is_some_and(|d| d.is_ascii_digit()) {
            c.bump();
        }
    }
    if matches!(c.peek(), Some('e' | 'E')) {
        let save = c.pos;
        c.bump();
        if matches!(c.peek(), Some('+' | '-')) {
            c.bump();
        }
        if c.peek().is_some_and(|d| d.is_ascii_digit()) {
            while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                c.bump();
            }
        } else {
            c.pos = save;
        }
    }
    if c.peek().is_some_and(|d| is_ident_continue(d) || d == '.') {
        return Some(Err(invalid_number(c, start)));
    }
    let text = &c.src[start..c.pos];
    Some(match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((v, start..c.pos)),
        _ => Err(SyntaxError::new(start, format!("invalid number `{text}`"))),
    })
}

fn invalid_number(c: &mut Cursor<'_>, start: usize) -> SyntaxError {
    while c.peek().is_some_and(|d| is_ident_continue(d) || d == '.') {
        c.bump();
    }
    SyntaxError::new(start, format!("invalid number `{}`", &c.src[start..c.pos]))
}

/// Parses a double-quoted string at the cursor (which is on the `"`),
/// decoding `\"`, `\\`, `\n`, `\t` and `\r`. Other backslashes stay as
/// written.
pub(crate) fn quoted(c: &mut Cursor<'_>) -> PResult<(String, Span)> {
    let start = c.pos;
    c.bump(); // the opening quote
    let mut out = String::new();
    loop {
        match c.bump() {
            None => return Err(SyntaxError::new(start, "unterminated string")),
            Some('"') => return Ok((out, start..c.pos)),
            Some('\\') => match unescape(c) {
                Some(ch) => out.push(ch),
                None => out.push('\\'),
            },
            Some(ch) => out.push(ch),
        }
    }
}

/// After a backslash: decodes a known escape and consumes it.
pub(crate) fn unescape(c: &mut Cursor<'_>) -> Option<char> {
    let ch = match c.peek()? {
        '"' => '"',
        '\\' => '\\',
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        _ => return None,
    };
    c.bump();
    Some(ch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> PResult<f64> {
        let mut c = Cursor::new(s);
        number(&mut c)
            .expect("a number starts here")
            .map(|(v, _)| v)
    }

    #[test]
    fn numbers() {
        assert_eq!(num("12"), Ok(12.0));
        assert_eq!(num("1.5"), Ok(1.5));
        assert_eq!(num(".5"), Ok(0.5));
        assert_eq!(num("1e3"), Ok(1000.0));
        assert_eq!(num("2.5E-1"), Ok(0.25));
        assert_eq!(num("0x1F"), Ok(31.0));
        assert!(num("12abc").is_err());
        assert!(num("0x").is_err());
        assert!(num("1.2.3").is_err());
        assert!(num("1e999").is_err());
        assert!(Cursor::new("x").peek().is_some() && number(&mut Cursor::new("x")).is_none());
    }

    #[test]
    fn strings() {
        let mut c = Cursor::new(r#""a \"b\" \\ c\n" rest"#);
        let (s, span) = quoted(&mut c).unwrap();
        assert_eq!(s, "a \"b\" \\ c\n");
        assert_eq!(span, 0..16);
        assert!(quoted(&mut Cursor::new("\"open")).is_err());
    }
}
