//! The knowledge store through the whole probe path, against a real
//! `redis-server` on loopback: packet handed to `Probe::frame` → parse →
//! event → `kv_*` action → key name rendered → writer queue → batch →
//! Redis.
//!
//! 1. latency, packet → key visible in Redis, at a paced packet rate
//!    (default 100 k packets/s for 3 s, one store update per packet): 99
//!    packets in 100 `kv_incr(ip:%ip_src:pkts, ttl=60)` over 10 000
//!    hosts, one in 100 is a marker packet whose app does
//!    `kv_set(lat:%packet_no, ttl=60, x)`; a second connection subscribed
//!    to the keyspace notifications of those keys timestamps their arrival;
//! 2. throughput: the same packets unpaced, as fast as the probe takes
//!    them, timed until Redis has every write (what did not fit the queue
//!    is counted as dropped, and printed).
//!
//! `cargo bench -p streamon-probe --bench kv_latency`. Overrides:
//! `KV_BENCH_RATE` (packets/s), `KV_BENCH_SECS`, `KV_BENCH_PACKETS`
//! (throughput run). Needs `redis-server` (Debian package).

#[path = "../../microcloud/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::RedisProc;
use etherparse::PacketBuilder;
use streamon_microcloud::{LookupConfig, WriterConfig};
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{sw_engine, EventSink, KnowledgeStore, OutputEvent, Probe, RuntimeOptions};

const APP: &str = r#"<streamon>
  <statedef id="default"/>
  <event type="packet" selector="proto udp and dst_port 7" primary-key="ip_src">
    <state id="default">
      <post-condition-action do="kv_set(lat:%packet_no, ttl=60, x)"/>
    </state>
  </event>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="default">
      <post-condition-action do="kv_incr(ip:%ip_src:pkts, ttl=60)"/>
    </state>
  </event>
</streamon>"#;

struct Null;
impl EventSink for Null {
    fn emit(&mut self, _: &OutputEvent) {}
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1e6
}

/// 10 000 load packets (one per host) and the marker packet.
fn frames() -> (Vec<Vec<u8>>, Vec<u8>) {
    let build = |src: [u8; 4], dport: u16| {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, [10, 0, 0, 1], 64)
            .udp(40000, dport);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 32]).unwrap();
        v
    };
    let load = (0..10_000u32)
        .map(|i| {
            let a = (0xc612_0000u32 + i).to_be_bytes(); // 198.18.0.0/15
            build(a, 9)
        })
        .collect();
    (load, build([192, 0, 2, 1], 7))
}

