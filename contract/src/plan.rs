//! Metric parameters, checked and turned into the integer plan engines run.
//!
//! A [`MetricSpec`] is what an application asks for (sizes, a time
//! constant in seconds, a window). [`MetricPlan::install`] validates it and
//! computes everything an engine needs as integers: the decay table, tick
//! sizes, window reciprocals. The plan is computed once, on the host, and
//! the same plan is given to the software engine and written into the
//! hardware's configuration registers; that is why floating point in this
//! module cannot make the two disagree.

use crate::fixed::{self, DECAY_TABLE_LEN, ONE_Q16};

/// The metric structures of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MetricKind {
    /// Two blocked Bloom filters that swap roles as the learning one fills
    /// (StreaMon's "variation detector").
    VariationDetector = 1,
    /// Time-decaying counting Bloom filter with conservative update
    /// (StreaMon's `tewma`): a per-key rate.
    DecayingFilter = 2,
    /// Count-min sketch (optionally with conservative update).
    CountMin = 3,
    /// HyperLogLog distinct counter over all keys added.
    HyperLogLog = 4,
    /// One counter for the whole metric (StreaMon's `simple`).
    Global = 5,
    /// Exact per-key counter (StreaMon's `dleft`).
    ExactCounter = 6,
    /// Exact per-key exponentially decaying count (StreaMon's `tewma-fast`).
    ExactEwma = 7,
    /// Exact per-key sliding-window counter.
    SlidingWindow = 8,
}

impl MetricKind {
    /// Decodes the kind byte used in dumps and configuration registers.
    pub fn from_u8(raw: u8) -> Option<MetricKind> {
        Some(match raw {
            1 => MetricKind::VariationDetector,
            2 => MetricKind::DecayingFilter,
            3 => MetricKind::CountMin,
            4 => MetricKind::HyperLogLog,
            5 => MetricKind::Global,
            6 => MetricKind::ExactCounter,
            7 => MetricKind::ExactEwma,
            8 => MetricKind::SlidingWindow,
            _ => return None,
        })
    }

    /// True for the kinds stored in an exact (bucketed, key-storing) table.
    pub fn is_exact_table(self) -> bool {
        matches!(
            self,
            MetricKind::ExactCounter | MetricKind::ExactEwma | MetricKind::SlidingWindow
        )
    }
}

/// A decay time constant τ: a decaying count loses a factor e every τ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeConstant {
    /// τ in nanoseconds.
    pub tau_ns: f64,
}

impl TimeConstant {
    /// τ = `window` seconds: the window means what it says.
    pub fn from_window_secs(window: f64) -> TimeConstant {
        TimeConstant {
            tau_ns: window * 1e9,
        }
    }

    /// The original StreaMon's reading of `window`: β = 1 − 2/(window/6 + 1)
    /// per second, so τ = −1/ln β seconds (window 60 gives τ ≈ 4.98 s).
    /// Needs window > 6 (β > 0); otherwise `None`.
    pub fn legacy_window_secs(window: f64) -> Option<TimeConstant> {
        let beta = 1.0 - 2.0 / (window / 6.0 + 1.0);
        if !(beta > 0.0 && beta < 1.0) {
            return None;
        }
        Some(TimeConstant {
            tau_ns: -1e9 / beta.ln(),
        })
    }
}

/// Parameters of an exact table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// log2 of the number of buckets (1..=26).
    pub log2_buckets: u32,
    /// Slots per bucket (1..=8).
    pub ways: u32,
}

impl Default for TableSpec {
    /// 2^16 buckets of 4 ways: 262,144 keys, 16 MiB.
    fn default() -> Self {
        TableSpec {
            log2_buckets: 16,
            ways: 4,
        }
    }
}

/// What an application asks of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricSpec {
    /// Variation detector: two filters of `2^log2_bits` bits, `hashes` bits
    /// per key.
    VariationDetector {
        /// log2 of the bits per filter (9..=30; default 20).
        log2_bits: u32,
        /// Bits per key, k (1..=16; default 8).
        hashes: u32,
    },
    /// Time-decaying counting Bloom filter (a rate per key).
    DecayingFilter {
        /// log2 of the cells per row (4..=28).
        log2_cells: u32,
        /// Rows, one hash each (1..=16).
        rows: u32,
        /// Decay time constant.
        tau: TimeConstant,
    },
    /// Count-min sketch.
    CountMin {
        /// log2 of the cells per row (4..=28).
        log2_cells: u32,
        /// Rows (1..=16).
        rows: u32,
        /// Conservative update (raise cells only to the new minimum).
        conservative: bool,
    },
    /// HyperLogLog with `2^log2_registers` registers.
    HyperLogLog {
        /// p (4..=14).
        log2_registers: u32,
    },
    /// One global counter.
    Global,
    /// Exact per-key counter.
    ExactCounter {
        /// Table size.
        table: TableSpec,
    },
    /// Exact per-key decaying count.
    ExactEwma {
        /// Table size.
        table: TableSpec,
        /// Decay time constant.
        tau: TimeConstant,
    },
    /// Exact per-key sliding-window count.
    SlidingWindow {
        /// Table size.
        table: TableSpec,
        /// Window length in nanoseconds (1 ms ..= 10^6 s).
        window_ns: u64,
    },
}

