//! The checker on whole programs: the shipped apps check clean, the
//! reconstructed original programs parse, and every broken program in
//! `tests/broken/` gives exactly the diagnostics its header comment lists.
//!
//! A broken program starts with a comment whose lines
//! `expect: LINE:COL: message` list its errors, in order. A program in
//! `tests/warn/` checks, and its `expect-warning: LINE:COL: message` lines
//! list its warnings, in order.
//! Run with `BLESS=1` to print what the checker says instead of comparing.

use std::fs;
use std::path::{Path, PathBuf};

use streamon_lang::{parse_and_check, Diagnostic};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no programs in {}", dir.display());
    files
}

fn render(ds: &[Diagnostic]) -> String {
    ds.iter().map(|d| format!("{d}\n")).collect()
}

#[test]
fn shipped_apps_check_clean() {
    for path in xml_files(&dir("../apps")) {
        let text = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match parse_and_check(&text, &name) {
            Ok((program, warnings)) => {
                assert!(
                    warnings.is_empty(),
                    "{name} has warnings:\n{}",
                    render(&warnings)
                );
                assert!(!program.events.is_empty(), "{name} has no events");
            }
            Err(errors) => panic!("{name} does not check:\n{}", render(&errors)),
        }
        let body = text.trim_start();
        let body = match body.strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map_or("", |(_, r)| r).trim_start(),
            None => body,
        };
        assert!(
            body.starts_with("<!--"),
            "{name} must start with a comment saying what it detects"
        );
    }
}

#[test]
fn original_programs_parse() {
    for path in xml_files(&dir("tests/legacy")) {
        let text = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Err(errors) = parse_and_check(&text, &name) {
            panic!("{name} does not check:\n{}", render(&errors));
        }
    }
}

/// The `expect:` / `expect-warning:` lines of a broken program.
fn expectations(text: &str) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(e) = line.strip_prefix("expect:") {
            errors.push(e.trim().to_string());
        } else if let Some(w) = line.strip_prefix("expect-warning:") {
            warnings.push(w.trim().to_string());
        }
    }
    (errors, warnings)
}

