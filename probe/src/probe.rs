//! A probe: several applications, each isolated, fed the same packets.

use streamon_contract::{MetricEngine, MetricPlan};
use streamon_packet::{parse, FrameMeta, LinkType, Parsed, Skip};

use crate::app::{AppRuntime, AppStats, RuntimeOptions};
use crate::message::Message;
use crate::output::EventSink;
use crate::plan::{AppPlan, PlanError};

/// Builds the metric engine of an application from its contract plans:
/// the software engine, the Verilated RTL, or a device behind the driver.
/// A backend that cannot host a plan refuses it: the application is then
/// not installed (it never silently runs elsewhere).
pub type EngineFactory =
    dyn Fn(&[MetricPlan]) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal>;

/// The software engine factory (hosts every plan).
pub fn sw_engine(plans: &[MetricPlan]) -> Result<Box<dyn MetricEngine + Send>, EngineRefusal> {
    Ok(Box::new(streamon_sw::SwEngine::new(plans)))
}

/// Why a backend did not build an engine for an application's plans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct EngineRefusal {
    /// The contract metric id (index into the plans) that cannot be hosted,
    /// when one metric is to blame.
    pub metric: Option<usize>,
    /// What is missing or too large, and what the backend offers instead.
    pub reason: String,
}

/// Probe-wide counters (see `docs/counters.md`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProbeStats {
    /// Frames handed to the probe.
    pub packets: u64,
    /// Frames that parsed (reached the applications).
    pub parsed: u64,
    /// Messages from other probes handed to the applications.
    pub messages: u64,
    /// Frames skipped by the parser, by reason.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Parsed frames with an anomaly (truncated L4, malformed DNS/HTTP/
    /// Modbus, …), by anomaly: the frame was processed, those fields were
    /// absent.
    pub anomalies: std::collections::BTreeMap<String, u64>,
}

/// Installs applications and runs packets through all of them.
///
/// Applications can be added, removed, replaced (hot swap) and paused
/// while the probe runs; each one owns its metric engine, states and
/// timers, so none of that touches the state of the others.
pub struct Probe {
    apps: Vec<AppRuntime>,
    /// `running[i]`: whether `apps[i]` is fed packets (a stopped
    /// application keeps its state and resumes where it was).
    running: Vec<bool>,
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
    /// The metric engine backend cannot host the application's metrics.
    #[error("{}{reason}", metric.as_ref().map(|m| format!("metric '{m}': ")).unwrap_or_default())]
    Engine {
        /// The application's metric, with the part that is refused
        /// (`dst_ports (variation_monitor)`), when one is to blame.
        metric: Option<String>,
        /// The backend's reason (`EngineRefusal::reason`).
        reason: String,
    },
}

impl Probe {
    /// A probe with no applications.
    pub fn new() -> Probe {
        Probe {
            apps: Vec::new(),
            running: Vec::new(),
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
        let (app, warnings) = Self::build(name, source, file_name, engine, options)?;
        self.apps.push(app);
        self.running.push(true);
        Ok(warnings)
    }

    /// Checks and plans a program into a fresh runtime.
    fn build(
        name: &str,
        source: &str,
        file_name: &str,
        engine: &EngineFactory,
        options: RuntimeOptions,
    ) -> Result<(AppRuntime, Vec<String>), InstallFailure> {
        let (program, warnings) =
            streamon_lang::parse_and_check(source, file_name).map_err(InstallFailure::Check)?;
        let plan = AppPlan::install(name, program)?;
        let mut out: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        out.extend(plan.warnings.iter().cloned());
        let engine = engine(&plan.metric_plans).map_err(|r| InstallFailure::Engine {
            metric: r.metric.and_then(|id| plan.describe_metric(id)),
            reason: r.reason,
        })?;
        Ok((AppRuntime::new(plan, engine, options), out))
    }

    /// Hot swap: replaces the application `name` by a new program, in
    /// place (same position, so the same order among the others). The new
    /// program starts from fresh state; the other applications are not
    /// touched. When the new program fails to install, the old one keeps
    /// running unchanged. Returns `Ok(None)` when no application is named
    /// `name`.
    pub fn replace(
        &mut self,
        name: &str,
        source: &str,
        file_name: &str,
        engine: &EngineFactory,
        options: RuntimeOptions,
    ) -> Result<Option<Vec<String>>, InstallFailure> {
        let Some(i) = self.position(name) else {
            return Ok(None);
        };
        let (app, warnings) = Self::build(name, source, file_name, engine, options)?;
        self.apps[i] = app;
        Ok(Some(warnings))
    }

    /// Removes an application; the others keep their state.
    pub fn uninstall(&mut self, name: &str) -> bool {
        let Some(i) = self.position(name) else {
            return false;
        };
        self.apps.remove(i);
        self.running.remove(i);
        true
    }

    /// Starts (`true`) or stops (`false`) feeding packets to `name`. A
    /// stopped application keeps its metrics, states and timers; its
    /// timers fire again from the first packet after it is started.
    /// Returns `false` when no application is named `name`.
    pub fn set_running(&mut self, name: &str, running: bool) -> bool {
        match self.position(name) {
            Some(i) => {
                self.running[i] = running;
                true
            }
            None => false,
        }
    }

    /// Whether `name` is installed and running (`None`: not installed).
    pub fn is_running(&self, name: &str) -> Option<bool> {
        self.position(name).map(|i| self.running[i])
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.name() == name)
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
        let parsed = parse(frame, linktype, meta);
        count_frame(&mut self.stats, &parsed);
        if let Ok(p) = parsed {
            for (app, _) in self.apps.iter_mut().zip(&self.running).filter(|(_, r)| **r) {
                app.packet(&p, sink);
            }
        }
    }

