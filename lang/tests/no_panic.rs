//! Property tests: nothing panics the front-end, whatever the input, and
//! every diagnostic points inside the text.

use proptest::prelude::*;
use streamon_lang::{parse_and_check, Diagnostic};

const APPS: &[&str] = &[
    include_str!("../../apps/ddos.xml"),
    include_str!("../../apps/conficker.xml"),
    include_str!("../../apps/p2p.xml"),
    include_str!("../../apps/portscan.xml"),
    include_str!("../../apps/dns_nxdomain.xml"),
    include_str!("../../apps/modbus_scan.xml"),
    include_str!("legacy/config_ddos.xml"),
    include_str!("legacy/config_conficker-to.xml"),
];

/// Pieces that make mutations reach deep into the grammars.
const TOKENS: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    "\"",
    "'",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&#x41;",
    "&",
    "=",
    "(",
    ")",
    ",",
    ";",
    "-",
    "|",
    "%",
    "%%",
    "%ip_src",
    "%state.code",
    "%next_state.x",
    "\\\"",
    "\\",
    "and",
    "or",
    "not",
    "!",
    "&&",
    "||",
    "gt",
    "lt_eq",
    "==",
    "!=",
    "<=",
    "+=",
    "/",
    "*",
    ".reset",
    "()",
    "0",
    "0x",
    "1e999",
    "-1",
    "4294967296",
    "18446744073709551616",
    "1.5",
    ".",
    "ip_src",
    "ip_dst",
    "flags",
    "tcp-syn",
    "tcp-syn|tcp-ack",
    "dns-nxdomain",
    "10.0.0.0/8",
    "::1",
    "in",
    "&",
    "abs(",
    "min(",
    "max(1,",
    "t(ip_src)",
    "Publish(log,",
    "print(",
    "block(",
    "timeout_set(",
    "Drop",
    "<statedef id=\"s\"/>",
    "<metric name=\"m\">",
    "<event type=\"timeout\">",
    "<state id=\"x\">",
    "é",
    "\u{1F600}",
    "\r\n",
    "\n",
    "\t",
    " ",
    "\0",
];

fn check_positions(text: &str, diags: &[Diagnostic]) {
    let lines = text.split('\n').count();
    for d in diags {
        assert!(d.line >= 1 && d.col >= 1, "{d}");
        assert!(d.line <= lines + 1, "{d} (text has {lines} lines)");
        assert!(!d.message.is_empty());
    }
}

fn run(text: &str) {
    match parse_and_check(text, "fuzz.xml") {
        Ok((_, warnings)) => check_positions(text, &warnings),
        Err(errors) => {
            assert!(!errors.is_empty());
            check_positions(text, &errors);
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Duplicate(usize, usize, usize),
    Replace(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), 0usize..200, any::<usize>())
            .prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Replace(a, t)),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &mut String, m: &Mutation) {
    match *m {
        Mutation::Delete(a, n) => {
            let a = boundary(text, a);
            let b = boundary(text, (a + n).min(text.len()));
            if b > a {
                text.replace_range(a..b, "");
            }
        }
        Mutation::Insert(a, t) => {
            let a = boundary(text, a);
            text.insert_str(a, TOKENS[t]);
        }
        Mutation::Duplicate(a, n, b) => {
            let a = boundary(text, a);
            let e = boundary(text, (a + n).min(text.len()));
            let piece = text[a..e.max(a)].to_string();
            let b = boundary(text, b);
            text.insert_str(b, &piece);
        }
        Mutation::Replace(a, t) => {
            let a = boundary(text, a);
            let b = text[a..]
                .char_indices()
                .nth(1)
                .map_or(text.len(), |(i, _)| a + i);
            text.replace_range(a..b, TOKENS[t]);
        }
    }
}

/// Escapes a string for a double-quoted XML attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            (0..TOKENS.len()).prop_map(|i| TOKENS[i].to_string()),
            "[a-z_]{1,8}",
            "[0-9.x]{1,6}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..24,
    )
    .prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_strings_never_panic(s in any::<String>()) {
        run(&s);
    }

    #[test]
    fn random_xmlish_strings_never_panic(s in prop::collection::vec(0..TOKENS.len(), 0..64)) {
        let text: String = s.iter().map(|i| TOKENS[*i]).collect();
        run(&text);
        run(&format!("<streamon>{text}</streamon>"));
    }

    #[test]
    fn mutated_apps_never_panic(
        app in 0..APPS.len(),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut text = APPS[app].to_string();
        for m in &muts {
            apply(&mut text, m);
        }
        run(&text);
    }

    /// Random text in every sub-language's attribute of a valid program.
    #[test]
    fn random_attribute_values_never_panic(
        selector in token_soup(),
        key in token_soup(),
        expr in token_soup(),
        actions in token_soup(),
        body in token_soup(),
    ) {
        let text = format!(
            r#"<streamon>
  <statedef id="s0"/>
  <metric name="m"><variation_detector/><variation_monitor type="dleft"/></metric>
  <table name="t"/>
  <feature name="f" body="{}"/>
  <event type="packet" selector="{}" primary-key="{}">
    <state id="s0">
      <use-metric id="m" vd_update="{}" vm_update="ip_dst"/>
      <condition expression="{}" action="{}"/>
      <post-condition-action do="{}"/>
    </state>
  </event>
  <event type="timeout" class="c"/>
</streamon>"#,
            escape(&body), escape(&selector), escape(&key), escape(&key),
            escape(&expr), escape(&actions), escape(&actions),
        );
        run(&text);
    }
}

#[test]
fn pathological_inputs() {
    let deep_xml = "<a>".repeat(5000) + &"</a>".repeat(5000);
    run(&deep_xml);
    let deep_expr = format!(
        r#"<s><statedef id="x"/><feature name="f" body="{}1{}"/></s>"#,
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    run(&deep_expr);
    let long_chain = format!(
        r#"<s><statedef id="x"/><feature name="f" body="{}"/></s>"#,
        vec!["1"; 100_000].join("+")
    );
    run(&long_chain);
    let many_nots = format!(
        r#"<s><statedef id="x"/><event type="packet" primary-key="ip_src" selector="{}proto tcp"/></s>"#,
        "not ".repeat(100_000)
    );
    run(&many_nots);
    run("");
    run("<");
    run("<a/>");
    run("\u{feff}<a/>");
}

/// Many errors on one long line stay fast (the report is capped and
/// positions are computed in one sweep).
#[test]
fn many_errors_on_one_line_are_fast() {
    let text = format!("<s><statedef id=\"x\"/>{}</s>", "<bogus/>".repeat(100_000));
    let start = std::time::Instant::now();
    let errors = parse_and_check(&text, "big.xml").unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(errors.len(), streamon_lang::limits::MAX_DIAGNOSTICS + 1);
    assert_eq!(errors[0].short(), "1:23: unknown element <bogus>");
    assert_eq!(
        errors[999].short(),
        format!("1:{}: unknown element <bogus>", 23 + 999 * 8)
    );
    assert_eq!(
        errors.last().unwrap().message,
        "too many errors: 99000 more not shown"
    );
    // Generous bound: a quadratic report would take minutes here.
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
}
