//! The selector grammar (which packets a packet event takes), and the
//! typing of selector values against the field they are compared with.
//!
//! ```text
//! selector = [ or ] ;
//! or       = and { ("or" | "||") and } ;
//! and      = unary { ("and" | "&&") unary } ;
//! unary    = ("not" | "!") unary | "(" or ")" | test ;
//! test     = field [ cmpop ] value            (* no operator means == *)
//!          | field "&" value [ cmpop value ]  (* masked test *)
//!          | field "in" prefix                 (* address in CIDR prefix *)
//!          | field "in" "{" value { "," value } "}" ;   (* any of; an "or" of == *)
//! cmpop    = "==" | "!=" | "<" | ">" | "<=" | ">="
//!          | "eq" | "neq" | "lt" | "gt" | "lt_eq" | "gt_eq" ;
//! value    = word | string ;
//! word     = number | address | symbol { "|" (symbol | number) } | bare-text ;
//! ```

use std::net::IpAddr;

use streamon_packet::{Field, FieldType};

use crate::cursor::{quoted, Cursor, PResult, Span, SyntaxError, MAX_NESTING};
use crate::program::{CmpOp, FieldTest, IpPrefix, Selector, Test, Value};

/// A selector before typing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawSel {
    Always,
    Test(RawTest),
    Not(Box<RawSel>),
    And(Vec<RawSel>),
    Or(Vec<RawSel>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawTest {
    pub field: String,
    pub field_span: Span,
    pub kind: RawTestKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawTestKind {
    Cmp {
        op: CmpOp,
        op_span: Option<Span>,
        value: RawValue,
    },
    Mask {
        mask: RawValue,
        cmp: Option<(CmpOp, Span, RawValue)>,
    },
    In(RawValue),
    /// `field in { v, v, … }`: any of the values (each a prefix for
    /// address fields).
    InSet(Vec<RawValue>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawValue {
    pub text: String,
    pub quoted: bool,
    pub span: Span,
}

/// Parses a selector attribute.
pub(crate) fn parse_selector(src: &str) -> PResult<RawSel> {
    let mut c = Cursor::new(src);
    c.skip_ws();
    if c.at_end() {
        return Ok(RawSel::Always);
    }
    let mut p = SelParser {
        c: &mut c,
        depth: 0,
    };
    let s = p.or()?;
    p.c.skip_ws();
    if !p.c.at_end() {
        return Err(SyntaxError::new(
            p.c.pos,
            format!("expected `and`, `or` or `)`, found {}", p.c.found()),
        ));
    }
    Ok(s)
}

struct SelParser<'c, 'a> {
    c: &'c mut Cursor<'a>,
    depth: usize,
}

/// Most tests one selector may have.
const MAX_TESTS: usize = 256;

impl SelParser<'_, '_> {
    fn or(&mut self) -> PResult<RawSel> {
        let mut items = vec![self.and()?];
        loop {
            self.c.skip_ws();
            if self.c.eat("||") || self.c.eat_word("or") {
                items.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(RawSel::Always)
        } else {
            RawSel::Or(items)
        })
    }

    fn and(&mut self) -> PResult<RawSel> {
        let mut items = vec![self.unary()?];
        loop {
            self.c.skip_ws();
            if self.c.eat("&&") || self.c.eat_word("and") {
                items.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(RawSel::Always)
        } else {
            RawSel::And(items)
        })
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(SyntaxError::new(self.c.pos, "selector nested too deeply"));
        }
        Ok(())
    }

    fn unary(&mut self) -> PResult<RawSel> {
        self.c.skip_ws();
        self.enter()?;
        let negated = if self.c.peek() == Some('!') && self.c.peek2() != Some('=') {
            self.c.bump();
            true
        } else {
            self.c.eat_word("not")
        };
        let r = if negated {
            Ok(RawSel::Not(Box::new(self.unary()?)))
        } else if self.c.peek() == Some('(') {
            self.c.bump();
            let inner = self.or()?;
            self.c.skip_ws();
            if !self.c.eat(")") {
                return Err(SyntaxError::new(
                    self.c.pos,
                    format!("expected `)`, found {}", self.c.found()),
                ));
            }
            Ok(inner)
        } else {
            self.test().map(RawSel::Test)
        };
        self.depth -= 1;
        r
    }

    fn test(&mut self) -> PResult<RawTest> {
        let start = self.c.pos;
        let Some((field, field_span)) = self.c.ident() else {
            return Err(SyntaxError::new(
                start,
                format!("expected a field test, found {}", self.c.found()),
            ));
        };
        if matches!(field, "and" | "or") {
            return Err(SyntaxError::new(
                start,
                format!("expected a field test, found `{field}`"),
            ));
        }
        let field = field.to_string();
        self.c.skip_ws();
        let kind = if self.c.peek() == Some('&') && self.c.peek2() != Some('&') {
            self.c.bump();
            let mask = self.value(&field)?;
            self.c.skip_ws();
            let op_start = self.c.pos;
            let cmp = match self.cmpop() {
                Some(op) => {
                    let op_span = op_start..self.c.pos;
                    Some((op, op_span, self.value(&field)?))
                }
                None => None,
            };
            RawTestKind::Mask { mask, cmp }
        } else if self.c.eat_word("in") {
            self.c.skip_ws();
            if self.c.eat("{") {
                let mut values = Vec::new();
                loop {
                    values.push(self.value(&field)?);
                    self.c.skip_ws();
                    if self.c.eat(",") {
                        continue;
                    }
                    if self.c.eat("}") {
                        break;
                    }
                    return Err(SyntaxError::new(
                        self.c.pos,
                        format!("expected `,` or `}}` in the set, found {}", self.c.found()),
                    ));
                }
                RawTestKind::InSet(values)
            } else {
                RawTestKind::In(self.value(&field)?)
            }
        } else {
            let op_start = self.c.pos;
            let (op, op_span) = match self.cmpop() {
                Some(op) => (op, Some(op_start..self.c.pos)),
                None => (CmpOp::Eq, None),
            };
            RawTestKind::Cmp {
                op,
                op_span,
                value: self.value(&field)?,
            }
        };
        Ok(RawTest {
            field,
            field_span,
            kind,
        })
    }

    fn cmpop(&mut self) -> Option<CmpOp> {
        const OPS: &[(&str, CmpOp)] = &[
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ];
        for (s, op) in OPS {
            if self.c.eat(s) {
                return Some(*op);
            }
        }
        const WORDS: &[(&str, CmpOp)] = &[
            ("eq", CmpOp::Eq),
            ("neq", CmpOp::Ne),
            ("lt_eq", CmpOp::Le),
            ("gt_eq", CmpOp::Ge),
            ("lt", CmpOp::Lt),
            ("gt", CmpOp::Gt),
        ];
        for (s, op) in WORDS {
            if self.c.eat_word(s) {
                return Some(*op);
            }
        }
        None
    }

    fn value(&mut self, field: &str) -> PResult<RawValue> {
        self.c.skip_ws();
        let start = self.c.pos;
        if self.c.peek() == Some('"') {
            let (text, span) = quoted(self.c)?;
            return Ok(RawValue {
                text,
                quoted: true,
                span,
            });
        }
        while let Some(ch) = self.c.peek() {
            if ch.is_whitespace() || "()\"=!<>&,{}".contains(ch) {
                break;
            }
            self.c.bump();
        }
        let text = &self.c.src[start..self.c.pos];
        if text.is_empty() || matches!(text, "and" | "or" | "not") {
            let found = if text.is_empty() {
                self.c.found()
            } else {
                format!("`{text}`")
            };
            return Err(SyntaxError::new(
                start,
                format!("expected a value for `{field}`, found {found}"),
            ));
        }
        Ok(RawValue {
            text: text.to_string(),
            quoted: false,
            span: start..self.c.pos,
        })
    }
}

/// Which kind of thing a symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Proto,
    TcpFlag,
    DnsRcode,
}

impl Domain {
    fn describe(self) -> &'static str {
        match self {
            Domain::Proto => "an IP protocol",
            Domain::TcpFlag => "a TCP flag",
            Domain::DnsRcode => "a DNS response code",
        }
    }

    fn fields(self) -> &'static [Field] {
        match self {
            Domain::Proto => &[Field::Proto],
            Domain::TcpFlag => &[Field::Flags, Field::TcpFlags],
            Domain::DnsRcode => &[Field::Flags, Field::DnsRcode],
        }
    }
}

