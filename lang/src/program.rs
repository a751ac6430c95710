//! The checked program: what the probe runtime compiles into its plan.
//!
//! Every name is resolved. States, metrics, tables, features and timeout
//! classes are referred to by index newtypes ([`StateId`], [`MetricId`],
//! [`TableId`], [`FeatureId`], [`TimeoutClassId`]) into the vectors of
//! [`Program`]; packet fields are [`Field`]s; expressions are [`Expr`]
//! trees; actions are [`Action`]s; message texts are [`Template`]s already
//! split into literal text and substitutions. A [`Program`] that
//! [`crate::parse_and_check`] returns has passed every check in
//! `docs/language.md`, so walking it needs no error handling: every index is
//! in range and every expression is well-typed.

use std::fmt;
use std::net::IpAddr;

pub use streamon_packet::{Field, FieldType};

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for indexing the program's vector.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

index_type!(
    /// Index into [`Program::states`]. `StateId(0)` is the initial state.
    StateId
);
index_type!(
    /// Index into [`Program::metrics`].
    MetricId
);
index_type!(
    /// Index into [`Program::tables`].
    TableId
);
index_type!(
    /// Index into [`Program::features`].
    FeatureId
);
index_type!(
    /// Index into [`Program::timeout_classes`].
    TimeoutClassId
);

/// A position in the program text (1-based), kept so the runtime can name
/// the place a run-time event (say, a division by zero) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Loc {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A checked application program.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Name of the root element (`botstream`, `streamon`, …).
    pub name: String,
    /// Where packets come from, if the program says so (`<source>`).
    pub source: Option<SourceSpec>,
    /// Where `Publish` messages go, if the program says so (`<publisher>`).
    pub publisher: Option<Publisher>,
    /// The states (`<statedef>`), in document order; index 0 is initial.
    pub states: Vec<StateDef>,
    /// The metrics (`<metric>`), in document order.
    pub metrics: Vec<Metric>,
    /// The secondary tables (`<table>`), in document order.
    pub tables: Vec<Table>,
    /// The features (`<feature>`), in document order; a feature only uses
    /// features before it, so evaluating in order is always correct.
    pub features: Vec<Feature>,
    /// The timeout classes, one per timeout event, in document order.
    pub timeout_classes: Vec<TimeoutClass>,
    /// The events (`<event>`), in document order. Packet events are tried
    /// in this order and the first whose selector matches wins; message
    /// events likewise for messages.
    pub events: Vec<Event>,
    /// The message feature names the program reads (`msg.NAME`), indexed
    /// by [`Expr::MsgFeature`] and [`Subst::MsgFeature`].
    pub msg_features: Vec<String>,
}

impl Program {
    /// The initial state (always `StateId(0)`).
    pub const INITIAL_STATE: StateId = StateId(0);

    /// Looks a state up by name.
    pub fn state_by_name(&self, name: &str) -> Option<StateId> {
        position(self.states.iter().map(|s| s.name.as_str()), name).map(StateId)
    }

    /// Looks a metric up by name.
    pub fn metric_by_name(&self, name: &str) -> Option<MetricId> {
        position(self.metrics.iter().map(|m| m.name.as_str()), name).map(MetricId)
    }

    /// Looks a table up by name.
    pub fn table_by_name(&self, name: &str) -> Option<TableId> {
        position(self.tables.iter().map(|t| t.name.as_str()), name).map(TableId)
    }

    /// Looks a feature up by name.
    pub fn feature_by_name(&self, name: &str) -> Option<FeatureId> {
        position(self.features.iter().map(|f| f.name.as_str()), name).map(FeatureId)
    }

    /// Looks a timeout class up by name.
    pub fn timeout_class_by_name(&self, name: &str) -> Option<TimeoutClassId> {
        position(self.timeout_classes.iter().map(|c| c.name.as_str()), name).map(TimeoutClassId)
    }

    /// The timeout event that handles a timeout class.
    pub fn timeout_event(&self, class: TimeoutClassId) -> &Event {
        &self.events[self.timeout_classes[class.index()].event]
    }

