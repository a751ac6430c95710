//! Knowledge-store key names (`kv_*` actions, `kv(…)` reads, `%kv(…)`).
//!
//! A name is written the way it appears in Redis after the
//! `streamon:<probe>:` prefix that the runtime adds, with `%name`
//! substitutions inside segments:
//!
//! ```text
//! name    = [ "@" probe ":" ] segment { ":" segment } ;
//! probe   = namechar { namechar } ;                 (* another probe's tree *)
//! segment = ( namechar | subst ) { namechar | subst } ;
//! subst   = "%" ( field | "key" | "app" ) ;
//! namechar = any character but blanks and  : % @ , ; ( ) " * ? [ ] \  ;
//! ```
//!
//! `ip:%ip_src:dns.queries` becomes `streamon:<probe>:ip:192.0.2.7:dns.queries`.
//! Substituted values are escaped by the runtime (an IPv6 address's `:`
//! becomes `%3A`), so a name always has the segments it is written with.

use crate::cursor::{Cursor, PResult, Span, SyntaxError};

/// A store name as written, substitutions not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawStoreName {
    /// `@probe:`, with the span of the probe id.
    pub probe: Option<(String, Span)>,
    /// The segments, each one or more parts.
    pub segments: Vec<Vec<RawNamePart>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawNamePart {
    Lit(String),
    /// The name after `%`, and the span of `%name`.
    Subst(String, Span),
}

/// Most segments in one name.
pub(crate) const MAX_SEGMENTS: usize = 16;

fn is_name_char(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !matches!(
            c,
            ':' | '%' | '@' | ',' | ';' | '(' | ')' | '"' | '*' | '?' | '[' | ']' | '\\'
        )
}

/// Parses a store name at the cursor (leading blanks skipped). Stops at a
/// blank, `,` or `)`, which it does not consume.
pub(crate) fn parse_store_name(c: &mut Cursor<'_>) -> PResult<RawStoreName> {
    c.skip_ws();
    let start = c.pos;
    let probe = if c.eat("@") {
        let s = c.pos;
        while c.peek().is_some_and(is_name_char) {
            c.bump();
        }
        if c.pos == s {
            return Err(SyntaxError::new(
                c.pos,
                format!("expected a probe id after `@`, found {}", c.found()),
            ));
        }
        let id = c.src[s..c.pos].to_string();
        if !c.eat(":") {
            return Err(SyntaxError::new(
                c.pos,
                format!("expected `:` after the probe id, found {}", c.found()),
            ));
        }
        Some((id, s..c.pos - 1))
    } else {
        None
    };
    let mut segments = Vec::new();
    loop {
        if segments.len() == MAX_SEGMENTS {
            return Err(SyntaxError::new(
                c.pos,
                format!("a store key has at most {MAX_SEGMENTS} segments"),
            ));
        }
        segments.push(segment(c)?);
        if !c.eat(":") {
            break;
        }
    }
    Ok(RawStoreName {
        probe,
        segments,
        span: start..c.pos,
    })
}

fn segment(c: &mut Cursor<'_>) -> PResult<Vec<RawNamePart>> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    loop {
        match c.peek() {
            Some('%') => {
                let at = c.pos;
                c.bump();
                let Some((name, _)) = c.ident() else {
                    return Err(SyntaxError::new(
                        c.pos,
                        format!(
                            "expected a name after `%` in a store key, found {}",
                            c.found()
                        ),
                    ));
                };
                if !lit.is_empty() {
                    parts.push(RawNamePart::Lit(std::mem::take(&mut lit)));
                }
                parts.push(RawNamePart::Subst(name.to_string(), at..c.pos));
            }
            Some(ch @ ('*' | '?' | '[' | ']' | '\\' | '@')) => {
                return Err(SyntaxError::new(
                    c.pos,
                    format!(
                        "`{ch}` cannot be part of a store key (glob characters are for patterns)"
                    ),
                ));
            }
            Some(ch) if is_name_char(ch) => {
                lit.push(ch);
                c.bump();
            }
            _ => break,
        }
    }
    if !lit.is_empty() {
        parts.push(RawNamePart::Lit(lit));
    }
    if parts.is_empty() {
        return Err(SyntaxError::new(
            c.pos,
            format!("expected a store key segment, found {}", c.found()),
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PResult<(RawStoreName, usize)> {
        let mut c = Cursor::new(s);
        let n = parse_store_name(&mut c)?;
        Ok((n, c.pos))
    }

    #[test]
    fn segments_and_substitutions() {
        let (n, end) = parse("ip:%ip_src:dns.queries, 1").unwrap();
        assert_eq!(end, 22);
        assert_eq!(n.probe, None);
        assert_eq!(
            n.segments,
            vec![
                vec![RawNamePart::Lit("ip".into())],
                vec![RawNamePart::Subst("ip_src".into(), 3..10)],
                vec![RawNamePart::Lit("dns.queries".into())],
            ]
        );
        let (n, _) = parse("@dns-in:ip:%ip_dst:name.%dst_port)").unwrap();
        assert_eq!(n.probe, Some(("dns-in".into(), 1..7)));
        assert_eq!(
            n.segments[2],
            vec![
                RawNamePart::Lit("name.".into()),
                RawNamePart::Subst("dst_port".into(), 24..33)
            ]
        );
    }

    #[test]
    fn errors() {
        let e = |s: &str| {
            let e = parse(s).unwrap_err();
            format!("{}: {}", e.offset, e.message)
        };
        assert_eq!(e("ip::x"), "3: expected a store key segment, found `:`");
        assert_eq!(e(""), "0: expected a store key segment, found end of text");
        assert_eq!(
            e("ip:10.*"),
            "6: `*` cannot be part of a store key (glob characters are for patterns)"
        );
        assert_eq!(e("@:x"), "1: expected a probe id after `@`, found `:`");
        assert_eq!(e("@p x"), "2: expected `:` after the probe id, found ` `");
        assert_eq!(
            e("ip:%:x"),
            "4: expected a name after `%` in a store key, found `:`"
        );
        let long = vec!["a"; 17].join(":");
        assert_eq!(e(&long), "32: a store key has at most 16 segments");
    }
}