/// Numeric symbols: name, domain, value.
const NUMERIC_SYMBOLS: &[(&str, Domain, u64)] = &[
    ("tcp", Domain::Proto, 6),
    ("udp", Domain::Proto, 17),
    ("icmp", Domain::Proto, 1),
    ("icmpv6", Domain::Proto, 58),
    ("tcp-fin", Domain::TcpFlag, 0x01),
    ("tcp-syn", Domain::TcpFlag, 0x02),
    ("tcp-rst", Domain::TcpFlag, 0x04),
    ("tcp-psh", Domain::TcpFlag, 0x08),
    ("tcp-ack", Domain::TcpFlag, 0x10),
    ("tcp-urg", Domain::TcpFlag, 0x20),
    ("tcp-ece", Domain::TcpFlag, 0x40),
    ("tcp-cwr", Domain::TcpFlag, 0x80),
    ("dns-noerror", Domain::DnsRcode, 0),
    ("dns-formaterr", Domain::DnsRcode, 1),
    ("dns-failed", Domain::DnsRcode, 2),
    ("dns-nxdomain", Domain::DnsRcode, 3),
    ("dns-nimplemented", Domain::DnsRcode, 4),
    ("dns-refused", Domain::DnsRcode, 5),
];

/// HTTP method symbols and the `http_method` string they stand for.
const HTTP_SYMBOLS: &[(&str, &str)] = &[
    ("http-get", "GET"),
    ("http-head", "HEAD"),
    ("http-post", "POST"),
    ("http-put", "PUT"),
    ("http-delete", "DELETE"),
    ("http-options", "OPTIONS"),
    ("http-connect", "CONNECT"),
    ("http-trace", "TRACE"),
    ("http-patch", "PATCH"),
];

