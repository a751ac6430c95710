//! Arbitrary bytes straight into the application-layer parsers the packet
//! parser calls on UDP/TCP payloads (DNS, HTTP request, Modbus/TCP), so
//! their inputs need not first be wrapped in valid Ethernet/IP/L4 headers.
//!
//! None may panic; every accessor of what they accept is read, and what
//! they return borrows from the input (never past it).
//!
//! ```text
//! cargo +nightly fuzz run app_payloads -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_packet::dns::Dns;
use streamon_packet::http::HttpRequest;
use streamon_packet::modbus::Modbus;

fuzz_target!(|data: &[u8]| {
    if let Some(d) = Dns::parse(data) {
        std::hint::black_box((
            d.id(),
            d.flags(),
            d.qr(),
            d.opcode(),
            d.rcode(),
            d.qdcount(),
            d.ancount(),
            d.nscount(),
            d.arcount(),
            d.qtype(),
            d.answer_addr(),
            d.malformed(),
        ));
        if let Some(n) = d.name() {
            assert!(n.second_level().len() <= n.as_bytes().len());
            assert!(n.as_bytes().len() <= 255, "name longer than DNS allows");
        }
    }
    if let Some(h) = HttpRequest::parse(data) {
        assert!(h.method().len() <= data.len());
        for part in [h.url(), h.host()].into_iter().flatten() {
            assert!(part.len() <= data.len());
        }
        std::hint::black_box(h.malformed());
    }
    if let Ok(m) = Modbus::parse(data) {
        std::hint::black_box((
            m.transaction_id(),
            m.length(),
            m.unit_id(),
            m.function_code(),
        ));
    }
});
