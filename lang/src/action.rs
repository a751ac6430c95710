//! The action grammar (`action` of a condition, `do` of a
//! post-condition-action).
//!
//! ```text
//! actions  = [ action { sep action } ] [ sep ] ;
//! sep      = ";" | "," ;                 (* "," is the legacy separator: warning *)
//! action   = "Publish" "(" topic "," text ")"
//!          | "print" "(" text ")"
//!          | "exec" "(" text ")"
//!          | table "(" key ")" assign expr       (* expr ends at a top-level ";" or "," *)
//!          | name "." "reset" [ "(" [ key ] ")" ] (* table or metric *)
//!          | "block" "(" key "," seconds ")"
//!          | "unblock" "(" key ")"
//!          | "timeout_set" "(" class "," key "," seconds ")"
//!          | "kv_set" "(" name "," [ ttl "," ] text ")"
//!          | "kv_incr" "(" name [ "," ttl ] [ "," expr ] ")"
//!          | "kv_del" "(" name ")"
//!          | "kv_expire" "(" name "," seconds ")"
//!          | "kv_publish" "(" name "," text ")"
//!          | "Drop" | "DoNothing" | "Export" | "Suspect" ;   (* legacy no-ops *)
//! ttl      = "ttl" "=" seconds ;             (* volatile key *)
//! name     = a knowledge-store key name (crate::store)
//! assign   = "=" | "+=" | "-=" | "*=" | "/=" ;
//! topic    = string | word ;
//! seconds  = number ;
//! ```

use crate::cursor::{number, quoted, Cursor, PResult, Span, SyntaxError};
use crate::expr::{parse_expr_in, RawExpr};
use crate::key::{parse_key, RawKey};
use crate::program::{AssignOp, LegacyAction};
use crate::store::{parse_store_name, RawStoreName};
use crate::template::{parse_text, RawTemplate};

