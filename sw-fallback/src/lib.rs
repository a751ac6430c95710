//! The software metric engine: streamon's metric layer on a CPU, the
//! bit-exact twin of the FPGA pipeline in `hw`.
//!
//! [`SwEngine`] implements [`MetricEngine`] from `streamon-contract`, whose
//! docs (and `docs/metric-contract.md`) define every result; this crate only
//! decides how to compute them fast. It does no I/O, reads no clock and
//! allocates nothing per operation.
//!
//! [`SwEngine::apply`] applies ops in order (order is what the contract
//! fixes) while it hashes the op [`AHEAD`] places later and prefetches the
//! cache lines that op will touch, so cache misses overlap with work.
#![deny(unsafe_code)] // allowed only in `prefetch` and `memory`
#![deny(missing_docs)]

mod memory;
mod prefetch;
mod sketch;
mod table;
mod vd;

use streamon_contract::dump::HEADER_WORDS;
use streamon_contract::h3::{Positions, H3_BYTE_TABLE, H3_LEN_ROWS};
use streamon_contract::op::OP_FLAG_IF_NEW;
use streamon_contract::{
    MetricEngine, MetricId, MetricKind, MetricPlan, Op, OpKind, OpResult, ResultFlags, Status,
    KEY_MAX,
};

use memory::HugeArray;
use sketch::{CountMin, DecayingFilter, HyperLogLog};
use table::{ExactTable, PackedKey, TableMem};
use vd::{BlockPair, VariationDetector};

/// How many ops ahead of the one being applied keys are hashed and their
/// lines prefetched.
pub const AHEAD: usize = 16;

/// H3 of a packed key: the contract's table form (`h3::h3`), reading the
/// bytes out of the packed words instead of the op.
#[inline]
fn h3_packed(key: &PackedKey) -> u64 {
    let len = key.len();
    let mut h = H3_LEN_ROWS[len];
    for (i, row) in H3_BYTE_TABLE.iter().enumerate().take(len) {
        h ^= row[key.byte(i) as usize];
    }
    h
}

/// Where one metric's entries sit in an array shared by the `count`
/// metrics of one geometry: its entry `i` is element `i * count + lane`.
///
/// Metrics of one geometry hash a key to the same index (there is one H3
/// matrix), so interleaving them puts the entries a key touches in all of
/// them side by side: one page and a run of adjacent lines per key rather
/// than one random page per metric. This is only the software's layout;
/// results and dumps are per metric, as the contract says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lanes {
    count: usize,
    lane: usize,
}

impl Lanes {
    #[inline]
    pub(crate) fn index(&self, i: usize) -> usize {
        i * self.count + self.lane
    }

    /// This lane's entries of `mem`, in index order.
    pub(crate) fn of<'a, T>(&self, mem: &'a [T]) -> impl Iterator<Item = &'a T> {
        mem.iter().skip(self.lane).step_by(self.count)
    }

    /// This lane's entries of `mem`, in index order, mutably.
    pub(crate) fn of_mut<'a, T>(&self, mem: &'a mut [T]) -> impl Iterator<Item = &'a mut T> {
        mem.iter_mut().skip(self.lane).step_by(self.count)
    }
}

/// The geometry that lets metrics share interleaved memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Geometry {
    /// Detectors of `2^n` bits per filter.
    Detector(u32),
    /// Exact tables of `2^b` buckets of `w` ways (any table kind: the slot
    /// layout is the same).
    Table(u32, u32),
}

impl Geometry {
    fn of(plan: &MetricPlan) -> Option<Geometry> {
        match plan.kind {
            MetricKind::VariationDetector => Some(Geometry::Detector(plan.log2_size)),
            MetricKind::ExactCounter | MetricKind::ExactEwma | MetricKind::SlidingWindow => {
                Some(Geometry::Table(plan.log2_size, plan.width))
            }
            _ => None,
        }
    }
}