    /// The `code`/`level`/`description` of `state` as seen from event
    /// `event` (what `%state.*` and `%next_state.*` render): that event's
    /// `<state>` attributes, else the program-wide ones of the state.
    pub fn state_info(&self, event: usize, state: StateId) -> &StateInfo {
        match self.events[event].behaviour(state) {
            Some(b) => &b.info,
            None => &self.states[state.index()].info,
        }
    }
}

impl Program {
    /// Writes an expression back in the language's syntax, with names and
    /// only the parentheses precedence needs: parsing the text in this
    /// program gives the same [`Expr`] back (a negative constant prints as
    /// `(-x)`, which parses as a negation of `x`).
    pub fn expr_to_source(&self, e: &Expr) -> String {
        let mut out = String::new();
        self.write_expr(e, 0, &mut out);
        out
    }

    fn write_expr(&self, e: &Expr, min_prec: u8, out: &mut String) {
        let prec = expr_prec(e);
        let paren = prec < min_prec;
        if paren {
            out.push('(');
        }
        match e {
            Expr::Const(v) if *v < 0.0 => {
                out.push_str(&format!("({v})"));
            }
            Expr::Const(v) => out.push_str(&format!("{v}")),
            Expr::Feature(f) => out.push_str(&self.features[f.index()].name),
            Expr::Metric(m) => out.push_str(&self.metrics[m.index()].name),
            Expr::Field(f) => out.push_str(f.name()),
            Expr::MsgFeature(i) => {
                out.push_str("msg.");
                out.push_str(&self.msg_features[*i as usize]);
            }
            Expr::Table(t, k) => out.push_str(&format!("{}({k})", self.tables[t.index()].name)),
            Expr::Store(read, name) => out.push_str(&format!("{}({name})", read.func_name())),
            Expr::Unary(op, inner) => {
                out.push_str(match op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Not => "not ",
                });
                self.write_expr(inner, PREC_UNARY, out);
            }
            Expr::Binary(op, l, r) => {
                // Left associative; comparisons do not chain at all.
                let (lp, rp) = if prec == PREC_CMP {
                    (prec + 1, prec + 1)
                } else {
                    (prec, prec + 1)
                };
                self.write_expr(l, lp, out);
                out.push(' ');
                out.push_str(binop_source(*op));
                out.push(' ');
                self.write_expr(r, rp, out);
            }
            Expr::Call(func, args) => {
                out.push_str(func.name());
                out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write_expr(a, 0, out);
                }
                out.push(')');
            }
        }
        if paren {
            out.push(')');
        }
    }
}

const PREC_CMP: u8 = 3;
const PREC_UNARY: u8 = 6;

fn expr_prec(e: &Expr) -> u8 {
    match e {
        Expr::Binary(op, ..) => match op {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Gt
            | BinaryOp::Le
            | BinaryOp::Ge => PREC_CMP,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div => 5,
        },
        Expr::Unary(..) => PREC_UNARY,
        _ => 7,
    }
}

fn binop_source(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Lt => "lt",
        BinaryOp::Gt => "gt",
        BinaryOp::Le => "lt_eq",
        BinaryOp::Ge => "gt_eq",
        BinaryOp::And => "and",
        BinaryOp::Or => "or",
    }
}

fn position<'a>(mut names: impl Iterator<Item = &'a str>, name: &str) -> Option<u32> {
    names.position(|n| n == name).map(|i| i as u32)
}

/// `<source type name>`: where the probe reads packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Live interface or trace file.
    pub kind: SourceKind,
    /// Interface name or file path.
    pub name: String,
}

/// Kind of packet source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `type="live"`: capture from an interface.
    Live,
    /// `type="trace"`: replay a pcap file (trace time drives the clock).
    Trace,
}

/// `<publisher protocol ip port>`: the ZeroMQ PUB endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Transport, default `tcp`.
    pub protocol: String,
    /// Address to bind, default `*`.
    pub ip: String,
    /// Port, default 5560.
    pub port: u16,
}

