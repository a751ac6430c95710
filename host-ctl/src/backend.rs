//! Which metric engine runs an application's metrics (`streamon run
//! --backend`), and the engine factories the probe installs with.
//!
//! | backend | metric layer | needs |
//! |---|---|---|
//! | `sw` | `streamon_sw::SwEngine` in the probe's thread | nothing |
//! | `sim` | the Verilated RTL (`streamon_sim::SimEngine`), called directly | the `sim` feature (Verilator) |
//! | `sim-nic` | the driver (`streamon_driver::DeviceEngine`) → rings in shared memory → simulated NIC thread → Verilated RTL | the `sim` feature |
//! | `vfio:<PCI address>` | the same driver code → rings in DMA memory → a card bound to `vfio-pci` | IOMMU, `vfio-pci`, permission |
//!
//! A hardware backend hosts only what the hardware implements
//! (`streamon_hw::pipeline::CAPABILITIES`) within the banks and sizes of the
//! generated layout (`streamon_hw::layout`). An application it cannot host
//! is refused at install with the metric and what the device offers; it is
//! never run on the software engine instead.
//!
//! A device that fails while running (timeout, fatal status, a completion
//! for an op never submitted, ...) answers the unanswered ops with the
//! contract's `Status::DeviceError`; the factory's [`DeviceHealth`] keeps the
//! first such error so the caller can stop publishing and report it.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use streamon_contract::{MetricEngine, MetricId, MetricKind, MetricPlan, Op, OpResult};
use streamon_driver::{DeviceEngine, DriverConfig, DriverError, RegionProvider};
use streamon_probe::{EngineFactory, EngineRefusal};

/// A metric engine backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The software engine.
    Sw,
    /// The Verilated RTL, called directly.
    Sim,
    /// The driver over a simulated NIC whose device side is the Verilated
    /// RTL.
    SimNic,
    /// The driver over a real card bound to `vfio-pci` (its PCI address,
    /// `0000:01:00.0`).
    Vfio(String),
}

/// A `--backend` value that is none of the backends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend '{0}': expected sw, sim, sim-nic or vfio:<PCI address> (e.g. vfio:0000:01:00.0)")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        Ok(match s {
            "sw" => Backend::Sw,
            "sim" => Backend::Sim,
            "sim-nic" => Backend::SimNic,
            _ => match s.strip_prefix("vfio:") {
                Some(pci) if !pci.is_empty() => Backend::Vfio(pci.to_string()),
                _ => return Err(UnknownBackend(s.to_string())),
            },
        })
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sw => f.write_str("sw"),
            Backend::Sim => f.write_str("sim"),
            Backend::SimNic => f.write_str("sim-nic"),
            Backend::Vfio(pci) => write!(f, "vfio:{pci}"),
        }
    }
}

/// A backend that cannot be used at all in this build or on this machine.
#[derive(Debug, thiserror::Error)]
pub enum BackendUnavailable {
    /// `sim`/`sim-nic` in a build without the `sim` feature.
    #[error("backend '{0}' runs the Verilated RTL, and this streamon was built without it: rebuild with `--features sim` (needs Verilator and g++: apt-get install -y verilator g++)")]
    NoSimFeature(Backend),
    /// The VFIO preconditions do not hold (no IOMMU, no module, no
    /// permission, device not bound to vfio-pci).
    #[error("backend 'vfio:{pci}'")]
    Vfio {
        /// The PCI address.
        pci: String,
        /// What is missing and what to do.
        #[source]
        source: streamon_driver::vfio::VfioSetupError,
    },
}

/// The first device failure seen by any engine built by one factory. Cheap
/// to check per event ([`DeviceHealth::failed`] is one atomic load).
#[derive(Debug, Clone, Default)]
pub struct DeviceHealth {
    failed: Arc<AtomicBool>,
    first: Arc<Mutex<Option<String>>>,
}

