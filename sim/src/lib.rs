//! The Verilator model of streamon's FPGA metric pipeline (`streamon-hw`),
//! as a [`MetricEngine`]: callers pick the software engine or this one.
//!
//! `build.rs` generates the Verilog of the `sim` layout
//! ([`streamon_hw::layout::SIM`]) and Verilates it; [`SimEngine`] installs
//! plans through the configuration registers, streams ops one per clock and
//! reads state back through the dump port into the contract's dump layout.
//!
//! The hardware hosts the kinds in [`CAPABILITIES`] (VariationDetector,
//! DecayingFilter, ExactCounter, ExactEwma, Global) within the layout's bank
//! counts and sizes;
//! [`SimEngine::hostable`] tells which plans fit, and [`SimEngine::new`]
//! refuses the others with [`SimError`] so they are routed to the software
//! engine instead of being answered differently.
#![deny(missing_docs)]

mod ffi;

use std::cell::RefCell;

use streamon_contract::dump::{BLOCK_WORDS, SLOT_WORDS};
use streamon_contract::fixed::initial_swap_threshold;
use streamon_contract::fixed::DECAY_TABLE_LEN;
use streamon_contract::{MetricEngine, MetricId, MetricKind, MetricPlan, Op, OpResult};
use streamon_hw::layout::{Layout, SIM};
use streamon_hw::regmap;

pub use ffi::Model;
pub use streamon_hw::pipeline::CAPABILITIES;

/// The layout the model was built with.
pub const LAYOUT: Layout = SIM;

/// Ops streamed per model call.
const CHUNK: usize = 4096;

/// A plan the hardware cannot host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The kind is not in the capability bitmap.
    #[error("metric {metric}: {kind:?} is not implemented in hardware (capabilities {caps:#x})")]
    KindNotInHardware {
        /// Metric id.
        metric: usize,
        /// Its kind.
        kind: MetricKind,
        /// The capability bitmap.
        caps: u64,
    },
    /// No free bank of that kind, or the plan is larger than the bank.
    #[error("metric {metric}: {why}")]
    DoesNotFit {
        /// Metric id.
        metric: usize,
        /// What does not fit.
        why: String,
    },
}

#[derive(Debug, Clone, Copy)]
enum Bank {
    Vd(usize),
    Exact(usize),
    Global(usize),
    Decay(usize),
}

/// The Verilated pipeline as a metric engine.
pub struct SimEngine {
    /// In a `RefCell` because reading the dump port clocks the model, and
    /// `MetricEngine::dump` takes `&self`; dumps only read state.
    model: RefCell<Model>,
    plans: Vec<MetricPlan>,
    banks: Vec<Bank>,
}

impl SimEngine {
    /// True if the hardware implements this kind ([`CAPABILITIES`]).
    pub fn kind_in_hardware(kind: MetricKind) -> bool {
        CAPABILITIES >> (kind as u8) & 1 == 1
    }

    /// Whether these plans can all be hosted, and if not, why.
    pub fn hostable(plans: &[MetricPlan]) -> Result<(), SimError> {
        assign_banks(plans).map(|_| ())
    }

    /// The configuration register writes that install `plans` (metric id =
    /// index), in order: bank parameters, map entries, then the metric count.
    pub fn config_writes(plans: &[MetricPlan]) -> Result<Vec<(u16, u64)>, SimError> {
        let banks = assign_banks(plans)?;
        let mut w = Vec::new();
        for (m, (plan, bank)) in plans.iter().zip(&banks).enumerate() {
            let (code, idx) = match *bank {
                Bank::Vd(i) => {
                    let base = regmap::vd_bank(i) as u16;
                    w.push((base, plan.log2_size as u64));
                    w.push((base + 1, plan.width as u64));
                    w.push((base + 2, initial_swap_threshold(plan.log2_size) as u64));
                    (MetricKind::VariationDetector as u64, i)
                }
                Bank::Exact(i) => {
                    let base = regmap::exact_bank(i) as u16;
                    let ewma = plan.kind == MetricKind::ExactEwma;
                    w.push((base, plan.log2_size as u64));
                    w.push((base + 1, plan.width as u64));
                    w.push((base + 3, ewma as u64));
                    if ewma {
                        for (age, &f) in plan.decay.iter().enumerate() {
                            w.push((regmap::exact_factor(i, age) as u16, f as u64));
                        }
                    }
                    // The tick shift last: it installs.
                    w.push((base + 2, plan.tick_shift as u64));
                    (plan.kind as u64, i)
                }
                Bank::Global(i) => {
                    w.push((regmap::global_bank(i) as u16, 0));
                    (MetricKind::Global as u64, i)
                }
                Bank::Decay(i) => {
                    // The decay table first: the tick shift write installs.
                    debug_assert_eq!(plan.decay.len(), DECAY_TABLE_LEN);
                    for (age, &f) in plan.decay.iter().enumerate() {
                        w.push((regmap::df_factor(i, age) as u16, f as u64));
                    }
                    let base = regmap::df_bank(i) as u16;
                    w.push((base, plan.log2_size as u64));
                    w.push((base + 1, plan.width as u64));
                    w.push((base + 2, plan.tick_shift as u64));
                    (MetricKind::DecayingFilter as u64, i)
                }
            };
            w.push(((regmap::METRIC_MAP + m) as u16, code | (idx as u64) << 4));
        }
        w.push((regmap::N_METRICS as u16, plans.len() as u64));
        Ok(w)
    }

