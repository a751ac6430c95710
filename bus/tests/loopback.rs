//! The bus on loopback with real libzmq: round trips of both formats,
//! prefix filters, raw bytes, drops at the high-water mark, malformed
//! messages, and CurveZMQ authorisation.

use std::time::{Duration, Instant};

use streamon_bus::curve::{self, KeyPair};
use streamon_bus::{
    Payload, PayloadFormat, Publisher, PublisherConfig, Subscriber, SubscriberConfig,
};
use streamon_probe::{EventSink, OutputEvent};

fn event(topic: &str, n: u64) -> OutputEvent {
    OutputEvent {
        ts: 1_700_000_000_000_000_000 + n,
        app: "dns".into(),
        topic: topic.into(),
        state_from: "normal".into(),
        state_to: "suspect".into(),
        code: "A1".into(),
        level: "LOW".into(),
        key: "10.0.0.1".into(),
        key_fields: Vec::new(),
        text: format!("event {n}"),
        features: vec![("nxd_count".into(), n as f64)],
        event: "packet:0".into(),
        packet_no: n,
        raw: (topic == "raw").then(|| "deadbeef".into()),
    }
}

fn publisher(format: PayloadFormat) -> Publisher {
    let mut c = PublisherConfig::new("probe1");
    c.endpoint = "tcp://127.0.0.1:*".into();
    c.format = format;
    Publisher::bind(&c).unwrap()
}

