//! A slow, obvious model of the metric contract, written apart from the
//! engine's fast paths (no blocks of words, no packed slots, no batching,
//! the bit-serial H3), and the property tests that hold the engine to it.
//!
//! If the engine and this model disagree, one of them misreads
//! `docs/metric-contract.md`; the failing case names the first differing op.

use proptest::prelude::*;
use streamon_contract::fixed::{
    adapt_swap_threshold, age, apply_factor, initial_swap_threshold, later_tick, swap_factor,
};
use streamon_contract::h3::{h3_reference, Positions};
use streamon_contract::op::OP_FLAG_IF_NEW;
use streamon_contract::plan::TableSpec;
use streamon_contract::{
    MetricEngine, MetricKind, MetricPlan, MetricSpec, Op, OpKind, OpResult, ResultFlags, Status,
    TimeConstant,
};
use streamon_sw::SwEngine;

#[derive(Clone)]
struct Entry {
    key: Vec<u8>,
    value: u64,
    tick: u32,
    aux: u32,
}

enum Model {
    Vd {
        bits: [Vec<bool>; 2],
        learning: usize,
        threshold: u32,
        swaps: u64,
    },
    Cells {
        counts: Vec<Vec<u64>>,
        ticks: Vec<Vec<u32>>,
    },
    Hll {
        regs: Vec<u8>,
    },
    Global(u64),
    Table {
        buckets: Vec<Vec<Option<Entry>>>,
        evictions: u64,
    },
}

struct Reference {
    plans: Vec<MetricPlan>,
    models: Vec<Model>,
    gate: Option<bool>,
}

fn fresh(plan: &MetricPlan) -> Model {
    let n = 1usize << plan.log2_size;
    match plan.kind {
        MetricKind::VariationDetector => Model::Vd {
            bits: [vec![false; n], vec![false; n]],
            learning: 0,
            threshold: initial_swap_threshold(plan.log2_size),
            swaps: 0,
        },
        MetricKind::DecayingFilter | MetricKind::CountMin => Model::Cells {
            counts: vec![vec![0; n]; plan.width as usize],
            ticks: vec![vec![0; n]; plan.width as usize],
        },
        MetricKind::HyperLogLog => Model::Hll { regs: vec![0; n] },
        MetricKind::Global => Model::Global(0),
        _ => Model::Table {
            buckets: vec![vec![None; plan.width as usize]; n],
            evictions: 0,
        },
    }
}

fn decay_by_table(count: u64, now: u32, then: u32, table: &[u32]) -> u64 {
    if count == 0 {
        return 0;
    }
    match table.get(age(now, then) as usize) {
        Some(&f) => apply_factor(count, f),
        None => 0,
    }
}

fn hll_packed(regs: &[u8]) -> u64 {
    let z: u64 = regs.iter().map(|&r| 1u64 << (33 - r as u32)).sum();
    let zeros = regs.iter().filter(|&&r| r == 0).count() as u64;
    z | zeros << 48
}

/// Sliding window: (cur, prev, start) after moving to `now`.
fn sliding_roll(e: &Entry, now: u32, w: u32) -> (u64, u64, u32) {
    let cur = e.value & 0xFFFF_FFFF;
    let prev = e.value >> 32;
    let el = age(now, e.aux);
    if el < w {
        (cur, prev, e.aux)
    } else if el < 2 * w {
        (0, cur, e.aux.wrapping_add(w))
    } else {
        (0, 0, now)
    }
}

fn sliding_estimate(cur: u64, prev: u64, start: u32, now: u32, plan: &MetricPlan) -> u64 {
    let remaining = plan.window_ticks.saturating_sub(age(now, start)) as u64;
    let frac = (remaining * plan.window_recip as u64) >> 16;
    cur + ((prev * frac) >> 16)
}

impl Reference {
    fn new(plans: &[MetricPlan]) -> Self {
        Reference {
            plans: plans.to_vec(),
            models: plans.iter().map(fresh).collect(),
            gate: None,
        }
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        let r = self.apply_inner(op);
        let kind = OpKind::from_u8(op.kind);
        self.gate = match kind {
            Some(OpKind::VdGet | OpKind::VdGetSet) if r.status == 0 => Some(r.value == 0),
            _ => None,
        };
        r
    }

