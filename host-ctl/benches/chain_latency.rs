//! Packet in → event at a subscriber, through real probes on loopback:
//! prints p50/p99/max of
//!
//! - **1 hop**: a frame of a real capture handed to a probe whose
//!   application publishes on every SYN (a distinct-target count per
//!   source, then `Publish`), JSON over a `Publisher`, until a `Subscriber`
//!   has decoded the event;
//! - **2 hops**: the same, then a second, chained probe (`net::Inbox`)
//!   takes the event as a message event, publishes again, and the
//!   subscriber decodes that.
//!
//! One event in flight at a time, so the figure is latency, not queueing.
//! Target: p99 < 5 ms. Run:
//! `cargo bench -p streamon-host-ctl --features bus --bench chain_latency`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use streamon_bus::{PayloadFormat, Publisher, PublisherConfig, Subscriber, SubscriberConfig};
use streamon_host_ctl::net::{Inbox, SubscribeSpec};
use streamon_packet::pcap::PcapSource;
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{sw_engine, Probe, RuntimeOptions};

const ROUNDS: usize = 3;

const FIRST: &str = r#"<streamon>
  <statedef id="s0"/>
  <metric name="targets">
    <variation_detector status="on" size="16" nhash="4"/>
    <variation_monitor status="on" type="dleft"/>
  </metric>
  <feature name="fanout" body="targets"/>
  <event type="packet" selector="proto tcp and flags tcp-syn" primary-key="ip_src">
    <state id="s0">
      <use-metric id="targets" vd_update="ip_src-ip_dst-dst_port" vm_update="ip_src"/>
      <condition expression="1" action='Publish(alert, "%ip_src probed %fanout targets")'/>
    </state>
  </event>
</streamon>"#;

const SECOND: &str = r#"<streamon>
  <statedef id="s0"/>
  <event type="message" topic="alert" primary-key="ip_src">
    <state id="s0">
      <condition expression="msg.fanout gt 0" action='Publish(chained, "%ip_src from %msg_probe: %msg.fanout")'/>
    </state>
  </event>
</streamon>"#;

fn probe(src: &str) -> Probe {
    let mut p = Probe::new();
    p.install("app", src, "app.xml", &sw_engine, RuntimeOptions::default())
        .expect("the bench app checks");
    p
}

fn publisher(id: &str) -> Publisher {
    let mut c = PublisherConfig::new(id);
    c.endpoint = "tcp://127.0.0.1:*".into();
    c.format = PayloadFormat::Json;
    Publisher::bind(&c).expect("bind")
}

/// The SYN frames of a real capture (nmap -sS).
fn frames() -> Vec<(Vec<u8>, LinkType, FrameMeta)> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/traces/ndpi_synscan.pcap"
    ));
    let mut src = PcapSource::open(&path).expect("capture");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("frame") {
        out.push((f.data.to_vec(), f.linktype, f.meta));
    }
    out
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<34} n={:<6} p50 {:>7.1} µs   p99 {:>7.1} µs   max {:>8.1} µs",
        v.len(),
        q(0.50).as_secs_f64() * 1e6,
        q(0.99).as_secs_f64() * 1e6,
        v[v.len() - 1].as_secs_f64() * 1e6
    );
}

fn main() {
    let frames = frames();
    let mut one_hop = Vec::new();
    let mut two_hops = Vec::new();
    for _ in 0..ROUNDS {
        // 1 hop.
        let mut a = probe(FIRST);
        let mut pa = publisher("a");
        let mut sub = Subscriber::connect(&SubscriberConfig {
            endpoints: vec![pa.endpoint().into()],
            ..Default::default()
        })
        .expect("connect");
        pa.wait_subscriptions(1, Duration::from_secs(10))
            .expect("subscription");
        for (data, lt, meta) in &frames {
            let t = Instant::now();
            let before = pa.stats().sent;
            a.frame(data, *lt, *meta, &mut pa);
            if pa.stats().sent == before {
                continue; // not a SYN: no event
            }
            sub.recv_timeout(Duration::from_secs(5))
                .expect("recv")
                .expect("the event arrives");
            one_hop.push(t.elapsed());
        }

        // 2 hops: a → b (message event) → subscriber.
        let mut a = probe(FIRST);
        let mut b = probe(SECOND);
        let mut pa = publisher("a");
        let mut pb = publisher("b");
        let mut inbox = Inbox::connect(
            &[SubscribeSpec {
                endpoint: pa.endpoint().into(),
                server_key: None,
            }],
            &b.message_topics(),
            None,
            None,
        )
        .expect("inbox");
        let mut sub = Subscriber::connect(&SubscriberConfig {
            endpoints: vec![pb.endpoint().into()],
            ..Default::default()
        })
        .expect("connect");
        pa.wait_subscriptions(1, Duration::from_secs(10))
            .expect("subscription");
        pb.wait_subscriptions(1, Duration::from_secs(10))
            .expect("subscription");
        for (data, lt, meta) in &frames {
            let t = Instant::now();
            let before = pa.stats().sent;
            a.frame(data, *lt, *meta, &mut pa);
            if pa.stats().sent == before {
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while inbox.drain(&mut b, &mut pb, 16).expect("drain") == 0 {
                assert!(Instant::now() < deadline, "message lost");
                inbox.wait(Duration::from_millis(100)).expect("wait");
            }
            sub.recv_timeout(Duration::from_secs(5))
                .expect("recv")
                .expect("the chained event arrives");
            two_hops.push(t.elapsed());
        }
        assert_eq!(sub.stats().lost, 0);
    }
    println!("packet in -> event at a subscriber, loopback, JSON, one event in flight");
    report("1 hop (probe -> subscriber)", one_hop);
    report("2 hops (probe -> probe -> subscriber)", two_hops);
}
