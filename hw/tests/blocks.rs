//! Per-block test benches in RustHDL's simulator: each bank on its own,
//! driven the way the pipeline drives it (read address in stage 2, the op in
//! stage 3), and the op decoder and result path of the whole pipeline.
//!
//! Banks are checked op by op and dump by dump against the software engine
//! (`streamon-sw`) running the same ops on the same plan; the decoder is
//! checked against hand-derived statuses, values and flags (and against the
//! software engine on the same stream).

use proptest::prelude::*;
use rust_hdl::prelude::*;
use std::sync::{Arc, Mutex};
use streamon_contract::dump::{BLOCK_WORDS, SLOT_WORDS};
use streamon_contract::fixed::initial_swap_threshold;
use streamon_contract::h3::h3;
use streamon_contract::plan::{TableSpec, TimeConstant};
use streamon_contract::{
    MetricEngine, MetricKind, MetricPlan, MetricSpec, Op, OpKind, OpResult, ResultFlags, Status,
    KEY_MAX,
};
use streamon_hw::exact_bank::ExactBank;
use streamon_hw::global_bank::GlobalBank;
use streamon_hw::layout::{connect_ports, SimPipeline};
use streamon_hw::regmap;
use streamon_hw::vd_bank::VdBank;
use streamon_sw::SwEngine;

/// A bank's answer to one op: (value, flags).
type Answer = (u64, u8);

fn key_bits(op: &Op) -> Bits<320> {
    let mut v = Bits::<320>::default();
    for (i, &b) in op.key_bytes().iter().enumerate() {
        v.set_bits::<8>(8 * i, (b as u64).into());
    }
    v
}

fn op_hash(op: &Op) -> Bits<64> {
    h3(op.key_bytes()).into()
}

/// The software engine's answers and final dump (header stripped) for one
/// metric `plan` and `ops` on metric 0.
fn software(plan: &MetricPlan, ops: &[Op]) -> (Vec<Answer>, Vec<u64>) {
    let mut sw = SwEngine::new(std::slice::from_ref(plan));
    let mut res = vec![OpResult::default(); ops.len()];
    sw.apply(ops, &mut res);
    for (op, r) in ops.iter().zip(&res) {
        assert_eq!(
            r.status,
            Status::Ok as u8,
            "bench stream has a bad op {op:?}"
        );
    }
    let dump = sw.dump(0).expect("metric 0 installed");
    (
        res.iter().map(|r| (r.value, r.flags)).collect(),
        dump[3..].to_vec(),
    )
}

fn first_difference(ops: &[Op], got: &[Answer], want: &[Answer]) -> Option<String> {
    assert_eq!(got.len(), want.len(), "one answer per op");
    (0..ops.len()).find(|&i| got[i] != want[i]).map(|i| {
        format!(
            "op #{i} {:?}: software (value, flags) {:?}, bank {:?}; previous op {:?}",
            ops[i],
            want[i],
            got[i],
            i.checked_sub(1).map(|p| ops[p])
        )
    })
}

// ---------------------------------------------------------------- detector

/// Detector bank of 4 blocks (up to 2^11 bits per filter).
#[derive(LogicBlock)]
struct VdBench {
    clock: Signal<In, Clock>,
    bank: VdBank<2, 4>,
    res: DFF<Bits<64>>,
    flg: DFF<Bits<8>>,
}

impl Logic for VdBench {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, res, flg);
        self.bank.clock.next = self.clock.val();
        // Stage-3 outputs are combinational; capture them at the clock edge
        // that commits the op.
        self.res.d.next = self.bank.result.val();
        self.flg.d.next = self.bank.flags.val();
    }
}

fn vd_bench() -> VdBench {
    let mut b = VdBench {
        clock: Default::default(),
        bank: VdBank::new(regmap::vd_bank(0)),
        res: Default::default(),
        flg: Default::default(),
    };
    b.bank.hash_s2.connect();
    b.bank.go.connect();
    b.bank.kind.connect();
    b.bank.hash.connect();
    b.bank.cfg_we.connect();
    b.bank.cfg_addr.connect();
    b.bank.cfg_data.connect();
    b.bank.dump_en.connect();
    b.bank.dump_word.connect();
    b.connect_all();
    b
}

