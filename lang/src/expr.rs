//! The expression grammar (features, conditions, table-update right-hand
//! sides), parsed by precedence climbing into a [`RawExpr`] whose names are
//! not resolved yet.
//!
//! ```text
//! expr    = or ;
//! or      = and { ("or" | "||") and } ;
//! and     = cmp { ("and" | "&&") cmp } ;
//! cmp     = sum [ cmpop sum ] ;               (* not chainable *)
//! cmpop   = "==" | "!=" | "<" | ">" | "<=" | ">="
//!         | "eq" | "neq" | "lt" | "gt" | "lt_eq" | "gt_eq" ;
//! sum     = product { ("+" | "-") product } ;
//! product = unary { ("*" | "/") unary } ;
//! unary   = ("-" | "!" | "not") unary | primary ;
//! primary = number | "true" | "false" | name
//!         | func "(" expr { "," expr } ")"    (* abs min max log exp sqrt *)
//!         | name "(" key ")"                  (* table read *)
//!         | ("kv" | "kv_exists") "(" name ")"  (* store read; name: crate::store *)
//!         | "(" expr ")" ;
//! ```
//!
//! `not`/`!` bind as tightly as unary minus, as in C and in the original
//! (whose conditions were C++): `not a > b` is `(not a) > b`.

use std::fmt;

use crate::cursor::{number, Cursor, PResult, Span, SyntaxError, MAX_NESTING};
use crate::key::{parse_key, RawKey};
use crate::program::{BinaryOp, Func, StoreRead, UnaryOp};
use crate::store::{parse_store_name, RawStoreName};

/// Words that cannot name a metric, feature or table.
pub(crate) const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "true",
    "false",
    "eq",
    "neq",
    "lt",
    "gt",
    "lt_eq",
    "gt_eq",
    "abs",
    "min",
    "max",
    "log",
    "exp",
    "sqrt",
    "ts",
    "key",
    "state",
    "next_state",
    "client",
    "in",
    "kv",
    "kv_exists",
    "msg",
];

/// An expression before name resolution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawExpr {
    pub kind: RawKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawKind {
    Num(f64),
    Name(String),
    Call {
        func: Func,
        args: Vec<RawExpr>,
    },
    TableRead {
        table: String,
        table_span: Span,
        key: RawKey,
    },
    StoreRead {
        read: StoreRead,
        name: RawStoreName,
    },
    Unary(UnaryOp, Box<RawExpr>),
    Binary(BinaryOp, Box<RawExpr>, Box<RawExpr>),
}

/// Parses a whole string as an expression.
pub(crate) fn parse_expr(src: &str) -> PResult<RawExpr> {
    let mut c = Cursor::new(src);
    parse_expr_in(&mut c)
}

/// Parses `c`'s whole range as an expression.
pub(crate) fn parse_expr_in(c: &mut Cursor<'_>) -> PResult<RawExpr> {
    let mut p = Parser {
        c,
        depth: 0,
        nodes: 0,
    };
    p.c.skip_ws();
    if p.c.at_end() {
        return Err(SyntaxError::new(p.c.pos, "empty expression"));
    }
    let e = p.expr(0)?;
    p.c.skip_ws();
    if p.c.rest().starts_with('=') {
        return Err(SyntaxError::new(
            p.c.pos,
            "`=` is not a comparison; use `==`",
        ));
    }
    if !p.c.at_end() {
        return Err(SyntaxError::new(
            p.c.pos,
            format!("expected an operator, found {}", p.c.found()),
        ));
    }
    Ok(e)
}

struct Parser<'c, 'a> {
    c: &'c mut Cursor<'a>,
    depth: usize,
    /// Operator nodes built so far; bounds the tree depth of long chains.
    nodes: usize,
}

/// Most operators and calls one expression may have.
pub(crate) const MAX_EXPR_OPERATORS: usize = 1024;

/// Binding powers: higher binds tighter.
const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_CMP: u8 = 3;
const PREC_SUM: u8 = 4;
const PREC_PRODUCT: u8 = 5;

