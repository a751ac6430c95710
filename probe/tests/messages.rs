//! Message events (probe chaining) in the runtime: other probes' events as
//! input events, read through the `msg_*` fields, the publisher's key
//! fields and `msg.NAME` features, in message time.

use streamon_probe::{sw_engine, Message, OutputEvent, Probe, RuntimeOptions, VecSink};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn msg(topic: &str, probe: &str, code: &str, host: &str, ts: u64, fanout: f64) -> Message {
    // `Message` keeps its key fields private (they are typed on entry).
    let mut m = Message::default();
    m.topic = topic.into();
    m.probe = probe.into();
    m.code = code.into();
    m.key = host.into();
    m.ts = ts;
    m.features = vec![("fanout".into(), fanout)];
    m.push_key_field("ip_src", host).unwrap();
    m
}

fn probe_with(src: &str) -> Probe {
    let mut p = Probe::new();
    p.install(
        "corr",
        src,
        "corr.xml",
        &sw_engine,
        RuntimeOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p
}

fn texts(events: &[OutputEvent]) -> Vec<&str> {
    events.iter().map(|e| e.text.as_str()).collect()
}

const OUTBREAK: &str = include_str!("../../apps/outbreak.xml");

#[test]
fn three_distinct_hosts_in_the_window_are_an_outbreak() {
    let mut p = probe_with(OUTBREAK);
    assert_eq!(p.message_topics(), ["symptom"]);
    let mut sink = VecSink::default();
    // The same host twice counts once; another topic and another code are
    // not this symptom.
    for m in [
        msg("symptom", "a", "SCAN", "10.0.0.1", T0, 7.0),
        msg("symptom", "b", "SCAN", "10.0.0.1", T0 + SEC, 8.0),
        msg("other", "c", "SCAN", "10.0.0.9", T0 + SEC, 7.0),
        msg("symptom", "c", "DNS", "10.0.0.8", T0 + SEC, 7.0),
        msg("symptom", "c", "SCAN", "10.0.0.2", T0 + 2 * SEC, 9.0),
    ] {
        p.message(&m, &mut sink);
    }
    assert!(sink.0.is_empty(), "{:?}", sink.0);
    p.message(
        &msg("symptom", "d", "SCAN", "10.0.0.3", T0 + 3 * SEC, 12.0),
        &mut sink,
    );
    assert_eq!(sink.0.len(), 1);
    let e = &sink.0[0];
    assert_eq!((e.key.as_str(), e.state_to.as_str()), ("SCAN", "outbreak"));
    assert_eq!(e.event, "message:0");
    assert_eq!(e.ts, T0 + 3 * SEC);
    assert_eq!(e.key_fields, [("msg_code".to_string(), "SCAN".to_string())]);
    assert!(
        e.text
            .ends_with("the latest 10.0.0.3 (from probe d, fanout 12.000000)"),
        "{}",
        e.text
    );
    let st = &p.app_stats()[0].1;
    assert_eq!(st.messages_unmatched, 1, "the `other` topic");
    assert_eq!(st.matched, [6 - 1]);
    assert_eq!(p.stats().messages, 6);
}

#[test]
fn hosts_outside_the_window_are_no_outbreak() {
    let mut p = probe_with(OUTBREAK);
    let mut sink = VecSink::default();
    for (i, host) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        // 61 s apart: never 3 within 60 s.
        let ts = T0 + i as u64 * 61 * SEC;
        p.message(&msg("symptom", "a", "SCAN", host, ts, 7.0), &mut sink);
    }
    assert!(sink.0.is_empty(), "{:?}", texts(&sink.0));
}

