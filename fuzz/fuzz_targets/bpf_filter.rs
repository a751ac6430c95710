//! Arbitrary text as a `--bpf` filter file (`tcpdump -ddd` / `-dd`
//! output) through the capture crate's filter reader.
//!
//! The reader must never panic; a program it accepts has 1 to 4096
//! instructions, and a refusal names a line of the text.
//!
//! ```text
//! cargo +nightly fuzz run bpf_filter -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_capture::bpf::{BpfProgram, MAX_INSNS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BpfProgram::parse(text) {
        Ok(p) => {
            assert!(!p.is_empty() && p.len() <= MAX_INSNS);
            assert_eq!(p.instructions().len(), p.len());
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1), "{e}");
            std::hint::black_box(e.to_string());
        }
    }
});