impl Parser<'_, '_> {
    /// Peeks a binary operator: (op, precedence, length in bytes).
    fn peek_binop(&self) -> Option<(BinaryOp, u8, usize)> {
        let rest = self.c.rest();
        const SYMBOLS: &[(&str, BinaryOp, u8)] = &[
            ("||", BinaryOp::Or, PREC_OR),
            ("&&", BinaryOp::And, PREC_AND),
            ("==", BinaryOp::Eq, PREC_CMP),
            ("!=", BinaryOp::Ne, PREC_CMP),
            ("<=", BinaryOp::Le, PREC_CMP),
            (">=", BinaryOp::Ge, PREC_CMP),
            ("<", BinaryOp::Lt, PREC_CMP),
            (">", BinaryOp::Gt, PREC_CMP),
            ("+", BinaryOp::Add, PREC_SUM),
            ("-", BinaryOp::Sub, PREC_SUM),
            ("*", BinaryOp::Mul, PREC_PRODUCT),
            ("/", BinaryOp::Div, PREC_PRODUCT),
        ];
        for (s, op, prec) in SYMBOLS {
            if rest.starts_with(s) {
                return Some((*op, *prec, s.len()));
            }
        }
        const WORDS: &[(&str, BinaryOp, u8)] = &[
            ("or", BinaryOp::Or, PREC_OR),
            ("and", BinaryOp::And, PREC_AND),
            ("eq", BinaryOp::Eq, PREC_CMP),
            ("neq", BinaryOp::Ne, PREC_CMP),
            ("lt_eq", BinaryOp::Le, PREC_CMP),
            ("gt_eq", BinaryOp::Ge, PREC_CMP),
            ("lt", BinaryOp::Lt, PREC_CMP),
            ("gt", BinaryOp::Gt, PREC_CMP),
        ];
        let mut probe = self.c.clone();
        let (word, _) = probe.ident()?;
        WORDS
            .iter()
            .find(|(w, _, _)| *w == word)
            .map(|(w, op, prec)| (*op, *prec, w.len()))
    }