/// Names that start an action and so cannot name a table.
pub(crate) const ACTION_WORDS: &[&str] = &[
    "Publish",
    "publish",
    "print",
    "exec",
    "block",
    "unblock",
    "timeout_set",
    "kv_set",
    "kv_incr",
    "kv_del",
    "kv_expire",
    "kv_publish",
    "Drop",
    "DoNothing",
    "Export",
    "Suspect",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawActionAt {
    pub action: RawAction,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawAction {
    Publish {
        topic: String,
        topic_span: Span,
        text: RawTemplate,
    },
    Print(RawTemplate),
    Exec(RawTemplate),
    TableUpdate {
        table: String,
        table_span: Span,
        key: RawKey,
        op: AssignOp,
        value: RawExpr,
    },
    Reset {
        target: String,
        target_span: Span,
        key: Option<RawKey>,
    },
    Block {
        key: RawKey,
        seconds: f64,
        seconds_span: Span,
    },
    Unblock {
        key: RawKey,
    },
    TimeoutSet {
        class: String,
        class_span: Span,
        key: RawKey,
        seconds: f64,
        seconds_span: Span,
    },
    StoreSet {
        name: RawStoreName,
        ttl: Option<(f64, Span)>,
        value: RawTemplate,
    },
    StoreIncr {
        name: RawStoreName,
        ttl: Option<(f64, Span)>,
        by: Option<RawExpr>,
    },
    StoreDel {
        name: RawStoreName,
    },
    StoreExpire {
        name: RawStoreName,
        seconds: f64,
        seconds_span: Span,
    },
    StorePublish {
        channel: RawStoreName,
        text: RawTemplate,
    },
    Legacy(LegacyAction),
}

/// The actions of one attribute, and where legacy `,` separators were.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ParsedActions {
    pub actions: Vec<RawActionAt>,
    pub legacy_commas: Vec<usize>,
}

/// Most actions one attribute may hold.
const MAX_ACTIONS: usize = 256;

pub(crate) fn parse_actions(src: &str) -> PResult<ParsedActions> {
    let mut c = Cursor::new(src);
    let mut out = ParsedActions::default();
    loop {
        c.skip_ws();
        if c.at_end() {
            break;
        }
        if c.eat(";") {
            continue;
        }
        if out.actions.len() == MAX_ACTIONS {
            return Err(SyntaxError::new(
                c.pos,
                format!("more than {MAX_ACTIONS} actions in one list"),
            ));
        }
        let start = c.pos;
        let action = parse_action(&mut c)?;
        out.actions.push(RawActionAt {
            action,
            span: start..c.pos,
        });
        c.skip_ws();
        if c.at_end() || c.eat(";") {
            continue;
        }
        if c.peek() == Some(',') {
            out.legacy_commas.push(c.pos);
            c.bump();
            continue;
        }
        return Err(SyntaxError::new(
            c.pos,
            format!("expected `;` between actions, found {}", c.found()),
        ));
    }
    Ok(out)
}

fn expect(c: &mut Cursor<'_>, s: &str, what: &str) -> PResult<()> {
    c.skip_ws();
    if c.eat(s) {
        Ok(())
    } else {
        Err(SyntaxError::new(
            c.pos,
            format!("expected `{s}` {what}, found {}", c.found()),
        ))
    }
}

fn seconds(c: &mut Cursor<'_>) -> PResult<(f64, Span)> {
    c.skip_ws();
    match number(c) {
        Some(r) => r,
        None => Err(SyntaxError::new(
            c.pos,
            format!("expected a number of seconds, found {}", c.found()),
        )),
    }
}

fn parse_action(c: &mut Cursor<'_>) -> PResult<RawAction> {
    let start = c.pos;
    let Some((name, name_span)) = c.ident() else {
        return Err(SyntaxError::new(
            start,
            format!("expected an action, found {}", c.found()),
        ));
    };
    let after_name = c.pos;
    c.skip_ws();
    let has_args = c.peek() == Some('(');
    let legacy = match name {
        "Drop" => Some(LegacyAction::Drop),
        "DoNothing" => Some(LegacyAction::DoNothing),
        "Export" => Some(LegacyAction::Export),
        "Suspect" => Some(LegacyAction::Suspect),
        _ => None,
    };
    if let Some(l) = legacy {
        if has_args {
            c.bump();
            expect(c, ")", &format!("(`{name}` takes no arguments)"))?;
        } else {
            c.pos = after_name;
        }
        return Ok(RawAction::Legacy(l));
    }
    if c.peek() == Some('.') {
        c.bump();
        c.skip_ws();
        let at = c.pos;
        match c.ident() {
            Some(("reset", _)) => {}
            _ => {
                c.pos = at;
                return Err(SyntaxError::new(
                    at,
                    format!("expected `reset` after `{name}.`, found {}", c.found()),
                ));
            }
        }
        let after_reset = c.pos;
        c.skip_ws();
        let key = if c.eat("(") {
            c.skip_ws();
            if c.eat(")") {
                None
            } else {
                let k = parse_key(c)?;
                expect(c, ")", "after the key")?;
                Some(k)
            }
        } else {
            c.pos = after_reset;
            None
        };
        return Ok(RawAction::Reset {
            target: name.to_string(),
            target_span: name_span,
            key,
        });
    }
    if !has_args {
        return Err(SyntaxError::new(start, format!("unknown action `{name}`")));
    }
    c.bump(); // (
    match name {
        "Publish" | "publish" => {
            c.skip_ws();
            let (topic, topic_span) = if c.peek() == Some('"') {
                quoted(c)?
            } else {
                let s = c.pos;
                while c.peek().is_some_and(|ch| ch != ',' && ch != ')') {
                    c.bump();
                }
                let t = c.src[s..c.pos].trim_end();
                (t.to_string(), s..s + t.len())
            };
            if topic.is_empty() {
                return Err(SyntaxError::new(topic_span.start, "empty Publish topic"));
            }
            c.skip_ws();
            if !c.eat(",") {
                return Err(SyntaxError::new(
                    c.pos,
                    format!(
                        "expected `,` and a text after the Publish topic, found {}",
                        c.found()
                    ),
                ));
            }
            let text = parse_text(c)?;
            expect(c, ")", "to close Publish")?;
            Ok(RawAction::Publish {
                topic,
                topic_span,
                text,
            })
        }
        "print" | "exec" => {
            let text = parse_text(c)?;
            expect(c, ")", &format!("to close `{name}`"))?;
            Ok(if name == "print" {
                RawAction::Print(text)
            } else {
                RawAction::Exec(text)
            })
        }
        "block" => {
            let key = parse_key(c)?;
            expect(c, ",", "and a number of seconds after the key")?;
            let (seconds, seconds_span) = seconds(c)?;
            expect(c, ")", "to close `block`")?;
            Ok(RawAction::Block {
                key,
                seconds,
                seconds_span,
            })
        }
        "unblock" => {
            let key = parse_key(c)?;
            expect(c, ")", "to close `unblock`")?;
            Ok(RawAction::Unblock { key })
        }
        "timeout_set" => {
            c.skip_ws();
            let Some((class, class_span)) = c.ident() else {
                return Err(SyntaxError::new(
                    c.pos,
                    format!("expected a timeout class, found {}", c.found()),
                ));
            };
            expect(c, ",", "after the timeout class")?;
            let key = parse_key(c)?;
            expect(c, ",", "and a number of seconds after the key")?;
            let (seconds, seconds_span) = seconds(c)?;
            expect(c, ")", "to close `timeout_set`")?;
            Ok(RawAction::TimeoutSet {
                class: class.to_string(),
                class_span,
                key,
                seconds,
                seconds_span,
            })
        }
        "kv_set" => {
            let name = parse_store_name(c)?;
            expect(c, ",", "and a text after the store key")?;
            let ttl = opt_ttl(c)?;
            if ttl.is_some() {
                expect(c, ",", "and a text after the ttl")?;
            }
            let value = parse_text(c)?;
            expect(c, ")", "to close `kv_set`")?;
            Ok(RawAction::StoreSet { name, ttl, value })
        }
        "kv_incr" => {
            let name = parse_store_name(c)?;
            c.skip_ws();
            let mut ttl = None;
            let mut by = None;
            if c.eat(",") {
                ttl = opt_ttl(c)?;
                c.skip_ws();
                if ttl.is_none() || c.eat(",") {
                    let end = call_arg_end(c);
                    let mut sub = Cursor::sub(c.src, c.pos..end);
                    by = Some(parse_expr_in(&mut sub)?);
                    c.pos = end;
                }
            }
            expect(c, ")", "to close `kv_incr`")?;
            Ok(RawAction::StoreIncr { name, ttl, by })
        }
        "kv_del" => {
            let name = parse_store_name(c)?;
            expect(c, ")", "to close `kv_del`")?;
            Ok(RawAction::StoreDel { name })
        }
        "kv_expire" => {
            let name = parse_store_name(c)?;
            expect(c, ",", "and a number of seconds after the store key")?;
            let (seconds, seconds_span) = seconds(c)?;
            expect(c, ")", "to close `kv_expire`")?;
            Ok(RawAction::StoreExpire {
                name,
                seconds,
                seconds_span,
            })
        }
        "kv_publish" => {
            let channel = parse_store_name(c)?;
            expect(c, ",", "and a text after the channel")?;
            let text = parse_text(c)?;
            expect(c, ")", "to close `kv_publish`")?;
            Ok(RawAction::StorePublish { channel, text })
        }
        _ => {
            // A table update: t(key) op expr.
            let key = parse_key(c)?;
            expect(c, ")", "after the table key")?;
            c.skip_ws();
            const OPS: &[(&str, AssignOp)] = &[
                ("+=", AssignOp::Add),
                ("-=", AssignOp::Sub),
                ("*=", AssignOp::Mul),
                ("/=", AssignOp::Div),
            ];
            let mut op = None;
            for (s, o) in OPS {
                if c.eat(s) {
                    op = Some(*o);
                    break;
                }
            }
            if op.is_none() && c.peek() == Some('=') && c.peek2() != Some('=') {
                c.bump();
                op = Some(AssignOp::Set);
            }
            let Some(op) = op else {
                if c.at_end() || c.peek() == Some(';') || c.peek() == Some(',') {
                    return Err(SyntaxError::new(start, format!("unknown action `{name}`")));
                }
                return Err(SyntaxError::new(
                    c.pos,
                    format!(
                        "expected `=`, `+=`, `-=`, `*=` or `/=` after `{name}(…)`, found {}",
                        c.found()
                    ),
                ));
            };
            let expr_end = top_level_end(c);
            let mut sub = Cursor::sub(c.src, c.pos..expr_end);
            let value = parse_expr_in(&mut sub)?;
            c.pos = expr_end;
            Ok(RawAction::TableUpdate {
                table: name.to_string(),
                table_span: name_span,
                key,
                op,
                value,
            })
        }
    }
}

/// `ttl=seconds` if the input continues with it.
fn opt_ttl(c: &mut Cursor<'_>) -> PResult<Option<(f64, Span)>> {
    c.skip_ws();
    let save = c.pos;
    if c.eat_word("ttl") {
        c.skip_ws();
        if c.eat("=") {
            return seconds(c).map(Some);
        }
    }
    c.pos = save;
    Ok(None)
}

/// Where the call argument starting at the cursor ends: the first `,` or
/// `)` outside parentheses and quotes, or the end.
fn call_arg_end(c: &Cursor<'_>) -> usize {
    let mut depth = 0usize;
    let mut in_quotes = false;
    for (i, ch) in c.rest().char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes && depth == 0 => return c.pos + i,
            ')' if !in_quotes => depth -= 1,
            ',' if !in_quotes && depth == 0 => return c.pos + i,
            _ => {}
        }
    }
    c.end
}