/// A metric's state; detectors and tables keep their entries in their
/// group's shared memory (the `usize` names it).
///
/// An explicit tag byte: without it the variant is encoded in a niche of a
/// field, and each of the two matches per op decoded it in a dozen
/// instructions.
#[repr(u8)]
enum Metric {
    Vd(VariationDetector, usize),
    Decaying(DecayingFilter),
    CountMin(CountMin),
    Hll(HyperLogLog),
    Global(u64),
    Table(ExactTable, usize),
}

/// Whether a metric of this kind accepts this op kind.
fn accepts(metric: MetricKind, kind: OpKind) -> bool {
    match metric {
        MetricKind::VariationDetector => {
            matches!(
                kind,
                OpKind::VdGet | OpKind::VdSet | OpKind::VdGetSet | OpKind::Clear
            )
        }
        MetricKind::HyperLogLog => {
            matches!(
                kind,
                OpKind::Add | OpKind::Get | OpKind::AddGet | OpKind::Clear
            )
        }
        _ => !matches!(kind, OpKind::VdGet | OpKind::VdSet | OpKind::VdGetSet),
    }
}

/// The software engine.
pub struct SwEngine {
    plans: Vec<MetricPlan>,
    metrics: Vec<Metric>,
    /// Block pairs of each group of same-size detectors, interleaved.
    vd_mem: Vec<HugeArray<BlockPair>>,
    /// Slots of each group of same-geometry tables, interleaved.
    table_mem: Vec<TableMem>,
    /// Per metric, bit `k` set if op kind `k` is one the metric accepts.
    accepted: Vec<u16>,
    /// `Some(new)` right after a successful detector get: whether the key
    /// was new. Any other op closes it (`None`).
    gate: Option<bool>,
}

impl SwEngine {
    /// Builds an engine for these installed plans (metric id = index).
    /// Memory is allocated here, zeroed lazily by the OS.
    pub fn new(plans: &[MetricPlan]) -> SwEngine {
        // Group metrics by geometry, in metric id order: (geometry, first
        // plan, members) per group, and each metric's (group, lane); a
        // metric with memory of its own gets (0, 0), never read.
        let mut groups: Vec<(Geometry, &MetricPlan, usize)> = Vec::new();
        let place: Vec<(usize, usize)> = plans
            .iter()
            .map(|p| {
                let Some(geometry) = Geometry::of(p) else {
                    return (0, 0);
                };
                let g = match groups.iter().position(|(gm, _, _)| *gm == geometry) {
                    Some(g) => g,
                    None => {
                        groups.push((geometry, p, 0));
                        groups.len() - 1
                    }
                };
                groups[g].2 += 1;
                (g, groups[g].2 - 1)
            })
            .collect();
        // Group indices count detector groups and table groups apart.
        let mut vd_mem = Vec::new();
        let mut table_mem = Vec::new();
        let mut slot_of = Vec::with_capacity(groups.len());
        for (geometry, plan, members) in &groups {
            match geometry {
                Geometry::Detector(_) => {
                    slot_of.push(vd_mem.len());
                    vd_mem.push(HugeArray::zeroed(VariationDetector::blocks(plan) * members));
                }
                Geometry::Table(..) => {
                    slot_of.push(table_mem.len());
                    table_mem.push(TableMem::new(plan, *members));
                }
            }
        }
        let lanes_of = |(g, lane): (usize, usize)| {
            let lanes = Lanes {
                count: groups[g].2,
                lane,
            };
            (slot_of[g], lanes)
        };
        let metrics = plans
            .iter()
            .zip(&place)
            .map(|(p, &place)| match p.kind {
                MetricKind::VariationDetector => {
                    let (mem, lanes) = lanes_of(place);
                    Metric::Vd(VariationDetector::new(p, lanes), mem)
                }
                MetricKind::ExactCounter | MetricKind::ExactEwma | MetricKind::SlidingWindow => {
                    let (mem, lanes) = lanes_of(place);
                    Metric::Table(ExactTable::new(p, lanes), mem)
                }
                MetricKind::DecayingFilter => Metric::Decaying(DecayingFilter::new(p)),
                MetricKind::CountMin => Metric::CountMin(CountMin::new(p)),
                MetricKind::HyperLogLog => Metric::Hll(HyperLogLog::new(p)),
                MetricKind::Global => Metric::Global(0),
            })
            .collect();
        let accepted = plans
            .iter()
            .map(|p| {
                (1..=8u8)
                    .filter_map(OpKind::from_u8)
                    .filter(|&k| accepts(p.kind, k))
                    .fold(0u16, |bits, k| bits | 1 << k as u8)
            })
            .collect();
        SwEngine {
            plans: plans.to_vec(),
            metrics,
            vd_mem,
            table_mem,
            accepted,
            gate: None,
        }
    }