#[test]
fn message_time_never_goes_backwards() {
    // A late message (older ts) runs at the application's latest time.
    let mut p = probe_with(OUTBREAK);
    let mut sink = VecSink::default();
    p.message(
        &msg("symptom", "a", "SCAN", "10.0.0.1", T0 + 10 * SEC, 7.0),
        &mut sink,
    );
    p.message(&msg("symptom", "a", "SCAN", "10.0.0.2", T0, 7.0), &mut sink);
    p.message(
        &msg("symptom", "a", "SCAN", "10.0.0.3", T0 + 10 * SEC, 7.0),
        &mut sink,
    );
    assert_eq!(sink.0.len(), 1);
    assert_eq!(sink.0[0].ts, T0 + 10 * SEC);
}

const SELECT: &str = r#"<streamon>
  <statedef id="s0"/>
  <statedef id="seen"/>
  <table name="fan" value_type="double"/>
  <event type="message" topic="alert" selector="msg_level HIGH and ip_src in 10.0.0.0/8" primary-key="ip_src">
    <state id="s0">
      <condition expression="msg.fanout gt 5 and msg_ts gt 0" next_state="seen"
                 action='fan(ip_src) += msg.fanout; Publish(log, "%ip_src %msg_probe %msg_code %msg.fanout %msg.absent|%msg_app|")'>
        <timeout_set class="later" value="5"/>
      </condition>
    </state>
  </event>
  <event type="message" topic="alert" primary-key="msg_probe">
    <state id="s0">
      <condition expression="1" action='Publish(other, "%msg_probe %ip_src")'/>
    </state>
  </event>
  <event type="timeout" class="later" primary-key="ip_src">
    <state id="seen">
      <condition expression="1" next_state="s0"
                 action='Publish(tick, "%ts %ip_src %msg_probe fan=%msg.fanout")'>
        <timeout_set class="later" value="0"/>
      </condition>
    </state>
  </event>
</streamon>"#;

#[test]
fn selectors_keys_features_and_timeouts_read_the_message() {
    let mut p = probe_with(SELECT);
    let mut sink = VecSink::default();
    let mut m = msg("alert", "p1", "A1", "10.1.2.3", T0, 7.0);
    m.level = "HIGH".into();
    p.message(&m, &mut sink);
    // Not HIGH: the second event takes it, keyed by the probe id.
    let mut low = msg("alert", "p2", "A1", "10.1.2.3", T0 + SEC, 7.0);
    low.level = "LOW".into();
    p.message(&low, &mut sink);
    // Outside 10/8: the second event as well.
    let mut far = msg("alert", "p3", "A1", "192.0.2.1", T0 + SEC, 7.0);
    far.level = "HIGH".into();
    p.message(&far, &mut sink);
    // A later message moves time on: the timeout armed by the first
    // message fires at T0 + 5 s, with that message as its context.
    let mut later = msg("alert", "p4", "A1", "172.16.0.1", T0 + 6 * SEC, 1.0);
    later.level = "LOW".into();
    p.message(&later, &mut sink);
    let got: Vec<(&str, &str)> = sink
        .0
        .iter()
        .map(|e| (e.topic.as_str(), e.text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("log", "10.1.2.3 p1 A1 7.000000 ||"),
            ("other", "p2 10.1.2.3"),
            ("other", "p3 192.0.2.1"),
            (
                "tick",
                &*format!("{} 10.1.2.3 p1 fan=7.000000", T0 + 5 * SEC)
            ),
            ("other", "p4 172.16.0.1"),
        ]
    );
    assert_eq!(sink.0[0].key_fields, [("ip_src".into(), "10.1.2.3".into())]);
    assert_eq!(sink.0[0].packet_no, 0);
}

#[test]
fn packets_do_not_run_message_events_and_messages_do_not_run_packet_events() {
    let src = r#"<streamon>
      <statedef id="s0"/>
      <event type="packet" primary-key="ip_src">
        <state id="s0"><condition expression="1" action='Publish(p, "packet %msg_code|%msg.x")'/></state>
      </event>
      <event type="message" topic="t" primary-key="msg_key">
        <state id="s0"><condition expression="1" action='Publish(m, "message %msg_key")'/></state>
      </event>
    </streamon>"#;
    let mut p = probe_with(src);
    let mut sink = VecSink::default();
    p.message(&msg("t", "a", "C", "10.0.0.1", T0, 1.0), &mut sink);
    let frame = {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2);
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    };
    let meta = streamon_packet::FrameMeta {
        ts_ns: T0 + SEC,
        orig_len: frame.len() as u32,
        packet_no: 1,
    };
    p.frame(&frame, streamon_packet::LinkType::Ethernet, meta, &mut sink);
    assert_eq!(texts(&sink.0), ["message 10.0.0.1", "packet |"]);
}

