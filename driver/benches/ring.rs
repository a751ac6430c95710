//! Descriptors per second through the simulated NIC with the software device
//! side. The workload is the cheapest metric (`Global`: one add per op), so
//! what is measured is the ring path itself: descriptor writes, doorbells,
//! the device thread's phase-checked reads, completions and their checks.
//! Target: ≥ 10 M descriptors/s.
//!
//! Two figures per configuration:
//!
//! * criterion's wall-clock throughput, which on a shared machine depends on
//!   whether the driver thread and the device thread get a core at the same
//!   time;
//! * after criterion, a plain line per configuration with the wall rate
//!   **and** the rate per CPU-second of the whole process (all threads,
//!   from `/proc/self/task/*/schedstat`, spinning included). With both
//!   threads on dedicated cores the wall rate is at least the CPU-second
//!   rate (the two stages overlap instead of adding up), so the CPU-second
//!   rate is a lower bound that does not depend on the machine's load.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use streamon_contract::{MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_driver::{DeviceEngine, DriverConfig, SimNic, SimNicConfig};

const CONFIGS: [(u32, u32); 4] = [(1024, 32), (4096, 256), (4096, 1024), (8192, 2048)];

fn setup(ring_entries: u32, batch: u32) -> (DeviceEngine<SimNic>, Vec<Op>, Vec<OpResult>) {
    let plans = vec![MetricPlan::install(MetricSpec::Global).unwrap()];
    let n = 1 << 16;
    let ops: Vec<Op> = (0..n)
        .map(|i| Op::new(0, OpKind::Add, &[], 1, i as u64).unwrap())
        .collect();
    let results = vec![OpResult::default(); n];
    let nic = SimNic::software(
        &plans,
        SimNicConfig {
            max_batch_log2: 11,
            max_ring: 8192,
            ..SimNicConfig::default()
        },
    )
    .unwrap();
    let dev = DeviceEngine::open(
        nic,
        &plans,
        DriverConfig {
            ring_entries,
            batch,
            ..DriverConfig::default()
        },
    )
    .unwrap();
    (dev, ops, results)
}

fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_nic_global");
    g.throughput(Throughput::Elements(1 << 16));
    for (ring_entries, batch) in CONFIGS {
        let (mut dev, ops, mut results) = setup(ring_entries, batch);
        g.bench_function(
            BenchmarkId::new("descriptors", format!("ring{ring_entries}_batch{batch}")),
            |b| b.iter(|| dev.try_apply(&ops, &mut results).unwrap()),
        );
    }
    g.finish();
}

/// CPU time of every thread of this process, in ns (Linux schedstat).
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Wall and CPU-second rates, printed as plain lines.
fn cpu_figures() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ring path, Global ops, 65,536 per call; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (ring_entries, batch) in CONFIGS {
        let (mut dev, ops, mut results) = setup(ring_entries, batch);
        for _ in 0..20 {
            dev.try_apply(&ops, &mut results).unwrap();
        }
        let iters = 150u64;
        let (cpu0, t0) = (process_cpu_ns(), Instant::now());
        for _ in 0..iters {
            dev.try_apply(&ops, &mut results).unwrap();
        }
        let (cpu1, wall) = (process_cpu_ns(), t0.elapsed());
        let n = (iters * ops.len() as u64) as f64;
        let wall_rate = n / wall.as_secs_f64() / 1e6;
        let cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) => format!("{:.1}", n / ((b - a) as f64 / 1e9) / 1e6),
            _ => "n/a".into(),
        };
        let c = dev.counters();
        println!(
            "ring{ring_entries:<5} batch{batch:<5} wall {wall_rate:6.1} M desc/s   per CPU-second {cpu:>6} M desc/s   ({:.0} desc per doorbell, {:.0} per CQ doorbell)",
            c.ops_submitted as f64 / c.sq_doorbells.max(1) as f64,
            c.ops_completed as f64 / c.cq_doorbells.max(1) as f64,
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ring(&mut c);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once without `--bench`;
    // the figures below are for real runs only.
    if std::env::args().any(|a| a == "--bench") {
        cpu_figures();
    }
}