    /// Total memory of all metrics, bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.plans.iter().map(MetricPlan::memory_bytes).sum()
    }

    /// Checks an op against the contract's validation order: kind byte,
    /// metric id, key length, kind-for-metric, gate.
    #[inline]
    fn validate(&self, op: &Op) -> Result<OpKind, Status> {
        let kind = OpKind::from_u8(op.kind).ok_or(Status::UnknownOpKind)?;
        let accepted = *self
            .accepted
            .get(op.metric as usize)
            .ok_or(Status::UnknownMetric)?;
        if op.key_len as usize > KEY_MAX {
            return Err(Status::KeyTooLong);
        }
        if accepted & 1 << kind as u8 == 0 {
            return Err(Status::UnsupportedOp);
        }
        if op.flags & OP_FLAG_IF_NEW != 0
            && (!matches!(kind, OpKind::Add | OpKind::AddGet) || self.gate.is_none())
        {
            return Err(Status::BadGate);
        }
        Ok(kind)
    }

    /// Everything about an op that depends only on the op itself: its key,
    /// positions and where in its metric's memory it lands. Requests the
    /// lines the op will touch.
    ///
    /// Always inlined: returned through the stack, the 72-byte struct was
    /// written in 8-byte stores and read back in 16-byte loads, which stall
    /// on store forwarding (a third of the loop's samples).
    #[inline(always)]
    fn prepare(&self, op: &Op, hasher: &mut Hasher) -> Prepared {
        let (key, pos) = hasher.hash(op);
        let at = match self.metrics.get(op.metric as usize) {
            Some(Metric::Vd(vd, g)) => {
                let at = vd.block(&pos);
                VariationDetector::prefetch(&self.vd_mem[*g], at);
                at
            }
            Some(Metric::Table(t, g)) => {
                let at = t.bucket_start(&pos);
                t.prefetch(&self.table_mem[*g], at, &key);
                at
            }
            Some(Metric::Decaying(f)) => {
                f.prefetch(&pos);
                0
            }
            Some(Metric::CountMin(c)) => {
                c.prefetch(&pos);
                0
            }
            _ => 0,
        };
        Prepared { key, pos, at }
    }

    fn apply_checked(&mut self, op: &Op, kind: OpKind, prep: &Prepared) -> OpResult {
        let (pos, at) = (&prep.pos, prep.at);
        let id = op.metric;
        let mut flags = 0u8;
        // A closed gate turns Add into nothing and AddGet into Get.
        let mut kind = kind;
        if op.flags & OP_FLAG_IF_NEW != 0 && self.gate == Some(false) {
            flags |= ResultFlags::GATED;
            match kind {
                OpKind::AddGet => kind = OpKind::Get,
                _ => return OpResult::ok(id, 0, flags),
            }
        }
        let ts = op.ts_ns;
        let value = match &mut self.metrics[id as usize] {
            Metric::Vd(vd, g) => match kind {
                OpKind::VdGet => vd.get(&mut self.vd_mem[*g], at, pos),
                OpKind::VdSet => {
                    if vd.set(&mut self.vd_mem[*g], at, pos) {
                        flags |= ResultFlags::SWAPPED;
                    }
                    0
                }
                OpKind::VdGetSet => {
                    let (seen, swapped) = vd.get_set(&mut self.vd_mem[*g], at, pos);
                    if swapped {
                        flags |= ResultFlags::SWAPPED;
                    }
                    seen
                }
                _ => {
                    vd.clear(&mut self.vd_mem[*g]);
                    0
                }
            },
            Metric::Decaying(f) => match kind {
                OpKind::Add | OpKind::AddGet => f.add(pos, op.value, ts),
                OpKind::Get => f.get(pos, ts),
                OpKind::ResetKey => {
                    f.reset(pos, ts);
                    0
                }
                _ => {
                    f.clear();
                    0
                }
            },
            Metric::CountMin(c) => match kind {
                OpKind::Add | OpKind::AddGet => c.add(pos, op.value),
                OpKind::Get => c.get(pos),
                OpKind::ResetKey => {
                    c.reset(pos);
                    0
                }
                _ => {
                    c.clear();
                    0
                }
            },
            Metric::Hll(h) => match kind {
                OpKind::Add | OpKind::AddGet => h.add(pos),
                OpKind::Get => h.packed(),
                _ => {
                    h.clear();
                    h.packed()
                }
            },
            Metric::Global(sum) => match kind {
                OpKind::Add | OpKind::AddGet => {
                    *sum = sum.saturating_add(op.value as u64);
                    *sum
                }
                OpKind::Get => *sum,
                _ => {
                    *sum = 0;
                    0
                }
            },
            Metric::Table(t, g) => {
                let key = &prep.key;
                let mem = &mut self.table_mem[*g];
                match kind {
                    OpKind::Add | OpKind::AddGet => t.add(mem, at, key, op.value, ts, &mut flags),
                    OpKind::Get => t.get(mem, at, key, ts),
                    OpKind::ResetKey => {
                        t.reset(mem, at, key);
                        0
                    }
                    _ => {
                        t.clear(mem);
                        0
                    }
                }
            }
        };
        OpResult::ok(id, value, flags)
    }

    #[inline]
    fn apply_prepared(&mut self, op: &Op, prep: &Prepared) -> OpResult {
        match self.validate(op) {
            Ok(kind) => {
                let r = self.apply_checked(op, kind, prep);
                self.gate = kind.is_vd_get().then_some(r.value == 0);
                r
            }
            Err(status) => {
                self.gate = None;
                OpResult::error(op.metric, status)
            }
        }
    }
}

