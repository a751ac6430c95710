//! Checks application programs and prints their diagnostics.
//!
//! ```text
//! cargo run -p streamon-lang --example check -- apps/*.xml
//! ```
//!
//! Exits 1 if any program has errors.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: error: cannot read: {e}");
                failed = true;
                continue;
            }
        };
        match streamon_lang::parse_and_check(&text, &path) {
            Ok((program, warnings)) => {
                for w in &warnings {
                    eprintln!("{w}");
                }
                println!(
                    "{path}: ok: {} states, {} metrics, {} features, {} tables, {} events",
                    program.states.len(),
                    program.metrics.len(),
                    program.features.len(),
                    program.tables.len(),
                    program.events.len()
                );
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