/// What a state shows to `%state.code`, `%state.level` and
/// `%state.description`. Empty strings when not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateInfo {
    /// Short alert code (`A1`).
    pub code: String,
    /// Severity (`INFO`, `LOW`, `WARN`, `HIGH`).
    pub level: String,
    /// Human-readable description.
    pub description: String,
}

/// `<statedef id timeout next_state>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDef {
    /// The state's name (`id` attribute).
    pub name: String,
    /// How long a key may stay in this state without a condition firing,
    /// in seconds of trace time; `None` = forever.
    pub timeout_s: Option<f64>,
    /// Where a key goes when `timeout_s` runs out (the initial state when
    /// the program does not say).
    pub next_state: StateId,
    /// Program-wide `code`/`level`/`description` of the state: the
    /// `<statedef>`'s own attributes, else the first `<state>` element of
    /// any event that gives them.
    pub info: StateInfo,
    /// Where the `<statedef>` is.
    pub loc: Loc,
}

/// `<metric>`: a variation detector and/or a variation monitor.
///
/// At least one of the two is present.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name.
    pub name: String,
    /// The variation detector, when `status="on"`.
    pub detector: Option<VariationDetector>,
    /// The variation monitor, when `status="on"`.
    pub monitor: Option<VariationMonitor>,
    /// Where the `<metric>` is.
    pub loc: Loc,
}

/// A variation detector: a two-generation Bloom filter pair answering
/// "was this key seen recently?".
#[derive(Debug, Clone, PartialEq)]
pub struct VariationDetector {
    /// log2 of the bits of each filter (`size`, default 20, 9..=30).
    pub size_log2: u8,
    /// Hash functions per key (`nhash`, default 8, 1..=16).
    pub nhash: u8,
    /// Clear the filter every this many seconds (`reset_after`).
    pub reset_after_s: Option<f64>,
    /// A metric whose detector swaps generations whenever this one does
    /// (`slave`, legacy).
    pub slave: Option<MetricId>,
}

/// A variation monitor: a counter or rate estimator per key.
#[derive(Debug, Clone, PartialEq)]
pub struct VariationMonitor {
    /// The kind and its sizes.
    pub kind: MonitorKind,
    /// What one update adds (`insert_value`, default the constant 1).
    pub insert_value: InsertValue,
}

/// What a variation monitor update adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertValue {
    /// A positive integer constant.
    Const(u64),
    /// The value of a numeric packet field (e.g. `ip_len` for byte counts).
    Field(Field),
}

/// The variation monitor types.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorKind {
    /// `tewma`: time-decaying counting Bloom filter (approximate, per key);
    /// the value estimates the key's rate in insert units per second.
    Tewma {
        /// Time constant.
        decay: Decay,
        /// log2 of the cells per row (`size`, default 17).
        size_log2: u8,
        /// Rows / hash functions (`nhash`, default 4).
        nhash: u8,
    },
    /// `tewma-fast`: exact per-key exponentially decaying rate, same
    /// meaning as `tewma`.
    TewmaFast {
        /// Time constant.
        decay: Decay,
        /// Exact table geometry.
        table: TableGeometry,
    },
    /// `dleft`: exact per-key counter (no decay).
    DLeft {
        /// Exact table geometry.
        table: TableGeometry,
    },
    /// `simple`: one global counter; keys are ignored.
    Simple,
    /// `sliding`: exact per-key count over the last `window_s` seconds.
    Sliding {
        /// Window length in seconds.
        window_s: f64,
        /// Exact table geometry.
        table: TableGeometry,
    },
    /// `countmin`: count-min sketch, approximate per-key counter (never
    /// under-estimates).
    CountMin {
        /// log2 of the counters per row (`size`, default 16).
        size_log2: u8,
        /// Rows (`nhash`, default 4).
        nhash: u8,
        /// Conservative update (`conservative="true"`).
        conservative: bool,
    },
    /// `hll`: HyperLogLog, one global distinct counter: `vm_set` inserts
    /// the key, `vm_get` (any key) reads the estimated number of distinct
    /// keys inserted.
    Hll {
        /// log2 of the registers (`size`, 4..=14, default 12).
        precision: u8,
    },
}

