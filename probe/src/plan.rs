//! Installing an application: from a checked [`Program`] to the in-memory
//! plan the runtime executes.
//!
//! Done once per application, when it is installed. The plan holds:
//! * the contract [`MetricPlan`]s, one per detector and one per monitor
//!   (a `<metric>` with both becomes two contract metrics, detector first);
//! * for each event and state, the metric ops to emit, in the order that
//!   makes the contract's `IF_NEW` gate count distinct keys (below);
//! * the interned key shapes, so state-table keys carry a small shape tag.
//!
//! Op order for one `<use-metric>` (`docs/probe.md` has the table):
//! 1. the detector read: `VdGetSet(k)` when `vd_get` and `vd_set` are the
//!    same key, else `VdGet(vd_get)`;
//! 2. the monitor update: `AddGet(k)` when `vm_set == vm_get`, else
//!    `Add(vm_set)`; gated with `IF_NEW` when there is a detector read
//!    (distinct counting), ungated otherwise (the original then never
//!    updated the monitor: a bug);
//! 3. the monitor read `Get(vm_get)` when it was not folded into `AddGet`;
//! 4. the detector insert `VdSet(vd_set)` when it was not folded into
//!    `VdGetSet`: after the read, as in the original.

use streamon_contract::plan::TableSpec;
use streamon_contract::{InstallError, MetricPlan, MetricSpec, OpKind, TimeConstant};
use streamon_lang::{
    Action, Event, EventKind, InsertValue, Key, MonitorKind, Program, StateBehaviour,
};
use streamon_packet::FieldType;

/// What an installed metric maps to in the contract.
#[derive(Debug, Clone)]
pub struct MetricSlots {
    /// Contract id of the detector, if any.
    pub detector: Option<u16>,
    /// Contract id of the monitor, if any.
    pub monitor: Option<u16>,
    /// What a monitor update adds.
    pub insert: InsertValue,
    /// Clear the detector every this many ns (`reset_after`).
    pub reset_after_ns: Option<u64>,
}

/// Where an op's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef(pub u16);

/// One op to emit in a pass.
#[derive(Debug, Clone, Copy)]
pub struct OpTemplate {
    /// Contract metric id.
    pub metric: u16,
    /// Kind.
    pub kind: OpKind,
    /// Key (interned).
    pub key: KeyRef,
    /// Whether it carries `IF_NEW`.
    pub gated: bool,
    /// Application metric whose insert value it adds (for `Add`/`AddGet`).
    pub app_metric: u16,
    /// If set, the result becomes this application metric's value.
    pub value_of: Option<u16>,
}

/// The plan of one `(event, state)` pair.
#[derive(Debug, Clone, Default)]
pub struct BehaviourPlan {
    /// Ops in emission order.
    pub ops: Vec<OpTemplate>,
    /// Application metrics whose value is produced in this pass.
    pub metrics_used: Vec<u16>,
    /// Features referenced by conditions and actions (reported with events).
    pub features_used: Vec<u32>,
}

/// An installed application.
#[derive(Debug, Clone)]
pub struct AppPlan {
    /// The application's name (file stem or root element).
    pub name: String,
    /// The checked program.
    pub program: Program,
    /// Contract plans, indexed by contract metric id.
    pub metric_plans: Vec<MetricPlan>,
    /// Per application metric.
    pub slots: Vec<MetricSlots>,
    /// Interned keys (field lists).
    pub keys: Vec<Key>,
    /// Interned shapes; `shape_of[k]` is key k's shape index.
    pub shape_of: Vec<u16>,
    /// Per event, per state.
    pub behaviours: Vec<Vec<Option<BehaviourPlan>>>,
    /// Shapes of the keys used by `block`/`unblock`, checked per packet.
    pub block_keys: Vec<KeyRef>,
    /// Per event: its primary key, interned.
    pub primary_keys: Vec<Option<KeyRef>>,
    /// Warnings found at install (features the runtime cannot honour).
    pub warnings: Vec<String>,
}

