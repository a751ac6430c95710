//! Arbitrary bytes as a trace file: the reader must end in a clean end or
//! a typed error (never a panic, never a huge allocation), and every frame
//! it yields goes through the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, Field};

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = PcapSource::new(data) else {
        return;
    };
    let mut last = 0;
    loop {
        match src.next_frame() {
            Ok(Some(f)) => {
                assert_eq!(f.meta.packet_no, last + 1);
                last = f.meta.packet_no;
                assert!(f.data.len() <= data.len());
                if let Ok(p) = parse(f.data, f.linktype, f.meta) {
                    for &field in Field::ALL {
                        std::hint::black_box(p.get(field));
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                assert_eq!(e.packets(), last);
                assert!(e.offset() <= data.len() as u64);
                break;
            }
        }
    }
});