/// Messages between the frames of a real capture reach every application
/// at the same place on several worker threads as on one: the same events
/// in the same order, the same counters, however the input is cut into
/// batches (`ParallelProbe::flush` at uneven points).
#[test]
fn messages_between_frames_give_the_same_events_on_several_threads() {
    use streamon_packet::pcap::PcapSource;
    use streamon_probe::ParallelProbe;

    let apps = [
        ("peer_watch", include_str!("../../apps/peer_watch.xml")),
        ("scan_symptom", include_str!("../../apps/scan_symptom.xml")),
        ("portscan", include_str!("../../apps/portscan.xml")),
        ("outbreak", OUTBREAK),
    ];
    let probe = || {
        let mut p = Probe::new();
        for (name, src) in apps {
            p.install(name, src, name, &sw_engine, RuntimeOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        p
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/traces/ndpi_synscan.pcap"
    );
    let mut src = PcapSource::open(std::path::Path::new(path)).expect("trace opens");
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        frames.push((f.data.to_vec(), f.linktype, f.meta));
    }
    let t0 = frames[0].2.ts_ns;
    // A symptom about the capture's scanner after frame 64, others before
    // and after it, some older than the packets around them.
    let messages = |i: usize| -> Vec<Message> {
        match i {
            10 => vec![msg("symptom", "s1", "SCAN", "10.0.0.1", t0, 6.0)],
            64 => vec![
                msg("symptom", "s1", "SCAN", "172.16.0.8", t0 - SEC, 7.0),
                msg("symptom", "s2", "SCAN", "10.0.0.2", t0 + 2 * SEC, 9.0),
            ],
            700 => vec![msg("symptom", "s3", "SCAN", "10.0.0.3", t0 + 3 * SEC, 8.0)],
            1500 => vec![msg("other", "s3", "X", "10.0.0.4", t0, 1.0)],
            _ => vec![],
        }
    };
    let mut one = probe();
    let mut want = VecSink::default();
    for (i, (data, lt, meta)) in frames.iter().enumerate() {
        one.frame(data, *lt, *meta, &mut want);
        for m in messages(i + 1) {
            one.message(&m, &mut want);
        }
    }
    one.finish();
    assert!(
        want.0
            .iter()
            .any(|e| e.app == "peer_watch" && e.topic == "alert"),
        "the watched scanner is confirmed: {:?}",
        texts(&want.0)
    );
    assert!(want
        .0
        .iter()
        .any(|e| e.app == "outbreak" && e.topic == "alert"));
    for threads in [2, 3, 4] {
        let mut par = ParallelProbe::start(probe(), threads);
        let mut got = VecSink::default();
        for (i, (data, lt, meta)) in frames.iter().enumerate() {
            par.frame(data, *lt, *meta, &mut got);
            for m in messages(i + 1) {
                par.message(m, &mut got);
            }
            if i % 97 == 0 {
                par.flush(&mut got);
            }
        }
        let (back, _) = par.finish(&mut got).expect("workers");
        assert_eq!(got.0, want.0, "{threads} threads");
        assert_eq!(
            format!("{:?}", back.stats()),
            format!("{:?}", one.stats()),
            "{threads} threads"
        );
        // (as JSON: `published` is a hash map, its Debug order varies)
        assert_eq!(
            serde_json::to_value(back.app_stats()).unwrap(),
            serde_json::to_value(one.app_stats()).unwrap(),
            "{threads} threads"
        );
    }
}