/// An installation failure: a metric parameter the contract refuses.
#[derive(Debug, thiserror::Error)]
#[error("metric '{metric}': {source}")]
pub struct PlanError {
    /// The metric's name.
    pub metric: String,
    /// What the contract said.
    #[source]
    pub source: InstallError,
}

struct Interner {
    keys: Vec<Key>,
    shapes: Vec<Vec<FieldType>>,
    shape_of: Vec<u16>,
}

impl Interner {
    fn key(&mut self, key: &Key) -> KeyRef {
        if let Some(i) = self.keys.iter().position(|k| k == key) {
            return KeyRef(i as u16);
        }
        let shape = key.shape();
        let s = match self.shapes.iter().position(|s| *s == shape) {
            Some(s) => s,
            None => {
                self.shapes.push(shape);
                self.shapes.len() - 1
            }
        };
        self.keys.push(key.clone());
        self.shape_of.push(s as u16);
        KeyRef((self.keys.len() - 1) as u16)
    }
}

fn table_spec(g: &streamon_lang::TableGeometry) -> TableSpec {
    TableSpec {
        log2_buckets: g.size_log2 as u32,
        ways: g.ways as u32,
    }
}

fn tau(d: &streamon_lang::Decay) -> TimeConstant {
    TimeConstant {
        tau_ns: d.tau_s() * 1e9,
    }
}

impl AppPlan {
    /// The application metric behind contract metric `id`, with its part:
    /// `dst_ports (variation_detector)` or `dst_ports (variation_monitor)`.
    pub fn describe_metric(&self, id: usize) -> Option<String> {
        let id = u16::try_from(id).ok()?;
        self.slots
            .iter()
            .zip(&self.program.metrics)
            .find_map(|(slot, m)| {
                if slot.detector == Some(id) {
                    Some(format!("{} (variation_detector)", m.name))
                } else if slot.monitor == Some(id) {
                    Some(format!("{} (variation_monitor)", m.name))
                } else {
                    None
                }
            })
    }

    /// Installs a checked program.
    pub fn install(name: &str, program: Program) -> Result<AppPlan, PlanError> {
        let mut metric_plans = Vec::new();
        let mut slots = Vec::new();
        let mut warnings = Vec::new();
        for m in &program.metrics {
            let err = |source| PlanError {
                metric: m.name.clone(),
                source,
            };
            let mut slot = MetricSlots {
                detector: None,
                monitor: None,
                insert: m
                    .monitor
                    .as_ref()
                    .map(|v| v.insert_value)
                    .unwrap_or(InsertValue::Const(1)),
                reset_after_ns: None,
            };
            if let Some(vd) = &m.detector {
                let spec = MetricSpec::VariationDetector {
                    log2_bits: vd.size_log2 as u32,
                    hashes: vd.nhash as u32,
                };
                metric_plans.push(MetricPlan::install(spec).map_err(err)?);
                slot.detector = Some((metric_plans.len() - 1) as u16);
                slot.reset_after_ns = vd.reset_after_s.map(|s| (s * 1e9) as u64);
                if vd.slave.is_some() {
                    warnings.push(format!(
                        "metric '{}': slave is not supported; the detectors age independently",
                        m.name
                    ));
                }
            }
            if let Some(vm) = &m.monitor {
                let spec = match &vm.kind {
                    MonitorKind::Tewma {
                        decay,
                        size_log2,
                        nhash,
                    } => MetricSpec::DecayingFilter {
                        log2_cells: *size_log2 as u32,
                        rows: *nhash as u32,
                        tau: tau(decay),
                    },
                    MonitorKind::TewmaFast { decay, table } => MetricSpec::ExactEwma {
                        table: table_spec(table),
                        tau: tau(decay),
                    },
                    MonitorKind::DLeft { table } => MetricSpec::ExactCounter {
                        table: table_spec(table),
                    },
                    MonitorKind::Simple => MetricSpec::Global,
                    MonitorKind::Sliding {
                        window_s, table, ..
                    } => MetricSpec::SlidingWindow {
                        table: table_spec(table),
                        window_ns: (window_s * 1e9) as u64,
                    },
                    MonitorKind::CountMin {
                        size_log2,
                        nhash,
                        conservative,
                    } => MetricSpec::CountMin {
                        log2_cells: *size_log2 as u32,
                        rows: *nhash as u32,
                        conservative: *conservative,
                    },
                    MonitorKind::Hll { precision } => MetricSpec::HyperLogLog {
                        log2_registers: *precision as u32,
                    },
                };
                metric_plans.push(MetricPlan::install(spec).map_err(err)?);
                slot.monitor = Some((metric_plans.len() - 1) as u16);
            }
            slots.push(slot);
        }

        let mut interner = Interner {
            keys: Vec::new(),
            shapes: Vec::new(),
            shape_of: Vec::new(),
        };
        let mut behaviours = Vec::new();
        let mut primary_keys = Vec::new();
        let mut block_keys = Vec::new();
        for ev in &program.events {
            primary_keys.push(ev.primary_key().map(|k| interner.key(k)));
            let mut per_state = Vec::new();
            for b in &ev.behaviours {
                per_state.push(
                    b.as_ref()
                        .map(|b| plan_behaviour(b, &slots, &mut interner, &mut block_keys)),
                );
            }
            behaviours.push(per_state);
        }
        // Keys named by timeout_set actions and table reads must be interned
        // too, so every key the runtime builds has a shape tag.
        intern_all_keys(&program, &mut interner, &mut block_keys);
        Ok(AppPlan {
            name: name.to_string(),
            program,
            metric_plans,
            slots,
            keys: interner.keys,
            shape_of: interner.shape_of,
            behaviours,
            block_keys,
            primary_keys,
            warnings,
        })
    }

