//! Diagnostics: the errors and warnings the front-end reports.
//!
//! Every diagnostic points at a 1-based line and column of the program
//! text: the column of the offending attribute value, or of the offending
//! token inside it. Columns count characters (Unicode scalar values), not
//! bytes, so they match what an editor shows for a UTF-8 file.

use std::fmt;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The program is accepted; something is suspicious, ignored or deprecated.
    Warning,
    /// The program is rejected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One error or warning, with its position in the program text.
///
/// It prints as `file:line:col: error: message` (or `warning:`), the format
/// compilers and editors understand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// The file name given to [`crate::parse_and_check`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong: a short lowercase phrase, names in backquotes.
    pub message: String,
}

impl Diagnostic {
    /// The diagnostic without its file name: `line:col: message`.
    ///
    /// Handy in tests and in tools that already show the file.
    pub fn short(&self) -> String {
        format!("{}:{}: {}", self.line, self.col, self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.severity, self.message
        )
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_compiler_style() {
        let d = Diagnostic {
            file: "app.xml".into(),
            line: 3,
            col: 17,
            severity: Severity::Error,
            message: "unknown field `ip_sorc`".into(),
        };
        assert_eq!(
            d.to_string(),
            "app.xml:3:17: error: unknown field `ip_sorc`"
        );
        assert_eq!(d.short(), "3:17: unknown field `ip_sorc`");
        let w = Diagnostic {
            severity: Severity::Warning,
            ..d
        };
        assert!(w.to_string().starts_with("app.xml:3:17: warning: "));
    }
}