impl MetricSpec {
    /// The kind this spec installs as.
    pub fn kind(&self) -> MetricKind {
        match self {
            MetricSpec::VariationDetector { .. } => MetricKind::VariationDetector,
            MetricSpec::DecayingFilter { .. } => MetricKind::DecayingFilter,
            MetricSpec::CountMin { .. } => MetricKind::CountMin,
            MetricSpec::HyperLogLog { .. } => MetricKind::HyperLogLog,
            MetricSpec::Global => MetricKind::Global,
            MetricSpec::ExactCounter { .. } => MetricKind::ExactCounter,
            MetricSpec::ExactEwma { .. } => MetricKind::ExactEwma,
            MetricSpec::SlidingWindow { .. } => MetricKind::SlidingWindow,
        }
    }
}

/// A parameter out of range, found at install time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{param} = {value} is out of range ({allowed})")]
pub struct InstallError {
    /// The parameter's name.
    pub param: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: &'static str,
}

fn check_range(
    param: &'static str,
    v: u32,
    lo: u32,
    hi: u32,
    allowed: &'static str,
) -> Result<(), InstallError> {
    if v < lo || v > hi {
        return Err(InstallError {
            param,
            value: v.to_string(),
            allowed,
        });
    }
    Ok(())
}

/// Smallest and largest decay time constant, ns.
const TAU_MIN_NS: f64 = 1e6;
const TAU_MAX_NS: f64 = 1e15;
/// Smallest and largest sliding window, ns.
const WINDOW_MIN_NS: u64 = 1_000_000;
const WINDOW_MAX_NS: u64 = 1_000_000_000_000_000;
/// Tick of exact counters (no time semantics; recency for eviction): 2^20 ns.
pub const EXACT_COUNTER_TICK_SHIFT: u8 = 20;

/// The installed, all-integer plan of one metric.
///
/// Field meanings depend on `kind`; unused fields are zero. This flat shape
/// is what the hardware's configuration registers hold (see `docs/hardware.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPlan {
    /// The structure.
    pub kind: MetricKind,
    /// The spec the plan was installed from.
    pub spec: MetricSpec,
    /// log2 of: bits per filter (VD), cells per row (decaying filter,
    /// count-min), registers (HLL), buckets (exact tables).
    pub log2_size: u32,
    /// Hashes (VD), rows (filters, count-min) or ways (exact tables).
    pub width: u32,
    /// Conservative update (count-min only; the decaying filter always is).
    pub conservative: bool,
    /// Tick = `ts_ns >> tick_shift` (decaying and exact kinds).
    pub tick_shift: u8,
    /// Decay factors, Q1.16, indexed by age in ticks; [`DECAY_TABLE_LEN`]
    /// entries for decaying kinds, empty otherwise.
    pub decay: Vec<u32>,
    /// Sliding window length in ticks (1024..=2048).
    pub window_ticks: u32,
    /// `floor(2^32 / window_ticks)`.
    pub window_recip: u32,
}