    /// The interned reference of a key the program uses.
    ///
    /// # Panics
    /// Panics if the key is not one of the program's (install interns them all).
    pub fn key_ref(&self, key: &Key) -> KeyRef {
        KeyRef(
            self.keys
                .iter()
                .position(|k| k == key)
                .expect("every program key is interned at install") as u16,
        )
    }

    /// Whether the event is a packet event.
    pub fn is_packet_event(&self, event: usize) -> bool {
        matches!(self.program.events[event].kind, EventKind::Packet { .. })
    }

    /// The program's events.
    pub fn events(&self) -> &[Event] {
        &self.program.events
    }
}

fn plan_behaviour(
    b: &StateBehaviour,
    slots: &[MetricSlots],
    interner: &mut Interner,
    block_keys: &mut Vec<KeyRef>,
) -> BehaviourPlan {
    let mut plan = BehaviourPlan::default();
    for um in &b.use_metrics {
        let app_metric = um.metric.0 as u16;
        let slot = &slots[um.metric.index()];
        let mut tail = Vec::new();
        let mut has_vd_read = false;
        let mut value_from_vd = None;
        if let Some(vd) = slot.detector {
            match (&um.vd_get, &um.vd_set) {
                (Some(g), Some(s)) if g == s => {
                    plan.ops
                        .push(op(vd, OpKind::VdGetSet, interner.key(g), false, app_metric));
                    has_vd_read = true;
                }
                (g, s) => {
                    if let Some(g) = g {
                        plan.ops
                            .push(op(vd, OpKind::VdGet, interner.key(g), false, app_metric));
                        has_vd_read = true;
                    }
                    if let Some(s) = s {
                        tail.push(op(vd, OpKind::VdSet, interner.key(s), false, app_metric));
                    }
                }
            }
            if has_vd_read {
                value_from_vd = Some(plan.ops.len() - 1);
            }
        }
        let mut value_op = value_from_vd;
        if let Some(vm) = slot.monitor {
            let gated = has_vd_read;
            match (&um.vm_set, &um.vm_get) {
                (Some(s), Some(g)) if s == g => {
                    plan.ops
                        .push(op(vm, OpKind::AddGet, interner.key(s), gated, app_metric));
                    value_op = Some(plan.ops.len() - 1);
                }
                (s, g) => {
                    if let Some(s) = s {
                        plan.ops
                            .push(op(vm, OpKind::Add, interner.key(s), gated, app_metric));
                        value_op = Some(plan.ops.len() - 1);
                    }
                    if let Some(g) = g {
                        plan.ops
                            .push(op(vm, OpKind::Get, interner.key(g), false, app_metric));
                        value_op = Some(plan.ops.len() - 1);
                    }
                }
            }
        }
        if let Some(i) = value_op {
            plan.ops[i].value_of = Some(app_metric);
            plan.metrics_used.push(app_metric);
        }
        plan.ops.extend(tail);
    }
    let mut features = Vec::new();
    let mut note = |e: &streamon_lang::Expr| {
        e.visit(&mut |x| {
            if let streamon_lang::Expr::Feature(f) = x {
                if !features.contains(&f.0) {
                    features.push(f.0);
                }
            }
        })
    };
    for c in &b.conditions {
        note(&c.expr);
        for a in &c.actions {
            action_exprs(a, &mut note);
        }
    }
    for a in &b.post_actions {
        action_exprs(a, &mut note);
    }
    for a in b
        .conditions
        .iter()
        .flat_map(|c| &c.actions)
        .chain(&b.post_actions)
    {
        collect_action_keys(a, interner, block_keys);
        if let Action::Publish { text, .. }
        | Action::Print(text)
        | Action::Exec(text)
        | Action::StoreSet { value: text, .. }
        | Action::StorePublish { text, .. } = a
        {
            for p in &text.parts {
                if let streamon_lang::TemplatePart::Subst(streamon_lang::Subst::Feature(f)) = p {
                    if !features.contains(&f.0) {
                        features.push(f.0);
                    }
                }
            }
        }
    }
    features.sort_unstable();
    plan.features_used = features;
    plan
}