impl DeviceHealth {
    /// True once a device engine failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The first failure (`"<device>: <error>"`).
    pub fn first_failure(&self) -> Option<String> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, what: String) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(what);
        }
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl Backend {
    /// Checks that the backend can run here at all, before any application
    /// is installed: the `sim` feature for `sim`/`sim-nic`, the VFIO
    /// preconditions for `vfio:`.
    pub fn check_available(&self) -> Result<(), BackendUnavailable> {
        match self {
            Backend::Sw => Ok(()),
            Backend::Sim | Backend::SimNic => {
                if cfg!(feature = "sim") {
                    Ok(())
                } else {
                    Err(BackendUnavailable::NoSimFeature(self.clone()))
                }
            }
            Backend::Vfio(pci) => {
                streamon_driver::vfio::preflight(pci)
                    .map(|_| ())
                    .map_err(|source| BackendUnavailable::Vfio {
                        pci: pci.clone(),
                        source,
                    })
            }
        }
    }

    /// The engine factory for [`streamon_probe::Probe::install`]. Engines
    /// on a device report their first failure to `health`.
    pub fn factory(&self, health: DeviceHealth) -> Box<EngineFactory> {
        match self.clone() {
            Backend::Sw => Box::new(streamon_probe::sw_engine),
            Backend::Sim => Box::new(rtl::direct),
            Backend::SimNic => Box::new(move |plans: &[MetricPlan]| rtl::sim_nic(plans, &health)),
            Backend::Vfio(pci) => Box::new(move |plans: &[MetricPlan]| {
                let provider =
                    streamon_driver::vfio::VfioProvider::open(&pci).map_err(|e| EngineRefusal {
                        metric: None,
                        reason: format!("vfio:{pci}: {e}"),
                    })?;
                on_device(provider, plans, DriverConfig::default(), &health)
            }),
        }
    }
}

/// The driver over `provider`, as a probe engine.
fn on_device<P: RegionProvider + 'static>(
    provider: P,
    plans: &[MetricPlan],
    config: DriverConfig,
    health: &DeviceHealth,
) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal> {
    match DeviceEngine::open(provider, plans, config) {
        Ok(dev) => Ok(Box::new(Watched {
            dev,
            health: health.clone(),
            reported: false,
        })),
        Err(e) => Err(EngineRefusal {
            metric: match &e {
                DriverError::MetricKindNotHosted { metric, .. } => Some(*metric),
                _ => None,
            },
            reason: e.to_string(),
        }),
    }
}

/// A [`DeviceEngine`] whose first failure is reported to a
/// [`DeviceHealth`] (the `MetricEngine` trait cannot return it).
struct Watched<P: RegionProvider> {
    dev: DeviceEngine<P>,
    health: DeviceHealth,
    reported: bool,
}

impl<P: RegionProvider> MetricEngine for Watched<P> {
    fn apply(&mut self, ops: &[Op], results: &mut [OpResult]) {
        self.dev.apply(ops, results);
        if !self.reported {
            if let Some(e) = self.dev.last_error() {
                self.reported = true;
                self.health
                    .record(format!("{}: {e}", self.dev.provider().describe()));
            }
        }
    }

    fn dump(&self, metric: MetricId) -> Option<Vec<u64>> {
        self.dev.dump(metric)
    }

    fn plans(&self) -> &[MetricPlan] {
        self.dev.plans()
    }
}

/// The language's name of a metric kind (`<variation_monitor type=…>`).
pub fn language_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::VariationDetector => "variation_detector",
        MetricKind::DecayingFilter => "tewma",
        MetricKind::CountMin => "countmin",
        MetricKind::HyperLogLog => "hll",
        MetricKind::Global => "simple",
        MetricKind::ExactCounter => "dleft",
        MetricKind::ExactEwma => "tewma-fast",
        MetricKind::SlidingWindow => "sliding",
    }
}

/// The hardware backends (need the `sim` feature).
#[cfg(feature = "sim")]
mod rtl {
    use super::*;
    use std::time::Duration;
    use streamon_driver::{SimNic, SimNicConfig};
    use streamon_sim::{SimEngine, SimError, LAYOUT};

    /// What the Verilated RTL offers, in the language's terms.
    pub(super) fn offers() -> String {
        let mut hosted = Vec::new();
        let mut missing = Vec::new();
        for kind in (1..=31u8).filter_map(MetricKind::from_u8) {
            let name = language_name(kind);
            if !SimEngine::kind_in_hardware(kind) {
                missing.push(name);
                continue;
            }
            hosted.push(match kind {
                MetricKind::VariationDetector => format!(
                    "{} variation_detector of size ≤ {}",
                    LAYOUT.vd_banks,
                    LAYOUT.vd_block_bits + 9
                ),
                MetricKind::ExactCounter => format!(
                    "{} dleft of size ≤ {} with ways ≤ {}",
                    LAYOUT.exact_banks, LAYOUT.exact_bucket_bits, LAYOUT.exact_ways
                ),
                MetricKind::Global => format!("{} simple", LAYOUT.global_banks),
                MetricKind::DecayingFilter => format!(
                    "{} tewma of size ≤ {} with nhash ≤ {}",
                    LAYOUT.df_banks, LAYOUT.df_cell_bits, LAYOUT.df_rows
                ),
                _ => name.to_string(),
            });
        }
        format!(
            "the hardware (layout '{}') offers {}; not {}",
            LAYOUT.name,
            hosted.join(", "),
            missing.join(", ")
        )
    }

