//! Feeds arbitrary UTF-8 to the application language front-end.
//!
//! The front-end must never panic, and its answer must keep its promises:
//! a rejected program has at least one error, and every diagnostic points
//! at a real line and column.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run app_parser -- -max_total_time=600
//! ```
//! Seed the corpus with `apps/*.xml` and `lang/tests/*/*.xml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let diags = match streamon_lang::parse_and_check(text, "fuzz.xml") {
        Ok((_, warnings)) => warnings,
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without an error");
            errors
        }
    };
    for d in &diags {
        assert!(d.line >= 1 && d.col >= 1 && d.line <= lines + 1, "{d}");
    }
});
