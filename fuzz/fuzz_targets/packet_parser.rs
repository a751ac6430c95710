//! Arbitrary bytes as a frame of every supported link type (and one
//! unknown): `parse` must not panic, and every field of a parsed frame is
//! read, printed and key-encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_packet::{parse, Field, FrameMeta, KeyBuf, LinkType};

const LINK_TYPES: [u32; 9] = [0, 1, 101, 228, 229, 113, 276, 108, 147];

fuzz_target!(|data: &[u8]| {
    let meta = FrameMeta {
        ts_ns: 1,
        orig_len: data.len() as u32,
        packet_no: 1,
    };
    let mut key = KeyBuf::new();
    for lt in LINK_TYPES {
        let Ok(p) = parse(data, LinkType::from_u32(lt), meta) else {
            continue;
        };
        key.clear();
        for &f in Field::ALL {
            if let Some(v) = p.get(f) {
                std::hint::black_box(v.to_string());
                // Every single value fits an empty key; a composite may not.
                let mut one = KeyBuf::new();
                v.write_key(f, &mut one).expect("one value always fits");
                assert_eq!(one.len(), v.key_len(f));
                let _ = v.write_key(f, &mut key);
            }
        }
        std::hint::black_box((
            p.l4_payload(),
            p.ip_payload(),
            p.anomalies().names().count(),
        ));
        assert!(p.l4_payload().len() <= data.len());
    }
});
