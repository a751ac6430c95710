//! Keys: a field name or a composite `ip_src-ip_dst-dst_port`.
//!
//! ```text
//! key = field { "-" field } ;
//! ```

use crate::cursor::{Cursor, PResult, Span, SyntaxError};

/// A key as written: field names with their spans (not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawKey {
    pub fields: Vec<(String, Span)>,
    pub span: Span,
}

/// Parses a key at the cursor (leading white space skipped; stops after the
/// last field name).
pub(crate) fn parse_key(c: &mut Cursor<'_>) -> PResult<RawKey> {
    c.skip_ws();
    let start = c.pos;
    let mut fields = Vec::new();
    loop {
        match c.ident() {
            Some((name, span)) => fields.push((name.to_string(), span)),
            None => {
                let what = if fields.is_empty() {
                    "expected a field name"
                } else {
                    "expected a field name after `-`"
                };
                return Err(SyntaxError::new(
                    c.pos,
                    format!("{what}, found {}", c.found()),
                ));
            }
        }
        let save = c.pos;
        c.skip_ws();
        if c.peek() == Some('-') {
            c.bump();
            c.skip_ws();
        } else {
            c.pos = save;
            break;
        }
    }
    Ok(RawKey {
        fields,
        span: start..c.pos,
    })
}

/// Parses a whole attribute value as a key.
pub(crate) fn parse_key_attr(src: &str) -> PResult<RawKey> {
    let mut c = Cursor::new(src);
    let key = parse_key(&mut c)?;
    c.skip_ws();
    if !c.at_end() {
        return Err(SyntaxError::new(
            c.pos,
            format!("unexpected {} after key", c.found()),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> PResult<Vec<String>> {
        parse_key_attr(s).map(|k| k.fields.into_iter().map(|f| f.0).collect())
    }

    #[test]
    fn single_and_composite() {
        assert_eq!(names("ip_dst").unwrap(), ["ip_dst"]);
        assert_eq!(
            names(" ip_src-ip_dst-dst_port ").unwrap(),
            ["ip_src", "ip_dst", "dst_port"]
        );
        let k = parse_key_attr("ip_src-ip_dst").unwrap();
        assert_eq!(k.fields[1].1, 7..13);
    }

    #[test]
    fn errors() {
        assert_eq!(names("").unwrap_err().offset, 0);
        assert_eq!(
            names("ip_src-").unwrap_err(),
            SyntaxError::new(7, "expected a field name after `-`, found end of text")
        );
        assert_eq!(names("ip_src ip_dst").unwrap_err().offset, 7);
        assert_eq!(names("ip_src-3").unwrap_err().offset, 7);
    }
}