/// The dump words (after the header) of the detector bank, in the
/// contract's order.
fn vd_dump_words(log2_bits: u32) -> Vec<u32> {
    let mut w = vec![
        regmap::DUMP_EVENTS,
        regmap::DUMP_VD_LEARNING,
        regmap::DUMP_VD_ZEROS0,
        regmap::DUMP_VD_ZEROS1,
        regmap::DUMP_VD_THRESHOLD,
    ];
    for f in 0..2 {
        for b in 0..1u32 << (log2_bits - 9) {
            for j in 0..BLOCK_WORDS as u32 {
                w.push(regmap::dump_vd_word(f, b, j));
            }
        }
    }
    w
}

/// Contract order: zeros of the learning filter, then the detecting one.
fn vd_dump_from_words(raw: &[u64]) -> Vec<u64> {
    let learning = raw[1];
    let (zl, zd) = if learning == 1 {
        (raw[3], raw[2])
    } else {
        (raw[2], raw[3])
    };
    let mut out = vec![raw[0], learning, zl, zd, raw[4]];
    out.extend_from_slice(&raw[5..]);
    out
}

/// Runs `ops` (metric 0) through a detector bank configured for
/// (`log2_bits`, `hashes`): returns each op's answer and the dump.
fn run_vd(log2_bits: u32, hashes: u32, ops: &[Op]) -> (Vec<Answer>, Vec<u64>) {
    let base = regmap::vd_bank(0) as u64;
    let cfg = [
        (base, log2_bits as u64),
        (base + 1, hashes as u64),
        (base + 2, initial_swap_threshold(log2_bits) as u64),
    ];
    let stream: Vec<(u64, Bits<64>)> = ops.iter().map(|op| (op.kind as u64, op_hash(op))).collect();
    let words = vd_dump_words(log2_bits);
    let n_words = words.len();
    let out = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = out.clone();
    let n = stream.len();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<VdBench>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<VdBench>| {
        let mut x = sim.init()?;
        for (a, d) in cfg {
            x.bank.cfg_we.next = true;
            x.bank.cfg_addr.next = a.into();
            x.bank.cfg_data.next = d.into();
            wait_clock_cycle!(sim, clock, x);
        }
        x.bank.cfg_we.next = false;
        // Clock j: op j's read address (stage 2) and op j-1 applied (stage 3).
        for j in 0..=n {
            x.bank.hash_s2.next = stream.get(j).map_or(0.into(), |s| s.1);
            x.bank.go.next = j > 0;
            if j > 0 {
                x.bank.kind.next = stream[j - 1].0.into();
                x.bank.hash.next = stream[j - 1].1;
            }
            wait_clock_cycle!(sim, clock, x);
            if j > 0 {
                let a = (x.res.q.val().to_u64(), x.flg.q.val().to_u8());
                sink.lock().unwrap().0.push(a);
            }
        }
        x.bank.go.next = false;
        x.bank.dump_en.next = true;
        for &w in &words {
            x.bank.dump_word.next = (w as u64).into();
            wait_clock_cycle!(sim, clock, x);
            let d = x.bank.dump_data.val().to_u64();
            sink.lock().unwrap().1.push(d);
        }
        sim.done(x)
    });
    let clocks = (cfg_len() + n + n_words + 8) as u64;
    sim.run(Box::new(vd_bench()), clocks * 10).unwrap();
    let (answers, raw) = std::mem::take(&mut *out.lock().unwrap());
    (answers, vd_dump_from_words(&raw))
}

fn cfg_len() -> usize {
    3
}

fn vd_op(kind: u8, key: u16, ts: u64) -> Op {
    let kind = [
        OpKind::VdGet,
        OpKind::VdSet,
        OpKind::VdGetSet,
        OpKind::Clear,
    ][kind as usize];
    let k = key.to_be_bytes();
    let key: &[u8] = if kind == OpKind::Clear { &[] } else { &k };
    Op::new(0, kind, key, 0, ts).unwrap()
}

