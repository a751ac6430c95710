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
