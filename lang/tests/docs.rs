//! `docs/language.md` stays in step with the code: every packet field and
//! every selector symbol is documented.

use streamon_lang::{selector_symbols, Field};

const DOC: &str = include_str!("../../docs/language.md");

#[test]
fn every_field_is_documented() {
    for f in Field::ALL {
        assert!(
            DOC.contains(&format!("`{}`", f.name())),
            "docs/language.md does not mention field `{}`",
            f.name()
        );
    }
}

#[test]
fn every_symbol_is_documented() {
    for s in selector_symbols() {
        assert!(
            DOC.contains(&format!("`{s}`")),
            "docs/language.md does not mention symbol `{s}`"
        );
    }
}

#[test]
fn the_first_program_checks_clean() {
    let start = DOC.find("<!-- syn.xml").expect("the first program");
    let end = start + DOC[start..].find("```").unwrap();
    let (program, warnings) =
        streamon_lang::parse_and_check(&DOC[start..end], "syn.xml").expect("checks");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(program.states.len(), 2);
}