    fn refusal(e: SimError) -> EngineRefusal {
        let (metric, why) = match e {
            SimError::KindNotInHardware { metric, kind, .. } => (
                metric,
                format!("{} is not implemented in hardware", language_name(kind)),
            ),
            SimError::DoesNotFit { metric, why } => (metric, format!("does not fit: {why}")),
        };
        EngineRefusal {
            metric: Some(metric),
            reason: format!("{why}; {}", offers()),
        }
    }

    pub(super) fn direct(
        plans: &[MetricPlan],
    ) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal> {
        Ok(Box::new(SimEngine::new(plans).map_err(refusal)?))
    }

    pub(super) fn sim_nic(
        plans: &[MetricPlan],
        health: &DeviceHealth,
    ) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal> {
        SimEngine::hostable(plans).map_err(refusal)?;
        let nic = SimNic::rtl(plans, SimNicConfig::default()).map_err(|e| EngineRefusal {
            metric: None,
            reason: format!("cannot start the simulated NIC: {e}"),
        })?;
        // The simulated device shares the CPU with everything else on the
        // machine: a generous timeout, still bounded.
        let config = DriverConfig {
            timeout: Duration::from_secs(10),
            ..DriverConfig::default()
        };
        on_device(nic, plans, config, health)
    }
}

/// Without the `sim` feature the RTL backends refuse every application
/// (`Backend::check_available` says so before that).
#[cfg(not(feature = "sim"))]
mod rtl {
    use super::*;

    fn unavailable(backend: Backend) -> EngineRefusal {
        EngineRefusal {
            metric: None,
            reason: BackendUnavailable::NoSimFeature(backend).to_string(),
        }
    }

    pub(super) fn direct(_: &[MetricPlan]) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal> {
        Err(unavailable(Backend::Sim))
    }

    pub(super) fn sim_nic(
        _: &[MetricPlan],
        _: &DeviceHealth,
    ) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal> {
        Err(unavailable(Backend::SimNic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for s in ["sw", "sim", "sim-nic", "vfio:0000:01:00.0"] {
            let b: Backend = s.parse().unwrap();
            assert_eq!(b.to_string(), s);
        }
        assert_eq!(
            "vfio:0000:01:00.0".parse::<Backend>().unwrap(),
            Backend::Vfio("0000:01:00.0".into())
        );
        for bad in ["", "hw", "vfio:", "vfio", "SW"] {
            let e = bad.parse::<Backend>().unwrap_err();
            assert!(e.to_string().contains("sim-nic"), "{e}");
        }
    }

    /// A device that stops answering: the unanswered ops get the contract's
    /// `DeviceError` status and the health records the first failure.
    #[test]
    fn a_failing_device_is_reported_once() {
        use streamon_contract::{MetricSpec, OpKind, Status};
        use streamon_driver::{FaultPlan, SimNic, SimNicConfig};
        let plans = vec![MetricPlan::install(MetricSpec::Global).unwrap()];
        let nic = SimNic::software(
            &plans,
            SimNicConfig {
                faults: FaultPlan {
                    stall_after: Some(5),
                    ..FaultPlan::default()
                },
                ..SimNicConfig::default()
            },
        )
        .unwrap();
        let health = DeviceHealth::default();
        let config = DriverConfig {
            ring_entries: 16,
            batch: 4,
            timeout: std::time::Duration::from_millis(100),
        };
        let mut engine = on_device(nic, &plans, config, &health).expect("opens");
        let ops: Vec<Op> = (0..20)
            .map(|i| Op::new(0, OpKind::Add, &[], 1, i).unwrap())
            .collect();
        let mut results = vec![OpResult::default(); ops.len()];
        assert!(!health.failed());
        engine.apply(&ops, &mut results);
        assert!(results[..5].iter().all(|r| r.status == Status::Ok as u8));
        assert!(results[5..]
            .iter()
            .all(|r| r.status == Status::DeviceError as u8));
        assert!(health.failed());
        let first = health.first_failure().expect("recorded");
        assert!(first.starts_with("simulated NIC"), "{first}");
        assert!(first.contains("no completion within"), "{first}");
        // Later batches fail at once and do not overwrite the first cause.
        engine.apply(&ops[..2], &mut results[..2]);
        assert_eq!(health.first_failure().as_deref(), Some(first.as_str()));
    }

    #[test]
    fn vfio_without_the_device_is_a_clear_error() {
        // No such PCI function on any machine: the preflight names the
        // address and the step to check.
        let e = Backend::Vfio("0000:ff:1f.7".into())
            .check_available()
            .unwrap_err();
        let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(chain.contains("0000:ff:1f.7"), "{chain}");
        assert!(chain.contains("docs/operations.md"), "{chain}");
    }
}
