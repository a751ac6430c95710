//! Cycle figures measured on the Verilator model: initiation interval
//! (results per clock) in steady state on a long stream and on worst-case
//! same-address bursts, latency, and simulation speed. `hw/report.sh`
//! prints these lines (run with `--nocapture`).

use streamon_contract::plan::{TableSpec, TimeConstant};
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_sim::SimEngine;
use streamon_sw::SwEngine;

fn plans() -> Vec<MetricPlan> {
    [
        MetricSpec::VariationDetector {
            log2_bits: 12,
            hashes: 8,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 3,
                ways: 4,
            },
        },
        MetricSpec::Global,
        MetricSpec::VariationDetector {
            log2_bits: 10,
            hashes: 4,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 2,
                ways: 2,
            },
        },
        MetricSpec::DecayingFilter {
            log2_cells: 6,
            rows: 4,
            tau: TimeConstant { tau_ns: 5e7 },
        },
        MetricSpec::ExactEwma {
            table: TableSpec {
                log2_buckets: 3,
                ways: 4,
            },
            tau: TimeConstant { tau_ns: 5e7 },
        },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect()
}

/// A packet's ops as the probe emits them: a distinct-key detector and its
/// gated counter, an exact per-source counter, a per-source rate
/// (`tewma`) and the global packet count.
fn packet_ops(i: u64, key: &[u8]) -> [Op; 5] {
    let ts = 1_000_000 * i;
    [
        Op::new(0, OpKind::VdGetSet, key, 0, ts).unwrap(),
        Op::new(1, OpKind::AddGet, key, 1, ts).unwrap().if_new(),
        Op::new(4, OpKind::AddGet, &key[..2], 64, ts).unwrap(),
        Op::new(5, OpKind::AddGet, &key[..2], 1, ts).unwrap(),
        Op::new(2, OpKind::Add, &[], 1, ts).unwrap(),
    ]
}

/// Checks one result per clock from the first result on, and returns the
/// latency (clocks from the op's input clock to its result, both counted).
fn assert_ii_one(when: &[u64], clocks: u64) -> u64 {
    let latency = when[0];
    assert_eq!(
        latency,
        streamon_hw::pipeline::LATENCY,
        "latency differs from the documented one"
    );
    for (i, &w) in when.iter().enumerate() {
        assert_eq!(
            w,
            latency + i as u64,
            "result {i} late: initiation interval is not 1"
        );
    }
    assert_eq!(clocks, when.len() as u64 + latency - 1);
    latency
}

fn check_equal(ops: &[Op], got: &[OpResult]) {
    let mut sw = SwEngine::new(&plans());
    let mut want = vec![OpResult::default(); ops.len()];
    sw.apply(ops, &mut want);
    if let Some(i) = (0..ops.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "op #{i} {:?}: software {:?}, hardware {:?}",
            ops[i], want[i], got[i]
        );
    }
}

#[test]
fn steady_state_initiation_interval_is_one() {
    let n_packets = 50_000u64;
    let ops: Vec<Op> = (0..n_packets)
        .flat_map(|i| {
            let k = (i.wrapping_mul(0x9E37_79B9) % 5000) as u32;
            packet_ops(i, &k.to_be_bytes())
        })
        .collect();
    let mut sim = SimEngine::new(&plans()).unwrap();
    let start = std::time::Instant::now();
    let (got, when, clocks) = sim.run_timed(&ops, 0);
    let secs = start.elapsed().as_secs_f64();
    let latency = assert_ii_one(&when, clocks);
    check_equal(&ops, &got);
    println!(
        "FIGURE steady_state: {} ops in {} clocks: {:.4} clocks/op, II = 1, latency {} clocks",
        ops.len(),
        clocks,
        clocks as f64 / ops.len() as f64,
        latency
    );
    println!(
        "FIGURE verilator_speed: {:.0} ops/s ({:.0} clocks/s)",
        ops.len() as f64 / secs,
        clocks as f64 / secs
    );
}

#[test]
fn same_address_bursts_do_not_stall() {
    // Worst case for read-modify-write: every op hits the block, bucket or
    // cells the previous op wrote (forwarding), with swaps and evictions.
    let mut ops = Vec::new();
    for i in 0..20_000u64 {
        let k = (i / 64) as u32;
        let key = k.to_be_bytes();
        ops.push(Op::new(0, OpKind::VdGetSet, &key, 0, i).unwrap());
        ops.push(Op::new(0, OpKind::VdGetSet, &key, 0, i).unwrap());
        ops.push(Op::new(4, OpKind::AddGet, &key, 1, i << 20).unwrap());
        ops.push(Op::new(4, OpKind::AddGet, &key, 1, i << 20).unwrap());
        ops.push(Op::new(2, OpKind::AddGet, &key, 7, i).unwrap());
        ops.push(Op::new(5, OpKind::AddGet, &key, 3, i << 12).unwrap());
        ops.push(Op::new(5, OpKind::AddGet, &key, 1, i << 12).unwrap());
        ops.push(Op::new(5, OpKind::Get, &key, 0, i << 12).unwrap());
        ops.push(Op::new(6, OpKind::AddGet, &key, 2, i << 12).unwrap());
        ops.push(Op::new(6, OpKind::AddGet, &key, 1, i << 12).unwrap());
    }
    let mut sim = SimEngine::new(&plans()).unwrap();
    let (got, when, clocks) = sim.run_timed(&ops, 0);
    let latency = assert_ii_one(&when, clocks);
    check_equal(&ops, &got);
    println!(
        "FIGURE same_address_bursts: {} ops in {} clocks, II = 1, latency {} clocks (worst case = steady state, no stall)",
        ops.len(),
        clocks,
        latency
    );
}

#[test]
fn latency_of_an_isolated_op() {
    let ops: Vec<Op> = (0..100u64)
        .flat_map(|i| packet_ops(i, &(i as u32).to_be_bytes()))
        .collect();
    let mut sim = SimEngine::new(&plans()).unwrap();
    let gap = 9;
    let (got, when, _) = sim.run_timed(&ops, gap);
    check_equal(&ops, &got);
    let lat: Vec<u64> = when
        .iter()
        .enumerate()
        .map(|(i, &w)| w - i as u64 * (gap as u64 + 1))
        .collect();
    assert!(lat.iter().all(|&l| l == lat[0]), "latency varies: {lat:?}");
    println!("FIGURE isolated_latency: {} clocks", lat[0]);
}
