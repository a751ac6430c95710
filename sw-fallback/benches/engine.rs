//! Throughput of the software engine.
//!
//! * `per_kind/*`: ops per second for each metric kind at its default size,
//!   random keys (`Add` on counters, `VdGetSet` on detectors).
//! * `streamon_worst_case/*`: the StreaMon paper's worst case (ITC'14 §V):
//!   16 metrics, each a variation detector plus a counter, every packet a new
//!   key, at the original's sizes (k = 8, two 2^20-bit filters per detector,
//!   2^20-slot tables), reported in packets per second; smaller sizes beside.
//! * `random_access_baseline/*`: 16 independent random read-modify-writes
//!   per "packet" over the same memory footprint, with the same batching and
//!   prefetching: the memory system's limit for this work.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use streamon_contract::plan::TableSpec;
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult, TimeConstant};
use streamon_sw::SwEngine;

/// Packets per measured batch.
const PACKETS: usize = 256;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn per_kind(c: &mut Criterion) {
    let tau = TimeConstant::from_window_secs(60.0);
    let kinds: [(&str, MetricSpec, OpKind); 8] = [
        (
            "variation_detector",
            MetricSpec::VariationDetector {
                log2_bits: 20,
                hashes: 8,
            },
            OpKind::VdGetSet,
        ),
        (
            "tewma",
            MetricSpec::DecayingFilter {
                log2_cells: 17,
                rows: 4,
                tau,
            },
            OpKind::AddGet,
        ),
        (
            "countmin",
            MetricSpec::CountMin {
                log2_cells: 17,
                rows: 4,
                conservative: false,
            },
            OpKind::AddGet,
        ),
        (
            "hll",
            MetricSpec::HyperLogLog { log2_registers: 12 },
            OpKind::AddGet,
        ),
        ("simple", MetricSpec::Global, OpKind::AddGet),
        (
            "dleft",
            MetricSpec::ExactCounter {
                table: TableSpec::default(),
            },
            OpKind::AddGet,
        ),
        (
            "tewma_fast",
            MetricSpec::ExactEwma {
                table: TableSpec::default(),
                tau,
            },
            OpKind::AddGet,
        ),
        (
            "sliding",
            MetricSpec::SlidingWindow {
                table: TableSpec::default(),
                window_ns: 60_000_000_000,
            },
            OpKind::AddGet,
        ),
    ];
    let mut group = c.benchmark_group("per_kind");
    const OPS: usize = 4096;
    group.throughput(Throughput::Elements(OPS as u64));
    for (name, spec, kind) in kinds {
        let plan = MetricPlan::install(spec).unwrap();
        let mut engine = SwEngine::new(&[plan]);
        let mut seed = 1u64;
        // A key pool larger than the tables so lookups miss the cache.
        let ops: Vec<Op> = (0..1 << 16)
            .map(|i| {
                let key = (splitmix(&mut seed) % 200_000).to_be_bytes();
                Op::new(0, kind, &key[3..], 1, i * 1000).unwrap()
            })
            .collect();
        let mut results = vec![OpResult::default(); OPS];
        let mut at = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                at = (at + OPS) % ops.len();
                engine.apply(&ops[at..at + OPS], &mut results);
                black_box(&results);
            })
        });
    }
    group.finish();
}

/// 16 × (detector + exact counter), distinct-count style ops per packet.
fn worst_case_plans(log2_bits: u32, log2_buckets: u32, ways: u32) -> Vec<MetricPlan> {
    (0..16)
        .flat_map(|_| {
            [
                MetricSpec::VariationDetector {
                    log2_bits,
                    hashes: 8,
                },
                MetricSpec::ExactCounter {
                    table: TableSpec { log2_buckets, ways },
                },
            ]
        })
        .map(|s| MetricPlan::install(s).unwrap())
        .collect()
}