impl MonitorKind {
    /// The type name as written in programs (`tewma`, `dleft`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            MonitorKind::Tewma { .. } => "tewma",
            MonitorKind::TewmaFast { .. } => "tewma-fast",
            MonitorKind::DLeft { .. } => "dleft",
            MonitorKind::Simple => "simple",
            MonitorKind::Sliding { .. } => "sliding",
            MonitorKind::CountMin { .. } => "countmin",
            MonitorKind::Hll { .. } => "hll",
        }
    }
}

/// Geometry of an exact per-key table: `2^size_log2` buckets of `ways` slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableGeometry {
    /// log2 of the buckets (`size`, default 16).
    pub size_log2: u8,
    /// Slots per bucket (`ways`, default 4).
    pub ways: u8,
}

impl TableGeometry {
    /// Number of keys the table can hold.
    pub fn capacity(&self) -> u64 {
        (1u64 << self.size_log2) * u64::from(self.ways)
    }
}

/// Decay of the `tewma` and `tewma-fast` monitors, from `window` and
/// `legacy_window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decay {
    /// The `window` attribute, seconds.
    pub window_s: f64,
    /// `legacy_window="true"`: the original's β = 1 − 2/(window/6 + 1).
    pub legacy: bool,
}

impl Decay {
    /// The decay rate λ per second: each update adds `q·λ`, and the value
    /// decays as `e^(−λ·Δt)`, so the value estimates the rate in units of
    /// `q` per second.
    pub fn lambda_per_s(&self) -> f64 {
        if self.legacy {
            let beta = 1.0 - 2.0 / (self.window_s / 6.0 + 1.0);
            -beta.ln()
        } else {
            1.0 / self.window_s
        }
    }

    /// The time constant τ = 1/λ in seconds (`window` itself unless legacy).
    pub fn tau_s(&self) -> f64 {
        1.0 / self.lambda_per_s()
    }
}

/// `<table>`: a secondary key → number table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// The `type` attribute (`DLeft` or `Map`); both are exact tables.
    pub kind: TableKind,
    /// What the values are; writes to integer tables truncate toward zero.
    pub value_type: ValueType,
    /// Exact table geometry (`size`/`ways`, legacy `shash`/`nhash`).
    pub geometry: TableGeometry,
    /// Where the `<table>` is.
    pub loc: Loc,
}

/// The `type` of a `<table>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `DLeft` (the default).
    DLeft,
    /// `Map`.
    Map,
}

/// The `value_type` of a `<table>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Signed integers (`int`, `int32_t`, `long`, …).
    Int,
    /// Unsigned integers (`uint32_t`, `unsigned`, …); negative writes store 0.
    UInt,
    /// Floating point (`double`, `float`).
    Double,
}

/// `<feature name body>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The feature's name.
    pub name: String,
    /// Its value; refers only to metrics, fields, tables and earlier features.
    pub body: Expr,
    /// Where the `body` attribute is.
    pub loc: Loc,
}

/// A timeout class, declared by a timeout event.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeoutClass {
    /// The class name.
    pub name: String,
    /// Index into [`Program::events`] of the timeout event handling it.
    pub event: usize,
}

/// A packet field key: one field or a composite `ip_src-ip_dst-dst_port`
/// (1 to [`crate::limits::MAX_KEY_FIELDS`] fields, in order).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The fields, in key order.
    pub fields: Vec<Field>,
}

impl Key {
    /// The key's *shape*: the types of its fields, in order.
    ///
    /// Keys compare by value, not by field name: `ip_src` of one packet and
    /// `ip_dst` of another are the same key value when the addresses are
    /// equal, which is how one host is followed as sender and as receiver.
    /// Per-flow state is kept per shape, so values of different shapes
    /// never collide.
    pub fn shape(&self) -> Vec<FieldType> {
        self.fields.iter().map(|f| f.field_type()).collect()
    }

    /// True if the two keys have the same shape (see [`Key::shape`]).
    pub fn same_shape(&self, other: &Key) -> bool {
        self.shape() == other.shape()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(field.name())?;
        }
        Ok(())
    }
}

