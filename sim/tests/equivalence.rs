//! The Verilator model of the hardware against the software engine: op by
//! op results and full dumps must be identical, on random op streams (all
//! op kinds, hash collisions, same-address bursts, bad ops, gates, resets,
//! clears, time jumps both ways), on one long stream of 1,000,000 ops, and
//! on real traces.
//!
//! Covered kinds: every kind the hardware claims (`CAPABILITIES`):
//! VariationDetector, DecayingFilter, ExactCounter, ExactEwma, Global.

use proptest::prelude::*;
use streamon_contract::op::OP_FLAG_IF_NEW;
use streamon_contract::plan::{TableSpec, TimeConstant};
use streamon_contract::{MetricEngine, MetricKind, MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_sim::{SimEngine, CAPABILITIES};
use streamon_sw::SwEngine;

/// Small structures so collisions, swaps, saturation and evictions happen;
/// one plan per hardware bank of the `sim` layout.
fn plans() -> Vec<MetricPlan> {
    [
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
        MetricSpec::Global,
        MetricSpec::VariationDetector {
            log2_bits: 9,
            hashes: 16,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 3,
                ways: 4,
            },
        },
        // τ = 1 ms: ticks of 8.2 µs, so the streams' steps cover every age
        // of the decay table and beyond.
        MetricSpec::DecayingFilter {
            log2_cells: 4,
            rows: 4,
            tau: TimeConstant { tau_ns: 1e6 },
        },
        // τ = 20 ms: counts build up, and saturate with u32::MAX values.
        MetricSpec::DecayingFilter {
            log2_cells: 6,
            rows: 3,
            tau: TimeConstant { tau_ns: 2e7 },
        },
        // `tewma-fast`, τ = 2 ms, in a small table (evictions).
        MetricSpec::ExactEwma {
            table: TableSpec {
                log2_buckets: 2,
                ways: 3,
            },
            tau: TimeConstant { tau_ns: 2e6 },
        },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect()
}

const N_METRICS: u16 = 8;

/// Compares results op by op and every metric's dump; the error names the
/// first differing op and both results.
fn compare(sw: &mut SwEngine, sim: &mut SimEngine, ops: &[Op]) -> Result<(), String> {
    let mut a = vec![OpResult::default(); ops.len()];
    let mut b = vec![OpResult::default(); ops.len()];
    sw.apply(ops, &mut a);
    sim.apply(ops, &mut b);
    if let Some(i) = (0..ops.len()).find(|&i| a[i] != b[i]) {
        return Err(format!(
            "op #{i} {:?}\n  software: {:?}\n  hardware: {:?}\n  previous op: {:?}",
            ops[i],
            a[i],
            b[i],
            i.checked_sub(1).map(|p| ops[p])
        ));
    }
    for m in 0..sw.plans().len() as u16 {
        let (x, y) = (sw.dump(m).unwrap(), sim.dump(m).unwrap());
        if x.len() != y.len() {
            return Err(format!(
                "metric {m}: dump length {} vs {}",
                x.len(),
                y.len()
            ));
        }
        if let Some(w) = (0..x.len()).find(|&w| x[w] != y[w]) {
            return Err(format!(
                "metric {m} dump word {w}: software {:#x}, hardware {:#x}",
                x[w], y[w]
            ));
        }
    }
    Ok(())
}

/// One raw op: (metric, kind, key id, value, time step, flags, long key,
/// time goes back, burst length).
type RawOp = (u16, u8, u8, u32, u64, u8, bool, bool, u8);

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        prop_oneof![12 => 0u16..N_METRICS, 1 => Just(N_METRICS), 1 => Just(300u16)],
        prop_oneof![9 => 1u8..=6, 1 => 7u8..=8, 1 => Just(0u8), 1 => Just(9u8)],
        0u8..24,
        prop_oneof![8 => 0u32..4, 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![6 => 0u64..2_000_000, 1 => 0u64..(1 << 40), 4 => Just(0u64)],
        prop_oneof![6 => Just(0u8), 2 => Just(OP_FLAG_IF_NEW), 1 => Just(0xFEu8)],
        prop_oneof![30 => Just(false), 1 => Just(true)],
        prop_oneof![20 => Just(false), 1 => Just(true)],
        prop_oneof![8 => Just(1u8), 1 => 2u8..6],
    )
}

/// Expands raw ops: keys of 0..=40 bytes from a small id space (so keys
/// collide in buckets and blocks), garbage past `key_len` (the hardware must
/// mask it), bursts of the same op on the same address back to back.
fn expand(raw: &[RawOp]) -> Vec<Op> {
    let mut ts = 1_000_000_000u64;
    let mut out = Vec::new();
    for &(metric, kind, key, value, step, flags, long, back, burst) in raw {
        ts = if back {
            ts.saturating_sub(step)
        } else {
            ts.wrapping_add(step)
        };
        let len = [1usize, 2, 3, 4, 8, 13, 40, 0][key as usize % 8];
        let mut bytes = [0u8; 40];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = key.wrapping_mul(31).wrapping_add((i as u8).wrapping_mul(7));
        }
        let mut op = Op::new(metric, OpKind::Add, &bytes[..len], value, ts).unwrap();
        op.key[len..]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = 0xA5 ^ i as u8);
        op.kind = kind;
        op.flags = flags;
        if long {
            op.key_len = 41 + key;
        }
        for _ in 0..burst {
            out.push(op);
        }
    }
    out
}

