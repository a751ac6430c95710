//! The metric-operation contract: the one definition that streamon's FPGA
//! metric pipeline (`hw`, simulated by `sim`) and its software twin
//! (`sw-fallback`) both implement, bit for bit.
//!
//! The metric layer sees an ordered stream of [`Op`] records and answers each
//! with one [`OpResult`]. Everything both halves must agree on lives here and
//! nowhere else:
//!
//! * [`op`]: the 64-byte op record, the op kinds, the 16-byte result and its
//!   status codes;
//! * [`h3`]: the H3 hash (a seeded random XOR matrix) and the way k positions,
//!   blocks, buckets and HyperLogLog registers are cut from its 64 bits;
//! * [`fixed`]: the fixed-point formats (counts in Q40.24, decay factors in
//!   Q1.16) and every rounding;
//! * [`plan`]: per-metric parameters as users give them ([`MetricSpec`]) and
//!   the integer plan they install into ([`MetricPlan`]): sizes, the decay
//!   table, window reciprocals; memory use per metric;
//! * [`dump`]: the canonical layout of a metric's full logical state, used to
//!   compare the hardware and the software after a run;
//! * [`MetricEngine`]: the trait every engine implements, so callers pick
//!   `sw` or `sim` at run time.
//!
//! `docs/metric-contract.md` is the prose version of this crate; when the two
//! disagree this crate wins and the doc is the bug.
//!
//! No floating point is used by any operation. Floats appear only when a plan
//! is built (decay tables, computed once at install and handed to the engine
//! as integers) and when a result is decoded for the feature layer
//! ([`MetricPlan::decode`]), which runs on the host.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dump;
pub mod fixed;
pub mod h3;
pub mod op;
pub mod plan;

pub use op::{Op, OpError, OpKind, OpResult, ResultFlags, Status, KEY_MAX};
pub use plan::{InstallError, MetricKind, MetricPlan, MetricSpec, TimeConstant};

/// Index of a metric within one engine (one installed set of plans).
pub type MetricId = u16;

/// A metric engine: applies op streams to the metrics of one installed plan.
///
/// Implemented by the software engine (`streamon_sw::SwEngine`) and by the
/// Verilator model of the hardware (`streamon_sim`). Two engines installed
/// with the same plans and fed the same ops must return identical results
/// and identical dumps; that is what the equivalence tests check.
pub trait MetricEngine {
    /// Applies `ops` in order, writing one result per op into `results`.
    ///
    /// # Panics
    /// Panics if `results.len() != ops.len()` (a caller bug, not bad input:
    /// malformed ops never panic, they get an error [`Status`]).
    fn apply(&mut self, ops: &[Op], results: &mut [OpResult]);

    /// The canonical dump of one metric's full logical state (see [`dump`]),
    /// or `None` if `metric` is not installed.
    fn dump(&self, metric: MetricId) -> Option<Vec<u64>>;

    /// The plans this engine was installed with, indexed by [`MetricId`].
    fn plans(&self) -> &[MetricPlan];

    /// Applies one op; a convenience over [`MetricEngine::apply`].
    fn apply_one(&mut self, op: &Op) -> OpResult {
        let mut out = [OpResult::default()];
        self.apply(std::slice::from_ref(op), &mut out);
        out[0]
    }
}
