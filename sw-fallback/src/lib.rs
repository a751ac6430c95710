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
#![deny(unsafe_code)]
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

use sketch::{CountMin, DecayingFilter, HyperLogLog};
use table::{ExactTable, PackedKey};
use vd::VariationDetector;

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

enum Metric {
    Vd(VariationDetector),
    Decaying(DecayingFilter),
    CountMin(CountMin),
    Hll(HyperLogLog),
    Global(u64),
    Table(ExactTable),
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
        let metrics = plans
            .iter()
            .map(|p| match p.kind {
                MetricKind::VariationDetector => Metric::Vd(VariationDetector::new(p)),
                MetricKind::DecayingFilter => Metric::Decaying(DecayingFilter::new(p)),
                MetricKind::CountMin => Metric::CountMin(CountMin::new(p)),
                MetricKind::HyperLogLog => Metric::Hll(HyperLogLog::new(p)),
                MetricKind::Global => Metric::Global(0),
                MetricKind::ExactCounter | MetricKind::ExactEwma | MetricKind::SlidingWindow => {
                    Metric::Table(ExactTable::new(p))
                }
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

    #[inline]
    fn prefetch(&self, op: &Op, pos: &Positions) {
        match self.metrics.get(op.metric as usize) {
            Some(Metric::Vd(vd)) => {
                let p = vd.block_ptr(pos);
                prefetch::prefetch(p);
                prefetch::prefetch(p.wrapping_add(8));
            }
            Some(Metric::Decaying(f)) => f.prefetch(pos),
            Some(Metric::CountMin(c)) => c.prefetch(pos),
            Some(Metric::Table(t)) => t.prefetch(pos, op.key_len),
            _ => {}
        }
    }

    fn apply_checked(&mut self, op: &Op, kind: OpKind, pos: &Positions) -> OpResult {
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
            Metric::Vd(vd) => match kind {
                OpKind::VdGet => vd.get(pos),
                OpKind::VdSet => {
                    if vd.set(pos) {
                        flags |= ResultFlags::SWAPPED;
                    }
                    0
                }
                OpKind::VdGetSet => {
                    let (seen, swapped) = vd.get_set(pos);
                    if swapped {
                        flags |= ResultFlags::SWAPPED;
                    }
                    seen
                }
                _ => {
                    vd.clear();
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
            Metric::Table(t) => {
                let key = &PackedKey::from_op(op);
                match kind {
                    OpKind::Add | OpKind::AddGet => t.add(pos, key, op.value, ts, &mut flags),
                    OpKind::Get => t.get(pos, key, ts),
                    OpKind::ResetKey => {
                        t.reset(pos, key);
                        0
                    }
                    _ => {
                        t.clear();
                        0
                    }
                }
            }
        };
        OpResult::ok(id, value, flags)
    }

    #[inline]
    fn apply_hashed(&mut self, op: &Op, pos: &Positions) -> OpResult {
        match self.validate(op) {
            Ok(kind) => {
                let r = self.apply_checked(op, kind, pos);
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

/// Hashes keys, reusing the hash of the last two distinct keys.
///
/// Every metric hashes with the one H3 matrix of the contract, so equal
/// keys have equal positions in every metric: a packet's ops mostly repeat
/// one or two keys across metrics.
struct Hasher {
    recent: [(PackedKey, u64); 2],
}

impl Hasher {
    fn new() -> Hasher {
        Hasher {
            recent: [(PackedKey::NONE, 0); 2],
        }
    }

    #[inline]
    fn positions(&mut self, op: &Op) -> Positions {
        let key = PackedKey::from_op(op);
        let [(key0, h0), (key1, h1)] = &mut self.recent;
        let h = if key.same(key0) {
            *h0
        } else if key.same(key1) {
            std::mem::swap(key0, key1);
            std::mem::swap(h0, h1);
            *h0
        } else {
            let h = h3_packed(&key);
            (*key1, *h1) = (*key0, *h0);
            (*key0, *h0) = (key, h);
            h
        };
        Positions::new(h)
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
        let mut ring = [Positions::new(0); AHEAD];
        for (op, slot) in ops.iter().zip(ring.iter_mut()) {
            *slot = hasher.positions(op);
            self.prefetch(op, slot);
        }
        for (i, (op, out)) in ops.iter().zip(results.iter_mut()).enumerate() {
            let pos = ring[i % AHEAD];
            if let Some(ahead) = ops.get(i + AHEAD) {
                let p = hasher.positions(ahead);
                self.prefetch(ahead, &p);
                ring[i % AHEAD] = p;
            }
            *out = self.apply_hashed(op, &pos);
        }
    }

    fn dump(&self, metric: MetricId) -> Option<Vec<u64>> {
        let plan = self.plans.get(metric as usize)?;
        let m = &self.metrics[metric as usize];
        let counter = match m {
            Metric::Vd(vd) => vd.event_count(),
            Metric::Table(t) => t.event_count(),
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
            Metric::Vd(vd) => vd.dump(&mut out),
            Metric::Decaying(f) => f.dump(&mut out),
            Metric::CountMin(c) => c.dump(&mut out),
            Metric::Hll(h) => h.dump(&mut out),
            Metric::Global(sum) => out.push(*sum),
            Metric::Table(t) => t.dump(&mut out),
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
