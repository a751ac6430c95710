//! The StreaMon worst case in steady state, timed by the CPU time this
//! thread got rather than the wall clock.
//!
//! The criterion bench (`engine`) builds a fresh engine per sample, so its
//! tables are nearly empty, and its wall-clock figures sink with the load of
//! a shared machine. This binary builds each engine once, runs enough
//! packets to fill the tables and swap the detectors (`WARM` packets), then
//! times `MEASURE` more packets, and reports packets per second of wall time
//! and of this thread's own CPU time (`/proc/thread-self/schedstat`), next to
//! the bare random-access baseline over the same footprint measured the
//! same way, and the paper's 0.112 Mpps.
//!
//! `cargo bench -p streamon-sw --bench worst_case_cpu [-- FILTER] [-- --packets N]`

use std::time::Instant;

use streamon_contract::plan::TableSpec;
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_sw::SwEngine;

/// Packets per `apply` call.
const PACKETS: usize = 256;
/// The paper's figure (ITC'14 §V, Xeon X5650), packets per second per core.
const PAPER_PPS: f64 = 112_000.0;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Nanoseconds this thread has run on a CPU.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

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
        .map(|s| MetricPlan::install(s).expect("valid worst-case spec"))
        .collect()
}

/// The same 32 ops per packet as the criterion bench.
fn packet_ops(out: &mut [Op], packet: u64, ts: u64) {
    let src = packet as u32;
    let dst = (packet.wrapping_mul(0x9E37_79B9) >> 7) as u32;
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&src.to_be_bytes());
    pair[4..].copy_from_slice(&dst.to_be_bytes());
    for m in 0..16u16 {
        out[2 * m as usize] = Op::new(2 * m, OpKind::VdGetSet, &pair, 0, ts).expect("8-byte key");
        out[2 * m as usize + 1] = Op::new(2 * m + 1, OpKind::AddGet, &src.to_be_bytes(), 1, ts)
            .expect("4-byte key")
            .if_new();
    }
}

/// (wall pps, cpu pps) over `measure` packets after `warm` packets.
fn run_engine(plans: &[MetricPlan], warm: u64, measure: u64) -> (f64, f64, u64) {
    let mut engine = SwEngine::new(plans);
    let mut ops = vec![Op::default(); PACKETS * 32];
    let mut results = vec![OpResult::default(); PACKETS * 32];
    let mut packet = 0u64;
    let mut checksum = 0u64;
    let mut round = |engine: &mut SwEngine, packet: &mut u64| {
        for p in 0..PACKETS {
            *packet += 1;
            packet_ops(&mut ops[p * 32..p * 32 + 32], *packet, *packet * 1000);
        }
        engine.apply(&ops, &mut results);
        results.iter().map(|r| r.value).sum::<u64>()
    };
    while packet < warm {
        checksum = checksum.wrapping_add(round(&mut engine, &mut packet));
    }
    let (t0, c0, p0) = (Instant::now(), cpu_ns(), packet);
    while packet - p0 < measure {
        checksum = checksum.wrapping_add(round(&mut engine, &mut packet));
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), (cpu_ns() - c0) as f64 / 1e9);
    let n = (packet - p0) as f64;
    (n / wall, n / cpu, checksum)
}

/// 16 independent random read-modify-writes per packet over `bytes`.
fn run_baseline(bytes: u64, measure: u64) -> (f64, f64, u64) {
    let words = (bytes / 8).next_power_of_two() as usize;
    let mut map = memmap2::MmapMut::map_anon(words * 8).expect("baseline memory");
    let _ = map.advise(memmap2::Advice::HugePage);
    let mem: &mut [u64] = bytemuck::cast_slice_mut(&mut map[..]);
    for i in (0..words).step_by(512) {
        mem[i] = 1;
    }
    let mut seed = 7u64;
    let mut idx = vec![0usize; PACKETS * 16];
    let (t0, c0) = (Instant::now(), cpu_ns());
    let mut done = 0;
    while done < measure {
        for i in idx.iter_mut() {
            *i = splitmix(&mut seed) as usize & (words - 1);
        }
        for &i in &idx {
            mem[i] = mem[i].wrapping_add(1);
        }
        done += PACKETS as u64;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), (cpu_ns() - c0) as f64 / 1e9);
    (done as f64 / wall, done as f64 / cpu, mem[0])
}

