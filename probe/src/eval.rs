//! Evaluating selectors and expressions against one pass's context.
//!
//! Expressions are `f64`. Division by zero, `log`/`sqrt` out of domain and
//! non-finite results are defined (they give 0) and counted, so a feature
//! can never turn into NaN and silently make every comparison false.

use std::net::IpAddr;

use streamon_lang::{BinaryOp, CmpOp, Expr, Func, Selector, Test, UnaryOp, Value};
use streamon_packet::FieldValue;

use crate::message::FieldSource;

/// Counters of arithmetic that was defined rather than computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArithStats {
    /// Divisions by zero (result 0).
    pub div_by_zero: u64,
    /// `log`/`sqrt` of a value outside the domain, or a non-finite result
    /// (result 0).
    pub domain_errors: u64,
}

/// Whether `sel` matches packet (or message) `p`. A test of a field `p`
/// lacks is false.
pub fn matches<S: FieldSource + ?Sized>(sel: &Selector, p: &S) -> bool {
    match sel {
        Selector::Always => true,
        Selector::Test(t) => match p.field(t.field) {
            Some(v) => test(&t.test, v),
            None => false,
        },
        Selector::Not(s) => !matches(s, p),
        Selector::And(v) => v.iter().all(|s| matches(s, p)),
        Selector::Or(v) => v.iter().any(|s| matches(s, p)),
    }
}

fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Gt => a > b,
        CmpOp::Le => a <= b,
        CmpOp::Ge => a >= b,
    }
}

