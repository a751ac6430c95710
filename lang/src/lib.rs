//! The streamon application language front-end.
//!
//! A streamon *application* is an XML-like text program, installed into a
//! running probe without code generation. It keeps the vocabulary of the
//! original StreaMon (`<statedef>`, `<metric>`, `<feature>`, `<event>`,
//! `<state>`, `<use-metric>`, `<condition>`, …) so the original apps port
//! with little or no change, and it fixes the original's defects: real
//! grammars for selectors, expressions and actions instead of substring
//! rewriting, every name resolved, every error reported with its line and
//! column, any number of packet and timeout events in any order.
//!
//! This crate turns the program text into a checked, resolved [`Program`]:
//!
//! ```text
//! text ──roxmltree──▶ XML tree ──check──▶ Program (indices, typed Expr/Selector/Action)
//!                          └── sub-languages parsed per attribute:
//!                              selector · expression · key · action list · text template
//! ```
//!
//! The probe runtime compiles the [`Program`] once into its in-memory plan.
//! Nothing here runs packets; nothing here can panic on any input (a
//! fuzz target and property tests hold it to that).
//!
//! `docs/language.md` is the language reference, with the grammar of every
//! sub-language; each parser module repeats its part of the grammar.
//!
//! # Example
//!
//! ```
//! let app = r#"
//! <streamon>
//!   <statedef id="normal"/>
//!   <statedef id="alert"/>
//!   <metric name="syn_rate">
//!     <variation_monitor type="tewma" window="10"/>
//!   </metric>
//!   <event type="packet" selector="proto tcp and flags tcp-syn" primary-key="ip_dst">
//!     <state id="normal">
//!       <use-metric id="syn_rate" vm_update="ip_dst"/>
//!       <condition expression="syn_rate gt 100" next_state="alert"
//!                  action="Publish(alert, &quot;SYN flood on %ip_dst&quot;)"/>
//!     </state>
//!   </event>
//! </streamon>"#;
//! let (program, warnings) = streamon_lang::parse_and_check(app, "syn.xml").unwrap();
//! assert!(warnings.is_empty());
//! assert_eq!(program.states.len(), 2);
//! assert_eq!(program.metrics[0].name, "syn_rate");
//!
//! let broken = app.replace("ip_dst\">", "ip_dts\">");
//! let errors = streamon_lang::parse_and_check(&broken, "syn.xml").unwrap_err();
//! assert_eq!(errors[0].to_string(), "syn.xml:8:76: error: unknown field `ip_dts`");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod check;
mod cursor;
mod diag;
mod expr;
mod key;
pub mod limits;
pub mod program;
mod selector;
mod source;
mod store;
mod template;

pub use diag::{Diagnostic, Severity};
pub use program::*;

/// Parses and checks an application program.
///
/// `file_name` only labels the diagnostics. On success, returns the
/// resolved program and the warnings (possibly none); on failure, every
/// error found (at least one), sorted by position. Warnings are dropped
/// when there are errors.
pub fn parse_and_check(
    source: &str,
    file_name: &str,
) -> Result<(Program, Vec<Diagnostic>), Vec<Diagnostic>> {
    check::check(source, file_name)
}

/// The selector symbols (`tcp`, `tcp-syn`, `dns-nxdomain`, `http-get`, …),
/// for tools that complete or document them.
pub fn selector_symbols() -> impl Iterator<Item = &'static str> {
    selector::symbol_names()
}
