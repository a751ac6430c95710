//! Expressions survive a trip through text: a random resolved expression,
//! written back with `Program::expr_to_source` (minimal parentheses), parses
//! to the same tree. This holds the parser to its precedence and
//! associativity rules from the outside.

use proptest::prelude::*;
use streamon_lang::*;

const BASE: &str = r#"<streamon>
  <statedef id="s"/>
  <metric name="m0"><variation_monitor type="dleft"/></metric>
  <metric name="m1"><variation_detector/></metric>
  <table name="t"/>
  <feature name="f0" body="m0 + 1"/>
  <feature name="f1" body="f0 * 2"/>
  <event type="packet" primary-key="ip_src">
    <state id="s">
      <use-metric id="m0" vm_update="ip_src"/>
      <use-metric id="m1" vd_update="ip_src"/>
      <condition expression="EXPR"/>
    </state>
  </event>
</streamon>"#;

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (0u32..1000).prop_map(|v| Expr::Const(f64::from(v) / 8.0)),
        (0u32..2).prop_map(|i| Expr::Feature(FeatureId(i))),
        (0u32..2).prop_map(|i| Expr::Metric(MetricId(i))),
        prop_oneof![Just(Field::IpLen), Just(Field::DstPort), Just(Field::Proto)]
            .prop_map(Expr::Field),
        prop_oneof![
            Just(vec![Field::IpSrc]),
            Just(vec![Field::IpSrc, Field::IpDst, Field::DstPort])
        ]
        .prop_map(|fields| Expr::Table(TableId(0), Key { fields })),
    ]
}

fn binop() -> impl Strategy<Value = BinaryOp> {
    prop_oneof![
        Just(BinaryOp::Add),
        Just(BinaryOp::Sub),
        Just(BinaryOp::Mul),
        Just(BinaryOp::Div),
        Just(BinaryOp::Eq),
        Just(BinaryOp::Ne),
        Just(BinaryOp::Lt),
        Just(BinaryOp::Gt),
        Just(BinaryOp::Le),
        Just(BinaryOp::Ge),
        Just(BinaryOp::And),
        Just(BinaryOp::Or),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 48, 3, |inner| {
        prop_oneof![
            (binop(), inner.clone(), inner.clone()).prop_map(|(op, a, b)| Expr::Binary(
                op,
                Box::new(a),
                Box::new(b)
            )),
            (
                prop_oneof![Just(UnaryOp::Neg), Just(UnaryOp::Not)],
                inner.clone()
            )
                .prop_map(|(op, a)| Expr::Unary(op, Box::new(a))),
            prop_oneof![
                Just(Func::Abs),
                Just(Func::Log),
                Just(Func::Exp),
                Just(Func::Sqrt)
            ]
            .prop_flat_map(move |f| inner.clone().prop_map(move |a| Expr::Call(f, vec![a]))),
        ]
    })
}

fn condition_of(text: &str) -> Result<Expr, Vec<Diagnostic>> {
    let src = BASE.replace("EXPR", &text.replace('&', "&amp;").replace('<', "&lt;"));
    let (p, _) = parse_and_check(&src, "rt.xml")?;
    let b = p.events[0].behaviour(StateId(0)).unwrap();
    Ok(b.conditions[0].expr.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn printed_expressions_parse_back(e in expr()) {
        let (program, _) = parse_and_check(&BASE.replace("EXPR", "1"), "rt.xml").unwrap();
        let text = program.expr_to_source(&e);
        match condition_of(&text) {
            Ok(back) => prop_assert_eq!(back, e, "text: {}", text),
            Err(errors) => prop_assert!(false, "`{}` does not parse: {:?}", text, errors),
        }
    }
}

#[test]
fn minimal_parentheses() {
    let (p, _) = parse_and_check(
        &BASE.replace(
            "EXPR",
            "(m0 - (f0 - 1)) * -t(ip_src) gt 2 or not (f1 == 1 and m1 != 0)",
        ),
        "x.xml",
    )
    .unwrap();
    let e = &p.events[0].behaviour(StateId(0)).unwrap().conditions[0].expr;
    assert_eq!(
        p.expr_to_source(e),
        "(m0 - (f0 - 1)) * -t(ip_src) gt 2 or not (f1 == 1 and m1 != 0)"
    );
}