fn op(metric: u16, kind: OpKind, key: KeyRef, gated: bool, app_metric: u16) -> OpTemplate {
    OpTemplate {
        metric,
        kind,
        key,
        gated,
        app_metric,
        value_of: None,
    }
}

fn action_exprs<'a>(a: &'a Action, f: &mut impl FnMut(&'a streamon_lang::Expr)) {
    match a {
        Action::TableUpdate { value, .. } => f(value),
        Action::StoreIncr { by, .. } => f(by),
        _ => {}
    }
}

fn collect_action_keys(a: &Action, interner: &mut Interner, block_keys: &mut Vec<KeyRef>) {
    match a {
        Action::TableUpdate { key, .. }
        | Action::MetricReset { key: Some(key), .. }
        | Action::TimeoutSet { key: Some(key), .. } => {
            interner.key(key);
        }
        Action::Block { key, .. } | Action::Unblock { key } => {
            let k = interner.key(key);
            if !block_keys.contains(&k) {
                block_keys.push(k);
            }
        }
        _ => {}
    }
}

fn intern_all_keys(program: &Program, interner: &mut Interner, block_keys: &mut Vec<KeyRef>) {
    let mut exprs: Vec<&streamon_lang::Expr> = program.features.iter().map(|f| &f.body).collect();
    for ev in &program.events {
        for b in ev.behaviours.iter().flatten() {
            for c in &b.conditions {
                exprs.push(&c.expr);
                for a in &c.actions {
                    collect_action_keys(a, interner, block_keys);
                    action_exprs(a, &mut |e| exprs.push(e));
                }
            }
            for a in &b.post_actions {
                collect_action_keys(a, interner, block_keys);
                action_exprs(a, &mut |e| exprs.push(e));
            }
        }
    }
    for e in exprs {
        e.visit(&mut |x| {
            if let streamon_lang::Expr::Table(_, key) = x {
                interner.key(key);
            }
        });
    }
}
