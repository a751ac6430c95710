//! A probe: several applications, each isolated, fed the same packets.

use streamon_contract::{MetricEngine, MetricPlan};
use streamon_packet::{parse, FrameMeta, LinkType};

use crate::app::{AppRuntime, AppStats, RuntimeOptions};
use crate::output::EventSink;
use crate::plan::{AppPlan, PlanError};

/// Builds the metric engine of an application from its contract plans:
/// `sw` (the software engine) or `sim` (the Verilated RTL).
pub type EngineFactory = dyn Fn(&[MetricPlan]) -> Box<dyn MetricEngine + Send>;

/// The software engine factory.
pub fn sw_engine(plans: &[MetricPlan]) -> Box<dyn MetricEngine + Send> {
    Box::new(streamon_sw::SwEngine::new(plans))
}

/// Probe-wide counters (see `docs/counters.md`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProbeStats {
    /// Frames handed to the probe.
    pub packets: u64,
    /// Frames that parsed (reached the applications).
    pub parsed: u64,
    /// Frames skipped by the parser, by reason.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Parsed frames with an anomaly (truncated L4, malformed DNS/HTTP/
    /// Modbus, …), by anomaly: the frame was processed, those fields were
    /// absent.
    pub anomalies: std::collections::BTreeMap<String, u64>,
}

/// Installs applications and runs packets through all of them.
pub struct Probe {
    apps: Vec<AppRuntime>,
    stats: ProbeStats,
}

/// A program that failed to install.
#[derive(Debug, thiserror::Error)]
pub enum InstallFailure {
    /// The program has errors (each a `file:line:col: message`).
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Check(Vec<streamon_lang::Diagnostic>),
    /// A metric parameter the contract refuses.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl Probe {
    /// A probe with no applications.
    pub fn new() -> Probe {
        Probe {
            apps: Vec::new(),
            stats: ProbeStats::default(),
        }
    }

    /// Checks, plans and installs an application. Returns its warnings.
    pub fn install(
        &mut self,
        name: &str,
        source: &str,
        file_name: &str,
        engine: &EngineFactory,
        options: RuntimeOptions,
    ) -> Result<Vec<String>, InstallFailure> {
        let (program, warnings) =
            streamon_lang::parse_and_check(source, file_name).map_err(InstallFailure::Check)?;
        let plan = AppPlan::install(name, program)?;
        let mut out: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        out.extend(plan.warnings.iter().cloned());
        let engine = engine(&plan.metric_plans);
        self.apps.push(AppRuntime::new(plan, engine, options));
        Ok(out)
    }

    /// Removes an application; the others keep their state.
    pub fn uninstall(&mut self, name: &str) -> bool {
        let before = self.apps.len();
        self.apps.retain(|a| a.name() != name);
        before != self.apps.len()
    }

    /// The installed applications.
    pub fn apps(&self) -> &[AppRuntime] {
        &self.apps
    }

    /// Processes one captured frame.
    pub fn frame(
        &mut self,
        frame: &[u8],
        linktype: LinkType,
        meta: FrameMeta,
        sink: &mut dyn EventSink,
    ) {
        self.stats.packets += 1;
        match parse(frame, linktype, meta) {
            Ok(p) => {
                self.stats.parsed += 1;
                for name in p.anomalies().names() {
                    *self.stats.anomalies.entry(name.to_string()).or_default() += 1;
                }
                for app in &mut self.apps {
                    app.packet(&p, sink);
                }
            }
            Err(skip) => {
                *self
                    .stats
                    .skipped
                    .entry(skip.name().to_string())
                    .or_default() += 1
            }
        }
    }

    /// End of input. Returns the timeouts still armed (they would fire
    /// after the last packet's time, which the trace does not reach).
    pub fn finish(&mut self) -> usize {
        self.apps.iter_mut().map(|a| a.finish()).sum()
    }

    /// Probe counters.
    pub fn stats(&self) -> &ProbeStats {
        &self.stats
    }

    /// Counters of each application, by name.
    pub fn app_stats(&self) -> Vec<(String, AppStats)> {
        self.apps
            .iter()
            .map(|a| (a.name().to_string(), a.stats()))
            .collect()
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}
