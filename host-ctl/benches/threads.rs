//! `--threads` scaling: every shipped application in one probe, on 1 and on
//! 2 worker threads, alternating in the same run so both see the same
//! machine load. Inputs: the real SYN-flood capture
//! `sddos_synflood_spoofed.pcap` (37,841 frames) and the generated attacks
//! of `tracegen` (which make every application alert). Frames are in
//! memory; events go to a counting sink. Prints packets per second, the
//! 2-thread/1-thread ratio, the process CPU time per packet (all threads;
//! its 2-thread/1-thread ratio is the parallel path's overhead, which does
//! not depend on how busy the machine is) and the load average.
//!
//! `cargo bench -p streamon-host-ctl --bench threads`

use std::path::PathBuf;
use std::time::Instant;

use streamon_host_ctl::tracegen;
use streamon_packet::pcap::PcapSource;
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{sw_engine, EventSink, OutputEvent, ParallelProbe, Probe, RuntimeOptions};

const APPS: &[&str] = &[
    "conficker",
    "ddos",
    "dns_nxdomain",
    "modbus_scan",
    "p2p",
    "portscan",
];

type Frames = Vec<(Vec<u8>, LinkType, FrameMeta)>;

struct Count(u64);

impl EventSink for Count {
    fn emit(&mut self, _: &OutputEvent) {
        self.0 += 1;
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn all_apps() -> Probe {
    let mut probe = Probe::new();
    for app in APPS {
        let path = repo().join("apps").join(format!("{app}.xml"));
        let src = std::fs::read_to_string(&path).expect("app source");
        probe
            .install(
                app,
                &src,
                &path.display().to_string(),
                &sw_engine,
                RuntimeOptions::default(),
            )
            .expect("app installs");
    }
    probe
}

fn load(name: &str) -> Frames {
    let path = repo().join("../shared/traces").join(name);
    let mut src = PcapSource::open(&path).expect("trace opens");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        out.push((f.data.to_vec(), f.linktype, f.meta));
    }
    out
}

fn generated(frames: Vec<tracegen::Frame>) -> Frames {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let meta = FrameMeta {
                ts_ns: f.ts_ns,
                orig_len: f.data.len() as u32,
                packet_no: i as u64 + 1,
            };
            (f.data, LinkType::Ethernet, meta)
        })
        .collect()
}

/// CPU time of the whole process (every thread, exited ones included),
/// seconds, from `/proc/self/stat` (utime + stime, in 1/100 s ticks).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime, stime are 14, 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Runs of one measurement: enough for CPU ticks to be precise to ~1 %.
const REPEAT: usize = 6;

/// Packets per second, CPU seconds per packet, and events of `REPEAT`
/// runs.
fn run(frames: &Frames, threads: usize) -> (f64, f64, u64) {
    let mut events = 0;
    let (mut cpu, mut wall) = (0.0, 0.0);
    for _ in 0..REPEAT {
        // Installing (engine memory) is not part of the measurement.
        let probe = all_apps();
        let mut sink = Count(0);
        let cpu0 = process_cpu_s();
        let t = Instant::now();
        // The probe is dropped (engine memory unmapped) after the
        // measurement in both cases.
        let done = if threads == 1 {
            let mut probe = probe;
            for (d, l, m) in frames {
                probe.frame(d, *l, *m, &mut sink);
            }
            probe.finish();
            probe
        } else {
            let mut par = ParallelProbe::start(probe, threads);
            for (d, l, m) in frames {
                par.frame(d, *l, *m, &mut sink);
            }
            par.finish(&mut sink).expect("workers").0
        };
        wall += t.elapsed().as_secs_f64();
        cpu += process_cpu_s() - cpu0;
        events = sink.0;
        drop(done);
    }
    let n = (frames.len() * REPEAT) as f64;
    (n / wall, cpu / n, events)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("cores: {cores}, load average at start: {}", loadavg());
    let inputs: Vec<(&str, Frames)> = vec![
        (
            "sddos_synflood_spoofed.pcap",
            load("sddos_synflood_spoofed.pcap"),
        ),
        ("tracegen::syn_flood(1)", generated(tracegen::syn_flood(1))),
        (
            "tracegen::ddos_ramp(11)",
            generated(tracegen::ddos_ramp(11)),
        ),
        ("tracegen::conficker(5)", generated(tracegen::conficker(5))),
    ];
    const ROUNDS: usize = 5;
    println!(
        "{:<30} {:>8} {:>13} {:>13} {:>6} {:>12} {:>12} {:>6}",
        "input (6 apps)",
        "events",
        "1 thread pps",
        "2 thr pps",
        "ratio",
        "1 thr µs/pkt",
        "2 thr µs/pkt",
        "ratio"
    );
    // `STREAMON_BENCH_INPUT=conficker STREAMON_BENCH_THREADS=2` runs one
    // input at one thread count (for a profiler).
    let only = std::env::var("STREAMON_BENCH_INPUT").ok();
    if let (Some(only), Ok(t)) = (&only, std::env::var("STREAMON_BENCH_THREADS")) {
        let threads: usize = t.parse().expect("STREAMON_BENCH_THREADS is a number");
        for (name, frames) in inputs.iter().filter(|(n, _)| n.contains(only.as_str())) {
            let (p, c, e) = run(frames, threads);
            println!(
                "{name} at {threads} threads: {p:.0} pps, {:.2} µs CPU/pkt, {e} events",
                c * 1e6
            );
        }
        return;
    }
    for (name, frames) in &inputs {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        let (mut cpu1, mut cpu2) = (Vec::new(), Vec::new());
        let mut events = (0, 0);
        for _ in 0..ROUNDS {
            let (p, c, e) = run(frames, 1);
            one.push(p);
            cpu1.push(c);
            events.0 = e;
            let (p, c, e) = run(frames, 2);
            two.push(p);
            cpu2.push(c);
            events.1 = e;
        }
        assert_eq!(events.0, events.1, "{name}: same events at 1 and 2 threads");
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut one), median(&mut two));
        let (c1, c2) = (median(&mut cpu1) * 1e6, median(&mut cpu2) * 1e6);
        println!(
            "{:<30} {:>8} {:>13.0} {:>13.0} {:>6.2} {:>12.2} {:>12.2} {:>6.2}",
            name,
            events.0,
            a,
            b,
            b / a,
            c1,
            c2,
            c2 / c1
        );
    }
    println!(
        "(median of {ROUNDS} alternating runs) load average at end: {}",
        loadavg()
    );
}
