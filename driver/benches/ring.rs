//! Descriptors per second through the simulated NIC with the software device
//! side. The workload is the cheapest metric (`Global`: one add per op), so
//! what is measured is the ring path itself: descriptor writes, doorbells,
//! the device thread's phase-checked reads, completions and their checks.
//! Target: ≥ 10 M descriptors/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use streamon_contract::{MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_driver::{DeviceEngine, DriverConfig, SimNic, SimNicConfig};

fn ring(c: &mut Criterion) {
    let plans = vec![MetricPlan::install(MetricSpec::Global).unwrap()];
    let n = 1 << 16;
    let ops: Vec<Op> = (0..n)
        .map(|i| Op::new(0, OpKind::Add, &[], 1, i as u64).unwrap())
        .collect();
    let mut results = vec![OpResult::default(); n];
    let mut g = c.benchmark_group("sim_nic_global");
    g.throughput(Throughput::Elements(n as u64));
    for (ring_entries, batch) in [(1024u32, 32u32), (4096, 256), (4096, 1024)] {
        let nic = SimNic::software(
            &plans,
            SimNicConfig {
                max_batch_log2: 10,
                ..SimNicConfig::default()
            },
        )
        .unwrap();
        let mut dev = DeviceEngine::open(
            nic,
            &plans,
            DriverConfig {
                ring_entries,
                batch,
                ..DriverConfig::default()
            },
        )
        .unwrap();
        g.bench_function(
            BenchmarkId::new("descriptors", format!("ring{ring_entries}_batch{batch}")),
            |b| b.iter(|| dev.try_apply(&ops, &mut results).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
