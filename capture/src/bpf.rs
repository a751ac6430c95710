//! Classic-BPF pre-filters, read from the text `tcpdump` prints for a
//! compiled expression, so the default build needs no libpcap:
//!
//! ```text
//! tcpdump -ddd 'tcp or udp port 53' > filter.bpf   # decimal, first line = count
//! tcpdump -dd  'tcp or udp port 53' > filter.bpf   # C array: { 0x28, 0, 0, 0x0000000c },
//! ```
//!
//! The kernel runs the program on every frame before it reaches the ring;
//! frames it rejects are neither delivered nor counted as drops. The
//! program is checked by the kernel when it is attached (a bad one is a
//! [`crate::CaptureError::Filter`]); here only the text is checked.

use crate::sys::SockFilter;

/// The most instructions the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// A classic-BPF program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfProgram {
    insns: Vec<SockFilter>,
}

/// Why a filter text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct BpfParseError {
    /// 1-based line of the text.
    pub line: usize,
    /// What is wrong there.
    pub kind: BpfParseErrorKind,
}

/// What is wrong with a line of filter text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfParseErrorKind {
    /// The text holds no instruction.
    #[error("no instruction")]
    Empty,
    /// Not four numbers `code jt jf k`.
    #[error("expected four numbers `code jt jf k`, found {0:?}")]
    Shape(String),
    /// A number does not fit its field.
    #[error("{field} {text:?} is not a number that fits")]
    Number {
        /// `code`, `jt`, `jf` or `k`.
        field: &'static str,
        /// The text found.
        text: String,
    },
    /// The `-ddd` count line disagrees with the instructions that follow.
    #[error("count line says {said} instructions, {found} follow")]
    Count {
        /// The first line's number.
        said: usize,
        /// Instructions read.
        found: usize,
    },
    /// More than [`MAX_INSNS`] instructions.
    #[error("{0} instructions, the kernel accepts at most 4096")]
    TooLong(usize),
}

fn number<T: TryFrom<u64>>(
    text: &str,
    field: &'static str,
    line: usize,
) -> Result<T, BpfParseError> {
    let t = text.trim();
    let v = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        t.parse::<u64>().ok()
    };
    v.and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| BpfParseError {
            line,
            kind: BpfParseErrorKind::Number {
                field,
                text: t.to_string(),
            },
        })
}

impl BpfProgram {
    /// Parses `tcpdump -ddd` (a count line, then `code jt jf k` in decimal)
    /// or `tcpdump -dd` (`{ 0x28, 0, 0, 0x0000000c },` lines) output.
    /// Blank lines and lines starting with `#` are ignored.
    pub fn parse(text: &str) -> Result<BpfProgram, BpfParseError> {
        let mut insns = Vec::new();
        let mut count: Option<(usize, usize)> = None;
        let mut last_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            last_line = line;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let l = l
                .trim_start_matches('{')
                .trim_end_matches(',')
                .trim_end_matches('}');
            let parts: Vec<&str> = l
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .collect();
            if parts.len() == 1 && insns.is_empty() && count.is_none() {
                count = Some((number::<usize>(parts[0], "count", line)?, line));
                continue;
            }
            let [code, jt, jf, k] = parts[..] else {
                return Err(BpfParseError {
                    line,
                    kind: BpfParseErrorKind::Shape(raw.trim().to_string()),
                });
            };
            insns.push(SockFilter {
                code: number(code, "code", line)?,
                jt: number(jt, "jt", line)?,
                jf: number(jf, "jf", line)?,
                k: number(k, "k", line)?,
            });
            if insns.len() > MAX_INSNS {
                return Err(BpfParseError {
                    line,
                    kind: BpfParseErrorKind::TooLong(insns.len()),
                });
            }
        }
        if insns.is_empty() {
            return Err(BpfParseError {
                line: last_line.max(1),
                kind: BpfParseErrorKind::Empty,
            });
        }
        if let Some((said, line)) = count {
            if said != insns.len() {
                return Err(BpfParseError {
                    line,
                    kind: BpfParseErrorKind::Count {
                        said,
                        found: insns.len(),
                    },
                });
            }
        }
        Ok(BpfProgram { insns })
    }

    /// The instructions.
    pub fn instructions(&self) -> &[SockFilter] {
        &self.insns
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Never true for a parsed program.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `tcpdump -ddd -y EN10MB tcp` (tcpdump 4.99.3, libpcap 1.10.3).
    const TCP_DDD: &str = "12\n40 0 0 12\n21 0 2 2048\n48 0 0 23\n21 6 7 6\n21 0 6 34525\n48 0 0 20\n21 3 0 6\n21 0 3 44\n48 0 0 54\n21 0 1 6\n6 0 0 262144\n6 0 0 0\n";

    #[test]
    fn reads_ddd_and_dd_alike() {
        let ddd = BpfProgram::parse(TCP_DDD).expect("ddd");
        assert_eq!(ddd.len(), 12);
        assert_eq!(
            ddd.instructions()[1],
            SockFilter {
                code: 21,
                jt: 0,
                jf: 2,
                k: 2048
            }
        );
        let dd: String = ddd
            .instructions()
            .iter()
            .map(|i| format!("{{ 0x{:x}, {}, {}, 0x{:08x} }},\n", i.code, i.jt, i.jf, i.k))
            .collect();
        assert_eq!(BpfProgram::parse(&dd).expect("dd"), ddd);
    }

    #[test]
    fn bad_text_says_which_line() {
        let e = BpfProgram::parse("3\n40 0 0 12\n6 0 0\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, BpfParseErrorKind::Shape(_)));
        let e = BpfProgram::parse("2\n40 0 0 12\n").unwrap_err();
        assert_eq!(
            e,
            BpfParseError {
                line: 1,
                kind: BpfParseErrorKind::Count { said: 2, found: 1 }
            }
        );
        let e = BpfProgram::parse("40 0 300 12\n").unwrap_err();
        assert!(matches!(
            e.kind,
            BpfParseErrorKind::Number { field: "jf", .. }
        ));
        assert_eq!(
            BpfProgram::parse("\n# nothing\n").unwrap_err().kind,
            BpfParseErrorKind::Empty
        );
    }
}