fn subscriber(ep: &str, topics: &[&str]) -> Subscriber {
    Subscriber::connect(&SubscriberConfig {
        endpoints: vec![ep.into()],
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

/// Emits `warmup` events until the subscriber gets one (PUB/SUB loses what
/// is sent before the subscription arrives), then drains.
fn join(p: &mut Publisher, s: &mut Subscriber, topic: &str) {
    let t = Instant::now();
    loop {
        p.emit(&event(topic, 0));
        if s.recv_timeout(Duration::from_millis(20)).unwrap().is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "subscriber never joined"
        );
    }
    while s.recv_timeout(Duration::from_millis(50)).unwrap().is_some() {}
}

#[test]
fn text_round_trip() {
    let mut p = publisher(PayloadFormat::Text);
    let mut s = subscriber(p.endpoint(), &[]);
    join(&mut p, &mut s, "alert");
    for n in 1..=5 {
        p.emit(&event("alert", n));
    }
    for n in 1..=5 {
        let d = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(d.topic, "alert");
        let Payload::Line(l) = d.payload else {
            panic!("{d:?}")
        };
        assert_eq!(l.ts, 1_700_000_000_000_000_000 + n);
        assert_eq!(l.probe, "probe1");
        assert_eq!(l.description, format!("event {n}"));
        assert_eq!(l.features, vec![("nxd_count".to_string(), n as f64)]);
    }
    // Each event once: nothing stale comes after.
    assert!(s
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    assert_eq!(p.stats().send_drops, 0);
}

#[test]
fn json_round_trip_and_raw_bytes() {
    let mut p = publisher(PayloadFormat::Json);
    let mut s = subscriber(p.endpoint(), &[]);
    join(&mut p, &mut s, "log");
    p.emit(&event("log", 7));
    p.emit(&event("raw", 8));
    let d = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let Payload::Record(r) = d.payload else {
        panic!("{d:?}")
    };
    assert_eq!((r.probe.as_str(), r.topic.as_str()), ("probe1", "log"));
    assert_eq!((r.packet_no, r.key.as_str()), (7, "10.0.0.1"));
    let d = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(d.topic, "raw");
    assert_eq!(d.payload, Payload::Raw(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(s.stats().lost, 0);
}

#[test]
fn prefix_filters() {
    let mut p = publisher(PayloadFormat::Text);
    let mut s = subscriber(p.endpoint(), &["alert"]);
    join(&mut p, &mut s, "alert");
    for topic in ["log", "alert", "raw", "alert2", "feature"] {
        p.emit(&event(topic, 1));
    }
    let mut got = Vec::new();
    while let Some(d) = s.recv_timeout(Duration::from_millis(300)).unwrap() {
        got.push(d.topic);
    }
    assert_eq!(got, ["alert", "alert2"]);
}

#[test]
fn malformed_messages_are_counted_not_fatal() {
    let mut p = publisher(PayloadFormat::Text);
    let mut s = subscriber(p.endpoint(), &[]);
    join(&mut p, &mut s, "alert");
    p.send_frames(b"alert", b"not a line");
    p.send_frames(b"alert", b"{\"v\":9}");
    p.send_frames(b"alert", b"12 p A1 LOW \"unterminated");
    p.emit(&event("alert", 3));
    let d = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let Payload::Line(l) = d.payload else {
        panic!("{d:?}")
    };
    assert_eq!(l.description, "event 3");
    assert_eq!(s.stats().malformed, 3);
    assert!(s.last_malformed().is_some());
}

#[test]
fn oversized_messages_are_counted_and_skipped() {
    let mut p = publisher(PayloadFormat::Text);
    let mut s = Subscriber::connect(&SubscriberConfig {
        endpoints: vec![p.endpoint().into()],
        max_message_bytes: Some(200),
        ..Default::default()
    })
    .unwrap();
    join(&mut p, &mut s, "alert");
    let mut big = event("alert", 1);
    big.text = "x".repeat(300);
    p.emit(&big);
    p.emit(&event("alert", 2));
    let d = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let Payload::Line(l) = d.payload else {
        panic!("{d:?}")
    };
    assert_eq!(l.description, "event 2");
    assert_eq!(s.stats().oversized, 1);
    assert_eq!(s.stats().malformed, 0);
    assert!(s
        .last_malformed()
        .unwrap()
        .to_string()
        .contains("exceeds the limit of 200"));
}

#[test]
fn waiting_for_subscriptions_loses_nothing() {
    let mut p = publisher(PayloadFormat::Json);
    let mut s = subscriber(p.endpoint(), &["alert", "log"]);
    // Two prefixes: two subscription messages.
    let seen = p.wait_subscriptions(2, Duration::from_secs(10)).unwrap();
    assert_eq!(seen, 2);
    assert_eq!(p.stats().subscriptions, 2);
    // The very first events arrive: no warm-up needed.
    p.emit(&event("alert", 0));
    p.emit(&event("log", 1));
    p.emit(&event("other", 2));
    p.emit(&event("alert", 3));
    let mut got = Vec::new();
    while let Some(d) = s.recv_timeout(Duration::from_millis(500)).unwrap() {
        let Payload::Record(r) = d.payload else {
            panic!("{d:?}")
        };
        got.push(r.packet_no);
    }
    assert_eq!(got, [0, 1, 3]);
    assert_eq!(s.stats().lost, 0);
    // Nobody else is there: waiting for more gives up after the timeout.
    let t = Instant::now();
    assert_eq!(
        p.wait_subscriptions(3, Duration::from_millis(200)).unwrap(),
        2
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[test]
fn hwm_drops_are_counted_and_emit_never_blocks() {
    let mut c = PublisherConfig::new("probe1");
    c.endpoint = "tcp://127.0.0.1:*".into();
    c.format = PayloadFormat::Json;
    c.sndhwm = 10;
    let mut p = Publisher::bind(&c).unwrap();
    let mut s = Subscriber::connect(&SubscriberConfig {
        endpoints: vec![p.endpoint().into()],
        rcvhwm: Some(10),
        ..Default::default()
    })
    .unwrap();
    join(&mut p, &mut s, "log");
    // A slow subscriber: it reads nothing while 20,000 large events go out.
    let mut ev = event("log", 0);
    ev.text = "x".repeat(4096);
    let n = 20_000u64;
    let t = Instant::now();
    for i in 0..n {
        ev.packet_no = i;
        p.emit(&ev);
    }
    let emit_time = t.elapsed();
    let st = p.stats();
    assert_eq!(st.encode_errors, 0);
    let mut received = 0u64;
    while s
        .recv_timeout(Duration::from_millis(500))
        .unwrap()
        .is_some()
    {
        received += 1;
    }
    let ss = s.stats();
    assert!(received < n, "nothing was dropped: {received}");
    // Every event not received is accounted for by the seq gaps (drops
    // after the last received event have no later seq to reveal them).
    p.emit(&event("log", 0));
    s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    let lost = s.stats().lost;
    assert_eq!(received + lost, n, "{ss:?} received {received}");
    assert!(
        emit_time < Duration::from_secs(10),
        "emit blocked: {emit_time:?}"
    );
}

fn curve_publisher(server: &KeyPair, clients: Vec<[u8; 32]>) -> Publisher {
    let mut c = PublisherConfig::new("probe1");
    c.endpoint = "tcp://127.0.0.1:*".into();
    c.curve = Some((server.clone(), clients));
    Publisher::bind(&c).unwrap()
}

fn curve_subscriber(ep: &str, me: Option<&KeyPair>, server: &KeyPair) -> Subscriber {
    Subscriber::connect(&SubscriberConfig {
        endpoints: vec![ep.into()],
        curve: me.map(|k| (k.clone(), server.public)),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn curve_authorised_subscriber_receives() {
    let dir = tempfile::tempdir().unwrap();
    let server = curve::keygen(dir.path(), "probe1").unwrap();
    let client = curve::keygen(dir.path(), "controller").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("probe1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        curve::read_keypair(dir.path(), "controller").unwrap(),
        client
    );
    let authorised = curve::read_key(&dir.path().join("controller.pub")).unwrap();
    let mut p = curve_publisher(&server, vec![authorised]);
    let mut s = curve_subscriber(p.endpoint(), Some(&client), &server);
    join(&mut p, &mut s, "alert");
    p.emit(&event("alert", 1));
    let d = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(d.topic, "alert");
    let a = p.stats().auth.unwrap();
    assert!(a.accepted >= 1 && a.refused == 0, "{a:?}");
}

fn emit_for(p: &mut Publisher, d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        p.emit(&event("alert", 1));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn curve_refuses_unauthorised_key_and_plain_client() {
    let server = KeyPair::generate().unwrap();
    let good = KeyPair::generate().unwrap();
    let wrong = KeyPair::generate().unwrap();
    let mut p = curve_publisher(&server, vec![good.public]);
    let mut bad = curve_subscriber(p.endpoint(), Some(&wrong), &server);
    let mut plain = curve_subscriber(p.endpoint(), None, &server);
    emit_for(&mut p, Duration::from_secs(1));
    assert!(bad
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
    assert!(plain
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
    let a = p.stats().auth.unwrap();
    assert!(a.refused >= 1, "{a:?}");
    assert_eq!(a.accepted, 0, "{a:?}");
    assert!(
        a.recent_refusals
            .iter()
            .any(|r| r.reason == format!("unauthorised key {}", curve::z85(&wrong.public))),
        "{a:?}"
    );
    // The plain client fails the handshake (mechanism mismatch) before ZAP.
    assert!(a.handshake_failures >= 2, "{a:?}");
}

/// Events still queued when a publisher is dropped reach a connected
/// subscriber within the linger (bound with 0, a drop discarded them: the
/// last events of a run were lost with no seq gap after them to tell).
#[test]
fn events_queued_at_the_end_survive_the_drop_within_the_linger() {
    let mut c = PublisherConfig::new("probe1");
    c.endpoint = "tcp://127.0.0.1:*".into();
    c.format = PayloadFormat::Json;
    c.sndhwm = 100_000;
    let mut p = Publisher::bind(&c).unwrap();
    let mut s = Subscriber::connect(&SubscriberConfig {
        endpoints: vec![p.endpoint().into()],
        rcvhwm: Some(100_000),
        ..Default::default()
    })
    .unwrap();
    join(&mut p, &mut s, "log");
    p.set_linger(Duration::from_secs(10)).unwrap();
    // 40 MB: far more than the socket buffers hold, so most of it is still
    // in libzmq's queue when the publisher goes.
    let mut ev = event("log", 0);
    ev.text = "x".repeat(8192);
    let n = 5_000u64;
    for i in 0..n {
        ev.packet_no = i + 1;
        p.emit(&ev);
    }
    assert_eq!(p.stats().send_drops, 0);
    let dropper = std::thread::spawn(move || drop(p));
    let mut last = 0;
    let mut received = 0u64;
    while let Some(d) = s.recv_timeout(Duration::from_secs(5)).unwrap() {
        if let Payload::Record(r) = d.payload {
            last = r.packet_no;
            received += 1;
        }
    }
    dropper.join().unwrap();
    assert_eq!((received, last), (n, n), "{:?}", s.stats());
    assert_eq!(s.stats().lost, 0);
}