fn probe(redis: &RedisProc) -> (Probe, KnowledgeStore) {
    let store = KnowledgeStore::connect(
        &redis.url(),
        WriterConfig::default(),
        LookupConfig::default(),
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !store.writer().is_connected() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut p = Probe::new();
    p.install(
        "bench",
        APP,
        "bench.xml",
        &sw_engine,
        RuntimeOptions {
            probe_id: "bench".into(),
            store: Some(store.clone()),
            ..RuntimeOptions::default()
        },
    )
    .unwrap();
    (p, store)
}

fn meta(i: u64, len: usize) -> FrameMeta {
    FrameMeta {
        ts_ns: 1_767_225_600_000_000_000 + i * 10_000,
        orig_len: len as u32,
        packet_no: i,
    }
}

// `u64::is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
fn latency(rate: u64, secs: u64) {
    let redis = RedisProc::start_with(&["--notify-keyspace-events", "K$"]);
    let (mut probe, store) = probe(&redis);
    let (load, marker) = frames();
    let total = rate * secs;
    let samples = (total / 100) as usize;
    let t0 = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..samples).map(|_| AtomicU64::new(0)).collect());
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..samples).map(|_| AtomicU64::new(0)).collect());

    let mut sub_conn = redis.conn();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut sub = sub_conn.as_pubsub();
            sub.psubscribe("__keyspace@0__:streamon:bench:lat:*")
                .unwrap();
            sub.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut got = 0;
            while got < samples {
                let Ok(msg) = sub.get_message() else { break };
                let now = t0.elapsed().as_nanos() as u64;
                let ch = msg.get_channel_name();
                // The marker's packet number is 100 × sample index.
                if let Some(i) = ch
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .map(|n| n / 100)
                {
                    if i < samples && seen[i].load(Ordering::Relaxed) == 0 {
                        seen[i].store(now, Ordering::Relaxed);
                        got += 1;
                    }
                }
            }
        })
    };
    ready_rx.recv().unwrap();

    let mut sink = Null;
    let start = Instant::now();
    let mut done: u64 = 0;
    while done < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while done < due {
            if done % 100 == 0 {
                let i = (done / 100) as usize;
                sent[i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                probe.frame(
                    &marker,
                    LinkType::Ethernet,
                    meta(done, marker.len()),
                    &mut sink,
                );
            } else {
                let f = &load[(done % 10_000) as usize];
                probe.frame(f, LinkType::Ethernet, meta(done, f.len()), &mut sink);
            }
            done += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let produce = start.elapsed();
    store.writer().wait_idle(Duration::from_secs(30));
    reader.join().unwrap();
    let mut lat: Vec<u64> = (0..samples)
        .filter_map(|i| {
            let (s, r) = (
                sent[i].load(Ordering::Relaxed),
                seen[i].load(Ordering::Relaxed),
            );
            (r != 0 && s != 0).then(|| r.saturating_sub(s))
        })
        .collect();
    lat.sort_unstable();
    let w = store.writer_stats();
    let a = &probe.app_stats()[0].1;
    println!(
        "latency @ {rate} packets/s (= store updates/s) for {secs} s (offered {:.0}/s): {} samples of {samples}",
        total as f64 / produce.as_secs_f64(),
        lat.len()
    );
    println!(
        "  packet -> key visible in Redis: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        percentile(&lat, 1.0)
    );
    println!(
        "  app: kv_writes {}, kv_dropped {}; writer: {} written in {} round trips ({:.0} ops/batch), dropped_down {}",
        a.kv_writes,
        a.kv_dropped,
        w.written,
        w.batches,
        w.written as f64 / w.batches.max(1) as f64,
        w.dropped_down
    );
}

fn throughput(packets: u64) {
    let redis = RedisProc::start();
    let (mut probe, store) = probe(&redis);
    let (load, _) = frames();
    let mut sink = Null;
    let start = Instant::now();
    for i in 0..packets {
        let f = &load[(i % 10_000) as usize];
        probe.frame(f, LinkType::Ethernet, meta(i + 1, f.len()), &mut sink);
    }
    let probe_time = start.elapsed();
    store.writer().wait_idle(Duration::from_secs(120));
    let elapsed = start.elapsed();
    let w = store.writer_stats();
    let a = &probe.app_stats()[0].1;
    println!(
        "throughput: {packets} packets through the probe in {:.2} s ({:.0} packets/s, each one kv_incr); \
         {} updates in Redis after {:.2} s = {:.0} updates/s ({:.0} ops/batch); \
         kv_dropped {} (queue full: the probe does not wait), dropped_down {}",
        probe_time.as_secs_f64(),
        packets as f64 / probe_time.as_secs_f64(),
        w.written,
        elapsed.as_secs_f64(),
        w.written as f64 / elapsed.as_secs_f64(),
        w.written as f64 / w.batches.max(1) as f64,
        a.kv_dropped,
        w.dropped_down
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: a
    // token run then.
    let real = std::env::args().any(|a| a == "--bench");
    let (rate, secs, packets) = if real {
        (
            env("KV_BENCH_RATE", 100_000),
            env("KV_BENCH_SECS", 3),
            env("KV_BENCH_PACKETS", 1_000_000),
        )
    } else {
        (10_000, 1, 10_000)
    };
    println!(
        "machine: {} cores, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    latency(rate, secs);
    throughput(packets);
}