    fn apply_inner(&mut self, op: &Op) -> OpResult {
        let Some(mut kind) = OpKind::from_u8(op.kind) else {
            return OpResult::error(op.metric, Status::UnknownOpKind);
        };
        let Some(plan) = self.plans.get(op.metric as usize).cloned() else {
            return OpResult::error(op.metric, Status::UnknownMetric);
        };
        if op.key_len > 40 {
            return OpResult::error(op.metric, Status::KeyTooLong);
        }
        let is_vd_op = matches!(kind, OpKind::VdGet | OpKind::VdSet | OpKind::VdGetSet);
        let ok = match plan.kind {
            MetricKind::VariationDetector => is_vd_op || kind == OpKind::Clear,
            MetricKind::HyperLogLog => !is_vd_op && kind != OpKind::ResetKey,
            _ => !is_vd_op,
        };
        if !ok {
            return OpResult::error(op.metric, Status::UnsupportedOp);
        }
        let mut flags = 0;
        if op.flags & OP_FLAG_IF_NEW != 0 {
            if !matches!(kind, OpKind::Add | OpKind::AddGet) || self.gate.is_none() {
                return OpResult::error(op.metric, Status::BadGate);
            }
            if self.gate == Some(false) {
                flags |= ResultFlags::GATED;
                if kind == OpKind::Add {
                    return OpResult::ok(op.metric, 0, flags);
                }
                kind = OpKind::Get;
            }
        }
        let key = op.key_bytes().to_vec();
        let pos = Positions::new(h3_reference(&key));
        let m = &mut self.models[op.metric as usize];
        if kind == OpKind::Clear {
            *m = fresh(&plan);
            let v = if plan.kind == MetricKind::HyperLogLog {
                hll_packed(&vec![0; 1 << plan.log2_size])
            } else {
                0
            };
            return OpResult::ok(op.metric, v, flags);
        }
        let now = (op.ts_ns >> plan.tick_shift) as u32;
        let value = match m {
            Model::Vd {
                bits,
                learning,
                threshold,
                swaps,
            } => {
                let n = plan.log2_size;
                let base = pos.bloom_block(n) * 512;
                let idx: Vec<usize> = (0..plan.width)
                    .map(|i| base + pos.bloom_bit(i) as usize)
                    .collect();
                let det = 1 - *learning;
                let seen = idx.iter().all(|&i| bits[det][i]) as u64;
                if kind != OpKind::VdGet {
                    for &i in &idx {
                        bits[0][i] = true;
                        bits[1][i] = true;
                    }
                    let zeros = |b: &Vec<bool>| b.iter().filter(|x| !**x).count() as u32;
                    if zeros(&bits[*learning]) < *threshold {
                        let dd = zeros(&bits[det]);
                        bits[det].iter_mut().for_each(|b| *b = false);
                        *learning = det;
                        *threshold = adapt_swap_threshold(*threshold, swap_factor(dd, n), n);
                        *swaps += 1;
                        flags |= ResultFlags::SWAPPED;
                    }
                }
                if kind == OpKind::VdSet {
                    0
                } else {
                    seen
                }
            }
            Model::Cells { counts, ticks } => {
                let cells: Vec<usize> = (0..plan.width)
                    .map(|r| pos.row_cell(r, plan.log2_size))
                    .collect();
                if plan.kind == MetricKind::DecayingFilter {
                    let dec: Vec<u64> = (0..cells.len())
                        .map(|r| {
                            decay_by_table(
                                counts[r][cells[r]],
                                now,
                                ticks[r][cells[r]],
                                &plan.decay,
                            )
                        })
                        .collect();
                    let min = *dec.iter().min().unwrap();
                    match kind {
                        OpKind::Get => min,
                        OpKind::ResetKey => {
                            for r in 0..cells.len() {
                                counts[r][cells[r]] = 0;
                                ticks[r][cells[r]] = now;
                            }
                            0
                        }
                        _ => {
                            let new = min.saturating_add((op.value as u64) << 24);
                            for r in 0..cells.len() {
                                // An empty cell has no age: it takes `now`.
                                ticks[r][cells[r]] = if counts[r][cells[r]] == 0 {
                                    now
                                } else {
                                    later_tick(now, ticks[r][cells[r]])
                                };
                                counts[r][cells[r]] = dec[r].max(new);
                            }
                            new
                        }
                    }
                } else {
                    let min = (0..cells.len()).map(|r| counts[r][cells[r]]).min().unwrap();
                    match kind {
                        OpKind::Get => min,
                        OpKind::ResetKey => {
                            for r in 0..cells.len() {
                                counts[r][cells[r]] = 0;
                            }
                            0
                        }
                        _ if plan.conservative => {
                            let new = (min + op.value as u64).min(u32::MAX as u64);
                            for r in 0..cells.len() {
                                counts[r][cells[r]] = counts[r][cells[r]].max(new);
                            }
                            new
                        }
                        _ => {
                            for r in 0..cells.len() {
                                counts[r][cells[r]] =
                                    (counts[r][cells[r]] + op.value as u64).min(u32::MAX as u64);
                            }
                            (0..cells.len()).map(|r| counts[r][cells[r]]).min().unwrap()
                        }
                    }
                }
            }
            Model::Hll { regs } => {
                if kind != OpKind::Get {
                    let r = pos.hll_register(plan.log2_size);
                    regs[r] = regs[r].max(pos.hll_rank());
                }
                hll_packed(regs)
            }
            Model::Global(sum) => match kind {
                OpKind::Get => *sum,
                OpKind::ResetKey => {
                    *sum = 0;
                    0
                }
                _ => {
                    *sum = sum.saturating_add(op.value as u64);
                    *sum
                }
            },
            Model::Table { buckets, evictions } => {
                let bucket = &mut buckets[pos.bucket(plan.log2_size)];
                let found = bucket
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|e| e.key == key));
                match kind {
                    OpKind::ResetKey => {
                        if let Some(i) = found {
                            bucket[i] = None;
                        }
                        0
                    }
                    OpKind::Get => match found {
                        None => 0,
                        Some(i) => {
                            let e = bucket[i].as_ref().unwrap();
                            match plan.kind {
                                MetricKind::ExactCounter => e.value,
                                MetricKind::ExactEwma => {
                                    decay_by_table(e.value, now, e.tick, &plan.decay)
                                }
                                _ => {
                                    let (c, p, s) = sliding_roll(e, now, plan.window_ticks);
                                    sliding_estimate(c, p, s, now, &plan)
                                }
                            }
                        }
                    },
                    _ => {
                        let i = match found {
                            Some(i) => i,
                            None => {
                                flags |= ResultFlags::INSERTED;
                                let i = match bucket.iter().position(Option::is_none) {
                                    Some(i) => i,
                                    None => {
                                        // Oldest write wins eviction; ties to the lowest way.
                                        let ages: Vec<u32> = bucket
                                            .iter()
                                            .map(|s| age(now, s.as_ref().unwrap().tick))
                                            .collect();
                                        let max = *ages.iter().max().unwrap();
                                        *evictions += 1;
                                        flags |= ResultFlags::EVICTED;
                                        ages.iter().position(|&a| a == max).unwrap()
                                    }
                                };
                                bucket[i] = Some(Entry {
                                    key: key.clone(),
                                    value: 0,
                                    tick: now,
                                    aux: now,
                                });
                                i
                            }
                        };
                        let e = bucket[i].as_mut().unwrap();
                        let v = op.value as u64;
                        let result = match plan.kind {
                            MetricKind::ExactCounter => {
                                e.value = e.value.saturating_add(v);
                                e.value
                            }
                            MetricKind::ExactEwma => {
                                e.value = decay_by_table(e.value, now, e.tick, &plan.decay)
                                    .saturating_add(v << 24);
                                e.value
                            }
                            _ => {
                                let (c, p, s) = sliding_roll(e, now, plan.window_ticks);
                                let c = (c + v).min(u32::MAX as u64);
                                e.value = c | p << 32;
                                e.aux = s;
                                sliding_estimate(c, p, s, now, &plan)
                            }
                        };
                        e.tick = later_tick(now, e.tick);
                        result
                    }
                }
            }
        };
        OpResult::ok(op.metric, value, flags)
    }

    fn dump(&self, id: usize) -> Vec<u64> {
        let plan = &self.plans[id];
        let mut out = vec![plan.kind as u64, plan.log2_size as u64, plan.width as u64];
        match &self.models[id] {
            Model::Vd {
                bits,
                learning,
                threshold,
                swaps,
            } => {
                out.push(*swaps);
                let zeros = |b: &Vec<bool>| b.iter().filter(|x| !**x).count() as u64;
                out.extend([
                    *learning as u64,
                    zeros(&bits[*learning]),
                    zeros(&bits[1 - *learning]),
                    *threshold as u64,
                ]);
                for b in bits {
                    for word in b.chunks(64) {
                        out.push(
                            word.iter()
                                .enumerate()
                                .fold(0, |acc, (i, &x)| acc | (x as u64) << i),
                        );
                    }
                }
            }
            Model::Cells { counts, ticks } => {
                out.push(0);
                for r in 0..counts.len() {
                    for c in 0..counts[r].len() {
                        out.push(counts[r][c]);
                        if plan.kind == MetricKind::DecayingFilter {
                            out.push(ticks[r][c] as u64);
                        }
                    }
                }
            }
            Model::Hll { regs } => {
                out.push(0);
                out.push(hll_packed(regs) & ((1 << 48) - 1));
                out.push(hll_packed(regs) >> 48);
                for c in regs.chunks(8) {
                    out.push(
                        c.iter()
                            .enumerate()
                            .fold(0, |acc, (i, &r)| acc | (r as u64) << (8 * i)),
                    );
                }
            }
            Model::Global(s) => out.extend([0, *s]),
            Model::Table { buckets, evictions } => {
                out.push(*evictions);
                for b in buckets {
                    for s in b {
                        match s {
                            None => out.extend([0; 9]),
                            Some(e) => {
                                let mut bytes = [0u8; 40];
                                bytes[..e.key.len()].copy_from_slice(&e.key);
                                for c in bytes.chunks(8) {
                                    out.push(u64::from_le_bytes(c.try_into().unwrap()));
                                }
                                out.extend([
                                    1 | (e.key.len() as u64) << 8,
                                    e.value,
                                    e.tick as u64,
                                    e.aux as u64,
                                ]);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Small structures so collisions, swaps, saturation and evictions happen.
fn small_plans() -> Vec<MetricPlan> {
    let table = TableSpec {
        log2_buckets: 2,
        ways: 2,
    };
    [
        MetricSpec::VariationDetector {
            log2_bits: 10,
            hashes: 4,
        },
        MetricSpec::ExactCounter { table },
        MetricSpec::DecayingFilter {
            log2_cells: 4,
            rows: 3,
            tau: TimeConstant { tau_ns: 5e6 },
        },
        MetricSpec::CountMin {
            log2_cells: 4,
            rows: 2,
            conservative: false,
        },
        MetricSpec::CountMin {
            log2_cells: 4,
            rows: 3,
            conservative: true,
        },
        MetricSpec::HyperLogLog { log2_registers: 4 },
        MetricSpec::Global,
        MetricSpec::ExactEwma {
            table,
            tau: TimeConstant { tau_ns: 2e6 },
        },
        MetricSpec::SlidingWindow {
            table,
            window_ns: 3_000_000,
        },
        MetricSpec::VariationDetector {
            log2_bits: 9,
            hashes: 16,
        },
        // Same geometry as metrics 0 and 1: the engine interleaves same-size
        // detectors and same-geometry tables in shared memory, so these
        // check that lanes never leak into each other (clears, swaps,
        // evictions of one leave the others as they were).
        MetricSpec::VariationDetector {
            log2_bits: 10,
            hashes: 8,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 2,
                ways: 2,
            },
        },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect()
}

/// Random ops over a small key space, with occasional bad ops, gates,
/// resets, clears, big values and time jumps (also backwards).
fn op_stream() -> impl Strategy<Value = Vec<Op>> {
    let op = (
        prop_oneof![12 => 0u16..12, 1 => Just(12u16)], // metric (12 = unknown)
        prop_oneof![9 => 1u8..=6, 1 => 7u8..=8, 1 => Just(0u8), 1 => Just(9u8)],
        0u8..12, // key id (small space: collisions)
        prop_oneof![8 => 0u32..4, 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![6 => 0u64..2_000_000, 1 => 0u64..40_000_000, 4 => Just(0u64)], // time step
        prop_oneof![6 => Just(0u8), 2 => Just(OP_FLAG_IF_NEW)],
        prop_oneof![20 => Just(false), 1 => Just(true)], // over-long key
        prop_oneof![20 => Just(false), 1 => Just(true)], // time goes back
        prop_oneof![2 => Just(false), 1 => Just(true)],  // key longer than 8 bytes
    );
    let start = prop_oneof![
        Just(1_000_000_000u64),
        // 2026: ticks far above 2^31, where signed tick ages must still work.
        Just(1_767_225_600_000_000_000u64),
        any::<u64>().prop_map(|t| t >> 2),
    ];
    (start, proptest::collection::vec(op, 1..400)).prop_map(|(start, raw)| {
        let mut ts = start;
        raw.into_iter()
            .map(
                |(metric, kind, key, value, step, flags, long, back, wide)| {
                    ts = if back {
                        ts.saturating_sub(step)
                    } else {
                        ts.saturating_add(step)
                    };
                    let short = [key, key.wrapping_mul(7), 0xAB];
                    // Wide keys of 3, 9 or 40 bytes whose first 8 bytes repeat
                    // between ids (k and k + 6), so keys can agree in length
                    // and first word and differ only further on.
                    let mut wide_bytes = [0x5Au8; 40];
                    wide_bytes[0] = (key / 3) % 2;
                    wide_bytes[8] = key;
                    wide_bytes[39] = key.wrapping_mul(3);
                    let key_bytes = if wide {
                        &wide_bytes[..[3, 9, 40][key as usize % 3]]
                    } else {
                        &short[..1 + key as usize % 3]
                    };
                    let mut op = Op::new(metric, OpKind::Add, key_bytes, value, ts).unwrap();
                    op.kind = kind;
                    op.flags = flags;
                    if long {
                        op.key_len = 41;
                    }
                    op
                },
            )
            .collect()
    })
}

fn dumps_equal(engine: &SwEngine, model: &Reference) -> Result<(), TestCaseError> {
    for id in 0..model.plans.len() {
        let got = engine.dump(id as u16).unwrap();
        let want = model.dump(id);
        prop_assert_eq!(got.len(), want.len(), "dump length of metric {}", id);
        if let Some(w) = (0..got.len()).find(|&w| got[w] != want[w]) {
            prop_assert!(
                false,
                "metric {} dump word {}: engine {:#x}, model {:#x}",
                id,
                w,
                got[w],
                want[w]
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Every op's result and the final full state equal the slow model's.
    #[test]
    fn engine_matches_reference_model(ops in op_stream(), batched in any::<bool>()) {
        let plans = small_plans();
        let mut engine = SwEngine::new(&plans);
        let mut model = Reference::new(&plans);
        let mut got = vec![OpResult::default(); ops.len()];
        if batched {
            engine.apply(&ops, &mut got);
        } else {
            for (op, out) in ops.iter().zip(got.iter_mut()) {
                *out = engine.apply_one(op);
            }
        }
        for (i, op) in ops.iter().enumerate() {
            let want = model.apply(op);
            prop_assert_eq!(got[i], want, "op #{}: {:?}", i, op);
        }
        dumps_equal(&engine, &model)?;
    }
}

#[test]
fn a_variation_detector_swaps_as_the_original() {
    // m = 1024 bits, k = 4: the first swap comes once ~29 % of the learning
    // filter is set, i.e. after roughly 300/4 ≈ 80–90 distinct keys.
    let plan = MetricPlan::install(MetricSpec::VariationDetector {
        log2_bits: 10,
        hashes: 4,
    })
    .unwrap();
    let mut engine = SwEngine::new(std::slice::from_ref(&plan));
    let mut model = Reference::new(std::slice::from_ref(&plan));
    let mut first_swap = None;
    for i in 0u32..2000 {
        let op = Op::new(0, OpKind::VdGetSet, &i.to_be_bytes(), 0, 0).unwrap();
        let r = engine.apply_one(&op);
        assert_eq!(r, model.apply(&op));
        if r.flags & ResultFlags::SWAPPED != 0 && first_swap.is_none() {
            first_swap = Some(i);
        }
    }
    let first = first_swap.expect("the detector must swap");
    assert!((60..=110).contains(&first), "first swap after {first} keys");
    assert!(engine.dump(0).unwrap()[3] >= 10, "keeps swapping");
}
