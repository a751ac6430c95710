//! Writer channel figures against a real `redis-server` on loopback:
//!
//! 1. latency from `Writer::submit` to the key being visible in Redis, at
//!    a paced update rate (default 100 k updates/s for 3 s): one update in
//!    100 is a `SET lat:<i>`, and a second connection subscribed to the
//!    keyspace notifications of `lat:*` timestamps its arrival;
//! 2. throughput: as many `INCRBY`s as the writer takes, timed until Redis
//!    has them all.
//!
//! `cargo bench -p streamon-microcloud --bench writer_latency`. Overrides:
//! `MC_BENCH_RATE` (updates/s), `MC_BENCH_SECS`, `MC_BENCH_OPS`
//! (throughput run). Needs `redis-server` (Debian package).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::RedisProc;
use streamon_microcloud::names;
use streamon_microcloud::{Persistence, Writer, WriterConfig};

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

/// Per-host keys the load spreads over.
fn host_keys(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            let a = IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i));
            names::host_metric("bench", a, "pkts").into_string()
        })
        .collect()
}

/// A writer that has connected (so the runs measure Redis, not the
/// first connection under a loaded machine).
fn connected_writer(redis: &RedisProc) -> Writer {
    let w = Writer::start(&redis.url(), WriterConfig::default()).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !w.is_connected() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    w
}

fn latency(rate: u64, secs: u64) {
    let redis = RedisProc::start_with(&["--notify-keyspace-events", "K$"]);
    let w = connected_writer(&redis);
    let total = rate * secs;
    let samples = (total / 100) as usize;
    let t0 = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..samples).map(|_| AtomicU64::new(0)).collect());
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..samples).map(|_| AtomicU64::new(0)).collect());

    // The reader: keyspace notifications on a second connection.
    let mut sub_conn = redis.conn();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut sub = sub_conn.as_pubsub();
            sub.psubscribe("__keyspace@0__:lat:*").unwrap();
            sub.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut got = 0;
            while got < samples {
                let Ok(msg) = sub.get_message() else { break };
                let now = t0.elapsed().as_nanos() as u64;
                let ch = msg.get_channel_name();
                if let Some(i) = ch.rsplit(':').next().and_then(|i| i.parse::<usize>().ok()) {
                    if i < samples && seen[i].load(Ordering::Relaxed) == 0 {
                        seen[i].store(now, Ordering::Relaxed);
                        got += 1;
                    }
                }
            }
        })
    };
    ready_rx.recv().unwrap();

    let keys = host_keys(10_000);
    let vol = Persistence::Volatile(Duration::from_secs(60));
    let start = Instant::now();
    let mut done: u64 = 0;
    while done < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while done < due {
            if done % 100 == 0 {
                let i = (done / 100) as usize;
                sent[i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                w.set(format!("lat:{i}"), "x", vol);
            } else {
                w.incr_by(keys[(done % 10_000) as usize].as_str(), 1, vol);
            }
            done += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let produce = start.elapsed();
    w.wait_idle(Duration::from_secs(30));
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
    let s = w.stats();
    println!(
        "latency @ {rate} updates/s for {secs} s (offered {:.0}/s): {} samples of {samples}",
        total as f64 / produce.as_secs_f64(),
        lat.len()
    );
    println!(
        "  submit -> visible in Redis: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        percentile(&lat, 1.0)
    );
    println!(
        "  writer: {} written in {} round trips ({:.0} ops/batch), dropped_full {}, dropped_down {}, retries {}",
        s.written,
        s.batches,
        s.written as f64 / s.batches.max(1) as f64,
        s.dropped_full,
        s.dropped_down,
        s.retries
    );
}

fn throughput(ops: u64) {
    let redis = RedisProc::start();
    let w = connected_writer(&redis);
    let keys = host_keys(10_000);
    let vol = Persistence::Volatile(Duration::from_secs(60));
    let start = Instant::now();
    let mut full_waits = 0u64;
    for i in 0..ops {
        while !w.incr_by(keys[(i % 10_000) as usize].as_str(), 1, vol) {
            // Queue full: this run measures what Redis absorbs, so wait.
            full_waits += 1;
            std::thread::yield_now();
        }
    }
    let submitted = start.elapsed();
    w.wait_idle(Duration::from_secs(120));
    let elapsed = start.elapsed();
    let s = w.stats();
    println!(
        "throughput: {} volatile INCRBY (+PEXPIRE) in {:.2} s = {:.0} updates/s into Redis \
         ({:.0} ops/batch; producer saw a full queue {} times, submit phase {:.2} s; \
         dropped_down {}, retries {})",
        s.written,
        elapsed.as_secs_f64(),
        s.written as f64 / elapsed.as_secs_f64(),
        s.written as f64 / s.batches.max(1) as f64,
        full_waits,
        submitted.as_secs_f64(),
        s.dropped_down,
        s.retries
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with no `--bench` flag:
    // do a token run then.
    let real = std::env::args().any(|a| a == "--bench");
    let (rate, secs, ops) = if real {
        (
            env("MC_BENCH_RATE", 100_000),
            env("MC_BENCH_SECS", 3),
            env("MC_BENCH_OPS", 1_000_000),
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
    throughput(ops);
}
