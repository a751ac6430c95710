//! Message texts (`Publish`, `print`, `exec`): literal text with `%name`
//! substitutions.
//!
//! ```text
//! text      = string | bare-text ;
//! string    = '"' { char | escape | subst } '"' ;
//! bare-text = { char | escape | subst }        (* up to the ")" that closes the call;
//!                                                  parentheses inside must balance *)
//! escape    = '\"' | '\\' | '\n' | '\t' | '\r' ;
//! subst     = "%" name [ "." name ] | "%%"      (* "%%" is a literal "%" *)
//!           | "%kv(" store-name ")" ;           (* a knowledge-store value *)
//! ```

use crate::cursor::{
    is_ident_continue, is_ident_start, unescape, Cursor, PResult, Span, SyntaxError,
};
use crate::store::{parse_store_name, RawStoreName};

/// A text before its substitutions are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RawTemplate {
    pub parts: Vec<RawPart>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawPart {
    Lit(String),
    /// The name after `%` (`ip_src`, `state.code`), and the span of `%name`.
    Subst(String, Span),
    /// `%kv(name)`, and the span of the whole substitution.
    Store(RawStoreName, Span),
}

/// Parses a text argument at the cursor: a quoted string, or bare text up
/// to the `)` closing the call (not consumed). Leading and trailing white
/// space of bare text is dropped.
pub(crate) fn parse_text(c: &mut Cursor<'_>) -> PResult<RawTemplate> {
    c.skip_ws();
    let start = c.pos;
    let mut b = Builder::default();
    if c.peek() == Some('"') {
        c.bump();
        loop {
            match c.peek() {
                None => return Err(SyntaxError::new(start, "unterminated string")),
                Some('"') => {
                    c.bump();
                    break;
                }
                Some(_) => b.step(c)?,
            }
        }
    } else {
        let mut depth = 0usize;
        loop {
            match c.peek() {
                None => break,
                Some(')') if depth == 0 => break,
                Some(')') => {
                    depth -= 1;
                    b.lit(')');
                    c.bump();
                }
                Some('(') => {
                    depth += 1;
                    b.lit('(');
                    c.bump();
                }
                Some(_) => b.step(c)?,
            }
        }
        b.trim_end();
    }
    Ok(RawTemplate {
        parts: b.finish(),
        span: start..c.pos,
    })
}

#[derive(Default)]
struct Builder {
    parts: Vec<RawPart>,
    lit: String,
}

impl Builder {
    fn lit(&mut self, ch: char) {
        self.lit.push(ch);
    }

    /// Consumes one character, escape or substitution.
    fn step(&mut self, c: &mut Cursor<'_>) -> PResult<()> {
        let at = c.pos;
        match c.bump() {
            Some('\\') => match unescape(c) {
                Some(ch) => self.lit.push(ch),
                None => self.lit.push('\\'),
            },
            Some('%') => {
                if c.peek() == Some('%') {
                    c.bump();
                    self.lit.push('%');
                    return Ok(());
                }
                let Some((name, _)) = c.ident() else {
                    self.lit.push('%');
                    return Ok(());
                };
                if name == "kv" && c.peek() == Some('(') {
                    c.bump();
                    let store = parse_store_name(c)?;
                    c.skip_ws();
                    if !c.eat(")") {
                        return Err(SyntaxError::new(
                            c.pos,
                            format!("expected `)` after the store key, found {}", c.found()),
                        ));
                    }
                    if !self.lit.is_empty() {
                        self.parts.push(RawPart::Lit(std::mem::take(&mut self.lit)));
                    }
                    self.parts.push(RawPart::Store(store, at..c.pos));
                    return Ok(());
                }
                let mut name = name.to_string();
                if matches!(name.as_str(), "state" | "next_state" | "client" | "msg")
                    && c.peek() == Some('.')
                    && c.peek2().is_some_and(is_ident_start)
                {
                    c.bump();
                    name.push('.');
                    while let Some(ch) = c.peek().filter(|ch| is_ident_continue(*ch)) {
                        name.push(ch);
                        c.bump();
                    }
                }
                if !self.lit.is_empty() {
                    self.parts.push(RawPart::Lit(std::mem::take(&mut self.lit)));
                }
                self.parts.push(RawPart::Subst(name, at..c.pos));
            }
            Some(ch) => self.lit.push(ch),
            None => {}
        }
        Ok(())
    }

    fn trim_end(&mut self) {
        let trimmed = self.lit.trim_end().len();
        self.lit.truncate(trimmed);
    }

    fn finish(mut self) -> Vec<RawPart> {
        if !self.lit.is_empty() {
            self.parts.push(RawPart::Lit(self.lit));
        }
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (Vec<RawPart>, usize) {
        let mut c = Cursor::new(s);
        let t = parse_text(&mut c).unwrap();
        (t.parts, c.pos)
    }

    fn lit(s: &str) -> RawPart {
        RawPart::Lit(s.into())
    }

    #[test]
    fn bare_text_stops_at_closing_paren() {
        let (p, end) = parts(" Host %ip_src (really) scanned %ip_dst ) rest");
        assert_eq!(
            p,
            vec![
                lit("Host "),
                RawPart::Subst("ip_src".into(), 6..13),
                lit(" (really) scanned "),
                RawPart::Subst("ip_dst".into(), 31..38),
            ]
        );
        assert_eq!(
            &" Host %ip_src (really) scanned %ip_dst ) rest"[end..],
            ") rest"
        );
    }

    #[test]
    fn quoted_text_with_escapes_and_commas() {
        let (p, _) = parts(r#""a, \"b\" %state.code\n100%% %next_state.level.""#);
        assert_eq!(
            p,
            vec![
                lit("a, \"b\" "),
                RawPart::Subst("state.code".into(), 10..21),
                lit("\n100% "),
                RawPart::Subst("next_state.level".into(), 29..46),
                lit("."),
            ]
        );
    }

    #[test]
    fn legacy_escaped_quotes_in_bare_text() {
        let (p, _) = parts(r#"%state.level \"%state.description\" n=%nxd_cnt)"#);
        assert_eq!(p.len(), 5);
        assert_eq!(p[1], lit(" \""));
        assert_eq!(p[3], lit("\" n="));
    }

    #[test]
    fn lone_percent_and_field_followed_by_dot() {
        let (p, _) = parts("50% of %ip_src.");
        assert_eq!(
            p,
            vec![
                lit("50% of "),
                RawPart::Subst("ip_src".into(), 7..14),
                lit(".")
            ]
        );
    }

    #[test]
    fn store_values() {
        let (p, end) = parts("host %ip_dst is %kv(@dns-in:ip:%ip_dst:dns.name) (x))");
        assert_eq!(p.len(), 5);
        assert!(matches!(&p[3], RawPart::Store(n, s) if n.segments.len() == 3 && *s == (16..48)));
        assert_eq!(p[4], lit(" (x)"));
        assert_eq!(end, 52);
        let mut c = Cursor::new("\"%kv(a b)\"");
        assert_eq!(
            parse_text(&mut c).unwrap_err(),
            SyntaxError::new(7, "expected `)` after the store key, found `b`")
        );
    }

    #[test]
    fn unterminated_string() {
        let mut c = Cursor::new("\"abc");
        assert_eq!(
            parse_text(&mut c).unwrap_err(),
            SyntaxError::new(0, "unterminated string")
        );
    }
}