#[test]
fn the_model_claims_what_it_implements() {
    for k in 1..=8u8 {
        let kind = MetricKind::from_u8(k).unwrap();
        let claimed = CAPABILITIES >> k & 1 == 1;
        assert_eq!(SimEngine::kind_in_hardware(kind), claimed);
    }
    let hll = MetricPlan::install(MetricSpec::HyperLogLog { log2_registers: 4 }).unwrap();
    assert!(
        SimEngine::new(&[hll]).is_err(),
        "a kind outside the bitmap is refused"
    );
    let big = MetricPlan::install(MetricSpec::VariationDetector {
        log2_bits: 21,
        hashes: 8,
    })
    .unwrap();
    assert!(
        SimEngine::new(&[big]).is_err(),
        "a detector larger than its bank is refused"
    );
    let tewma = |log2_cells, rows| {
        MetricPlan::install(MetricSpec::DecayingFilter {
            log2_cells,
            rows,
            tau: TimeConstant { tau_ns: 6e10 },
        })
        .unwrap()
    };
    // The shipped applications' default `tewma` (2^17 cells x 4 rows).
    assert!(SimEngine::new(&[tewma(17, 4), tewma(17, 4), tewma(17, 4), tewma(17, 4)]).is_ok());
    assert!(
        SimEngine::new(&[tewma(18, 4)]).is_err(),
        "a decaying filter with more cells than its bank is refused"
    );
    assert!(
        SimEngine::new(&[tewma(4, 5)]).is_err(),
        "a decaying filter with more rows than its bank is refused"
    );
    assert!(
        SimEngine::new(&vec![tewma(4, 1); 5]).is_err(),
        "more decaying filters than banks are refused"
    );
}

/// The decaying filters' clear is an epoch bump plus one swept cell per
/// clear (`hw/src/decay_bank.rs`); the epoch counter has as many bits as
/// the bank's cell address (17 in this layout, whatever the installed
/// size), so it wraps every 2^17 clears. Keys written, then exactly 2^17
/// clears, one more, and 2^17 − 1 more, each followed by reads and writes
/// of the same keys: without the sweep, counts written one wrap earlier
/// would read back.
#[test]
fn decaying_filter_clears_past_the_epoch_wrap_are_exact() {
    let plans = [MetricPlan::install(MetricSpec::DecayingFilter {
        log2_cells: 6,
        rows: 4,
        tau: TimeConstant { tau_ns: 3e7 },
    })
    .unwrap()];
    let mut sw = SwEngine::new(&plans);
    let mut sim = SimEngine::new(&plans).unwrap();
    let mut ts = 5_000_000_000u64;
    let mut ops = Vec::new();
    let mut touch = |ops: &mut Vec<Op>, round: u32| {
        for k in 0..40u32 {
            ts += 1_000;
            let kind = [OpKind::Get, OpKind::AddGet, OpKind::Add][(k % 3) as usize];
            ops.push(Op::new(0, kind, &k.to_le_bytes(), k + round, ts).unwrap());
        }
    };
    touch(&mut ops, 0);
    for (round, clears) in [1u32 << 17, 1, (1 << 17) - 1].into_iter().enumerate() {
        ops.extend((0..clears).map(|_| Op::new(0, OpKind::Clear, &[], 0, 0).unwrap()));
        touch(&mut ops, round as u32 + 1);
    }
    if let Err(e) = compare(&mut sw, &mut sim, &ops) {
        panic!("{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random op streams: identical results op by op and identical dumps.
    #[test]
    fn random_streams_are_bit_identical(raw in proptest::collection::vec(raw_op(), 1..300)) {
        let ops = expand(&raw);
        let plans = plans();
        let mut sw = SwEngine::new(&plans);
        let mut sim = SimEngine::new(&plans).unwrap();
        if let Err(e) = compare(&mut sw, &mut sim, &ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// SplitMix64, for the long deterministic stream.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The big count for CI: 1,000,000 ops in one stream, compared op by op,
/// with full dumps compared every 50,000 ops.
#[test]
fn a_million_ops_are_bit_identical() {
    let total = std::env::var("STREAMON_EQ_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000usize);
    let plans = plans();
    let mut sw = SwEngine::new(&plans);
    let mut sim = SimEngine::new(&plans).unwrap();
    let mut rng = 0x5EED_u64;
    let start = std::time::Instant::now();
    let mut done = 0;
    while done < total {
        let n = 50_000.min(total - done);
        let raw: Vec<RawOp> = (0..n)
            .map(|_| {
                let r = splitmix(&mut rng);
                let s = splitmix(&mut rng);
                (
                    if r % 50 == 0 {
                        N_METRICS
                    } else {
                        (r % N_METRICS as u64) as u16
                    },
                    match r >> 8 & 63 {
                        0 => 0,
                        1 => 9,
                        2 | 3 => 7,
                        4 => 8,
                        x => 1 + (x % 6) as u8,
                    },
                    (r >> 16 & 63) as u8,
                    if s & 15 == 0 {
                        u32::MAX
                    } else {
                        (s >> 8 & 3) as u32
                    },
                    match s >> 16 & 7 {
                        0..=3 => 0,
                        4..=6 => s >> 24 & 0x1F_FFFF,
                        _ => s >> 24 & 0xFF_FFFF_FFFF,
                    },
                    if r >> 24 & 3 == 0 { OP_FLAG_IF_NEW } else { 0 },
                    r >> 32 & 127 == 0,
                    r >> 40 & 31 == 0,
                    if r >> 48 & 15 == 0 { 3 } else { 1 },
                )
            })
            .collect();
        let ops = expand(&raw);
        let ops = &ops[..n.min(ops.len())];
        if let Err(e) = compare(&mut sw, &mut sim, ops) {
            panic!("after {done} ops: {e}");
        }
        done += ops.len();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("{done} ops bit-identical in {secs:.1} s (software + Verilator + dumps)");
}