    /// Builds a model and installs `plans` (metric id = index).
    pub fn new(plans: &[MetricPlan]) -> Result<SimEngine, SimError> {
        let banks = assign_banks(plans)?;
        let mut model = Model::new();
        assert_eq!(
            model.caps() as u64,
            CAPABILITIES,
            "model and crate disagree on capabilities"
        );
        for (addr, data) in Self::config_writes(plans)? {
            model.cfg(addr, data);
        }
        Ok(SimEngine {
            model: RefCell::new(model),
            plans: plans.to_vec(),
            banks,
        })
    }

    /// Clock edges simulated so far (configuration and dumps included).
    pub fn cycles(&self) -> u64 {
        self.model.borrow().cycles()
    }

    /// Streams `ops` with `gap` idle clocks after each and returns the
    /// results, each result's output clock (1-based from the first op's
    /// clock) and the total clocks: the measurement behind the II and
    /// latency figures.
    pub fn run_timed(&mut self, ops: &[Op], gap: u32) -> (Vec<OpResult>, Vec<u64>, u64) {
        let raw: Vec<[u8; 64]> = ops.iter().map(Op::to_bytes).collect();
        let (res, when, clocks) = self.model.get_mut().run(&raw, gap);
        (res.iter().map(OpResult::from_bytes).collect(), when, clocks)
    }

    fn read(&self, addrs: &[u32]) -> Vec<u64> {
        self.model.borrow_mut().dump(addrs)
    }
}

fn assign_banks(plans: &[MetricPlan]) -> Result<Vec<Bank>, SimError> {
    if plans.len() > regmap::MAX_METRICS {
        return Err(SimError::DoesNotFit {
            metric: regmap::MAX_METRICS,
            why: format!(
                "at most {} metrics in the register map",
                regmap::MAX_METRICS
            ),
        });
    }
    let (mut nv, mut ne, mut ng, mut nf) = (0, 0, 0, 0);
    let mut out = Vec::with_capacity(plans.len());
    for (m, p) in plans.iter().enumerate() {
        let fit = |ok: bool, why: String| {
            if ok {
                Ok(())
            } else {
                Err(SimError::DoesNotFit { metric: m, why })
            }
        };
        let bank = match p.kind {
            MetricKind::VariationDetector => {
                fit(
                    nv < LAYOUT.vd_banks,
                    format!("only {} detector banks", LAYOUT.vd_banks),
                )?;
                let max = (LAYOUT.vd_block_bits + 9) as u32;
                fit(
                    p.log2_size <= max,
                    format!("detector of 2^{} bits > bank's 2^{max}", p.log2_size),
                )?;
                nv += 1;
                Bank::Vd(nv - 1)
            }
            MetricKind::ExactCounter | MetricKind::ExactEwma => {
                fit(
                    ne < LAYOUT.exact_banks,
                    format!("only {} exact banks", LAYOUT.exact_banks),
                )?;
                fit(
                    p.log2_size <= LAYOUT.exact_bucket_bits as u32
                        && p.width as usize <= LAYOUT.exact_ways,
                    format!(
                        "table of 2^{} buckets x {} ways > bank's 2^{} x {}",
                        p.log2_size, p.width, LAYOUT.exact_bucket_bits, LAYOUT.exact_ways
                    ),
                )?;
                ne += 1;
                Bank::Exact(ne - 1)
            }
            MetricKind::Global => {
                fit(
                    ng < LAYOUT.global_banks,
                    format!("only {} global banks", LAYOUT.global_banks),
                )?;
                ng += 1;
                Bank::Global(ng - 1)
            }
            MetricKind::DecayingFilter => {
                fit(
                    nf < LAYOUT.df_banks,
                    format!("only {} decaying-filter banks", LAYOUT.df_banks),
                )?;
                fit(
                    p.log2_size <= LAYOUT.df_cell_bits as u32 && p.width as usize <= LAYOUT.df_rows,
                    format!(
                        "filter of {} rows x 2^{} cells > bank's {} x 2^{}",
                        p.width, p.log2_size, LAYOUT.df_rows, LAYOUT.df_cell_bits
                    ),
                )?;
                nf += 1;
                Bank::Decay(nf - 1)
            }
            kind => {
                return Err(SimError::KindNotInHardware {
                    metric: m,
                    kind,
                    caps: CAPABILITIES,
                })
            }
        };
        out.push(bank);
    }
    Ok(out)
}