/// Hand-derived: a fresh detector answers 0 for a new key and 1 once it is
/// in the detecting filter; a `Clear` forgets it.
#[test]
fn vd_bank_new_then_seen_then_cleared() {
    let ops = [
        vd_op(2, 7, 0), // VdGetSet: new -> 0
        vd_op(2, 7, 1), // VdGetSet: seen -> 1 (forwarded: same block, back to back)
        vd_op(0, 7, 2), // VdGet -> 1
        vd_op(0, 8, 3), // VdGet of another key -> 0
        vd_op(3, 0, 4), // Clear
        vd_op(0, 7, 5), // VdGet -> 0
    ];
    let (got, _) = run_vd(10, 4, &ops);
    let values: Vec<u64> = got.iter().map(|a| a.0).collect();
    assert_eq!(values, [0, 1, 1, 0, 0, 0]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Random detector streams (many keys, so filters fill and swap; back to
    /// back ops on one key; clears) give the software engine's answers,
    /// swap flags and final dump.
    #[test]
    fn vd_bank_matches_software(
        log2_bits in 9u32..=11,
        hashes in 1u32..=16,
        raw in proptest::collection::vec((0u8..16, 0u16..400), 1..300),
    ) {
        let ops: Vec<Op> = raw
            .iter()
            .enumerate()
            .map(|(i, &(k, key))| vd_op(match k { 0..=3 => 0, 4..=6 => 1, 7..=14 => 2, _ => 3 }, key, i as u64))
            .collect();
        let plan = MetricPlan::install(MetricSpec::VariationDetector { log2_bits, hashes }).unwrap();
        let (want, want_dump) = software(&plan, &ops);
        let (got, got_dump) = run_vd(log2_bits, hashes, &ops);
        if let Some(d) = first_difference(&ops, &got, &want) {
            panic!("{d}");
        }
        prop_assert_eq!(got_dump, want_dump);
    }
}

// ------------------------------------------------------------------- exact

/// Exact bank of up to 4 buckets x 4 ways.
#[derive(LogicBlock)]
struct ExactBench {
    clock: Signal<In, Clock>,
    bank: ExactBank<2, 4, 4>,
    res: DFF<Bits<64>>,
    flg: DFF<Bits<8>>,
}

impl Logic for ExactBench {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, res, flg);
        self.bank.clock.next = self.clock.val();
        self.res.d.next = self.bank.result.val();
        self.flg.d.next = self.bank.flags.val();
    }
}

fn exact_bench() -> ExactBench {
    let mut b = ExactBench {
        clock: Default::default(),
        bank: ExactBank::new(regmap::exact_bank(0), regmap::exact_page(0)),
        res: Default::default(),
        flg: Default::default(),
    };
    b.bank.hash_s2.connect();
    b.bank.go.connect();
    b.bank.kind.connect();
    b.bank.hash.connect();
    b.bank.key.connect();
    b.bank.key_len.connect();
    b.bank.value.connect();
    b.bank.ts.connect();
    b.bank.cfg_we.connect();
    b.bank.cfg_addr.connect();
    b.bank.cfg_data.connect();
    b.bank.dump_en.connect();
    b.bank.dump_word.connect();
    b.connect_all();
    b
}

struct ExactIn {
    kind: u64,
    hash: Bits<64>,
    key: Bits<320>,
    key_len: u64,
    value: u64,
    ts: u64,
}