impl MetricPlan {
    /// Validates `spec` and computes its plan.
    pub fn install(spec: MetricSpec) -> Result<MetricPlan, InstallError> {
        let mut plan = MetricPlan {
            kind: spec.kind(),
            spec,
            log2_size: 0,
            width: 0,
            conservative: false,
            tick_shift: 0,
            decay: Vec::new(),
            window_ticks: 0,
            window_recip: 0,
        };
        match spec {
            MetricSpec::VariationDetector { log2_bits, hashes } => {
                check_range("size (log2 bits)", log2_bits, 9, 30, "9..=30")?;
                check_range("nhash", hashes, 1, 16, "1..=16")?;
                plan.log2_size = log2_bits;
                plan.width = hashes;
            }
            MetricSpec::DecayingFilter {
                log2_cells,
                rows,
                tau,
            } => {
                check_range("size (log2 cells per row)", log2_cells, 4, 28, "4..=28")?;
                check_range("nhash (rows)", rows, 1, 16, "1..=16")?;
                plan.log2_size = log2_cells;
                plan.width = rows;
                plan.conservative = true;
                (plan.tick_shift, plan.decay) = decay_table(tau)?;
            }
            MetricSpec::CountMin {
                log2_cells,
                rows,
                conservative,
            } => {
                check_range("size (log2 cells per row)", log2_cells, 4, 28, "4..=28")?;
                check_range("nhash (rows)", rows, 1, 16, "1..=16")?;
                plan.log2_size = log2_cells;
                plan.width = rows;
                plan.conservative = conservative;
            }
            MetricSpec::HyperLogLog { log2_registers } => {
                check_range("size (log2 registers)", log2_registers, 4, 14, "4..=14")?;
                plan.log2_size = log2_registers;
            }
            MetricSpec::Global => {}
            MetricSpec::ExactCounter { table } => {
                check_table(&mut plan, table)?;
                plan.tick_shift = EXACT_COUNTER_TICK_SHIFT;
            }
            MetricSpec::ExactEwma { table, tau } => {
                check_table(&mut plan, table)?;
                (plan.tick_shift, plan.decay) = decay_table(tau)?;
            }
            MetricSpec::SlidingWindow { table, window_ns } => {
                check_table(&mut plan, table)?;
                if !(WINDOW_MIN_NS..=WINDOW_MAX_NS).contains(&window_ns) {
                    return Err(InstallError {
                        param: "window",
                        value: format!("{} s", window_ns as f64 / 1e9),
                        allowed: "1 ms ..= 10^6 s",
                    });
                }
                // Largest power-of-two tick that leaves ≥ 1024 ticks per window.
                let shift = 63 - (window_ns / 1024).leading_zeros();
                let ticks = (window_ns + (1 << shift) / 2) >> shift;
                plan.tick_shift = shift as u8;
                plan.window_ticks = ticks as u32;
                plan.window_recip = ((1u64 << 32) / ticks) as u32;
            }
        }
        Ok(plan)
    }

    /// The decay time constant in seconds (decaying kinds).
    pub fn tau_secs(&self) -> Option<f64> {
        match self.spec {
            MetricSpec::DecayingFilter { tau, .. } | MetricSpec::ExactEwma { tau, .. } => {
                Some(tau.tau_ns / 1e9)
            }
            _ => None,
        }
    }

    /// The effective sliding window in seconds (after rounding to ticks).
    pub fn window_secs(&self) -> Option<f64> {
        (self.kind == MetricKind::SlidingWindow)
            .then(|| (self.window_ticks as u64 * (1u64 << self.tick_shift)) as f64 / 1e9)
    }

    /// Decodes a result value for the feature layer (host side, f64):
    /// detectors give 0/1, decaying kinds a rate per second (count / τ),
    /// HyperLogLog its cardinality estimate, counters their count.
    pub fn decode(&self, value: u64) -> f64 {
        match self.kind {
            MetricKind::DecayingFilter | MetricKind::ExactEwma => {
                let count = value as f64 / (1u64 << fixed::COUNT_FRAC_BITS) as f64;
                count / self.tau_secs().unwrap_or(1.0)
            }
            MetricKind::HyperLogLog => hll_estimate(value, self.log2_size),
            _ => value as f64,
        }
    }

    /// Memory the software engine uses for this metric, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        let size = 1u64 << self.log2_size;
        match self.kind {
            MetricKind::VariationDetector => 2 * size / 8,
            MetricKind::DecayingFilter => self.width as u64 * size * 16,
            MetricKind::CountMin => self.width as u64 * size * 4,
            MetricKind::HyperLogLog => size,
            MetricKind::Global => 8,
            MetricKind::ExactCounter | MetricKind::ExactEwma | MetricKind::SlidingWindow => {
                size * self.width as u64 * 64
            }
        }
    }
}

fn check_table(plan: &mut MetricPlan, table: TableSpec) -> Result<(), InstallError> {
    check_range("size (log2 buckets)", table.log2_buckets, 1, 26, "1..=26")?;
    check_range("ways", table.ways, 1, 8, "1..=8")?;
    plan.log2_size = table.log2_buckets;
    plan.width = table.ways;
    Ok(())
}

/// Chooses the tick (≥ 64 ticks per τ, so one tick decays by < 1.6 %) and
/// computes `factor[d] = round(2^16 · e^(−d · tick / τ))`, `factor[0] = 2^16`.
/// With ≥ 64 ticks per τ the table spans ≥ 16 τ, where the factor has long
/// rounded to 0.
fn decay_table(tau: TimeConstant) -> Result<(u8, Vec<u32>), InstallError> {
    let tau_ns = tau.tau_ns;
    if !(TAU_MIN_NS..=TAU_MAX_NS).contains(&tau_ns) {
        return Err(InstallError {
            param: "window (time constant)",
            value: format!("{} s", tau_ns / 1e9),
            allowed: "1 ms ..= 10^6 s",
        });
    }
    let shift = (tau_ns / 64.0).log2().floor() as u8;
    let tick = (1u64 << shift) as f64;
    let table = (0..DECAY_TABLE_LEN)
        .map(|d| {
            if d == 0 {
                ONE_Q16
            } else {
                ((ONE_Q16 as f64) * (-(d as f64) * tick / tau_ns).exp()).round() as u32
            }
        })
        .collect();
    Ok((shift, table))
}