/// `<event>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Packet or timeout event.
    pub kind: EventKind,
    /// What the event does in each state: indexed by [`StateId`], `None`
    /// where the event has no `<state>` for it (the event then does
    /// nothing for keys in that state).
    pub behaviours: Vec<Option<StateBehaviour>>,
    /// Where the `<event>` is.
    pub loc: Loc,
}

impl Event {
    /// The behaviour of the event in `state`.
    pub fn behaviour(&self, state: StateId) -> Option<&StateBehaviour> {
        self.behaviours.get(state.index()).and_then(Option::as_ref)
    }

    /// The key the event's FSM state is looked up with: the packet event's
    /// primary key, or the timeout event's declared one.
    pub fn primary_key(&self) -> Option<&Key> {
        match &self.kind {
            EventKind::Packet { primary_key, .. } => Some(primary_key),
            EventKind::Timeout { primary_key, .. } => primary_key.as_ref(),
            EventKind::Message { primary_key, .. } => Some(primary_key),
        }
    }
}

/// Packet, timeout or message event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `type="packet"`: runs for packets that match `selector` (and no
    /// earlier packet event).
    Packet {
        /// Which packets.
        selector: Selector,
        /// The key of the per-flow state.
        primary_key: Key,
    },
    /// `type="timeout"`: runs when a timeout of `class` fires, with the
    /// key it was armed with.
    Timeout {
        /// The class this event handles.
        class: TimeoutClassId,
        /// The declared key, if any; every `timeout_set` of the class then
        /// uses this key shape.
        primary_key: Option<Key>,
    },
    /// `type="message"`: runs for messages received from other probes
    /// (probe chaining) whose topic is `topic` and that match `selector`
    /// (and no earlier message event).
    Message {
        /// The topic the message must have (exactly).
        topic: String,
        /// Which messages, over the `msg_*` fields and the message's key
        /// fields.
        selector: Selector,
        /// The key of the per-flow state.
        primary_key: Key,
    },
}

/// What an event does for a key in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateBehaviour {
    /// The state.
    pub state: StateId,
    /// `%state.*` values for this event and state.
    pub info: StateInfo,
    /// Metric operations, in document order; they run before the
    /// conditions.
    pub use_metrics: Vec<UseMetric>,
    /// Conditions in document order; the first that holds fires.
    pub conditions: Vec<Condition>,
    /// Actions run after the conditions, whether or not one fired.
    pub post_actions: Vec<Action>,
    /// Where the `<state>` is.
    pub loc: Loc,
}

/// `<use-metric>`: which keys a metric is read and updated with.
///
/// `vd_update`/`vm_update` in the program set both the get and the set key.
#[derive(Debug, Clone, PartialEq)]
pub struct UseMetric {
    /// The metric.
    pub metric: MetricId,
    /// Detector lookup key: the metric reads 1 if seen, else 0; with a
    /// monitor, the monitor is updated only when the key is new.
    pub vd_get: Option<Key>,
    /// Detector insert key.
    pub vd_set: Option<Key>,
    /// Monitor read key: the metric's value.
    pub vm_get: Option<Key>,
    /// Monitor update key.
    pub vm_set: Option<Key>,
}

/// `<condition expression action next_state>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Fires when non-zero.
    pub expr: Expr,
    /// Run when it fires, in order (the `action` list, then the
    /// `<timeout_set>` children).
    pub actions: Vec<Action>,
    /// Where the key goes when it fires; `None` = stay.
    pub next_state: Option<StateId>,
    /// Where the `expression` attribute is.
    pub loc: Loc,
}