fn run_exact(plan: &MetricPlan, ops: &[Op]) -> (Vec<Answer>, Vec<u64>) {
    let base = regmap::exact_bank(0) as u64;
    let ewma = plan.kind == MetricKind::ExactEwma;
    let mut cfg = vec![
        (base, plan.log2_size as u64),
        (base + 1, plan.width as u64),
        (base + 3, ewma as u64),
    ];
    // ExactEwma: the decay table, before the install.
    cfg.extend(
        plan.decay
            .iter()
            .enumerate()
            .map(|(age, &f)| (regmap::exact_factor(0, age) as u64, f as u64)),
    );
    cfg.push((base + 2, plan.tick_shift as u64));
    let n_cfg = cfg.len();
    let stream: Vec<ExactIn> = ops
        .iter()
        .map(|op| ExactIn {
            kind: op.kind as u64,
            hash: op_hash(op),
            key: key_bits(op),
            key_len: op.key_len as u64,
            value: op.value as u64,
            ts: op.ts_ns,
        })
        .collect();
    let mut words = vec![regmap::DUMP_EVENTS];
    for b in 0..1u32 << plan.log2_size {
        for w in 0..plan.width {
            for j in 0..SLOT_WORDS as u32 {
                words.push(regmap::dump_slot_word(b, w, j));
            }
        }
    }
    let out = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = out.clone();
    let n = stream.len();
    let n_words = words.len();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<ExactBench>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<ExactBench>| {
        let mut x = sim.init()?;
        for &(a, d) in &cfg {
            x.bank.cfg_we.next = true;
            x.bank.cfg_addr.next = a.into();
            x.bank.cfg_data.next = d.into();
            wait_clock_cycle!(sim, clock, x);
        }
        x.bank.cfg_we.next = false;
        for j in 0..=n {
            x.bank.hash_s2.next = stream.get(j).map_or(0.into(), |s| s.hash);
            x.bank.go.next = j > 0;
            if j > 0 {
                let s = &stream[j - 1];
                x.bank.kind.next = s.kind.into();
                x.bank.hash.next = s.hash;
                x.bank.key.next = s.key;
                x.bank.key_len.next = s.key_len.into();
                x.bank.value.next = s.value.into();
                x.bank.ts.next = s.ts.into();
            }
            wait_clock_cycle!(sim, clock, x);
            if j > 0 {
                let a = (x.res.q.val().to_u64(), x.flg.q.val().to_u8());
                sink.lock().unwrap().0.push(a);
            }
        }
        x.bank.go.next = false;
        x.bank.dump_en.next = true;
        for &w in &words {
            x.bank.dump_word.next = (w as u64).into();
            wait_clock_cycle!(sim, clock, x);
            let d = x.bank.dump_data.val().to_u64();
            sink.lock().unwrap().1.push(d);
        }
        sim.done(x)
    });
    let clocks = (n_cfg + n + n_words + 8) as u64;
    sim.run(Box::new(exact_bench()), clocks * 10).unwrap();
    let r = std::mem::take(&mut *out.lock().unwrap());
    r
}

fn exact_plan(log2_buckets: u32, ways: u32) -> MetricPlan {
    MetricPlan::install(MetricSpec::ExactCounter {
        table: TableSpec { log2_buckets, ways },
    })
    .unwrap()
}