    fn expr(&mut self, min_prec: u8) -> PResult<RawExpr> {
        let mut lhs = self.unary()?;
        let mut last_cmp: Option<usize> = None;
        loop {
            self.c.skip_ws();
            let Some((op, prec, len)) = self.peek_binop() else {
                break;
            };
            if prec < min_prec {
                break;
            }
            let op_pos = self.c.pos;
            if prec == PREC_CMP {
                if last_cmp.is_some() {
                    return Err(SyntaxError::new(
                        op_pos,
                        "comparisons cannot be chained; use `and`",
                    ));
                }
                last_cmp = Some(op_pos);
            }
            self.c.pos += len;
            self.count(op_pos)?;
            // Left associative: the right operand binds strictly tighter.
            let rhs = self.expr(prec + 1)?;
            let span = lhs.span.start..rhs.span.end;
            lhs = RawExpr {
                kind: RawKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn count(&mut self, pos: usize) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_EXPR_OPERATORS {
            return Err(SyntaxError::new(pos, "expression too long"));
        }
        Ok(())
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.count(pos)?;
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(SyntaxError::new(pos, "expression nested too deeply"));
        }
        Ok(())
    }

    fn unary(&mut self) -> PResult<RawExpr> {
        self.c.skip_ws();
        let start = self.c.pos;
        let op = if self.c.rest().starts_with('-') {
            self.c.pos += 1;
            Some(UnaryOp::Neg)
        } else if self.c.rest().starts_with('!') && !self.c.rest().starts_with("!=") {
            self.c.pos += 1;
            Some(UnaryOp::Not)
        } else if self.c.eat_word("not") {
            Some(UnaryOp::Not)
        } else {
            None
        };
        match op {
            Some(op) => {
                self.enter(start)?;
                let inner = self.unary()?;
                self.depth -= 1;
                let span = start..inner.span.end;
                Ok(RawExpr {
                    kind: RawKind::Unary(op, Box::new(inner)),
                    span,
                })
            }
            None => self.primary(),
        }
    }

    fn primary(&mut self) -> PResult<RawExpr> {
        self.c.skip_ws();
        let start = self.c.pos;
        if let Some(n) = number(self.c) {
            let (v, span) = n?;
            return Ok(RawExpr {
                kind: RawKind::Num(v),
                span,
            });
        }
        if self.c.peek() == Some('(') {
            self.enter(start)?;
            self.c.bump();
            let inner = self.expr(0)?;
            self.c.skip_ws();
            if !self.c.eat(")") {
                return Err(SyntaxError::new(
                    self.c.pos,
                    format!("expected `)`, found {}", self.c.found()),
                ));
            }
            self.depth -= 1;
            return Ok(RawExpr {
                kind: inner.kind,
                span: start..self.c.pos,
            });
        }
        let Some((name, name_span)) = self.c.ident() else {
            return Err(SyntaxError::new(
                start,
                format!("expected an expression, found {}", self.c.found()),
            ));
        };
        match name {
            "true" => return Ok(num(1.0, name_span)),
            "false" => return Ok(num(0.0, name_span)),
            _ => {}
        }
        // `msg.NAME`: a feature of the message of a message event.
        if name == "msg" && self.c.peek() == Some('.') {
            self.c.bump();
            let Some((feature, span)) = self.c.ident() else {
                return Err(SyntaxError::new(
                    self.c.pos,
                    format!(
                        "expected a feature name after `msg.`, found {}",
                        self.c.found()
                    ),
                ));
            };
            return Ok(RawExpr {
                kind: RawKind::Name(format!("msg.{feature}")),
                span: name_span.start..span.end,
            });
        }
        if is_operator_word(name) {
            return Err(SyntaxError::new(
                start,
                format!("expected an expression, found `{name}`"),
            ));
        }
        let after_name = self.c.pos;
        self.c.skip_ws();
        if self.c.peek() != Some('(') {
            self.c.pos = after_name;
            if let Some(func) = Func::from_name(name) {
                return Err(SyntaxError::new(
                    start,
                    format!("function `{}` needs arguments in parentheses", func.name()),
                ));
            }
            return Ok(RawExpr {
                kind: RawKind::Name(name.to_string()),
                span: name_span,
            });
        }
        self.c.bump(); // (
        if let Some(func) = Func::from_name(name) {
            self.enter(start)?;
            let mut args = Vec::new();
            loop {
                args.push(self.expr(0)?);
                self.c.skip_ws();
                if self.c.eat(",") {
                    continue;
                }
                if self.c.eat(")") {
                    break;
                }
                return Err(SyntaxError::new(
                    self.c.pos,
                    format!("expected `,` or `)`, found {}", self.c.found()),
                ));
            }
            self.depth -= 1;
            return Ok(RawExpr {
                kind: RawKind::Call { func, args },
                span: start..self.c.pos,
            });
        }
        let read = match name {
            "kv" => Some(StoreRead::Value),
            "kv_exists" => Some(StoreRead::Exists),
            _ => None,
        };
        if let Some(read) = read {
            let name = parse_store_name(self.c)?;
            self.c.skip_ws();
            if !self.c.eat(")") {
                return Err(SyntaxError::new(
                    self.c.pos,
                    format!("expected `)` after the store key, found {}", self.c.found()),
                ));
            }
            return Ok(RawExpr {
                kind: RawKind::StoreRead { read, name },
                span: start..self.c.pos,
            });
        }
        // A table read: the argument is a key, not an expression.
        let key = parse_key(self.c)?;
        self.c.skip_ws();
        if !self.c.eat(")") {
            return Err(SyntaxError::new(
                self.c.pos,
                format!("expected `)` after table key, found {}", self.c.found()),
            ));
        }
        Ok(RawExpr {
            kind: RawKind::TableRead {
                table: name.to_string(),
                table_span: name_span,
                key,
            },
            span: start..self.c.pos,
        })
    }
}

fn num(v: f64, span: Span) -> RawExpr {
    RawExpr {
        kind: RawKind::Num(v),
        span,
    }
}

fn is_operator_word(w: &str) -> bool {
    matches!(
        w,
        "and" | "or" | "not" | "eq" | "neq" | "lt" | "gt" | "lt_eq" | "gt_eq"
    )
}

/// S-expression rendering, for tests and debugging.
impl fmt::Display for RawExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RawKind::Num(v) => write!(f, "{v}"),
            RawKind::Name(n) => f.write_str(n),
            RawKind::Call { func, args } => {
                write!(f, "({}", func.name())?;
                for a in args {
                    write!(f, " {a}")?;
                }
                f.write_str(")")
            }
            RawKind::TableRead { table, key, .. } => {
                let names: Vec<&str> = key.fields.iter().map(|k| k.0.as_str()).collect();
                write!(f, "{table}[{}]", names.join("-"))
            }
            RawKind::StoreRead { read, name } => {
                write!(
                    f,
                    "({} {}:{})",
                    read.func_name(),
                    name.segments.len(),
                    name.probe.is_some()
                )
            }
            RawKind::Unary(op, e) => {
                let s = match op {
                    UnaryOp::Neg => "neg",
                    UnaryOp::Not => "not",
                };
                write!(f, "({s} {e})")
            }
            RawKind::Binary(op, a, b) => write!(f, "({} {a} {b})", binop_symbol(*op)),
        }
    }
}