fn test(t: &Test, v: FieldValue<'_>) -> bool {
    match t {
        Test::Compare(op, lit) => match (v, lit) {
            (FieldValue::UInt(x), Value::UInt(y)) => cmp(*op, x, *y),
            (FieldValue::Addr(a), Value::Addr(b)) => {
                let same_version = matches!(
                    (a, b),
                    (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
                );
                match op {
                    CmpOp::Eq => same_version && a == *b,
                    CmpOp::Ne => !(same_version && a == *b),
                    _ => same_version && cmp(*op, a, *b),
                }
            }
            (FieldValue::Str(s), Value::Str(l)) => cmp(*op, s, l.as_bytes()),
            // The checker rejects mismatched types; a mismatch never matches.
            _ => false,
        },
        Test::Mask { mask, op, value } => match v {
            FieldValue::UInt(x) => cmp(*op, x & mask, *value),
            _ => false,
        },
        Test::InPrefix(prefix) => match v {
            FieldValue::Addr(a) => prefix.contains(a),
            _ => false,
        },
    }
}

/// What an expression can read.
pub trait ExprEnv {
    /// A feature's value in this pass.
    fn feature(&self, i: u32) -> f64;
    /// An application metric's value in this pass.
    fn metric(&self, i: u32) -> f64;
    /// A numeric field of the context packet (0 when absent).
    fn field(&self, f: streamon_packet::Field) -> f64;
    /// A table entry (0 when absent).
    fn table(&self, t: u32, key: &streamon_lang::Key) -> f64;
    /// A knowledge-store read (0 when missing or without a store).
    fn store(&self, read: streamon_lang::StoreRead, name: &streamon_lang::StoreName) -> f64 {
        let _ = (read, name);
        0.0
    }
    /// Feature `Program::msg_features[i]` of the pass's message (0 when
    /// absent, or when the pass is not a message's).
    fn msg_feature(&self, _i: u32) -> f64 {
        0.0
    }
}

/// Evaluates `e`.
pub fn eval(e: &Expr, env: &dyn ExprEnv, stats: &mut ArithStats) -> f64 {
    let v = match e {
        Expr::Const(c) => *c,
        Expr::Feature(f) => env.feature(f.0),
        Expr::Metric(m) => env.metric(m.0),
        Expr::Field(f) => env.field(*f),
        Expr::MsgFeature(i) => env.msg_feature(*i),
        Expr::Table(t, k) => env.table(t.0, k),
        Expr::Store(read, name) => env.store(*read, name),
        Expr::Unary(UnaryOp::Neg, x) => -eval(x, env, stats),
        Expr::Unary(UnaryOp::Not, x) => (eval(x, env, stats) == 0.0) as u8 as f64,
        Expr::Binary(BinaryOp::And, a, b) => {
            (eval(a, env, stats) != 0.0 && eval(b, env, stats) != 0.0) as u8 as f64
        }
        Expr::Binary(BinaryOp::Or, a, b) => {
            (eval(a, env, stats) != 0.0 || eval(b, env, stats) != 0.0) as u8 as f64
        }
        Expr::Binary(op, a, b) => {
            let (x, y) = (eval(a, env, stats), eval(b, env, stats));
            match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => {
                    if y == 0.0 {
                        stats.div_by_zero += 1;
                        0.0
                    } else {
                        x / y
                    }
                }
                BinaryOp::Eq => (x == y) as u8 as f64,
                BinaryOp::Ne => (x != y) as u8 as f64,
                BinaryOp::Lt => (x < y) as u8 as f64,
                BinaryOp::Gt => (x > y) as u8 as f64,
                BinaryOp::Le => (x <= y) as u8 as f64,
                BinaryOp::Ge => (x >= y) as u8 as f64,
                BinaryOp::And | BinaryOp::Or => unreachable!("handled above"),
            }
        }
        Expr::Call(f, args) => {
            let mut vals = args.iter().map(|a| eval(a, env, stats));
            match f {
                Func::Abs => vals.next().unwrap_or(0.0).abs(),
                Func::Min => vals.fold(f64::INFINITY, f64::min),
                Func::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                Func::Log => {
                    let x = vals.next().unwrap_or(0.0);
                    if x > 0.0 {
                        x.ln()
                    } else {
                        stats.domain_errors += 1;
                        0.0
                    }
                }
                Func::Exp => vals.next().unwrap_or(0.0).exp().min(f64::MAX),
                Func::Sqrt => {
                    let x = vals.next().unwrap_or(0.0);
                    if x >= 0.0 {
                        x.sqrt()
                    } else {
                        stats.domain_errors += 1;
                        0.0
                    }
                }
            }
        }
    };
    if v.is_finite() {
        v
    } else {
        stats.domain_errors += 1;
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env;
    impl ExprEnv for Env {
        fn feature(&self, i: u32) -> f64 {
            i as f64
        }
        fn metric(&self, i: u32) -> f64 {
            10.0 * i as f64
        }
        fn field(&self, _: streamon_packet::Field) -> f64 {
            0.0
        }
        fn table(&self, _: u32, _: &streamon_lang::Key) -> f64 {
            0.0
        }
    }

    #[test]
    fn division_by_zero_is_zero_and_counted() {
        let e = Expr::Binary(
            BinaryOp::Div,
            Box::new(Expr::Const(1.0)),
            Box::new(Expr::Metric(streamon_lang::MetricId(0))),
        );
        let mut s = ArithStats::default();
        assert_eq!(eval(&e, &Env, &mut s), 0.0);
        assert_eq!(s.div_by_zero, 1);
        let e = Expr::Call(Func::Log, vec![Expr::Const(-1.0)]);
        assert_eq!(eval(&e, &Env, &mut s), 0.0);
        assert_eq!(s.domain_errors, 1);
    }

    #[test]
    fn and_or_short_circuit_to_booleans() {
        let mut s = ArithStats::default();
        let t = |op, a, b| Expr::Binary(op, Box::new(Expr::Const(a)), Box::new(Expr::Const(b)));
        assert_eq!(eval(&t(BinaryOp::And, 2.0, 3.0), &Env, &mut s), 1.0);
        assert_eq!(eval(&t(BinaryOp::Or, 0.0, 0.0), &Env, &mut s), 0.0);
        assert_eq!(eval(&t(BinaryOp::Gt, 2.0, 1.2), &Env, &mut s), 1.0);
        let mx = Expr::Call(
            Func::Max,
            vec![Expr::Const(1.0), Expr::Metric(streamon_lang::MetricId(2))],
        );
        assert_eq!(eval(&mx, &Env, &mut s), 20.0);
    }
}