/// An op's key, positions and the index of its entry (detector block pair
/// or first bucket slot) in its metric's memory.
#[derive(Clone, Copy)]
struct Prepared {
    key: PackedKey,
    pos: Positions,
    at: usize,
}

impl Prepared {
    const NONE: Prepared = Prepared {
        key: PackedKey::NONE,
        pos: Positions::new(0),
        at: 0,
    };
}

/// Hashes keys, reusing the hash of the last two distinct keys.
///
/// Every metric hashes with the one H3 matrix of the contract, so equal
/// keys have equal positions in every metric: a packet's ops mostly repeat
/// one or two keys across metrics.
struct Hasher {
    recent: [(PackedKey, u64); 2],
    /// The entry a new key replaces: the one not hit last.
    victim: usize,
}

impl Hasher {
    fn new() -> Hasher {
        Hasher {
            recent: [(PackedKey::NONE, 0); 2],
            victim: 0,
        }
    }

    /// The op's packed key and its positions.
    ///
    /// Entries stay where they are (no swapping on a hit): a packet's ops
    /// alternate between two keys, and moving 112 bytes per op to keep the
    /// last key first cost more than the second compare.
    #[inline(always)]
    fn hash(&mut self, op: &Op) -> (PackedKey, Positions) {
        let key = PackedKey::from_op(op);
        let h = if key.same(&self.recent[0].0) {
            self.victim = 1;
            self.recent[0].1
        } else if key.same(&self.recent[1].0) {
            self.victim = 0;
            self.recent[1].1
        } else {
            let h = h3_packed(&key);
            let v = self.victim;
            self.recent[v] = (key, h);
            self.victim = v ^ 1;
            h
        };
        (key, Positions::new(h))
    }
}