/// One packet's 32 ops: per metric `VdGetSet(src‖dst)` then
/// `AddGet(dst) if new`.
fn packet_ops(out: &mut [Op], packet: u64, ts: u64) {
    let src = packet as u32;
    let dst = (packet.wrapping_mul(0x9E37_79B9) >> 7) as u32;
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&src.to_be_bytes());
    pair[4..].copy_from_slice(&dst.to_be_bytes());
    for m in 0..16u16 {
        out[2 * m as usize] = Op::new(2 * m, OpKind::VdGetSet, &pair, 0, ts).unwrap();
        out[2 * m as usize + 1] = Op::new(2 * m + 1, OpKind::AddGet, &src.to_be_bytes(), 1, ts)
            .unwrap()
            .if_new();
    }
}

fn worst_case(c: &mut Criterion) {
    let mut group = c.benchmark_group("streamon_worst_case");
    group.throughput(Throughput::Elements(PACKETS as u64));
    group.sample_size(20);
    // (label, log2 bits per filter, log2 buckets, ways): every table has
    // the original's 2^20 slots (2^16 for the small one); 2-way buckets are
    // one 128-byte line pair, 4-way buckets two.
    for (label, bits, buckets, ways) in [
        ("original_sizes_2^20_4way", 20, 18, 4),
        ("original_sizes_2^20_2way", 20, 19, 2),
        ("small_2^16_4way", 16, 14, 4),
        // Everything in cache: the compute cost alone.
        ("cache_resident_2^12_4way", 12, 6, 4),
    ] {
        group.bench_function(BenchmarkId::new("packets", label), |b| {
            // Built here so a filtered-out size costs nothing.
            let plans = worst_case_plans(bits, buckets, ways);
            let mem: u64 = plans.iter().map(MetricPlan::memory_bytes).sum();
            eprintln!("worst case {label}: {} MiB of metric state", mem >> 20);
            let mut engine = SwEngine::new(&plans);
            let mut ops = vec![Op::default(); PACKETS * 32];
            let mut results = vec![OpResult::default(); PACKETS * 32];
            let mut packet = 0u64;
            b.iter(|| {
                for p in 0..PACKETS {
                    packet += 1;
                    packet_ops(&mut ops[p * 32..p * 32 + 32], packet, packet * 1000);
                }
                engine.apply(&ops, &mut results);
                black_box(&results);
            })
        });
    }
    group.finish();
}

/// The memory system's limit: 16 independent random read-modify-writes per
/// packet over the same footprint as the original-size worst case.
fn random_access_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("random_access_baseline");
    group.throughput(Throughput::Elements(PACKETS as u64));
    group.sample_size(20);
    group.bench_function(
        BenchmarkId::new("packets_of_16_rmw", "worst_case_footprint"),
        |b| {
            let plans = worst_case_plans(20, 18, 4);
            let bytes: u64 = plans.iter().map(MetricPlan::memory_bytes).sum();
            let words = (bytes / 8).next_power_of_two() as usize;
            // The same memory as the engine's: huge pages, touched up front.
            let mut map = memmap2::MmapMut::map_anon(words * 8).expect("baseline memory");
            let _ = map.advise(memmap2::Advice::HugePage);
            let mem: &mut [u64] = bytemuck::cast_slice_mut(&mut map[..]);
            for i in (0..words).step_by(512) {
                mem[i] = 1;
            }
            eprintln!("baseline footprint: {} MiB", bytes >> 20);
            let mut seed = 7u64;
            let mut idx = vec![0usize; PACKETS * 16];
            b.iter(|| {
                for i in idx.iter_mut() {
                    *i = splitmix(&mut seed) as usize & (words - 1);
                }
                // Independent read-modify-writes: the CPU overlaps their misses.
                for &i in &idx {
                    mem[i] = mem[i].wrapping_add(1);
                }
                black_box(&mem[0]);
            })
        },
    );
    group.finish();
}

criterion_group!(benches, per_kind, worst_case, random_access_baseline);
criterion_main!(benches);