/// Every symbol name, with its documented value, for the docs test.
pub(crate) fn symbol_names() -> impl Iterator<Item = &'static str> {
    NUMERIC_SYMBOLS
        .iter()
        .map(|s| s.0)
        .chain(HTTP_SYMBOLS.iter().map(|s| s.0))
}

/// Types a parsed selector: every field resolved, every value checked
/// against its field. Returns every error found.
pub(crate) fn resolve_selector(raw: &RawSel) -> Result<Selector, Vec<SyntaxError>> {
    let mut errors = Vec::new();
    let s = resolve(raw, &mut errors);
    if errors.is_empty() {
        let tests = count_tests(&s);
        if tests > MAX_TESTS {
            errors.push(SyntaxError::new(
                0,
                format!("selector has {tests} tests; at most {MAX_TESTS} are allowed"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(errors)
    }
}

fn count_tests(s: &Selector) -> usize {
    match s {
        Selector::Always => 0,
        Selector::Test(_) => 1,
        Selector::Not(i) => count_tests(i),
        Selector::And(v) | Selector::Or(v) => v.iter().map(count_tests).sum(),
    }
}

fn resolve(raw: &RawSel, errors: &mut Vec<SyntaxError>) -> Selector {
    match raw {
        RawSel::Always => Selector::Always,
        RawSel::Not(inner) => Selector::Not(Box::new(resolve(inner, errors))),
        RawSel::And(v) => Selector::And(v.iter().map(|s| resolve(s, errors)).collect()),
        RawSel::Or(v) => Selector::Or(v.iter().map(|s| resolve(s, errors)).collect()),
        RawSel::Test(RawTest {
            field,
            field_span,
            kind: RawTestKind::InSet(values),
        }) => resolve_set(field, field_span, values, errors),
        RawSel::Test(t) => match resolve_test(t, errors) {
            Some(t) => Selector::Test(t),
            None => Selector::Always,
        },
    }
}

fn resolve_test(t: &RawTest, errors: &mut Vec<SyntaxError>) -> Option<FieldTest> {
    let Some(field) = Field::from_name(&t.field) else {
        errors.push(unknown_field(&t.field, t.field_span.start));
        return None;
    };
    let ty = field.field_type();
    let test = match &t.kind {
        RawTestKind::Cmp { op, op_span, value } => {
            if *op != CmpOp::Eq && *op != CmpOp::Ne && !matches!(ty, FieldType::UInt { .. }) {
                let at = op_span.as_ref().map_or(value.span.start, |s| s.start);
                errors.push(SyntaxError::new(
                    at,
                    format!("`{}` can only be compared with `==` or `!=`", field.name()),
                ));
                return None;
            }
            Test::Compare(*op, typed_value(field, value, errors)?)
        }
        RawTestKind::Mask { mask, cmp } => {
            if !matches!(ty, FieldType::UInt { .. }) {
                errors.push(SyntaxError::new(
                    mask.span.start.saturating_sub(1),
                    format!("`&` needs a numeric field; `{}` is not", field.name()),
                ));
                return None;
            }
            let m = uint_value(field, mask, errors)?;
            match cmp {
                None => Test::Mask {
                    mask: m,
                    op: CmpOp::Eq,
                    value: m,
                },
                Some((op, _, v)) => Test::Mask {
                    mask: m,
                    op: *op,
                    value: uint_value(field, v, errors)?,
                },
            }
        }
        RawTestKind::InSet(_) => return None, // resolved by `resolve_set`
        RawTestKind::In(v) => {
            if ty != FieldType::Addr {
                errors.push(SyntaxError::new(
                    v.span.start,
                    format!(
                        "`in` needs an address field, or a set `{{a, b, …}}`; `{}` is not an address field",
                        field.name()
                    ),
                ));
                return None;
            }
            Test::InPrefix(prefix_value(v, errors)?)
        }
    };
    Some(FieldTest { field, test })
}

/// `field in {a, b, …}` is `field == a or field == b or …` (for address
/// fields each member may be a prefix).
fn resolve_set(
    name: &str,
    span: &Span,
    values: &[RawValue],
    errors: &mut Vec<SyntaxError>,
) -> Selector {
    let Some(field) = Field::from_name(name) else {
        errors.push(unknown_field(name, span.start));
        return Selector::Always;
    };
    let mut tests: Vec<Selector> = Vec::new();
    for v in values {
        let test = if field.field_type() == FieldType::Addr && v.text.contains('/') {
            prefix_value(v, errors).map(Test::InPrefix)
        } else {
            typed_value(field, v, errors).map(|x| Test::Compare(CmpOp::Eq, x))
        };
        if let Some(test) = test {
            tests.push(Selector::Test(FieldTest { field, test }));
        }
    }
    if tests.len() == 1 {
        tests.pop().unwrap_or(Selector::Always)
    } else {
        Selector::Or(tests)
    }
}

pub(crate) fn unknown_field(name: &str, at: usize) -> SyntaxError {
    SyntaxError::new(at, format!("unknown field `{name}`"))
}

fn typed_value(field: Field, v: &RawValue, errors: &mut Vec<SyntaxError>) -> Option<Value> {
    match field.field_type() {
        FieldType::UInt { .. } => uint_value(field, v, errors).map(Value::UInt),
        FieldType::Addr => {
            if !v.quoted {
                if let Ok(ip) = v.text.parse::<IpAddr>() {
                    return Some(Value::Addr(ip));
                }
            }
            errors.push(SyntaxError::new(
                v.span.start,
                format!(
                    "`{}` is not an IP address, and `{}` holds addresses",
                    v.text,
                    field.name()
                ),
            ));
            None
        }
        FieldType::Str => {
            if v.quoted {
                return Some(Value::Str(v.text.clone()));
            }
            if let Some((_, method)) = HTTP_SYMBOLS.iter().find(|(s, _)| *s == v.text) {
                if field == Field::HttpMethod {
                    return Some(Value::Str((*method).to_string()));
                }
                errors.push(SyntaxError::new(
                    v.span.start,
                    format!(
                        "`{}` is an HTTP method, not a value of `{}`",
                        v.text,
                        field.name()
                    ),
                ));
                return None;
            }
            if let Some(sym) = NUMERIC_SYMBOLS.iter().find(|s| s.0 == v.text) {
                errors.push(SyntaxError::new(
                    v.span.start,
                    format!(
                        "`{}` is {}, not a value of `{}`",
                        v.text,
                        sym.1.describe(),
                        field.name()
                    ),
                ));
                return None;
            }
            if v.text.starts_with("http-") {
                errors.push(SyntaxError::new(
                    v.span.start,
                    format!("unknown HTTP method symbol `{}`", v.text),
                ));
                return None;
            }
            Some(Value::Str(v.text.clone()))
        }
    }
}

fn uint_value(field: Field, v: &RawValue, errors: &mut Vec<SyntaxError>) -> Option<u64> {
    let FieldType::UInt { key_width } = field.field_type() else {
        return None;
    };
    if v.quoted {
        errors.push(SyntaxError::new(
            v.span.start,
            format!(
                "a string cannot be compared with `{}`, which is a number",
                field.name()
            ),
        ));
        return None;
    }
    let parts: Vec<&str> = v.text.split('|').collect();
    let combinable = matches!(field, Field::Flags | Field::TcpFlags);
    if parts.len() > 1 && !combinable {
        errors.push(SyntaxError::new(
            v.span.start,
            format!(
                "only TCP flags can be combined with `|`, and `{}` holds no flags",
                field.name()
            ),
        ));
        return None;
    }
    let mut acc = 0u64;
    let mut offset = v.span.start;
    let mut ok = true;
    for part in parts {
        match part_value(field, part, offset, parts_combined(&v.text)) {
            Ok(x) => acc |= x,
            Err(e) => {
                errors.push(e);
                ok = false;
            }
        }
        offset += part.len() + 1;
    }
    if !ok {
        return None;
    }
    let bits = u32::from(key_width) * 8;
    if bits < 64 && acc >> bits != 0 {
        errors.push(SyntaxError::new(
            v.span.start,
            format!(
                "value {acc} does not fit `{}` ({bits}-bit field)",
                field.name()
            ),
        ));
        return None;
    }
    Some(acc)
}

fn parts_combined(text: &str) -> bool {
    text.contains('|')
}

fn part_value(field: Field, part: &str, at: usize, combined: bool) -> Result<u64, SyntaxError> {
    if part.is_empty() {
        return Err(SyntaxError::new(at, "empty value in a `|` combination"));
    }
    if part.starts_with(|c: char| c.is_ascii_digit()) {
        let parsed = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X"))
        {
            u64::from_str_radix(hex, 16).ok()
        } else {
            part.parse::<u64>().ok()
        };
        if let Some(x) = parsed {
            return Ok(x);
        }
        if part.parse::<IpAddr>().is_ok() || part.contains('/') {
            return Err(SyntaxError::new(
                at,
                format!(
                    "an address cannot be compared with `{}`, which is a number",
                    field.name()
                ),
            ));
        }
        return Err(SyntaxError::new(at, format!("invalid number `{part}`")));
    }
    if part.parse::<IpAddr>().is_ok() {
        return Err(SyntaxError::new(
            at,
            format!(
                "an address cannot be compared with `{}`, which is a number",
                field.name()
            ),
        ));
    }
    let Some((name, domain, value)) = NUMERIC_SYMBOLS.iter().find(|s| s.0 == part) else {
        if HTTP_SYMBOLS.iter().any(|s| s.0 == part) {
            return Err(SyntaxError::new(
                at,
                format!(
                    "`{part}` is an HTTP method, not a value of `{}`",
                    field.name()
                ),
            ));
        }
        return Err(SyntaxError::new(at, format!("unknown symbol `{part}`")));
    };
    if !domain.fields().contains(&field) {
        return Err(SyntaxError::new(
            at,
            format!(
                "`{name}` is {}, not a value of `{}`",
                domain.describe(),
                field.name()
            ),
        ));
    }
    if combined && *domain != Domain::TcpFlag {
        return Err(SyntaxError::new(
            at,
            format!(
                "`{name}` is {}; only TCP flags can be combined with `|`",
                domain.describe()
            ),
        ));
    }
    Ok(*value)
}

fn prefix_value(v: &RawValue, errors: &mut Vec<SyntaxError>) -> Option<IpPrefix> {
    let bad = |errors: &mut Vec<SyntaxError>| {
        errors.push(SyntaxError::new(
            v.span.start,
            format!("`{}` is not an address prefix like 10.0.0.0/8", v.text),
        ));
    };
    if v.quoted {
        bad(errors);
        return None;
    }
    let (addr, len) = match v.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v.text.as_str(), None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        bad(errors);
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(l) if l <= max => l,
            _ => {
                errors.push(SyntaxError::new(
                    v.span.start + v.text.find('/').unwrap_or(0) + 1,
                    format!("prefix length must be 0..={max}"),
                ));
                return None;
            }
        },
    };
    let addr = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Some(IpPrefix { addr, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and types; renders as an s-expression or the first error.
    fn sel(s: &str) -> String {
        let raw = match parse_selector(s) {
            Ok(r) => r,
            Err(e) => return format!("error at {}: {}", e.offset, e.message),
        };
        match resolve_selector(&raw) {
            Ok(s) => render(&s),
            Err(es) => es
                .iter()
                .map(|e| format!("error at {}: {}", e.offset, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    fn render(s: &Selector) -> String {
        match s {
            Selector::Always => "always".into(),
            Selector::Not(i) => format!("(not {})", render(i)),
            Selector::And(v) => format!(
                "(and {})",
                v.iter().map(render).collect::<Vec<_>>().join(" ")
            ),
            Selector::Or(v) => format!(
                "(or {})",
                v.iter().map(render).collect::<Vec<_>>().join(" ")
            ),
            Selector::Test(t) => {
                let f = t.field.name();
                match &t.test {
                    Test::Compare(op, v) => format!("({op:?} {f} {})", val(v)),
                    Test::Mask { mask, op, value } => {
                        format!("({op:?} (& {f} {mask:#x}) {value:#x})")
                    }
                    Test::InPrefix(p) => format!("(in {f} {}/{})", p.addr, p.len),
                }
            }
        }
    }

    fn val(v: &Value) -> String {
        match v {
            Value::UInt(x) => x.to_string(),
            Value::Addr(a) => a.to_string(),
            Value::Str(s) => format!("{s:?}"),
        }
    }

    #[test]
    fn original_selectors() {
        assert_eq!(
            sel("proto udp and src_port 53 and flags dns-nxdomain"),
            "(and (Eq proto 17) (Eq src_port 53) (Eq flags 3))"
        );
        assert_eq!(
            sel("proto tcp and flags tcp-syn|tcp-ack"),
            "(and (Eq proto 6) (Eq flags 18))"
        );
        assert_eq!(
            sel("proto tcp and dst_port 502 and modbus_fc 8"),
            "(and (Eq proto 6) (Eq dst_port 502) (Eq modbus_fc 8))"
        );
        assert_eq!(sel("src_port>1023"), "(Gt src_port 1023)");
        assert_eq!(sel(""), "always");
        assert_eq!(sel("   "), "always");
    }

    #[test]
    fn precedence_and_parentheses() {
        assert_eq!(
            sel("proto tcp or proto udp and dst_port 53"),
            "(or (Eq proto 6) (and (Eq proto 17) (Eq dst_port 53)))"
        );
        assert_eq!(
            sel("(proto tcp or proto udp) and dst_port 53"),
            "(and (or (Eq proto 6) (Eq proto 17)) (Eq dst_port 53))"
        );
        assert_eq!(
            sel("not (dst_port 25 or dst_port == 53) && !proto icmp"),
            "(and (not (or (Eq dst_port 25) (Eq dst_port 53))) (not (Eq proto 1)))"
        );
        assert_eq!(
            sel("proto tcp || proto udp"),
            "(or (Eq proto 6) (Eq proto 17))"
        );
        assert_eq!(
            sel("dst_port gt 1023 and dst_port lt_eq 0xffff and src_port neq 80"),
            "(and (Gt dst_port 1023) (Le dst_port 65535) (Ne src_port 80))"
        );
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(sel("flags & tcp-syn"), "(Eq (& flags 0x2) 0x2)");
        assert_eq!(
            sel("flags & tcp-syn|tcp-ack == tcp-syn"),
            "(Eq (& flags 0x12) 0x2)"
        );
        assert_eq!(sel("tcp_flags&0x12!=0"), "(Ne (& tcp_flags 0x12) 0x0)");
        assert_eq!(sel("ip_src in 10.1.2.3/8"), "(in ip_src 10.0.0.0/8)");
        assert_eq!(sel("ip_dst in 2001:db8::1/32"), "(in ip_dst 2001:db8::/32)");
        assert_eq!(sel("ip_dst 192.168.0.1"), "(Eq ip_dst 192.168.0.1)");
        assert_eq!(sel("ip_dst != ::1"), "(Ne ip_dst ::1)");
    }

    #[test]
    fn sets() {
        assert_eq!(
            sel("proto udp and not dst_port in {25, 53,110}"),
            "(and (Eq proto 17) (not (or (Eq dst_port 25) (Eq dst_port 53) (Eq dst_port 110))))"
        );
        assert_eq!(
            sel("ip_src in {10.0.0.0/8, 192.168.1.1}"),
            "(or (in ip_src 10.0.0.0/8) (Eq ip_src 192.168.1.1))"
        );
        assert_eq!(sel("proto in {tcp}"), "(Eq proto 6)");
        assert_eq!(
            sel("dst_port in {80, 1.2.3.4, x}"),
            "error at 17: an address cannot be compared with `dst_port`, which is a number; error at 26: unknown symbol `x`"
        );
        assert_eq!(
            sel("dst_port in {80 443}"),
            "error at 16: expected `,` or `}` in the set, found `443`"
        );
        assert_eq!(
            sel("dst_port in {}"),
            "error at 13: expected a value for `dst_port`, found `}`"
        );
    }

    #[test]
    fn strings_and_http() {
        assert_eq!(sel("http_method http-get"), "(Eq http_method \"GET\")");
        assert_eq!(
            sel(r#"http_host == "a \"b\"" or domain_name example.com"#),
            r#"(or (Eq http_host "a \"b\"") (Eq domain_name "example.com"))"#
        );
        assert_eq!(sel("proto icmpv6"), "(Eq proto 58)");
        assert_eq!(sel("flags dns-refused"), "(Eq flags 5)");
    }

    #[test]
    fn type_errors_have_offsets() {
        assert_eq!(
            sel("dst_port 10.0.0.1"),
            "error at 9: an address cannot be compared with `dst_port`, which is a number"
        );
        assert_eq!(
            sel("ip_src 80"),
            "error at 7: `80` is not an IP address, and `ip_src` holds addresses"
        );
        assert_eq!(
            sel("proto tcp-syn"),
            "error at 6: `tcp-syn` is a TCP flag, not a value of `proto`"
        );
        assert_eq!(
            sel("dst_port 70000"),
            "error at 9: value 70000 does not fit `dst_port` (16-bit field)"
        );
        assert_eq!(
            sel("ip_sorc 1.2.3.4 and proto tcpp"),
            "error at 0: unknown field `ip_sorc`; error at 26: unknown symbol `tcpp`"
        );
        assert_eq!(
            sel("ip_src < 1.2.3.4"),
            "error at 7: `ip_src` can only be compared with `==` or `!=`"
        );
        assert_eq!(
            sel("dst_port in 10.0.0.0/8"),
            "error at 12: `in` needs an address field, or a set `{a, b, …}`; `dst_port` is not an address field"
        );
        assert_eq!(
            sel("ip_src in 10.0.0.0/33"),
            "error at 19: prefix length must be 0..=32"
        );
        assert_eq!(
            sel("flags tcp-syn|dns-nxdomain"),
            "error at 14: `dns-nxdomain` is a DNS response code; only TCP flags can be combined with `|`"
        );
        assert_eq!(
            sel("flags tcp-syn|tcp-bogus"),
            "error at 14: unknown symbol `tcp-bogus`"
        );
        assert_eq!(
            sel("http_method \"GET\" and dst_port \"80\""),
            "error at 31: a string cannot be compared with `dst_port`, which is a number"
        );
    }

    #[test]
    fn syntax_errors_have_offsets() {
        assert_eq!(
            sel("proto"),
            "error at 5: expected a value for `proto`, found end of text"
        );
        assert_eq!(
            sel("proto and udp"),
            "error at 6: expected a value for `proto`, found `and`"
        );
        assert_eq!(
            sel("(proto tcp"),
            "error at 10: expected `)`, found end of text"
        );
        assert_eq!(
            sel("proto tcp udp"),
            "error at 10: expected `and`, `or` or `)`, found `udp`"
        );
        assert_eq!(
            sel("and proto tcp"),
            "error at 0: expected a field test, found `and`"
        );
        assert_eq!(
            sel("proto tcp or"),
            "error at 12: expected a field test, found end of text"
        );
        assert_eq!(
            sel("1 == 2"),
            "error at 0: expected a field test, found `1`"
        );
        let deep = "(".repeat(1000) + "proto tcp" + &")".repeat(1000);
        assert!(sel(&deep).contains("nested too deeply"));
    }
}