    /// Takes the probe apart: its applications (install order), each with
    /// whether it is running, and the counters.
    pub fn into_parts(self) -> (Vec<(AppRuntime, bool)>, ProbeStats) {
        (
            self.apps.into_iter().zip(self.running).collect(),
            self.stats,
        )
    }

    /// Puts a probe back together from [`Probe::into_parts`].
    pub fn from_parts(apps: Vec<(AppRuntime, bool)>, stats: ProbeStats) -> Probe {
        let (apps, running) = apps.into_iter().unzip();
        Probe {
            apps,
            running,
            stats,
        }
    }

    /// Processes one message received from another probe (see
    /// [`crate::message`]); every application sees it.
    pub fn message(&mut self, m: &Message, sink: &mut dyn EventSink) {
        self.stats.messages += 1;
        for (app, _) in self.apps.iter_mut().zip(&self.running).filter(|(_, r)| **r) {
            app.message(m, sink);
        }
    }

    /// The topics the installed applications' message events take, sorted,
    /// without duplicates: what the probe subscribes to.
    pub fn message_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .apps
            .iter()
            .flat_map(|a| a.message_topics().map(str::to_string))
            .collect();
        t.sort();
        t.dedup();
        t
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

    /// Publishes a snapshot to `view` if a reader asked for one: call it
    /// between packets (one relaxed atomic load when nobody asked) and
    /// while idle.
    #[inline]
    pub fn serve_live(&self, view: &crate::live::LiveView, probe_id: &str) {
        if view.wanted() {
            view.publish(self.snapshot(probe_id));
        }
    }

    /// The probe's live state as Redis keys (`crate::live` gives the
    /// layout): every counter, and each application's live table.
    pub fn snapshot(&self, probe_id: &str) -> crate::live::Snapshot {
        let mut b = crate::live::Snapshot::builder(probe_id);
        for (name, v) in flatten_counters(&serde_json::to_value(&self.stats).unwrap_or_default()) {
            b.probe_counter(&name, v);
        }
        for app in &self.apps {
            let name = app.name();
            for (c, v) in flatten_counters(&serde_json::to_value(app.stats()).unwrap_or_default()) {
                b.app_counter(name, &c, v);
            }
            let Some(live) = app.live() else { continue };
            let program = &app.plan().program;
            let names: Vec<String> = program
                .metrics
                .iter()
                .map(|m| m.name.clone())
                .chain(program.features.iter().map(|f| f.name.clone()))
                .collect();
            live.for_each(|key, addr, state, ts, values| {
                let state = program
                    .states
                    .get(state as usize)
                    .map(|s| s.name.as_str())
                    .unwrap_or("");
                b.app_key(name, key, addr, state, ts, &names, values);
            });
        }
        b.finish()
    }
}

/// The integer leaves of a counters object, named by their path joined
/// with `.` (`published.alert`, `matched.0`, `arith.div_by_zero`).
fn flatten_counters(v: &serde_json::Value) -> Vec<(String, u64)> {
    fn walk(v: &serde_json::Value, path: &mut String, out: &mut Vec<(String, u64)>) {
        let len = path.len();
        let mut child = |k: &str, v: &serde_json::Value, path: &mut String| {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            walk(v, path, out);
            path.truncate(len);
        };
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    child(k, v, path);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    child(&i.to_string(), v, path);
                }
            }
            serde_json::Value::Number(n) => {
                if let Some(n) = n.as_u64() {
                    out.push((path.clone(), n));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

/// Counts one frame's parse outcome in the probe-wide counters. Allocates
/// only the first time a skip reason or anomaly is seen.
pub(crate) fn count_frame(stats: &mut ProbeStats, parsed: &Result<Parsed<'_>, Skip>) {
    fn bump(map: &mut std::collections::BTreeMap<String, u64>, name: &str) {
        match map.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                map.insert(name.to_string(), 1);
            }
        }
    }
    stats.packets += 1;
    match parsed {
        Ok(p) => {
            stats.parsed += 1;
            for name in p.anomalies().names() {
                bump(&mut stats.anomalies, name);
            }
        }
        Err(skip) => bump(&mut stats.skipped, skip.name()),
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}
