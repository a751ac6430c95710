//! Arbitrary text as a CURVE key file (`*.pub`, `*.key`: one Z85 line),
//! which probes and the controller read from disk and operators copy
//! around.
//!
//! The reader must never panic; a key it accepts encodes back to the same
//! 40 characters.
//!
//! ```text
//! cargo +nightly fuzz run curve_key -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_bus::curve;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = curve::parse_z85(text) {
        assert_eq!(curve::z85(&key), text.trim());
    }
});