/// An expression: features, conditions, table-update right-hand sides.
///
/// Values are `f64`. Booleans are 1.0/0.0 and any non-zero value is true.
/// Division by zero and `log`/`sqrt` outside their domain yield 0 (the
/// runtime counts them); nothing yields NaN or infinity from finite input.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number (`true` is 1, `false` 0).
    Const(f64),
    /// A feature's value.
    Feature(FeatureId),
    /// A metric's value in this pass.
    Metric(MetricId),
    /// A numeric packet field (of the packet, or the timeout's context).
    Field(Field),
    /// `msg.NAME`: feature `NAME` of the message of a message event
    /// (index into [`Program::msg_features`]); 0 when the message has no
    /// such feature or the pass is not a message's.
    MsgFeature(u32),
    /// A table read; a missing entry reads 0.
    Table(TableId, Key),
    /// A knowledge-store read (`kv(name)`, `kv_exists(name)`), served from
    /// the runtime's lookup cache; a missing key reads 0.
    Store(StoreRead, StoreName),
    /// A unary operation.
    Unary(UnaryOp, Box<Expr>),
    /// A binary operation (`And`/`Or` short-circuit).
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// A call of a built-in function, with its arguments (arity checked).
    Call(Func, Vec<Expr>),
}

impl Expr {
    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Unary(_, e) => e.visit(f),
            Expr::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.visit(f)),
            _ => {}
        }
    }
}

/// What a knowledge-store read gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRead {
    /// `kv(name)`: the value as a number; 0 when the key is missing, is
    /// not a number, or the store cannot answer.
    Value,
    /// `kv_exists(name)`: 1 if the key exists, else 0.
    Exists,
}

impl StoreRead {
    /// The function name as written in programs.
    pub fn func_name(self) -> &'static str {
        match self {
            StoreRead::Value => "kv",
            StoreRead::Exists => "kv_exists",
        }
    }
}

/// A key name in the knowledge store, built per pass: `streamon:<probe>:`
/// followed by the segments, each substituted value escaped
/// (`streamon_microcloud::names`). `ip:%ip_src:dns.queries` is
/// `streamon:<probe>:ip:192.0.2.7:dns.queries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName {
    /// `@probe:`: another probe's tree; `None` is this probe's (its
    /// `%client.id`).
    pub probe: Option<String>,
    /// The segments after the probe id, each one or more parts
    /// concatenated.
    pub segments: Vec<Vec<NamePart>>,
}

impl StoreName {
    /// The fields the name substitutes, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.segments.iter().flatten().filter_map(|p| match p {
            NamePart::Field(f) => Some(*f),
            _ => None,
        })
    }
}

/// Writes the name back as written in programs.
impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.probe {
            write!(f, "@{p}:")?;
        }
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            for part in seg {
                match part {
                    NamePart::Literal(s) => f.write_str(s)?,
                    NamePart::Field(field) => write!(f, "%{}", field.name())?,
                    NamePart::Key => f.write_str("%key")?,
                    NamePart::App => f.write_str("%app")?,
                }
            }
        }
        Ok(())
    }
}