/// Hand-derived: two ways of one bucket (three keys chosen to share it).
/// Two keys are inserted, the third evicts the one written longest ago;
/// `ResetKey` frees a slot; `Get` of an absent key is 0.
#[test]
fn exact_bank_inserts_counts_and_evicts_the_oldest() {
    let tick = 1u64 << 20; // EXACT_COUNTER_TICK_SHIFT
    let bucket = |k: u8| streamon_contract::h3::Positions::new(h3(&[k])).bucket(1);
    let same: Vec<u8> = (0..=255u8)
        .filter(|&k| bucket(k) == bucket(0))
        .take(3)
        .collect();
    let (a, b, c) = (&[same[0]][..], &[same[1]][..], &[same[2]][..]);
    let op = |kind, key: &[u8], value, t: u64| Op::new(0, kind, key, value, t * tick).unwrap();
    let ops = [
        op(OpKind::AddGet, a, 3, 0), // inserted: 3, INSERTED
        op(OpKind::AddGet, a, 4, 1), // 7 (back to back: forwarded)
        op(OpKind::Add, b, 10, 2),   // inserted: 10, INSERTED (second way)
        op(OpKind::Get, a, 99, 3),   // 7
        op(OpKind::AddGet, c, 1, 4), // full: evicts a (written at 1), 1, INSERTED|EVICTED
        op(OpKind::Get, a, 0, 5),    // 0: gone
        op(OpKind::ResetKey, b, 0, 6),
        op(OpKind::Get, b, 0, 7),    // 0
        op(OpKind::AddGet, a, 2, 8), // free way again: 2, INSERTED, no eviction
    ];
    let ins = ResultFlags::INSERTED;
    let want: Vec<Answer> = vec![
        (3, ins),
        (7, 0),
        (10, ins),
        (7, 0),
        (1, ins | ResultFlags::EVICTED),
        (0, 0),
        (0, 0),
        (0, 0),
        (2, ins),
    ];
    let (got, dump) = run_exact(&exact_plan(1, 2), &ops);
    assert_eq!(got, want);
    assert_eq!(dump[0], 1, "one eviction counted");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Random exact-table streams (few buckets: collisions and evictions;
    /// keys of several lengths sharing a prefix; time jumps both ways;
    /// resets and clears) give the software engine's answers and dump.
    #[test]
    fn exact_bank_matches_software(
        log2_buckets in 1u32..=2,
        ways in 1u32..=4,
        raw in proptest::collection::vec((0u8..16, 0u8..24, 0u8..=3, any::<u32>(), -3i64..40), 1..250),
    ) {
        let plan = exact_plan(log2_buckets, ways);
        let mut t: i64 = 100;
        let ops: Vec<Op> = raw
            .iter()
            .map(|&(k, key, len, value, dt)| {
                t = (t + dt).max(0);
                let kind = match k {
                    0..=5 => OpKind::AddGet,
                    6..=8 => OpKind::Add,
                    9..=12 => OpKind::Get,
                    13..=14 => OpKind::ResetKey,
                    _ => OpKind::Clear,
                };
                let bytes = [key, key ^ 0x5a, 7, 1];
                let key_bytes: &[u8] = if kind == OpKind::Clear { &[] } else { &bytes[..len as usize] };
                Op::new(0, kind, key_bytes, value >> (key % 20), (t as u64) << 19).unwrap()
            })
            .collect();
        let (want, want_dump) = software(&plan, &ops);
        let (got, got_dump) = run_exact(&plan, &ops);
        if let Some(d) = first_difference(&ops, &got, &want) {
            panic!("{d}");
        }
        prop_assert_eq!(got_dump, want_dump);
    }

    /// The same bank in ExactEwma mode (`tewma-fast`, τ = 2 ms: ticks of
    /// 16 µs, so the streams' steps of up to 20 ms reach every age of the
    /// decay table and beyond): decayed values, saturation with large
    /// values, back-to-back ops on one slot, resets, clears, time going back.
    #[test]
    fn exact_bank_ewma_matches_software(
        log2_buckets in 1u32..=2,
        ways in 1u32..=4,
        raw in proptest::collection::vec((0u8..16, 0u8..12, 1u8..=3, any::<u32>(), -3i64..40), 1..250),
    ) {
        let plan = MetricPlan::install(MetricSpec::ExactEwma {
            table: TableSpec { log2_buckets, ways },
            tau: TimeConstant { tau_ns: 2e6 },
        })
        .unwrap();
        let mut t: i64 = 100;
        let ops: Vec<Op> = raw
            .iter()
            .map(|&(k, key, len, value, dt)| {
                t = (t + dt).max(0);
                let kind = match k {
                    0..=5 => OpKind::AddGet,
                    6..=8 => OpKind::Add,
                    9..=12 => OpKind::Get,
                    13..=14 => OpKind::ResetKey,
                    _ => OpKind::Clear,
                };
                let bytes = [key, key ^ 0x5a, 7];
                let key_bytes: &[u8] = if kind == OpKind::Clear { &[] } else { &bytes[..len as usize] };
                Op::new(0, kind, key_bytes, value >> (key % 24), (t as u64) << 19).unwrap()
            })
            .collect();
        let (want, want_dump) = software(&plan, &ops);
        let (got, got_dump) = run_exact(&plan, &ops);
        if let Some(d) = first_difference(&ops, &got, &want) {
            panic!("{d}");
        }
        prop_assert_eq!(got_dump, want_dump);
    }
}

// ------------------------------------------------------------------ global

#[derive(LogicBlock)]
struct GlobalBench {
    clock: Signal<In, Clock>,
    bank: GlobalBank,
    res: DFF<Bits<64>>,
}

impl Logic for GlobalBench {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, res);
        self.bank.clock.next = self.clock.val();
        self.res.d.next = self.bank.result.val();
    }
}