impl MetricEngine for SimEngine {
    fn apply(&mut self, ops: &[Op], results: &mut [OpResult]) {
        assert_eq!(ops.len(), results.len(), "one result slot per op");
        for (ops, results) in ops.chunks(CHUNK).zip(results.chunks_mut(CHUNK)) {
            let (res, _, _) = self.run_timed(ops, 0);
            results.copy_from_slice(&res);
        }
    }

    fn dump(&self, metric: MetricId) -> Option<Vec<u64>> {
        self.dump_state(metric)
    }

    fn plans(&self) -> &[MetricPlan] {
        &self.plans
    }
}

impl SimEngine {
    /// The canonical dump of one metric (the contract's layout), read
    /// through the hardware's dump port.
    fn dump_state(&self, metric: MetricId) -> Option<Vec<u64>> {
        let plan = self.plans.get(metric as usize)?.clone();
        let bank = self.banks[metric as usize];
        let mut out = vec![plan.kind as u64, plan.log2_size as u64, plan.width as u64];
        match bank {
            Bank::Vd(i) => {
                let sel = regmap::dump_vd(i);
                let regs = self.read(&[
                    sel | regmap::DUMP_EVENTS,
                    sel | regmap::DUMP_VD_LEARNING,
                    sel | regmap::DUMP_VD_ZEROS0,
                    sel | regmap::DUMP_VD_ZEROS1,
                    sel | regmap::DUMP_VD_THRESHOLD,
                ]);
                let learning = regs[1];
                let (zl, zd) = if learning == 1 {
                    (regs[3], regs[2])
                } else {
                    (regs[2], regs[3])
                };
                out.extend([regs[0], learning, zl, zd, regs[4]]);
                let blocks = 1u32 << (plan.log2_size - 9);
                let addrs: Vec<u32> = (0..2)
                    .flat_map(|f| {
                        (0..blocks).flat_map(move |b| {
                            (0..BLOCK_WORDS as u32)
                                .map(move |j| sel | regmap::dump_vd_word(f, b, j))
                        })
                    })
                    .collect();
                out.extend(self.read(&addrs));
            }
            Bank::Exact(i) => {
                let sel = regmap::dump_exact(i);
                out.extend(self.read(&[sel | regmap::DUMP_EVENTS]));
                let addrs: Vec<u32> = (0..1u32 << plan.log2_size)
                    .flat_map(|b| {
                        (0..plan.width).flat_map(move |w| {
                            (0..SLOT_WORDS as u32)
                                .map(move |j| sel | regmap::dump_slot_word(b, w, j))
                        })
                    })
                    .collect();
                out.extend(self.read(&addrs));
            }
            Bank::Global(i) => {
                out.push(0);
                out.extend(self.read(&[regmap::dump_global(i) | regmap::DUMP_GLOBAL_SUM]));
            }
            Bank::Decay(i) => {
                let sel = regmap::dump_df(i);
                out.extend(self.read(&[sel | regmap::DUMP_EVENTS]));
                let cells = 1u32 << plan.log2_size;
                let addrs: Vec<u32> = (0..plan.width)
                    .flat_map(|r| {
                        (0..cells).flat_map(move |c| {
                            (0..2).map(move |j| sel | regmap::dump_df_word(r, c, j))
                        })
                    })
                    .collect();
                out.extend(self.read(&addrs));
            }
        }
        Some(out)
    }
}
