//! Feeds arbitrary bytes, as one connection's input, to the RESP request
//! parser, and every command it yields to the read-only server's
//! dispatcher over a small state.
//!
//! The parser must never panic, must always make progress (`0 < used <=
//! len`), and must respect its limits whatever the declared lengths; the
//! dispatcher must never panic nor write to the state.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run resp_parser -- -max_total_time=600
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_microcloud::resp::{parse_request, Limits};
use streamon_microcloud::server::execute;
use streamon_microcloud::{LiveState, MemoryState};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bulk_len: 1024,
        max_args: 16,
        max_inline_len: 2048,
    };
    let state = MemoryState::new();
    state.set("streamon:p:ip:192.0.2.1:bytes", "1");
    state.hset("streamon:p:app:a:state:k", "state", "alert");
    let mut rest = data;
    while let Ok(Some((args, used))) = parse_request(rest, &limits) {
        assert!(used > 0 && used <= rest.len(), "no progress");
        assert!(args.len() <= limits.max_args);
        for a in &args {
            assert!(a.len() <= limits.max_bulk_len.max(limits.max_inline_len));
        }
        if !args.is_empty() {
            let (reply, _) = execute(&state, &args);
            let mut out = Vec::new();
            reply.encode(&mut out);
            assert!(!out.is_empty());
        }
        rest = &rest[used..];
    }
    assert_eq!(state.len(), 2, "a command wrote to the state");
});