fn run_global(ops: &[Op]) -> (Vec<Answer>, Vec<u64>) {
    let mut b = GlobalBench {
        clock: Default::default(),
        bank: GlobalBank::new(regmap::global_bank(0)),
        res: Default::default(),
    };
    b.bank.go.connect();
    b.bank.kind.connect();
    b.bank.value.connect();
    b.bank.cfg_we.connect();
    b.bank.cfg_addr.connect();
    b.bank.dump_word.connect();
    b.connect_all();
    let stream: Vec<(u64, u64)> = ops
        .iter()
        .map(|o| (o.kind as u64, o.value as u64))
        .collect();
    let n = stream.len();
    let out = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = out.clone();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<GlobalBench>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<GlobalBench>| {
        let mut x = sim.init()?;
        x.bank.cfg_we.next = true;
        x.bank.cfg_addr.next = (regmap::global_bank(0) as u64).into();
        wait_clock_cycle!(sim, clock, x);
        x.bank.cfg_we.next = false;
        for &(kind, value) in &stream {
            x.bank.go.next = true;
            x.bank.kind.next = kind.into();
            x.bank.value.next = value.into();
            wait_clock_cycle!(sim, clock, x);
            let a = (x.res.q.val().to_u64(), 0u8);
            sink.lock().unwrap().0.push(a);
        }
        x.bank.go.next = false;
        x.bank.dump_word.next = (regmap::DUMP_GLOBAL_SUM as u64).into();
        wait_clock_cycle!(sim, clock, x);
        let d = x.bank.dump_data.val().to_u64();
        sink.lock().unwrap().1.push(d);
        sim.done(x)
    });
    sim.run(Box::new(b), (n as u64 + 8) * 10).unwrap();
    let r = std::mem::take(&mut *out.lock().unwrap());
    r
}