impl MetricEngine for SwEngine {
    fn apply(&mut self, ops: &[Op], results: &mut [OpResult]) {
        assert_eq!(ops.len(), results.len(), "one result slot per op");
        // Software pipelining: op `i + AHEAD` is hashed and its lines are
        // requested while op `i` is applied, so its misses (and page walks)
        // overlap the work of the ops in between. Addresses depend only on
        // the keys, never on state, so this is safe to do ahead of time.
        let mut hasher = Hasher::new();
        let mut ring = [Prepared::NONE; AHEAD];
        for (op, slot) in ops.iter().zip(ring.iter_mut()) {
            *slot = self.prepare(op, &mut hasher);
        }
        for (i, (op, out)) in ops.iter().zip(results.iter_mut()).enumerate() {
            // Used in place, then refilled: copying the 72-byte slot out
            // first cost a tenth of the loop.
            let slot = &mut ring[i % AHEAD];
            *out = self.apply_prepared(op, slot);
            if let Some(ahead) = ops.get(i + AHEAD) {
                *slot = self.prepare(ahead, &mut hasher);
            }
        }
    }

    fn dump(&self, metric: MetricId) -> Option<Vec<u64>> {
        let plan = self.plans.get(metric as usize)?;
        let m = &self.metrics[metric as usize];
        let counter = match m {
            Metric::Vd(vd, _) => vd.event_count(),
            Metric::Table(t, _) => t.event_count(),
            _ => 0,
        };
        let mut out = Vec::with_capacity(HEADER_WORDS);
        out.extend([
            plan.kind as u64,
            plan.log2_size as u64,
            plan.width as u64,
            counter,
        ]);
        match m {
            Metric::Vd(vd, g) => vd.dump(&self.vd_mem[*g], &mut out),
            Metric::Decaying(f) => f.dump(&mut out),
            Metric::CountMin(c) => c.dump(&mut out),
            Metric::Hll(h) => h.dump(&mut out),
            Metric::Global(sum) => out.push(*sum),
            Metric::Table(t, g) => t.dump(&self.table_mem[*g], &mut out),
        }
        Some(out)
    }

    fn plans(&self) -> &[MetricPlan] {
        &self.plans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamon_contract::h3::h3;
    use streamon_contract::plan::TableSpec;
    use streamon_contract::MetricSpec;

    #[test]
    fn packed_hash_is_the_contract_hash() {
        let mut seed = 1u64;
        for len in 0..=KEY_MAX {
            for _ in 0..50 {
                let key: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (seed >> 56) as u8
                    })
                    .collect();
                let op = Op::new(0, OpKind::Add, &key, 0, 0).unwrap();
                assert_eq!(h3_packed(&PackedKey::from_op(&op)), h3(&key), "len {len}");
            }
        }
    }

    #[test]
    fn bytes_beyond_key_len_are_ignored() {
        let plans: Vec<MetricPlan> = [
            MetricSpec::VariationDetector {
                log2_bits: 12,
                hashes: 8,
            },
            MetricSpec::ExactCounter {
                table: TableSpec {
                    log2_buckets: 4,
                    ways: 2,
                },
            },
        ]
        .into_iter()
        .map(|s| MetricPlan::install(s).unwrap())
        .collect();
        let mut clean = SwEngine::new(&plans);
        let mut dirty = SwEngine::new(&plans);
        for i in 0..200u32 {
            let key = i.to_le_bytes();
            let len = 1 + i as usize % 4;
            for (metric, kind) in [(0, OpKind::VdGetSet), (1, OpKind::AddGet)] {
                let op = Op::new(metric, kind, &key[..len], 1, 0).unwrap();
                let mut garbage = op;
                garbage.key[len..].fill(0xA5);
                assert_eq!(clean.apply_one(&op), dirty.apply_one(&garbage));
            }
        }
        assert_eq!(clean.dump(0), dirty.dump(0));
        assert_eq!(clean.dump(1), dirty.dump(1));
    }
}