/// A part of a [`StoreName`] segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePart {
    /// Text kept as is (it holds no `:`, `%`, blank or glob character).
    Literal(String),
    /// `%field`: the packet's value (address, decimal, string), escaped.
    /// A pass whose packet lacks the field writes nothing (counted).
    Field(Field),
    /// `%key`: the event's key, fields joined by `-`, escaped.
    Key,
    /// `%app`: the application's name, escaped.
    App,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `not x`, `!x`: 1 if x is 0, else 0.
    Not,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/` (x/0 = 0).
    Div,
    /// `==`, `eq`.
    Eq,
    /// `!=`, `neq`.
    Ne,
    /// `<`, `lt`.
    Lt,
    /// `>`, `gt`.
    Gt,
    /// `<=`, `lt_eq`.
    Le,
    /// `>=`, `gt_eq`.
    Ge,
    /// `and`, `&&` (short-circuit).
    And,
    /// `or`, `||` (short-circuit).
    Or,
}

/// Built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `abs(x)`.
    Abs,
    /// `min(x, y, …)`, two or more arguments.
    Min,
    /// `max(x, y, …)`, two or more arguments.
    Max,
    /// `log(x)`, natural logarithm; 0 for x ≤ 0.
    Log,
    /// `exp(x)`; saturates at `f64::MAX`.
    Exp,
    /// `sqrt(x)`; 0 for x < 0.
    Sqrt,
}

impl Func {
    /// Looks a function up by name.
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "abs" => Func::Abs,
            "min" => Func::Min,
            "max" => Func::Max,
            "log" => Func::Log,
            "exp" => Func::Exp,
            "sqrt" => Func::Sqrt,
            _ => return None,
        })
    }

    /// The name as written in programs.
    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "abs",
            Func::Min => "min",
            Func::Max => "max",
            Func::Log => "log",
            Func::Exp => "exp",
            Func::Sqrt => "sqrt",
        }
    }
}

/// A packet selector (`selector` attribute of a packet event).
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// Matches every packet (empty selector).
    Always,
    /// One field test.
    Test(FieldTest),
    /// Matches when the inner selector does not. A test on a field the
    /// packet does not have is false, so `not dst_port 80` matches ICMP.
    Not(Box<Selector>),
    /// Matches when all do (two or more).
    And(Vec<Selector>),
    /// Matches when any does (two or more).
    Or(Vec<Selector>),
}

/// One test of a packet field. False when the packet lacks the field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTest {
    /// The field.
    pub field: Field,
    /// The test.
    pub test: Test,
}

/// What is tested of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `field [op] value`; addresses and strings take only `==`/`!=`.
    /// Addresses compare equal only within the same IP version.
    Compare(CmpOp, Value),
    /// `field & mask [op value]`: `(field & mask) op value`; the short form
    /// `field & mask` means `(field & mask) == mask` (all mask bits set).
    Mask {
        /// The mask.
        mask: u64,
        /// The comparison.
        op: CmpOp,
        /// The value compared with the masked field.
        value: u64,
    },
    /// `field in prefix`: the address is inside the CIDR prefix.
    InPrefix(IpPrefix),
}

/// Comparison operators in selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`, `eq`, or no operator.
    Eq,
    /// `!=`, `neq`.
    Ne,
    /// `<`, `lt`.
    Lt,
    /// `>`, `gt`.
    Gt,
    /// `<=`, `lt_eq`.
    Le,
    /// `>=`, `gt_eq`.
    Ge,
}

/// A literal in a selector, typed by the field it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A number or symbol value, for unsigned integer fields.
    UInt(u64),
    /// An IPv4/IPv6 address, for address fields.
    Addr(IpAddr),
    /// A byte string, for string fields (`http-get` is `"GET"`).
    Str(String),
}

/// A CIDR prefix, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl IpPrefix {
    /// True if `ip` is inside the prefix (always false across versions).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An action (`action`/`do` lists, `<timeout_set>` elements).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `Publish(topic, text)`: send `[topic][text]` on the publisher. The
    /// topic `raw` sends the raw packet bytes instead of the text.
    Publish {
        /// The topic.
        topic: String,
        /// The message.
        text: Template,
    },
    /// `print(text)`: a line on the probe's standard output.
    Print(Template),
    /// `exec(text)`: run a shell command (asynchronously, by the runtime).
    Exec(Template),
    /// `t(key) = expr`, `+=`, `-=`, `*=`, `/=`.
    TableUpdate {
        /// The table.
        table: TableId,
        /// The entry.
        key: Key,
        /// `=` or the compound operator.
        op: AssignOp,
        /// The right-hand side.
        value: Expr,
    },
    /// `t.reset()`: empty a table.
    TableReset(TableId),
    /// `m.reset(key)` / `m.reset()`: forget one key (or everything) in a
    /// metric's detector and monitor, immediately.
    MetricReset {
        /// The metric.
        metric: MetricId,
        /// The key; `None` clears the whole metric.
        key: Option<Key>,
    },
    /// `block(key, seconds)`: put the current packet's value of `key` on
    /// the runtime's block list for `seconds`.
    Block {
        /// Which fields identify what is blocked.
        key: Key,
        /// How long, in seconds (> 0).
        seconds: f64,
    },
    /// `unblock(key)`: take the current value of `key` off the block list.
    Unblock {
        /// Which fields identify what is unblocked.
        key: Key,
    },
    /// `timeout_set(class, key, seconds)` / `<timeout_set>`: arm (or re-arm)
    /// a timeout of `class` for the current value of the key; it fires
    /// every `seconds` until cancelled; `seconds == 0` cancels it.
    TimeoutSet {
        /// The timeout class.
        class: TimeoutClassId,
        /// The key; `None` = the current event's key (a packet event's
        /// primary key, or the key the firing timeout was armed with).
        key: Option<Key>,
        /// Period in seconds; 0 cancels.
        seconds: f64,
    },
    /// `kv_set(name, [ttl=s,] text)`: `SET` the key to the text. Without
    /// `ttl` the key is persistent; with it the key expires `ttl_s` seconds
    /// after its last write.
    StoreSet {
        /// The key.
        name: StoreName,
        /// Volatile: seconds after the last write (> 0).
        ttl_s: Option<f64>,
        /// The value.
        value: Template,
    },
    /// `kv_incr(name [, ttl=s] [, expr])`: add `by` (default 1) to the
    /// key (`INCRBY` when integral, else `INCRBYFLOAT`), refreshing the TTL
    /// when volatile.
    StoreIncr {
        /// The key.
        name: StoreName,
        /// Volatile: seconds after the last write (> 0).
        ttl_s: Option<f64>,
        /// The increment.
        by: Expr,
    },
    /// `kv_del(name)`: delete the key now.
    StoreDel {
        /// The key.
        name: StoreName,
    },
    /// `kv_expire(name, seconds)`: deferred deletion (`PEXPIRE`).
    StoreExpire {
        /// The key.
        name: StoreName,
        /// Seconds left (> 0).
        seconds: f64,
    },
    /// `kv_publish(channel, text)`: `PUBLISH` the text on a Redis channel.
    StorePublish {
        /// The channel, named like a key.
        channel: StoreName,
        /// The message.
        text: Template,
    },
    /// A legacy bare action (`Drop`, `DoNothing`, `Export`, `Suspect`):
    /// accepted and does nothing.
    NoOp(LegacyAction),
}