pub(crate) fn binop_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Lt => "<",
        BinaryOp::Gt => ">",
        BinaryOp::Le => "<=",
        BinaryOp::Ge => ">=",
        BinaryOp::And => "and",
        BinaryOp::Or => "or",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        match parse_expr(s) {
            Ok(e) => e.to_string(),
            Err(e) => format!("error at {}: {}", e.offset, e.message),
        }
    }

    #[test]
    fn arithmetic_precedence() {
        assert_eq!(p("1 + 2 * 3"), "(+ 1 (* 2 3))");
        assert_eq!(p("(1 + 2) * 3"), "(* (+ 1 2) 3)");
        assert_eq!(p("1 - 2 - 3"), "(- (- 1 2) 3)");
        assert_eq!(p("8 / 4 / 2"), "(/ (/ 8 4) 2)");
        assert_eq!(p("-a * b"), "(* (neg a) b)");
        assert_eq!(p("a--b"), "(- a (neg b))");
        assert_eq!(p("2*-3"), "(* 2 (neg 3))");
    }

    #[test]
    fn logic_precedence() {
        assert_eq!(p("a or b and c"), "(or a (and b c))");
        assert_eq!(p("a and b or c"), "(or (and a b) c)");
        assert_eq!(p("(a or b) and c"), "(and (or a b) c)");
        assert_eq!(p("a > 1 and b < 2"), "(and (> a 1) (< b 2))");
        assert_eq!(p("a + 1 > b * 2"), "(> (+ a 1) (* b 2))");
        assert_eq!(p("!a && b || c"), "(or (and (not a) b) c)");
        assert_eq!(p("not a > b"), "(> (not a) b)");
        assert_eq!(p("not (a > b)"), "(not (> a b))");
        assert_eq!(p("a != b"), "(!= a b)");
    }

    #[test]
    fn aliases() {
        assert_eq!(p("a gt 1"), "(> a 1)");
        assert_eq!(p("a lt 1"), "(< a 1)");
        assert_eq!(p("a gt_eq 1"), "(>= a 1)");
        assert_eq!(p("a lt_eq 1"), "(<= a 1)");
        assert_eq!(p("a eq 1 or a neq 2"), "(or (== a 1) (!= a 2))");
        assert_eq!(p("true and false"), "(and 1 0)");
        // Identifiers that merely start with an alias are names.
        assert_eq!(p("gtx + ltx"), "(+ gtx ltx)");
        assert_eq!(p("order + andy"), "(+ order andy)");
    }

    #[test]
    fn calls_and_tables() {
        assert_eq!(p("abs(a - b) lt 10"), "(< (abs (- a b)) 10)");
        assert_eq!(p("max(a, b, 3)"), "(max a b 3)");
        assert_eq!(p("1.2 * oldvalue(ip_dst)"), "(* 1.2 oldvalue[ip_dst])");
        assert_eq!(p("t(ip_src-ip_dst) + 1"), "(+ t[ip_src-ip_dst] 1)");
        assert_eq!(p("!tset(ip_dst)"), "(not tset[ip_dst])");
        assert_eq!(p("log (x)"), "(log x)");
    }

    #[test]
    fn spans_of_names() {
        let e = parse_expr("a + bb").unwrap();
        let RawKind::Binary(_, _, b) = e.kind else {
            panic!()
        };
        assert_eq!(b.span, 4..6);
    }

    #[test]
    fn errors_have_offsets() {
        assert_eq!(p(""), "error at 0: empty expression");
        assert_eq!(
            p("1 +"),
            "error at 3: expected an expression, found end of text"
        );
        assert_eq!(p("(a + b"), "error at 6: expected `)`, found end of text");
        assert_eq!(p("a b"), "error at 2: expected an operator, found `b`");
        assert_eq!(
            p("a < b < c"),
            "error at 6: comparisons cannot be chained; use `and`"
        );
        assert_eq!(
            p("a and or b"),
            "error at 6: expected an expression, found `or`"
        );
        assert_eq!(
            p("abs + 1"),
            "error at 0: function `abs` needs arguments in parentheses"
        );
        assert_eq!(p("min(a b)"), "error at 6: expected `,` or `)`, found `b`");
        assert_eq!(p("t(1)"), "error at 2: expected a field name, found `1`");
        assert_eq!(p("a # b"), "error at 2: expected an operator, found `#`");
        assert_eq!(p("3x"), "error at 0: invalid number `3x`");
        assert_eq!(p("a = 1"), "error at 2: `=` is not a comparison; use `==`");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(p(&deep).contains("nested too deeply"));
        let negs = "-".repeat(10_000) + "1";
        assert!(p(&negs).contains("nested too deeply"));
        let ok = "(".repeat(20) + "1" + &")".repeat(20);
        assert_eq!(p(&ok), "1");
        let long = vec!["1"; 5000].join("+");
        assert!(p(&long).contains("expression too long"));
    }
}
