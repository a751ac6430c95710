//! Event emitted → received at a subscriber on loopback, one at a time:
//! prints p50/p99/max for the text and JSON formats, plain and CURVE.
//! Target: p99 < 5 ms. Run: `cargo bench -p streamon-bus --bench latency`.

use std::time::{Duration, Instant};

use streamon_bus::curve::KeyPair;
use streamon_bus::{PayloadFormat, Publisher, PublisherConfig, Subscriber, SubscriberConfig};
use streamon_probe::{EventSink, OutputEvent};

const SAMPLES: usize = 5_000;

fn event(n: u64) -> OutputEvent {
    OutputEvent {
        ts: n,
        app: "dns".into(),
        topic: "alert".into(),
        state_from: "normal".into(),
        state_to: "suspect".into(),
        code: "A1".into(),
        level: "LOW".into(),
        key: "10.0.0.1-192.0.2.7".into(),
        key_fields: Vec::new(),
        text: "DNS Hijacking Suspected".into(),
        features: vec![("nxd_count".into(), 17.0), ("ratio".into(), 0.25)],
        event: "packet:0".into(),
        packet_no: n,
        raw: None,
    }
}

fn run(name: &str, format: PayloadFormat, curve: bool) {
    let mut c = PublisherConfig::new("probe1");
    c.endpoint = "tcp://127.0.0.1:*".into();
    c.format = format;
    let server = KeyPair::generate().expect("keypair");
    let client = KeyPair::generate().expect("keypair");
    if curve {
        c.curve = Some((server.clone(), vec![client.public]));
    }
    let mut p = Publisher::bind(&c).expect("bind");
    let mut s = Subscriber::connect(&SubscriberConfig {
        endpoints: vec![p.endpoint().into()],
        curve: curve.then(|| (client.clone(), server.public)),
        ..Default::default()
    })
    .expect("connect");
    // Wait for the subscription to reach the publisher.
    loop {
        p.emit(&event(0));
        if s.recv_timeout(Duration::from_millis(20))
            .expect("recv")
            .is_some()
        {
            break;
        }
    }
    while s
        .recv_timeout(Duration::from_millis(50))
        .expect("recv")
        .is_some()
    {}
    let mut lat = Vec::with_capacity(SAMPLES);
    let mut lost = 0;
    for n in 0..SAMPLES as u64 {
        let ev = event(n);
        let t = Instant::now();
        p.emit(&ev);
        match s.recv_timeout(Duration::from_secs(1)).expect("recv") {
            Some(_) => lat.push(t.elapsed()),
            None => lost += 1,
        }
    }
    lat.sort();
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<12} n={:<5} lost={lost} p50={:>7.1} us  p99={:>7.1} us  max={:>8.1} us  {}",
        lat.len(),
        us(q(0.50)),
        us(q(0.99)),
        us(*lat.last().expect("samples")),
        if q(0.99) < Duration::from_millis(5) {
            "(p99 < 5 ms: ok)"
        } else {
            "(p99 >= 5 ms: MISSED)"
        }
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent;
    // keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    run("text", PayloadFormat::Text, false);
    run("json", PayloadFormat::Json, false);
    run("text+curve", PayloadFormat::Text, true);
    run("json+curve", PayloadFormat::Json, true);
}
