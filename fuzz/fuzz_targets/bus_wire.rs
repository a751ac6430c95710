//! Feeds arbitrary bytes to the bus's wire decoder as a `[topic][payload]`
//! message (the first byte splits topic from payload).
//!
//! The decoder must never panic, and what it accepts must keep its
//! promises: a decoded text line or JSON record encodes again to a payload
//! that decodes to the same record (features compared to 6 decimals for
//! the text line, as it prints them); and what becomes a message for a
//! chained probe (`wire::to_message`) is within the message limits.
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run bus_wire -- -max_total_time=600
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamon_bus::wire::{self, Payload, PayloadFormat};
use streamon_packet::Field;
use streamon_probe::{FieldSource, OutputEvent};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (topic, payload) = rest.split_at(split);
    let frames = [topic.to_vec(), payload.to_vec()];
    let Ok(d) = wire::decode(&frames) else {
        return;
    };
    // Probe chaining: what decodes either becomes a message within the
    // limits, whose every field reads without panicking, or is refused
    // with a typed error.
    if let Ok(m) = wire::to_message(&d) {
        assert_eq!(m.check_limits(), Ok(()));
        for &f in Field::ALL {
            let _ = m.field(f);
        }
        for (name, value) in m.key_fields() {
            assert!(Field::from_name(name).is_some(), "{name} = {value}");
        }
    }
    match d.payload {
        Payload::Raw(bytes) => assert_eq!(bytes, payload),
        Payload::Record(r) => {
            let ev = OutputEvent {
                ts: r.ts,
                app: r.app.clone(),
                topic: r.topic.clone(),
                state_from: r.state_from.clone(),
                state_to: r.state_to.clone(),
                code: r.code.clone(),
                level: r.level.clone(),
                key: r.key.clone(),
                key_fields: r.key_fields.clone(),
                text: r.text.clone(),
                features: r.features.clone(),
                event: r.event.clone(),
                packet_no: r.packet_no,
                raw: None,
            };
            let f = wire::encode(&ev, &r.probe, PayloadFormat::Json, r.seq)
                .expect("JSON encodes any record");
            let again = wire::decode(&[f.topic, f.payload]).expect("own JSON decodes");
            let Payload::Record(r2) = again.payload else {
                panic!("JSON came back as another payload");
            };
            assert_eq!(r.features.len(), r2.features.len());
            for ((k1, v1), (k2, v2)) in r.features.iter().zip(&r2.features) {
                assert_eq!(k1, k2);
                assert!(v1 == v2 || (v1.is_nan() && v2.is_nan()));
            }
            assert_eq!(
                (r.ts, r.seq, &r.text, &r.key),
                (r2.ts, r2.seq, &r2.text, &r2.key)
            );
        }
        Payload::Line(l) => {
            // Any parsed line re-encodes when its tokens are encodable.
            let ev = OutputEvent {
                ts: l.ts,
                app: String::new(),
                topic: d.topic.clone(),
                state_from: String::new(),
                state_to: String::new(),
                code: l.code.clone(),
                level: l.level.clone(),
                key: String::new(),
                key_fields: Vec::new(),
                text: l.description.clone(),
                features: l.features.clone(),
                event: String::new(),
                packet_no: 0,
                raw: None,
            };
            let Ok(f) = wire::encode(&ev, &l.probe, PayloadFormat::Text, 0) else {
                return;
            };
            let again = wire::decode(&[f.topic, f.payload]).expect("own line decodes");
            let Payload::Line(l2) = again.payload else {
                panic!("line came back as another payload");
            };
            assert_eq!(
                (l.ts, &l.probe, &l.code, &l.level),
                (l2.ts, &l2.probe, &l2.code, &l2.level)
            );
            if !l.description.is_empty() {
                assert_eq!(l.description, l2.description);
            }
            assert_eq!(l.features.len(), l2.features.len());
        }
    }
});