/// Hand-derived sums, and the software engine on random streams.
#[test]
fn global_bank_sums_and_resets() {
    let op = |kind, v| Op::new(0, kind, b"ignored", v, 0).unwrap();
    let ops = [
        op(OpKind::Add, 5),
        op(OpKind::AddGet, 7),
        op(OpKind::Get, 100),
        op(OpKind::AddGet, u32::MAX),
        op(OpKind::ResetKey, 0),
        op(OpKind::Get, 0),
        op(OpKind::AddGet, 1),
        op(OpKind::Clear, 0),
        op(OpKind::AddGet, 2),
    ];
    let (got, dump) = run_global(&ops);
    let values: Vec<u64> = got.iter().map(|a| a.0).collect();
    assert_eq!(values, [5, 12, 12, 12 + u32::MAX as u64, 0, 0, 1, 0, 2]);
    assert_eq!(dump, [2]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn global_bank_matches_software(raw in proptest::collection::vec((0u8..5, any::<u32>()), 1..200)) {
        let kinds = [OpKind::Add, OpKind::Get, OpKind::AddGet, OpKind::ResetKey, OpKind::Clear];
        let ops: Vec<Op> = raw.iter().map(|&(k, v)| Op::new(0, kinds[k as usize], &[], v, 0).unwrap()).collect();
        let plan = MetricPlan::install(MetricSpec::Global).unwrap();
        let (want, want_dump) = software(&plan, &ops);
        let (got, got_dump) = run_global(&ops);
        if let Some(d) = first_difference(&ops, &got, &want) {
            panic!("{d}");
        }
        // A global has no event counter: the contract's word is always 0.
        prop_assert_eq!(want_dump[0], 0);
        prop_assert_eq!(&got_dump[..], &want_dump[1..]);
    }
}

// -------------------------------------------- op decoder and result path

fn op_bits(op: &Op) -> Bits<512> {
    let b = op.to_bytes();
    let mut v = Bits::<512>::default();
    for (i, chunk) in b.chunks(8).enumerate() {
        v.set_bits::<64>(64 * i, u64::from_le_bytes(chunk.try_into().unwrap()).into());
    }
    v
}

/// Runs `ops` through the whole pipeline (`SimPipeline`) configured with
/// `cfg` and returns the result records.
fn run_pipeline(cfg: Vec<(u64, u64)>, ops: &[Op]) -> Vec<OpResult> {
    let stream: Vec<Bits<512>> = ops.iter().map(op_bits).collect();
    let n = ops.len();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let mut uut = SimPipeline::new();
    connect_ports(&mut uut);
    uut.connect_all();
    let mut hdl = Simulation::new();
    hdl.add_clock(5, |x: &mut Box<SimPipeline>| x.clock.next = !x.clock.val());
    hdl.add_testbench(move |mut sim: Sim<SimPipeline>| {
        let mut x = sim.init()?;
        for &(a, d) in &cfg {
            x.cfg_we.next = true;
            x.cfg_addr.next = a.into();
            x.cfg_data.next = d.into();
            wait_clock_cycle!(sim, clock, x);
        }
        x.cfg_we.next = false;
        let mut sent = 0;
        let mut idle = 0;
        while sink.lock().unwrap().len() < n && idle < 16 {
            x.in_valid.next = sent < n;
            if sent < n {
                x.in_op.next = stream[sent];
                sent += 1;
            } else {
                idle += 1;
            }
            wait_clock_cycle!(sim, clock, x);
            if x.out_valid.val() {
                let r = x.out_result.val().to_u128();
                sink.lock().unwrap().push(r);
            }
        }
        sim.done(x)
    });
    hdl.run(Box::new(uut), (n as u64 + 64) * 10).unwrap();
    let raw = got.lock().unwrap().clone();
    raw.iter()
        .map(|r| OpResult::from_bytes(&r.to_le_bytes()))
        .collect()
}

/// Metric 0: detector (2^9 bits, k = 3) in detector bank 0; metric 1:
/// exact counter (2 buckets x 2 ways) in exact bank 0; metric 2: global.
fn decoder_config() -> (Vec<MetricPlan>, Vec<(u64, u64)>) {
    let plans = vec![
        MetricPlan::install(MetricSpec::VariationDetector {
            log2_bits: 9,
            hashes: 3,
        })
        .unwrap(),
        exact_plan(1, 2),
        MetricPlan::install(MetricSpec::Global).unwrap(),
    ];
    let vd = regmap::vd_bank(0) as u64;
    let ex = regmap::exact_bank(0) as u64;
    let cfg = vec![
        (vd, 9),
        (vd + 1, 3),
        (vd + 2, initial_swap_threshold(9) as u64),
        (regmap::METRIC_MAP as u64, 1),
        (ex, 1),
        (ex + 1, 2),
        (ex + 2, plans[1].tick_shift as u64),
        (regmap::METRIC_MAP as u64 + 1, 6),
        (regmap::global_bank(0) as u64, 0),
        (regmap::METRIC_MAP as u64 + 2, 5),
        (regmap::N_METRICS as u64, 3),
    ];
    (plans, cfg)
}

/// Hand-derived statuses in the contract's check order, the `IF_NEW` gate
/// (open, closed, without a preceding detector get) and the result record's
/// fields (metric echoed, value zeroed on error).
#[test]
fn decoder_checks_in_contract_order_and_gates() {
    let (plans, cfg) = decoder_config();
    let raw = |metric: u16, kind: u8, flags: u8, key_len: u8| Op {
        metric,
        kind,
        flags,
        key_len,
        value: 9,
        ..Op::default()
    };
    let op = |m, kind, key: &[u8], v| Op::new(m, kind, key, v, 0).unwrap();
    use Status::*;
    let f_ins = ResultFlags::INSERTED;
    let f_gated = ResultFlags::GATED;
    // (op, status, value, flags)
    let cases: Vec<(Op, Status, u64, u8)> = vec![
        (raw(99, 0, 0, 41), UnknownOpKind, 0, 0), // kind checked first
        (raw(2, 9, 0, 0), UnknownOpKind, 0, 0),
        (raw(3, OpKind::Add as u8, 0, 41), UnknownMetric, 0, 0), // then metric
        (raw(2, OpKind::Add as u8, 0, 41), KeyTooLong, 0, 0),    // then key length
        (raw(2, OpKind::VdGet as u8, 0, 1), UnsupportedOp, 0, 0), // then kind for metric
        (raw(0, OpKind::ResetKey as u8, 0, 1), UnsupportedOp, 0, 0),
        (raw(1, OpKind::Get as u8, 1, 1), BadGate, 0, 0), // IF_NEW on a Get
        (op(2, OpKind::Add, &[], 4), Ok, 4, 0),
        (op(1, OpKind::AddGet, b"k", 5).if_new(), BadGate, 0, 0), // no detector get before
        (op(0, OpKind::VdGetSet, b"k", 0), Ok, 0, 0),             // new key: gate open
        (op(1, OpKind::AddGet, b"k", 5).if_new(), Ok, 5, f_ins),
        (op(1, OpKind::AddGet, b"j", 1).if_new(), BadGate, 0, 0), // gate used up
        (op(0, OpKind::VdGetSet, b"k", 0), Ok, 1, 0),             // seen: gate closed
        (op(1, OpKind::AddGet, b"k", 5).if_new(), Ok, 5, f_gated), // AddGet -> Get
        (op(0, OpKind::VdGet, b"k", 0), Ok, 1, 0),
        (op(1, OpKind::Add, b"k", 5).if_new(), Ok, 0, f_gated), // Add -> nothing
        (op(1, OpKind::Get, b"k", 0), Ok, 5, 0),
        (op(0, OpKind::VdGet, b"zz", 0), Ok, 0, 0), // unseen key: open
        (op(1, OpKind::Add, b"zz", 2).if_new(), Ok, 2, f_ins),
        (op(2, OpKind::AddGet, &[], 1), Ok, 5, 0),
    ];
    let ops: Vec<Op> = cases.iter().map(|c| c.0).collect();
    let got = run_pipeline(cfg, &ops);
    assert_eq!(got.len(), ops.len(), "one result per op, in order");
    for (i, (c, r)) in cases.iter().zip(&got).enumerate() {
        let want = OpResult {
            value: c.2,
            metric: c.0.metric,
            status: c.1 as u8,
            flags: c.3,
            reserved: 0,
        };
        assert_eq!(*r, want, "op #{i} {:?}", c.0);
    }
    // The software engine agrees on the same stream.
    let mut sw = SwEngine::new(&plans);
    let mut want = vec![OpResult::default(); ops.len()];
    sw.apply(&ops, &mut want);
    assert_eq!(got, want);
}

/// Key bytes past `key_len` are ignored: garbage there changes nothing.
#[test]
fn decoder_masks_key_garbage() {
    let (plans, cfg) = decoder_config();
    let mut ops = Vec::new();
    for i in 0..6u8 {
        let mut a = Op::new(1, OpKind::AddGet, &[i % 2, 1], 1, 0).unwrap();
        a.key[2..KEY_MAX]
            .iter_mut()
            .for_each(|b| *b = i.wrapping_mul(37) | 1);
        ops.push(a);
    }
    let got = run_pipeline(cfg, &ops);
    let values: Vec<u64> = got.iter().map(|r| r.value).collect();
    assert_eq!(values, [1, 1, 2, 2, 3, 3]);
    let mut sw = SwEngine::new(&plans);
    let mut want = vec![OpResult::default(); ops.len()];
    sw.apply(&ops, &mut want);
    assert_eq!(got, want);
}
