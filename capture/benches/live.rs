//! Live-capture throughput on a veth pair: `tcpreplay` sends a real
//! capture (`sddos_synflood_spoofed.pcap`, 37,841 frames, looped) into one
//! end at fixed rates and at top speed; one reader (or a fanout group of
//! two) walks every frame of the ring on the other end. Prints, per rate,
//! what tcpreplay achieved, what was read and what the kernel dropped.
//! The figure: the highest send rate read with no drop.
//!
//! `cargo bench -p streamon-capture --bench live` as root (prints
//! "skipped: needs root" otherwise). On a shared machine the sender and
//! the reader compete for the same cores: read the load average printed
//! with the figures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use streamon_capture::testbed::{is_root, Replayed, Testbed};
use streamon_capture::{Capture, CaptureConfig, CaptureStats};

fn trace(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces")).join(name)
}

/// On-CPU time of the calling thread, ns (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Walks every frame (and reads one byte of each, as a consumer would).
/// Returns the counters and the reader's on-CPU ns while it did.
fn drain(cap: &mut Capture, stop: &AtomicBool) -> (CaptureStats, u64) {
    let cpu0 = thread_cpu_ns();
    let mut sum = 0u64;
    let mut idle = Instant::now();
    loop {
        let got = match cap.next_block(Duration::from_millis(20)).expect("ring") {
            Some(mut b) => {
                while let Some(f) = b.next_frame() {
                    sum = sum.wrapping_add(u64::from(f.data[f.data.len() / 2]));
                }
                true
            }
            None => false,
        };
        if got {
            idle = Instant::now();
        } else if stop.load(Ordering::Acquire) && idle.elapsed() > Duration::from_millis(300) {
            std::hint::black_box(sum);
            return (cap.stats().expect("stats"), thread_cpu_ns() - cpu0);
        }
    }
}

fn run(bed: &Arc<Testbed>, members: usize, opts: &[&str]) -> (Replayed, CaptureStats, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let group = (std::process::id() as u16).wrapping_add(members as u16);
    let caps = {
        let bed = bed.clone();
        std::thread::spawn(move || {
            bed.enter().expect("setns");
            if members == 1 {
                Capture::open(&bed.rx, &CaptureConfig::default()).map(|c| vec![c])
            } else {
                Capture::open_fanout(&bed.rx, &CaptureConfig::default(), members, group)
            }
        })
        .join()
        .expect("opener")
        .expect("capture opens")
    };
    let readers: Vec<_> = caps
        .into_iter()
        .map(|mut cap| {
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                ready.send(()).expect("main");
                drain(&mut cap, &stop)
            })
        })
        .collect();
    for _ in 0..members {
        ready_rx.recv().expect("ready");
    }
    let sent = bed
        .replay(&trace("sddos_synflood_spoofed.pcap"), opts)
        .expect("tcpreplay");
    stop.store(true, Ordering::Release);
    let mut total = CaptureStats::default();
    let mut cpu_ns = 0;
    for r in readers {
        let (stats, ns) = r.join().expect("reader");
        total.add(&stats);
        cpu_ns += ns;
    }
    (sent, total, cpu_ns)
}

fn main() {
    if !is_root() {
        println!("live capture bench: skipped: needs root (network namespace, AF_PACKET)");
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    let bed = Arc::new(Testbed::new("bench").expect("testbed"));
    let loops = "--loop=5";
    println!(
        "{:<22} {:>8} {:>12} {:>10} {:>10} {:>8} {:>14}",
        "tcpreplay", "readers", "sent pps", "sent", "read", "dropped", "reader ns/pkt"
    );
    let mut best_clean = 0.0f64;
    let mut best_cpu = f64::MAX;
    for (members, opts) in [
        (1, vec!["--pps=50000", loops]),
        (1, vec!["--pps=100000", loops]),
        (1, vec!["--pps=200000", loops]),
        (1, vec!["--pps=400000", loops]),
        (1, vec!["--topspeed", loops]),
        (2, vec!["--topspeed", loops]),
    ] {
        let (sent, got, cpu_ns) = run(&bed, members, &opts);
        assert_eq!(
            got.frames + got.kernel_drops,
            sent.sent,
            "accounting: {got:?}"
        );
        if got.kernel_drops == 0 && members == 1 {
            best_clean = best_clean.max(sent.pps);
        }
        let ns_per_pkt = cpu_ns as f64 / got.frames.max(1) as f64;
        best_cpu = best_cpu.min(ns_per_pkt);
        println!(
            "{:<22} {:>8} {:>12.0} {:>10} {:>10} {:>8} {:>14.1}",
            opts.join(" "),
            members,
            sent.pps,
            sent.sent,
            got.frames,
            got.kernel_drops,
            ns_per_pkt
        );
    }
    println!(
        "reader on-CPU time per frame (ring walk + poll wakeups), best run: {best_cpu:.1} ns \
         (a ring-walking bound of {:.1} Mpps per reader; on veth the kernel's delivery \
         cost is paid on the sender's CPU and is not in it)",
        1e3 / best_cpu
    );
    println!("highest send rate read with no drop (1 reader): {best_clean:.0} pps");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