/// The original's bare-name actions, accepted as no-ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyAction {
    /// `Drop`.
    Drop,
    /// `DoNothing`.
    DoNothing,
    /// `Export`.
    Export,
    /// `Suspect`.
    Suspect,
}

/// Table update operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOp {
    /// `=`.
    Set,
    /// `+=` (a missing entry counts as 0).
    Add,
    /// `-=`.
    Sub,
    /// `*=`.
    Mul,
    /// `/=` (division by zero stores 0).
    Div,
}

/// A message text, split into literal text and `%name` substitutions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    /// The parts, in order.
    pub parts: Vec<TemplatePart>,
}

impl Template {
    /// The literal text if the template has no substitutions.
    pub fn as_literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                TemplatePart::Literal(l) => s.push_str(l),
                TemplatePart::Subst(_) | TemplatePart::Store(_) => return None,
            }
        }
        Some(s)
    }
}

/// A part of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Text copied as is (escapes already decoded).
    Literal(String),
    /// A value rendered at run time.
    Subst(Subst),
    /// `%kv(name)`: the knowledge-store value of the key, as text (empty
    /// when missing or when the store cannot answer).
    Store(StoreName),
}

/// What a `%name` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subst {
    /// `%field`: the field's value (dotted/colon address, decimal, string);
    /// empty when the packet lacks it.
    Field(Field),
    /// `%feature`: the feature's value, 6 decimals.
    Feature(FeatureId),
    /// `%metric`: the metric's value in this pass, 6 decimals.
    Metric(MetricId),
    /// `%ts`: the packet's (trace) time, nanoseconds since the epoch.
    Timestamp,
    /// `%key`: the event's key, fields joined by `-`.
    Key,
    /// `%state.code` / `.level` / `.description`: the state before the
    /// transition.
    State(StateAttr),
    /// `%next_state.code` / …: the state after the transition (the same
    /// state when no condition fired or it has no `next_state`).
    NextState(StateAttr),
    /// `%client.id`: the probe's identifier (runtime configuration).
    ProbeId,
    /// `%msg.NAME`: a feature of the message (index into
    /// [`Program::msg_features`]), 6 decimals; empty when absent.
    MsgFeature(u32),
}

/// Which [`StateInfo`] attribute a substitution renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAttr {
    /// `code`.
    Code,
    /// `level`.
    Level,
    /// `description`.
    Description,
}