/// HyperLogLog estimate from the packed result `Z | V << 48` (see the
/// contract): `Z = Σ 2^(33 − reg)`, `V` = registers still zero. Raw
/// estimate `α·m²·2^33 / Z`, with linear counting `m·ln(m/V)` below 2.5·m.
pub fn hll_estimate(packed: u64, p: u32) -> f64 {
    let z = (packed & ((1 << 48) - 1)) as f64;
    let zeros = (packed >> 48) as f64;
    let m = (1u64 << p) as f64;
    if z == 0.0 {
        return 0.0;
    }
    let alpha = match p {
        4 => 0.673,
        5 => 0.697,
        6 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / m),
    };
    let raw = alpha * m * m * (1u64 << 33) as f64 / z;
    if raw <= 2.5 * m && zeros > 0.0 {
        m * (m / zeros).ln()
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_window_matches_the_original() {
        let tau = TimeConstant::legacy_window_secs(60.0).unwrap();
        assert!((tau.tau_ns / 1e9 - 4.98).abs() < 0.01, "{}", tau.tau_ns);
        assert!(TimeConstant::legacy_window_secs(6.0).is_none());
        assert!(TimeConstant::legacy_window_secs(0.5).is_none());
    }

    #[test]
    fn decay_table_spans_sixteen_tau() {
        let plan = MetricPlan::install(MetricSpec::DecayingFilter {
            log2_cells: 10,
            rows: 4,
            tau: TimeConstant::from_window_secs(60.0),
        })
        .unwrap();
        let tick = (1u64 << plan.tick_shift) as f64;
        assert!(60e9 / tick >= 64.0 && 60e9 / tick < 128.0);
        assert_eq!(plan.decay[0], ONE_Q16);
        assert!(plan.decay.windows(2).all(|w| w[1] <= w[0]));
        assert_eq!(*plan.decay.last().unwrap(), 0);
        // One τ later the factor is e^-1.
        let d = (60e9 / tick).round() as usize;
        assert!((plan.decay[d] as f64 / 65536.0 - (-1f64).exp()).abs() < 0.02);
    }

    #[test]
    fn sliding_window_is_accurate() {
        for secs in [0.001, 1.0, 60.0, 3600.0, 1e6] {
            let window_ns = (secs * 1e9) as u64;
            let plan = MetricPlan::install(MetricSpec::SlidingWindow {
                table: TableSpec::default(),
                window_ns,
            })
            .unwrap();
            assert!((1024..=2048).contains(&plan.window_ticks), "{secs}");
            let eff = plan.window_secs().unwrap();
            assert!((eff - secs).abs() / secs < 1e-3, "{secs} -> {eff}");
        }
    }

    #[test]
    fn out_of_range_parameters_are_typed_errors() {
        let e = MetricPlan::install(MetricSpec::VariationDetector {
            log2_bits: 8,
            hashes: 8,
        })
        .unwrap_err();
        assert_eq!(e.param, "size (log2 bits)");
        assert!(MetricPlan::install(MetricSpec::VariationDetector {
            log2_bits: 20,
            hashes: 17
        })
        .is_err());
        assert!(MetricPlan::install(MetricSpec::HyperLogLog { log2_registers: 15 }).is_err());
        assert!(MetricPlan::install(MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 27,
                ways: 4
            }
        })
        .is_err());
        assert!(MetricPlan::install(MetricSpec::DecayingFilter {
            log2_cells: 10,
            rows: 4,
            tau: TimeConstant { tau_ns: 10.0 }
        })
        .is_err());
        assert!(MetricPlan::install(MetricSpec::SlidingWindow {
            table: TableSpec::default(),
            window_ns: 10
        })
        .is_err());
    }

    #[test]
    fn memory_is_reported() {
        let vd = MetricPlan::install(MetricSpec::VariationDetector {
            log2_bits: 20,
            hashes: 8,
        })
        .unwrap();
        assert_eq!(vd.memory_bytes(), 256 * 1024);
        let t = MetricPlan::install(MetricSpec::ExactCounter {
            table: TableSpec::default(),
        })
        .unwrap();
        assert_eq!(t.memory_bytes(), 16 << 20);
    }

    #[test]
    fn hll_estimate_of_empty_sketch_is_zero() {
        let p = 12;
        let m = 1u64 << p;
        let empty = (m << 33) | (m << 48);
        assert!(hll_estimate(empty, p).abs() < 1e-9);
    }
}
