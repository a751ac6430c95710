//! Arbitrary bytes as one connection's input to the controller's HTTP API
//! (request line, headers, `Content-Length` body, query parameters and the
//! JSON body of `POST /api/…`), decoded without running the operation.
//!
//! Reading must never panic nor wait for more than the input holds, and
//! every refusal is one of the statuses the server documents.
//!
//! ```text
//! cargo +nightly fuzz run ctl_http -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = streamon_ctl::http::request_for_fuzzing(data);
    assert!(
        [200, 400, 404, 408, 413, 431].contains(&status),
        "status {status}"
    );
});