/// The lines the engine must touch, and nothing else: per packet, the 16
/// detectors' 128-byte block pairs of one random key (the engine
/// interleaves same-size detectors, so they are 16 adjacent pairs in a
/// region the size of the 16 detectors) and the 16 tables' buckets of
/// another key (`ceil(ways / 2)` 64-byte lines each, adjacent, in a region
/// the size of the 16 tables' hot halves), one word read-modified-written
/// per line, all independent so the CPU overlaps their misses. The bound
/// the memory layout sets, with no per-op compute.
fn run_layout_bound(plans: &[MetricPlan], ways: usize, measure: u64) -> (f64, f64, u64) {
    let vd_bytes: u64 = plans.iter().step_by(2).map(MetricPlan::memory_bytes).sum();
    let table_bytes: u64 = plans
        .iter()
        .skip(1)
        .step_by(2)
        .map(MetricPlan::memory_bytes)
        .sum();
    let alloc = |bytes: u64| {
        let mut map = memmap2::MmapMut::map_anon(bytes as usize).expect("bound memory");
        let _ = map.advise(memmap2::Advice::HugePage);
        for page in map.chunks_mut(4096) {
            page[0] = 1;
        }
        map
    };
    let (mut vd_map, mut table_map) = (alloc(vd_bytes), alloc(table_bytes));
    let vd: &mut [[u64; 16]] = bytemuck::cast_slice_mut(&mut vd_map[..]);
    // The engine's hot bucket halves (32 bytes a way) fill the first half
    // of the table memory; one word of each 64-byte line is touched.
    let tables: &mut [[u64; 8]] = bytemuck::cast_slice_mut(&mut table_map[..]);
    let lines = ways.div_ceil(2);
    // Per-metric counts: entry `i` of metric `m` is element `16 * i + m`.
    let (vd_pairs, buckets) = (vd.len() / 16, tables.len() / 2 / lines / 16);
    let mut seed = 11u64;
    // Per packet: 16 detector pair indices then 16 bucket indices.
    let mut idx = vec![0usize; PACKETS * 32];
    let (t0, c0) = (Instant::now(), cpu_ns());
    let mut done = 0;
    while done < measure {
        for p in 0..PACKETS {
            let r = splitmix(&mut seed);
            let (pair, bucket) = ((r as u32 as usize) % vd_pairs, (r >> 32) as usize % buckets);
            for m in 0..16 {
                idx[p * 32 + 2 * m] = 16 * pair + m;
                idx[p * 32 + 2 * m + 1] = (16 * bucket + m) * lines;
            }
        }
        // Independent read-modify-writes: the CPU overlaps their misses.
        for pair in idx.chunks(2) {
            let t = &mut vd[pair[0]];
            t[0] = t[0].wrapping_add(1);
            t[8] = t[8].wrapping_add(1);
            for s in &mut tables[pair[1]..pair[1] + lines] {
                s[0] = s[0].wrapping_add(1);
            }
        }
        done += PACKETS as u64;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), (cpu_ns() - c0) as f64 / 1e9);
    (
        done as f64 / wall,
        done as f64 / cpu,
        vd[0][0] + tables[0][0],
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut measure = 1u64 << 20;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => {}
            "--packets" => {
                measure = it.next().and_then(|n| n.parse().ok()).expect("--packets N");
            }
            f if !f.starts_with('-') => filter = Some(f.to_string()),
            _ => {}
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:<28} {:>9} {:>12} {:>12} {:>9}",
        "case", "MiB", "wall pps", "cpu pps", "x paper"
    );
    let cases = [
        ("original_sizes_2^20_4way", 20, 18, 4),
        ("original_sizes_2^20_2way", 20, 19, 2),
        ("small_2^16_4way", 16, 14, 4),
        ("cache_resident_2^12_4way", 12, 6, 4),
    ];
    let mut footprint = 0;
    for (label, bits, buckets, ways) in cases {
        let plans = worst_case_plans(bits, buckets, ways);
        let mem: u64 = plans.iter().map(MetricPlan::memory_bytes).sum();
        footprint = footprint.max(mem);
        if filter.as_deref().is_some_and(|f| !label.contains(f)) {
            continue;
        }
        // Warm: enough new keys to fill every table (2^20 slots) once.
        let slots = (ways as u64) << buckets;
        let (wall, cpu, sum) = run_engine(&plans, slots.min(1 << 20), measure);
        println!(
            "{label:<28} {:>9} {:>12.0} {:>12.0} {:>9.2}   (checksum {sum:x})",
            mem >> 20,
            wall,
            cpu,
            cpu / PAPER_PPS
        );
        let (wall, cpu, sum) = run_layout_bound(&plans, ways as usize, measure * 2);
        println!(
            "{:<28} {:>9} {:>12.0} {:>12.0} {:>9.2}   (checksum {sum:x})",
            "  its lines, no compute",
            mem >> 20,
            wall,
            cpu,
            cpu / PAPER_PPS
        );
    }
    if filter
        .as_deref()
        .is_none_or(|f| "random_access_baseline".contains(f))
    {
        let (wall, cpu, sum) = run_baseline(footprint, measure * 4);
        println!(
            "{:<28} {:>9} {:>12.0} {:>12.0} {:>9.2}   (checksum {sum:x})",
            "random_access_baseline",
            footprint >> 20,
            wall,
            cpu,
            cpu / PAPER_PPS
        );
    }
}