#[test]
fn broken_programs_give_exact_diagnostics() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = String::new();
    for path in xml_files(&dir("tests/broken")) {
        let text = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (want_errors, _) = expectations(&text);
        assert!(!want_errors.is_empty(), "{name}: no `expect:` lines");
        let errors = match parse_and_check(&text, &name) {
            Ok(_) => {
                failures.push_str(&format!("{name}: accepted, but errors were expected\n"));
                continue;
            }
            Err(errors) => errors,
        };
        for e in &errors {
            assert_eq!(e.file, name);
            assert_eq!(
                e.to_string(),
                format!("{name}:{}:{}: error: {}", e.line, e.col, e.message)
            );
        }
        let got: Vec<String> = errors.iter().map(Diagnostic::short).collect();
        if bless {
            println!("== {name}");
            for g in &got {
                println!("  expect: {g}");
            }
            continue;
        }
        if got != want_errors {
            failures.push_str(&format!(
                "{name}:\n  expected:\n    {}\n  got:\n    {}\n",
                want_errors.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn warnings_are_exact() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = String::new();
    for path in xml_files(&dir("tests/warn")) {
        let text = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (_, want) = expectations(&text);
        let warnings = match parse_and_check(&text, &name) {
            Ok((_, w)) => w,
            Err(errors) => {
                failures.push_str(&format!("{name}: rejected:\n{}", render(&errors)));
                continue;
            }
        };
        for w in &warnings {
            assert_eq!(
                w.to_string(),
                format!("{name}:{}:{}: warning: {}", w.line, w.col, w.message)
            );
        }
        let got: Vec<String> = warnings.iter().map(Diagnostic::short).collect();
        if bless {
            println!("== {name}");
            for g in &got {
                println!("  expect-warning: {g}");
            }
            continue;
        }
        if got != want {
            failures.push_str(&format!(
                "{name}:\n  expected:\n    {}\n  got:\n    {}\n",
                want.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

/// The resolved program of the DDoS app: indices, selector, decay, infos.
#[test]
fn ddos_program_is_resolved() {
    use streamon_lang::*;
    let text = fs::read_to_string(dir("../apps/ddos.xml")).unwrap();
    let (p, _) = parse_and_check(&text, "ddos.xml").unwrap();
    assert_eq!(p.name, "streamon");
    let names: Vec<&str> = p.states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["normal", "monitored", "rising", "attack"]);
    let attack = p.state_by_name("attack").unwrap();
    assert_eq!(p.states[attack.index()].info.code, "B2");

    let syn = p.metric_by_name("syn_rate").unwrap();
    match &p.metrics[syn.index()].monitor.as_ref().unwrap().kind {
        MonitorKind::Tewma {
            decay,
            size_log2,
            nhash,
        } => {
            assert_eq!((*size_log2, *nhash), (17, 4));
            assert!((decay.tau_s() - 60.0).abs() < 1e-9);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.features[0].body,
        Expr::Binary(
            BinaryOp::Mul,
            Box::new(Expr::Metric(syn)),
            Box::new(Expr::Const(60.0))
        )
    );

    let EventKind::Packet {
        selector,
        primary_key,
    } = &p.events[0].kind
    else {
        panic!("first event is the packet event")
    };
    assert_eq!(primary_key.fields, [Field::IpDst]);
    assert_eq!(
        *selector,
        Selector::And(vec![
            Selector::Test(FieldTest {
                field: Field::Proto,
                test: Test::Compare(CmpOp::Eq, Value::UInt(6)),
            }),
            Selector::Test(FieldTest {
                field: Field::Flags,
                test: Test::Compare(CmpOp::Eq, Value::UInt(2)),
            }),
        ])
    );

    let class = p.timeout_class_by_name("ddos_check").unwrap();
    assert_eq!(p.timeout_event(class).loc, p.events[1].loc);
    let normal = p.events[0].behaviour(Program::INITIAL_STATE).unwrap();
    assert_eq!(normal.use_metrics.len(), 2);
    let cond = &normal.conditions[0];
    assert_eq!(cond.next_state, p.state_by_name("monitored"));
    assert!(matches!(
        cond.actions.last(),
        Some(Action::TimeoutSet { class: c, seconds, .. }) if *c == class && *seconds == 10.0
    ));
    // `%next_state.code` renders the metadata of the state entered.
    let monitored = p.state_by_name("monitored").unwrap();
    assert_eq!(p.state_info(0, monitored).code, "B0");
    let Action::Publish { topic, text } = &cond.actions[1] else {
        panic!("{:?}", cond.actions[1])
    };
    assert_eq!(topic, "log");
    assert_eq!(text.parts[0], TemplatePart::Subst(Subst::Timestamp));
    assert_eq!(
        text.parts[2],
        TemplatePart::Subst(Subst::NextState(StateAttr::Code))
    );
}

/// CRLF line ends give the same positions as LF.
#[test]
fn crlf_positions_match_lf() {
    let text = fs::read_to_string(dir("tests/broken/unknown_fields.xml")).unwrap();
    let crlf = text.replace('\n', "\r\n");
    let lf: Vec<String> = parse_and_check(&text, "a.xml")
        .unwrap_err()
        .iter()
        .map(Diagnostic::short)
        .collect();
    let cr: Vec<String> = parse_and_check(&crlf, "a.xml")
        .unwrap_err()
        .iter()
        .map(Diagnostic::short)
        .collect();
    assert_eq!(lf, cr);
}

/// Columns count characters, and entities inside attribute values are
/// mapped back to the text.
#[test]
fn columns_count_characters_and_skip_entities() {
    let text = "<s><statedef id=\"é\"/>\n<event type=\"packet\" primary-key=\"ip_src\"><state id=\"é\">\
                <condition expression=\"1 &gt; 0\" action='print(\"ééé %bogus\")'/></state></event></s>";
    let errors = parse_and_check(text, "u.xml").unwrap_err();
    let line2 = text.lines().nth(1).unwrap();
    let byte = line2.find("%bogus").unwrap();
    let col = line2[..byte].chars().count() + 1;
    assert_eq!(
        errors[0].short(),
        format!(
            "2:{col}: unknown name `%bogus` in text (a field, feature, metric, `%ts`, `%key`, `%state.*` or `%next_state.*`)"
        )
    );
    let text =
        "<s><statedef id=\"a\"/><feature name=\"f\" body=\"1 &lt; 2 &amp;&amp; nosuch\"/></s>";
    let errors = parse_and_check(text, "e.xml").unwrap_err();
    let col = text.find("nosuch").unwrap() + 1;
    assert_eq!(
        errors[0].short(),
        format!("1:{col}: unknown name `nosuch` (not a feature, metric or field)")
    );
}
