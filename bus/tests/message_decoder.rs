//! The decoder a chained probe runs on whatever it receives
//! (`wire::decode` then `wire::to_message`): arbitrary bytes and mutated
//! valid records never panic, and what is accepted is within the message
//! limits. The fuzz target `bus_wire` does the same under libFuzzer.

use proptest::prelude::*;
use streamon_bus::wire;
use streamon_packet::Field;
use streamon_probe::FieldSource;

const RECORD: &str = r#"{"v":1,"probe":"p1","app":"scan","topic":"symptom","key":"10.0.0.1","key_fields":{"ip_src":"10.0.0.1","dst_port":"443"},"state_from":"a","state_to":"b","code":"SCAN","level":"LOW","text":"t","features":{"fanout":7.0},"ts":1,"event":"packet:0","packet_no":1,"seq":0}"#;

fn check(topic: &[u8], payload: &[u8]) {
    let Ok(d) = wire::decode(&[topic.to_vec(), payload.to_vec()]) else {
        return;
    };
    if let Ok(m) = wire::to_message(&d) {
        assert_eq!(m.check_limits(), Ok(()));
        for &f in Field::ALL {
            let _ = m.field(f);
        }
    }
}

#[test]
fn the_valid_record_becomes_a_message() {
    let d = wire::decode(&[b"symptom".to_vec(), RECORD.as_bytes().to_vec()]).unwrap();
    let m = wire::to_message(&d).unwrap();
    assert_eq!(m.key_fields().count(), 2);
    assert_eq!(m.feature("fanout"), Some(7.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        topic in proptest::collection::vec(any::<u8>(), 0..16),
        payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        check(&topic, &payload);
    }

    #[test]
    fn mutated_records_never_panic(
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..8),
        cut in 0usize..400,
    ) {
        let mut b = RECORD.as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at % b.len();
            b[i] = byte;
        }
        check(b"symptom", &b);
        b.truncate(cut.min(b.len()));
        check(b"symptom", &b);
    }

    #[test]
    fn any_key_field_text_is_typed_or_refused(name in "[a-z_]{1,12}", value in ".{0,40}") {
        let rec = RECORD.replace(
            r#""key_fields":{"ip_src":"10.0.0.1","dst_port":"443"}"#,
            &format!(r#""key_fields":{{{}:{}}}"#,
                serde_json::to_string(&name).unwrap(),
                serde_json::to_string(&value).unwrap()),
        );
        let d = wire::decode(&[b"symptom".to_vec(), rec.into_bytes()]).unwrap();
        match wire::to_message(&d) {
            Ok(m) => {
                let f = Field::from_name(&name).expect("only field names are accepted");
                prop_assert!(m.field(f).is_some());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
