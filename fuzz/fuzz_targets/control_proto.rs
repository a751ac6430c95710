//! Feeds arbitrary bytes to the control channel's decoder as one frame.
//!
//! The decoder must never panic; what it refuses has a reason; what it
//! accepts encodes again to a frame that decodes to the same message.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run control_proto -- -max_total_time=600
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_ctl::proto;

fuzz_target!(|data: &[u8]| {
    match proto::decode(data) {
        Ok(m) => {
            let again = proto::decode(&proto::encode(&m)).expect("own encoding decodes");
            assert_eq!(again, m);
        }
        Err(e) => {
            // Every refusal maps to a wire reason and prints.
            let _ = (e.reason().as_str(), e.to_string());
        }
    }
});