/// Where the expression starting at the cursor ends: the first `;` or `,`
/// outside parentheses and quotes, or the end.
fn top_level_end(c: &Cursor<'_>) -> usize {
    let mut depth = 0usize;
    let mut in_quotes = false;
    for (i, ch) in c.rest().char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => depth = depth.saturating_sub(1),
            ';' | ',' if !in_quotes && depth == 0 => return c.pos + i,
            _ => {}
        }
    }
    c.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<String> {
        parse_actions(s)
            .unwrap()
            .actions
            .iter()
            .map(|a| match &a.action {
                RawAction::Publish { topic, text, .. } => {
                    format!("publish {topic} {}", text.parts.len())
                }
                RawAction::Print(_) => "print".into(),
                RawAction::Exec(_) => "exec".into(),
                RawAction::TableUpdate {
                    table, op, value, ..
                } => format!("{table} {op:?} {value}"),
                RawAction::Reset { target, key, .. } => {
                    format!("reset {target} {}", key.is_some())
                }
                RawAction::Block { seconds, .. } => format!("block {seconds}"),
                RawAction::Unblock { .. } => "unblock".into(),
                RawAction::TimeoutSet { class, seconds, .. } => {
                    format!("timeout_set {class} {seconds}")
                }
                RawAction::StoreSet { name, ttl, value } => format!(
                    "kv_set {} {:?} {}",
                    name.segments.len(),
                    ttl.as_ref().map(|t| t.0),
                    value.parts.len()
                ),
                RawAction::StoreIncr { name, ttl, by } => format!(
                    "kv_incr {} {:?} {}",
                    name.segments.len(),
                    ttl.as_ref().map(|t| t.0),
                    by.as_ref().map(|b| b.to_string()).unwrap_or_default()
                ),
                RawAction::StoreDel { .. } => "kv_del".into(),
                RawAction::StoreExpire { seconds, .. } => format!("kv_expire {seconds}"),
                RawAction::StorePublish { text, .. } => format!("kv_publish {}", text.parts.len()),
                RawAction::Legacy(l) => format!("{l:?}"),
            })
            .collect()
    }

    fn err(s: &str) -> String {
        let e = parse_actions(s).unwrap_err();
        format!("{}: {}", e.offset, e.message)
    }

    #[test]
    fn original_ddos_actions() {
        assert_eq!(
            kinds("Publish(log, %ts %state.code new target %ip_dst);tset(ip_dst)=0"),
            ["publish log 5", "tset Set 0"]
        );
        assert_eq!(
            kinds("oldvalue(ip_dst)=pkt_rate_f; t1(ip_src) += 1 ;"),
            ["oldvalue Set pkt_rate_f", "t1 Add 1"]
        );
    }

    #[test]
    fn all_forms() {
        assert_eq!(
            kinds(
                r#"print("x, y"); exec(iptables -I INPUT -s %ip_src -j DROP); m1.reset(ip_src-ip_dst); m1.reset(); tset.reset; t.reset(); block(ip_src, 60); unblock(ip_src); timeout_set(watch, ip_dst, 0.5); Drop; Suspect(); t(ip_src) /= max(a, 2) * 3"#
            ),
            [
                "print",
                "exec",
                "reset m1 true",
                "reset m1 false",
                "reset tset false",
                "reset t false",
                "block 60",
                "unblock",
                "timeout_set watch 0.5",
                "Drop",
                "Suspect",
                "t Div (* (max a 2) 3)",
            ]
        );
    }

    #[test]
    fn store_actions() {
        assert_eq!(
            kinds(
                r#"kv_incr(ip:%ip_src:dns.queries); kv_incr(ip:%ip_src:bytes, ttl=60, ip_len * 2); kv_incr(a:b, ttl=1.5); kv_incr(a, min(1, 2))"#
            ),
            [
                "kv_incr 3 None ",
                "kv_incr 3 Some(60.0) (* ip_len 2)",
                "kv_incr 2 Some(1.5) ",
                "kv_incr 1 None (min 1 2)",
            ]
        );
        assert_eq!(
            kinds(
                r#"kv_set(ip:%domain_addr:dns.name, ttl=3600, %domain_name); kv_set(x, "a, b"); kv_del(x); kv_expire(@p:x, 0.3); kv_publish(app:%app:events, alert on %ip_dst, really)"#
            ),
            [
                "kv_set 3 Some(3600.0) 1",
                "kv_set 1 None 1",
                "kv_del",
                "kv_expire 0.3",
                "kv_publish 3",
            ]
        );
        assert_eq!(
            err("kv_set(ip:%ip_src)"),
            "17: expected `,` and a text after the store key, found `)`"
        );
        assert_eq!(
            err("kv_incr(a, ttl=x)"),
            "15: expected a number of seconds, found `x`"
        );
        assert_eq!(
            err("kv_incr(a, 1, 2)"),
            "12: expected `)` to close `kv_incr`, found `,`"
        );
        assert_eq!(
            err("kv_del(a b)"),
            "9: expected `)` to close `kv_del`, found `b`"
        );
    }

    #[test]
    fn legacy_commas_are_separators() {
        let p = parse_actions("Publish(log, a b), Suspect, Export").unwrap();
        assert_eq!(p.actions.len(), 3);
        assert_eq!(p.legacy_commas, vec![17, 26]);
        // A comma inside a function call is not a separator.
        assert_eq!(
            kinds("t(ip_src)=min(a, b), Drop"),
            ["t Set (min a b)", "Drop"]
        );
    }

    #[test]
    fn errors_have_offsets() {
        assert_eq!(err("Explode"), "0: unknown action `Explode`");
        assert_eq!(
            err("print(x); Explode(ip_src)"),
            "10: unknown action `Explode`"
        );
        assert_eq!(
            err("print(x) print(y)"),
            "9: expected `;` between actions, found `print`"
        );
        assert_eq!(
            err("Publish(log)"),
            "11: expected `,` and a text after the Publish topic, found `)`"
        );
        assert_eq!(
            err("t(ip_src) == 1"),
            "10: expected `=`, `+=`, `-=`, `*=` or `/=` after `t(…)`, found `=`"
        );
        assert_eq!(err("t(ip_src) = "), "12: empty expression");
        assert_eq!(
            err("t(ip_src) = 1 +; Drop"),
            "15: expected an expression, found end of text"
        );
        assert_eq!(
            err("block(ip_src)"),
            "12: expected `,` and a number of seconds after the key, found `)`"
        );
        assert_eq!(
            err("block(ip_src, soon)"),
            "14: expected a number of seconds, found `soon`"
        );
        assert_eq!(
            err("m.clear()"),
            "2: expected `reset` after `m.`, found `clear`"
        );
        assert_eq!(err("print(\"abc)"), "6: unterminated string");
        assert_eq!(
            err("Drop(1)"),
            "5: expected `)` (`Drop` takes no arguments), found `1`"
        );
    }
}
