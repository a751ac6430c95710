//! One installed application at run time: its metric engine, per-key XFSM
//! states, secondary tables, timers and block list, all private to it.
//!
//! A *pass* runs one event for one key: look the key's state up, emit the
//! state's metric ops and apply them, compute the features, fire the first
//! true condition (actions, then the transition), run the post-condition
//! actions. Packets start passes (first matching packet event, document
//! order); timers start passes too, always before any packet later than
//! them, so a replay gives the same result at any speed.

use std::cell::RefCell;
use std::collections::HashMap;

use ahash::RandomState;
use streamon_contract::{MetricEngine, MetricKind, Op, OpKind, OpResult, Status};
use streamon_lang::{
    Action, AssignOp, EventKind, InsertValue, Key, StateAttr, StateId, Subst, Template,
    TemplatePart, ValueType,
};
use streamon_packet::{parse, Field, FieldValue, FrameMeta, KeyBuf, LinkType, Parsed};

use crate::eval::{self, ArithStats, ExprEnv};
use crate::exec::ExecRunner;
use crate::key::{write_fields, StateKey};
use crate::live::{KeyText, LiveTable, PassRecord};
use crate::message::{FieldSource, Message};
use crate::output::{EventSink, OutputEvent};
use crate::plan::{AppPlan, KeyRef};
use crate::store::{self, AppStore, KnowledgeStore, NameCtx};
use crate::timers::{self, TimerKind, TimerQueue, CATCH_UP_LIMIT};

/// Counters of one application; every packet or op not processed is in
/// one of them (see `docs/counters.md`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AppStats {
    /// Packets that matched each packet event (by event index).
    pub matched: Vec<u64>,
    /// Packets no packet event matched.
    pub unmatched: u64,
    /// Messages (from other probes) no message event matched.
    pub messages_unmatched: u64,
    /// Packets or messages whose primary key could not be built (a key
    /// field absent).
    pub no_key: u64,
    /// Passes for a key in a state the event has no `<state>` for.
    pub no_behaviour: u64,
    /// Packets dropped by the block list.
    pub blocked: u64,
    /// Ops not emitted because a key field was absent.
    pub ops_missing_key: u64,
    /// Ops the engine rejected, by status name.
    pub op_errors: HashMap<String, u64>,
    /// Exact-table evictions reported by the engine.
    pub evictions: u64,
    /// Conditions that fired.
    pub transitions: u64,
    /// Timeout events fired.
    pub timeouts_fired: u64,
    /// Timeout events whose stored context could not be parsed again.
    pub timeout_context_lost: u64,
    /// State timeouts that moved a key on.
    pub state_expiries: u64,
    /// Firings of periodic timeouts skipped because trace time jumped over
    /// more of their periods than are caught up one by one
    /// ([`crate::timers::CATCH_UP_LIMIT`]; `docs/probe.md`, "Time jumps").
    pub timeouts_skipped: u64,
    /// State expiries computed without being fired one by one: a key whose
    /// state timeouts form a cycle expired more than the catch-up limit in
    /// one time jump; its state at the new time was computed.
    pub state_expiries_skipped: u64,
    /// Timers not armed because they would be due past the last
    /// representable instant (`u64::MAX` ns, year 2554): a huge period, or
    /// a capture stamped near the end of time.
    pub timers_beyond_end: u64,
    /// Packets and messages older than the application's latest time (an
    /// out-of-order capture, a clock stepped back). A packet runs at its own
    /// time, a message at the latest time; timers already fired stay fired.
    pub time_backwards: u64,
    /// Events published, by topic.
    pub published: HashMap<String, u64>,
    /// Table writes refused because the table was full.
    pub table_full: u64,
    /// `exec` actions not run because exec is disabled.
    pub exec_disabled: u64,
    /// `exec` actions dropped because the queue was full.
    pub exec_dropped: u64,
    /// Metric resets a metric cannot do (one key of a detector or HLL).
    pub resets_unsupported: u64,
    /// Knowledge-store writes queued for the writer.
    pub kv_writes: u64,
    /// Knowledge-store writes dropped because the writer's queue was full
    /// (Redis slow or down).
    pub kv_dropped: u64,
    /// Store actions and reads skipped because the packet lacks a field of
    /// the key name.
    pub kv_missing_field: u64,
    /// Store reads (`kv`, `kv_exists`, `%kv`), from the cache or Redis.
    pub kv_reads: u64,
    /// Store reads Redis could not answer (timeout, down, wrong type): they
    /// read as missing.
    pub kv_read_errors: u64,
    /// Store actions not run because the probe has no store (`--redis`).
    pub kv_disabled: u64,
    /// Arithmetic defined rather than computed.
    pub arith: ArithStats,
}

struct StateEntry {
    state: StateId,
    /// Sequence of the live expiry timer, 0 when none.
    expiry_seq: u64,
}

struct TimeoutRecord {
    period_ns: u64,
    seq: u64,
    /// The packet or message that last armed it: `%field` and keys in the
    /// timeout pass read it.
    ctx: CtxRecord,
}

/// A copy of a pass's context, kept by a timeout.
#[derive(Clone)]
enum CtxRecord {
    Packet {
        frame: Box<[u8]>,
        linktype: LinkType,
        meta: FrameMeta,
    },
    Message(Box<Message>),
}

/// What a pass reads its fields from.
#[derive(Clone, Copy)]
enum Ctx<'p, 'a> {
    Packet(&'p Parsed<'a>),
    Message(&'p Message),
}

impl FieldSource for Ctx<'_, '_> {
    #[inline]
    fn field(&self, f: Field) -> Option<FieldValue<'_>> {
        match self {
            Ctx::Packet(p) => p.get(f),
            Ctx::Message(m) => m.field(f),
        }
    }
}

impl Ctx<'_, '_> {
    #[inline]
    fn get(&self, f: Field) -> Option<FieldValue<'_>> {
        self.field(f)
    }

    /// The packet bytes (`Publish(raw, …)`); a message has none.
    fn frame(&self) -> Option<&[u8]> {
        match self {
            Ctx::Packet(p) => Some(p.frame()),
            Ctx::Message(_) => None,
        }
    }

    fn packet_no(&self) -> u64 {
        match self {
            Ctx::Packet(p) => p.meta().packet_no,
            Ctx::Message(_) => 0,
        }
    }

    fn record(&self) -> CtxRecord {
        match self {
            Ctx::Packet(p) => CtxRecord::Packet {
                frame: p.frame().into(),
                linktype: p.linktype(),
                meta: p.meta(),
            },
            Ctx::Message(m) => CtxRecord::Message(Box::new((*m).clone())),
        }
    }
}

/// Options of a runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Run `exec(...)` actions (off by default).
    pub allow_exec: bool,
    /// `%client.id`.
    pub probe_id: String,
    /// The knowledge store `kv_*` actions write to and `kv(…)` reads from;
    /// `None`: store actions are counted in `kv_disabled` and reads give 0.
    pub store: Option<KnowledgeStore>,
    /// Keep the last pass of this many keys for the live view
    /// ([`crate::live`], the RESP server); 0 (the default) keeps none.
    pub live_keys: usize,
}

/// An application at run time.
pub struct AppRuntime {
    plan: AppPlan,
    engine: Box<dyn MetricEngine + Send>,
    states: HashMap<StateKey, StateEntry, RandomState>,
    tables: Vec<HashMap<StateKey, f64, RandomState>>,
    timers: TimerQueue,
    /// Firings of each timer in the current [`AppRuntime::advance_to`]
    /// (the catch-up bound); cleared when an advance starts.
    fired_in_advance: HashMap<TimerKind, u64, RandomState>,
    timeouts: HashMap<(u32, StateKey), TimeoutRecord, RandomState>,
    blocks: HashMap<StateKey, u64, RandomState>,
    next_vd_reset: Vec<Option<u64>>,
    exec: Option<ExecRunner>,
    /// Behind a `RefCell` because expressions read the store through a
    /// shared borrow of the runtime; never shared between threads.
    store: Option<RefCell<AppStore>>,
    live: Option<LiveTable>,
    options: RuntimeOptions,
    stats: AppStats,
    // Scratch reused by every pass: the per-packet path allocates nothing.
    ops: Vec<Op>,
    op_source: Vec<usize>,
    results: Vec<OpResult>,
    metric_values: Vec<f64>,
    feature_values: Vec<f64>,
    keybuf: KeyBuf,
    last_ts: u64,
}

/// The pass being run.
struct Pass<'p, 'a> {
    event: usize,
    key: StateKey,
    ctx: Ctx<'p, 'a>,
    ts: u64,
    state: StateId,
}

impl AppRuntime {
    /// Starts an installed application on `engine` (built from
    /// `plan.metric_plans`).
    pub fn new(
        plan: AppPlan,
        engine: Box<dyn MetricEngine + Send>,
        options: RuntimeOptions,
    ) -> Self {
        let n_events = plan.program.events.len();
        let n_metrics = plan.slots.len();
        let n_features = plan.program.features.len();
        let tables = plan
            .program
            .tables
            .iter()
            .map(|_| HashMap::with_hasher(RandomState::new()))
            .collect();
        AppRuntime {
            stats: AppStats {
                matched: vec![0; n_events],
                ..AppStats::default()
            },
            next_vd_reset: vec![None; n_metrics],
            exec: options.allow_exec.then(ExecRunner::start),
            store: options.store.as_ref().map(|s| RefCell::new(s.for_app())),
            live: (options.live_keys > 0)
                .then(|| LiveTable::new(options.live_keys, n_metrics, n_features)),
            options,
            engine,
            states: HashMap::with_hasher(RandomState::new()),
            tables,
            timers: TimerQueue::default(),
            fired_in_advance: HashMap::with_hasher(RandomState::new()),
            timeouts: HashMap::with_hasher(RandomState::new()),
            blocks: HashMap::with_hasher(RandomState::new()),
            ops: Vec::with_capacity(64),
            op_source: Vec::with_capacity(64),
            results: Vec::with_capacity(64),
            metric_values: vec![0.0; n_metrics],
            feature_values: vec![0.0; n_features],
            keybuf: KeyBuf::new(),
            last_ts: 0,
            plan,
        }
    }

    /// The installed plan.
    pub fn plan(&self) -> &AppPlan {
        &self.plan
    }

    /// The application's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// Counters so far.
    pub fn stats(&self) -> AppStats {
        let mut s = self.stats.clone();
        if let Some(e) = &self.exec {
            s.exec_dropped = e.dropped;
        }
        if let Some(st) = &self.store {
            let c = st.borrow().counters;
            s.kv_writes = c.writes;
            s.kv_dropped = c.dropped;
            s.kv_missing_field = c.missing_field;
            s.kv_reads = c.reads;
            s.kv_read_errors = c.read_errors;
        }
        s
    }

    /// The metric engine (for dumps and equivalence checks).
    pub fn engine(&self) -> &dyn MetricEngine {
        &*self.engine
    }

    /// Number of keys with a non-initial state.
    pub fn tracked_keys(&self) -> usize {
        self.states.len()
    }

    /// The state name of a key (initial state when untracked).
    pub fn state_of(&self, key: &StateKey) -> &str {
        let s = self.states.get(key).map(|e| e.state).unwrap_or(StateId(0));
        &self.plan.program.states[s.index()].name
    }

    /// Runs every timer due at or before `now` (trace time), within the
    /// catch-up bound ([`CATCH_UP_LIMIT`]; `docs/probe.md`, "Time jumps").
    pub fn advance_to(&mut self, now: u64, sink: &mut dyn EventSink) {
        if !self.fired_in_advance.is_empty() {
            self.fired_in_advance.clear();
        }
        while let Some((due, seq, kind)) = self.timers.pop_due(now) {
            match kind {
                TimerKind::StateExpiry(key) => self.expire_state(key, seq, due, now),
                TimerKind::Timeout(class, key) => {
                    self.fire_timeout(class, key, seq, due, now, sink)
                }
            }
        }
        self.last_ts = self.last_ts.max(now);
    }

    /// Processes one parsed packet.
    pub fn packet(&mut self, p: &Parsed<'_>, sink: &mut dyn EventSink) {
        let ts = p.ts_ns();
        if ts < self.last_ts {
            self.stats.time_backwards += 1;
        }
        self.advance_to(ts, sink);
        self.reset_detectors(ts);
        if !self.blocks.is_empty() && self.is_blocked(p, ts) {
            self.stats.blocked += 1;
            return;
        }
        let event = self.plan.program.events.iter().position(|e| match &e.kind {
            EventKind::Packet { selector, .. } => eval::matches(selector, p),
            EventKind::Timeout { .. } | EventKind::Message { .. } => false,
        });
        let Some(event) = event else {
            self.stats.unmatched += 1;
            return;
        };
        self.stats.matched[event] += 1;
        let kref = self.plan.primary_keys[event].expect("packet events have a primary key");
        let Some(key) = self.build_key(kref, p) else {
            self.stats.no_key += 1;
            return;
        };
        self.run_pass(event, key, Ctx::Packet(p), ts, sink);
    }

    /// Processes one message from another probe: the first message event
    /// of its topic whose selector matches runs, at the message's time
    /// (never earlier than this application's latest time; see
    /// [`crate::message`]).
    pub fn message(&mut self, m: &Message, sink: &mut dyn EventSink) {
        if m.ts < self.last_ts {
            self.stats.time_backwards += 1;
        }
        let ts = m.ts.max(self.last_ts);
        self.advance_to(ts, sink);
        self.reset_detectors(ts);
        let event = self.plan.program.events.iter().position(|e| match &e.kind {
            EventKind::Message {
                topic, selector, ..
            } => *topic == m.topic && eval::matches(selector, m),
            EventKind::Packet { .. } | EventKind::Timeout { .. } => false,
        });
        let Some(event) = event else {
            self.stats.messages_unmatched += 1;
            return;
        };
        self.stats.matched[event] += 1;
        let kref = self.plan.primary_keys[event].expect("message events have a primary key");
        let Some(key) = self.build_key(kref, m) else {
            self.stats.no_key += 1;
            return;
        };
        self.run_pass(event, key, Ctx::Message(m), ts, sink);
    }

    /// The topics of this application's message events (what a probe
    /// running it subscribes to).
    pub fn message_topics(&self) -> impl Iterator<Item = &str> {
        self.plan
            .program
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Message { topic, .. } => Some(topic.as_str()),
                _ => None,
            })
    }

    /// End of input: counts what is still pending (timers later than the
    /// last packet never fire: the trace has no time after it).
    pub fn finish(&mut self) -> usize {
        if let Some(e) = &mut self.exec {
            e.finish();
        }
        self.timeouts.len()
    }

    fn build_key<S: FieldSource + ?Sized>(&mut self, k: KeyRef, p: &S) -> Option<StateKey> {
        let fields = &self.plan.keys[k.0 as usize].fields;
        if !write_fields(p, fields, &mut self.keybuf) {
            return None;
        }
        Some(StateKey::from_bytes(
            self.plan.shape_of[k.0 as usize],
            self.keybuf.as_bytes(),
        ))
    }

    fn is_blocked(&mut self, p: &Parsed<'_>, ts: u64) -> bool {
        for i in 0..self.plan.block_keys.len() {
            let k = self.plan.block_keys[i];
            if let Some(key) = self.build_key(k, p) {
                if let Some(&until) = self.blocks.get(&key) {
                    if until > ts {
                        return true;
                    }
                    self.blocks.remove(&key);
                }
            }
        }
        false
    }

    /// `reset_after`: clear a detector when its period has passed.
    fn reset_detectors(&mut self, ts: u64) {
        for m in 0..self.plan.slots.len() {
            let (Some(period), Some(vd)) = (
                self.plan.slots[m].reset_after_ns,
                self.plan.slots[m].detector,
            ) else {
                continue;
            };
            match self.next_vd_reset[m] {
                None => self.next_vd_reset[m] = Some(ts.saturating_add(period)),
                Some(at) if ts > at => {
                    let op = Op::new(vd, OpKind::Clear, &[], 0, ts).expect("empty key");
                    self.engine.apply_one(&op);
                    self.next_vd_reset[m] = Some(ts.saturating_add(period));
                }
                _ => {}
            }
        }
    }

    fn expire_state(&mut self, key: StateKey, seq: u64, due: u64, now: u64) {
        let Some(entry) = self.states.get(&key) else {
            return;
        };
        if entry.expiry_seq != seq {
            return;
        }
        let from = entry.state;
        let fired = self
            .fired_in_advance
            .entry(TimerKind::StateExpiry(key))
            .or_insert(0);
        if *fired >= CATCH_UP_LIMIT {
            // State timeouts that lead back to each other (a cycle that
            // never reaches the initial state) would expire once per lap
            // through the whole jump: compute where the key is instead.
            self.fast_forward_state(key, from, due, now);
            return;
        }
        *fired += 1;
        let next = self.plan.program.states[from.index()].next_state;
        self.stats.state_expiries += 1;
        self.set_state(key, next, due);
    }

    /// The state's timeout in nanoseconds (`None`: it has none).
    fn state_timeout_ns(&self, s: StateId) -> Option<u64> {
        self.plan.program.states[s.index()]
            .timeout_s
            .map(timers::duration_ns)
    }

    /// Moves `key`, which leaves `from` at `due`, along its states' timeouts
    /// to where it is at `now`, without firing each expiry: laps of a cycle
    /// of timeouts are skipped by arithmetic, the rest (less than one lap)
    /// walked. Each expiry so passed is counted in `state_expiries_skipped`.
    fn fast_forward_state(&mut self, key: StateKey, from: StateId, due: u64, now: u64) {
        let n_states = self.plan.program.states.len();
        // When the key last entered each state (time, steps): finds the
        // cycle. Allocated only on this rare path.
        let mut entered: Vec<Option<(u64, u64)>> = vec![None; n_states];
        let mut lapped = false;
        let (mut s, mut t, mut steps) = (from, due, 0u64);
        loop {
            // `s` expires at `t` (<= now): the key enters `next` at `t`.
            let next = self.plan.program.states[s.index()].next_state;
            steps += 1;
            if next == StateId(0) {
                break;
            }
            let Some(d) = self.state_timeout_ns(next) else {
                break;
            };
            if !lapped {
                if let Some((t0, steps0)) = entered[next.index()] {
                    // Every timeout is at least 1 ns, so a lap takes time.
                    let lap = t - t0;
                    let laps = (now - t) / lap;
                    t += laps * lap;
                    steps += laps * (steps - steps0);
                    lapped = true;
                } else {
                    entered[next.index()] = Some((t, steps));
                }
            }
            match timers::due_after(t, d) {
                Some(t2) if t2 <= now => {
                    s = next;
                    t = t2;
                }
                // Due after `now` or never: the key stays in `next`.
                _ => break,
            }
        }
        let next = self.plan.program.states[s.index()].next_state;
        self.stats.state_expiries_skipped += steps;
        self.set_state(key, next, t);
    }

    fn fire_timeout(
        &mut self,
        class: u32,
        key: StateKey,
        seq: u64,
        due: u64,
        now: u64,
        sink: &mut dyn EventSink,
    ) {
        let Some(rec) = self.timeouts.get(&(class, key)) else {
            return;
        };
        if rec.seq != seq {
            return;
        }
        let period = rec.period_ns;
        let kind = TimerKind::Timeout(class, key);
        let fired = self.fired_in_advance.get(&kind).copied().unwrap_or(0);
        // The catch-up rule (docs/probe.md, "Time jumps"): at most
        // CATCH_UP_LIMIT firings per advance, each at its own time. A jump
        // that would take more is not caught up: the timeout's first due
        // firing runs (the period that ended with the last packets before
        // the jump); when it comes due again in the same advance (re-armed
        // by this code or by its own pass), every firing due up to `now`
        // is skipped and it goes on after `now`.
        let (run, next) = if fired == 0 {
            (true, timers::due_after(due, period))
        } else {
            let (due_now, after_now) = timers::periods_due(due, period, now);
            if fired.saturating_add(due_now) <= CATCH_UP_LIMIT {
                (true, timers::due_after(due, period))
            } else {
                self.stats.timeouts_skipped += due_now;
                (false, after_now)
            }
        };
        // Periodic until cancelled: re-arm before the pass, so the pass may
        // cancel or re-arm it.
        let ctx = match next {
            Some(next) => {
                let new_seq = self.timers.arm(next, kind);
                let rec = self
                    .timeouts
                    .get_mut(&(class, key))
                    .expect("looked up above");
                rec.seq = new_seq;
                run.then(|| rec.ctx.clone())
            }
            None => {
                // The next period ends past the end of time: this firing is
                // the last.
                self.stats.timers_beyond_end += 1;
                self.timeouts.remove(&(class, key)).map(|r| r.ctx)
            }
        };
        let Some(ctx) = ctx.filter(|_| run) else {
            return;
        };
        *self.fired_in_advance.entry(kind).or_insert(0) += 1;
        self.stats.timeouts_fired += 1;
        let event = self.plan.program.timeout_classes[class as usize].event;
        match &ctx {
            CtxRecord::Packet {
                frame,
                linktype,
                meta,
            } => match parse(frame, *linktype, *meta) {
                Ok(p) => self.run_pass(event, key, Ctx::Packet(&p), due, sink),
                Err(_) => self.stats.timeout_context_lost += 1,
            },
            CtxRecord::Message(m) => self.run_pass(event, key, Ctx::Message(m), due, sink),
        }
    }

    fn set_state(&mut self, key: StateKey, to: StateId, now: u64) {
        if to == StateId(0) {
            self.states.remove(&key);
            return;
        }
        let expiry_seq = match self.state_timeout_ns(to) {
            Some(d) => match timers::due_after(now, d) {
                Some(at) => self.timers.arm(at, TimerKind::StateExpiry(key)),
                None => {
                    self.stats.timers_beyond_end += 1;
                    0
                }
            },
            None => 0,
        };
        self.states.insert(
            key,
            StateEntry {
                state: to,
                expiry_seq,
            },
        );
    }

    fn run_pass(
        &mut self,
        event: usize,
        key: StateKey,
        ctx: Ctx<'_, '_>,
        ts: u64,
        sink: &mut dyn EventSink,
    ) {
        let state = self.states.get(&key).map(|e| e.state).unwrap_or(StateId(0));
        let pass = Pass {
            event,
            key,
            ctx,
            ts,
            state,
        };
        if self.plan.behaviours[event][state.index()].is_none() {
            self.stats.no_behaviour += 1;
            return;
        }
        self.run_metrics(&pass);
        let mut arith = ArithStats::default();
        // Features, in order (each may use the ones before it).
        for i in 0..self.plan.program.features.len() {
            let v = {
                let env = Env {
                    rt: self,
                    ctx,
                    event: pass.event,
                    key: &pass.key,
                };
                eval::eval(&self.plan.program.features[i].body, &env, &mut arith)
            };
            self.feature_values[i] = v;
        }
        let behaviour = self.plan.program.events[event]
            .behaviour(state)
            .expect("checked above");
        let fired = behaviour.conditions.iter().position(|c| {
            let env = Env {
                rt: self,
                ctx,
                event: pass.event,
                key: &pass.key,
            };
            eval::eval(&c.expr, &env, &mut arith) != 0.0
        });
        let next = fired
            .and_then(|i| behaviour.conditions[i].next_state)
            .unwrap_or(state);
        // Actions need &mut self: walk them by index on a cloned list is an
        // allocation; index into the program instead.
        if let Some(ci) = fired {
            self.stats.transitions += 1;
            let n = self.plan.program.events[event]
                .behaviour(state)
                .expect("checked")
                .conditions[ci]
                .actions
                .len();
            for ai in 0..n {
                self.run_action(&pass, next, ActionAt::Condition(ci, ai), sink, &mut arith);
            }
        }
        let n = self.plan.program.events[event]
            .behaviour(state)
            .expect("checked")
            .post_actions
            .len();
        for ai in 0..n {
            self.run_action(&pass, next, ActionAt::Post(ai), sink, &mut arith);
        }
        self.stats.arith.div_by_zero += arith.div_by_zero;
        self.stats.arith.domain_errors += arith.domain_errors;
        if fired.is_some() {
            let cur = self.states.get(&key).map(|e| e.state).unwrap_or(StateId(0));
            // A transition (or a condition firing in a state with a timeout)
            // (re)starts the state's timeout, as in the original.
            if next != cur || self.plan.program.states[next.index()].timeout_s.is_some() {
                self.set_state(key, next, ts);
            }
        }
        if self.live.is_some() {
            self.record_live(&pass);
        }
    }

    /// Leaves the pass in the live table (no allocation: the key text is
    /// written into the table's slot when the key enters).
    fn record_live(&mut self, pass: &Pass<'_, '_>) {
        let state = self
            .states
            .get(&pass.key)
            .map(|e| e.state)
            .unwrap_or(StateId(0));
        let pk = self.plan.program.events[pass.event].primary_key();
        let addr = match pk.map(|k| k.fields.as_slice()) {
            Some([f]) => pass.ctx.get(*f).and_then(|v| v.as_addr()),
            _ => None,
        };
        let Some(live) = self.live.as_mut() else {
            return;
        };
        live.record(
            PassRecord {
                key: pass.key,
                state: state.0,
                ts: pass.ts,
                addr,
                metrics: &self.metric_values,
                features: &self.feature_values,
            },
            |w: &mut KeyText<'_>| {
                use std::fmt::Write as _;
                match pk {
                    Some(k) => {
                        for (i, f) in k.fields.iter().enumerate() {
                            if i > 0 {
                                let _ = w.write_char('-');
                            }
                            if let Some(v) = pass.ctx.get(*f) {
                                let _ = write!(w, "{v}");
                            }
                        }
                    }
                    None => {
                        for b in pass.key.as_bytes() {
                            let _ = write!(w, "{b:02x}");
                        }
                    }
                }
            },
        );
    }

    /// The live table (`None` unless `live_keys` was set).
    pub fn live(&self) -> Option<&LiveTable> {
        self.live.as_ref()
    }

    /// Emits and applies the pass's metric ops; fills `metric_values`.
    fn run_metrics(&mut self, pass: &Pass<'_, '_>) {
        self.metric_values.iter_mut().for_each(|v| *v = 0.0);
        self.ops.clear();
        self.op_source.clear();
        let bp = self.plan.behaviours[pass.event][pass.state.index()]
            .as_ref()
            .expect("checked");
        for (i, t) in bp.ops.iter().enumerate() {
            let fields = &self.plan.keys[t.key.0 as usize].fields;
            if !write_fields(&pass.ctx, fields, &mut self.keybuf) {
                self.stats.ops_missing_key += 1;
                continue;
            }
            let key = StateKey::from_bytes(0, self.keybuf.as_bytes());
            let value = match self.plan.slots[t.app_metric as usize].insert {
                InsertValue::Const(c) => c.min(u32::MAX as u64) as u32,
                InsertValue::Field(f) => pass
                    .ctx
                    .get(f)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
                    .min(u32::MAX as u64) as u32,
            };
            let mut op =
                Op::new(t.metric, t.kind, key.as_bytes(), value, pass.ts).expect("folded keys fit");
            if t.gated {
                op = op.if_new();
            }
            self.ops.push(op);
            self.op_source.push(i);
        }
        self.results.clear();
        self.results.resize(self.ops.len(), OpResult::default());
        self.engine.apply(&self.ops, &mut self.results);
        for (r, &src) in self.results.iter().zip(&self.op_source) {
            let t = &bp.ops[src];
            match Status::from_u8(r.status) {
                Some(Status::Ok) => {
                    if r.flags & streamon_contract::ResultFlags::EVICTED != 0 {
                        self.stats.evictions += 1;
                    }
                    if let Some(m) = t.value_of {
                        self.metric_values[m as usize] =
                            self.plan.metric_plans[t.metric as usize].decode(r.value);
                    }
                }
                other => {
                    let name = match other {
                        Some(status) => format!("{status:?}"),
                        None => format!("status {}", r.status),
                    };
                    *self.stats.op_errors.entry(name).or_default() += 1;
                }
            }
        }
    }

    fn action<'s>(&'s self, pass: &Pass<'_, '_>, at: ActionAt) -> &'s Action {
        let b = self.plan.program.events[pass.event]
            .behaviour(pass.state)
            .expect("checked");
        match at {
            ActionAt::Condition(c, a) => &b.conditions[c].actions[a],
            ActionAt::Post(a) => &b.post_actions[a],
        }
    }

    fn run_action(
        &mut self,
        pass: &Pass<'_, '_>,
        next: StateId,
        at: ActionAt,
        sink: &mut dyn EventSink,
        arith: &mut ArithStats,
    ) {
        let ctx = pass.ctx;
        match self.action(pass, at).clone_light() {
            Light::Publish(topic) => {
                let Action::Publish { text, .. } = self.action(pass, at) else {
                    unreachable!()
                };
                let text = self.render(text, pass, next);
                let raw = if topic == "raw" {
                    ctx.frame().map(hex)
                } else {
                    None
                };
                self.emit(pass, next, &topic, text, raw, sink);
            }
            Light::Print => {
                let Action::Print(text) = self.action(pass, at) else {
                    unreachable!()
                };
                let text = self.render(text, pass, next);
                self.emit(pass, next, "print", text, None, sink);
            }
            Light::Exec => {
                let Action::Exec(text) = self.action(pass, at) else {
                    unreachable!()
                };
                let cmd = self.render(text, pass, next);
                match &mut self.exec {
                    Some(e) => e.submit(cmd),
                    None => self.stats.exec_disabled += 1,
                }
            }
            Light::TableUpdate => {
                let (table, op, kref) = match self.action(pass, at) {
                    Action::TableUpdate { table, key, op, .. } => {
                        (table.index(), *op, self.plan.key_ref(key))
                    }
                    _ => unreachable!("matched as a table update"),
                };
                let v = {
                    let env = Env {
                        rt: self,
                        ctx,
                        event: pass.event,
                        key: &pass.key,
                    };
                    eval::eval(value_of(self.action(pass, at)), &env, arith)
                };
                let Some(k) = self.build_key(kref, &ctx) else {
                    self.stats.ops_missing_key += 1;
                    return;
                };
                let vt = self.plan.program.tables[table].value_type;
                let cap = self.plan.program.tables[table].geometry.capacity() as usize;
                let t = &mut self.tables[table];
                if !t.contains_key(&k) && t.len() >= cap {
                    self.stats.table_full += 1;
                    return;
                }
                let cur = t.entry(k).or_insert(0.0);
                let new = match op {
                    AssignOp::Set => v,
                    AssignOp::Add => *cur + v,
                    AssignOp::Sub => *cur - v,
                    AssignOp::Mul => *cur * v,
                    AssignOp::Div => {
                        if v == 0.0 {
                            arith.div_by_zero += 1;
                            0.0
                        } else {
                            *cur / v
                        }
                    }
                };
                *cur = match vt {
                    ValueType::Double => new,
                    ValueType::Int => new.trunc(),
                    ValueType::UInt => new.trunc().max(0.0),
                };
                if !cur.is_finite() {
                    *cur = 0.0;
                    arith.domain_errors += 1;
                }
            }
            Light::TableReset(t) => self.tables[t].clear(),
            Light::MetricReset => {
                let Action::MetricReset { metric, key } = self.action(pass, at) else {
                    unreachable!()
                };
                let m = metric.index();
                let kref = key.as_ref().map(|k| self.plan.key_ref(k));
                self.reset_metric(m, kref, pass);
            }
            Light::Block(seconds) => {
                let Action::Block { key, .. } = self.action(pass, at) else {
                    unreachable!()
                };
                let kref = self.plan.key_ref(key);
                if let Some(k) = self.build_key(kref, &ctx) {
                    self.blocks
                        .insert(k, pass.ts.saturating_add((seconds * 1e9) as u64));
                    let text = format!("block {} for {seconds} s", self.render_key(kref, &ctx));
                    self.emit(pass, next, "block", text, None, sink);
                }
            }
            Light::Unblock => {
                let Action::Unblock { key } = self.action(pass, at) else {
                    unreachable!()
                };
                let kref = self.plan.key_ref(key);
                if let Some(k) = self.build_key(kref, &ctx) {
                    if self.blocks.remove(&k).is_some() {
                        let text = format!("unblock {}", self.render_key(kref, &ctx));
                        self.emit(pass, next, "unblock", text, None, sink);
                    }
                }
            }
            Light::TimeoutSet(class, seconds) => {
                let Action::TimeoutSet { key, .. } = self.action(pass, at) else {
                    unreachable!()
                };
                let k = match key {
                    None => Some(pass.key),
                    Some(key) => {
                        let kref = self.plan.key_ref(key);
                        self.build_key(kref, &ctx)
                    }
                };
                let Some(k) = k else {
                    self.stats.ops_missing_key += 1;
                    return;
                };
                let period_ns = timers::duration_ns(seconds);
                let due = if seconds <= 0.0 {
                    None
                } else {
                    let due = timers::due_after(pass.ts, period_ns);
                    if due.is_none() {
                        // Never due: as good as cancelled, but counted.
                        self.stats.timers_beyond_end += 1;
                    }
                    due
                };
                match due {
                    None => {
                        self.timeouts.remove(&(class, k));
                    }
                    Some(due) => {
                        let seq = self.timers.arm(due, TimerKind::Timeout(class, k));
                        self.timeouts.insert(
                            (class, k),
                            TimeoutRecord {
                                period_ns,
                                seq,
                                ctx: ctx.record(),
                            },
                        );
                    }
                }
            }
            Light::Store => {
                if self.store.is_none() {
                    self.stats.kv_disabled += 1;
                    return;
                }
                let (name, w) = match self.action(pass, at) {
                    Action::StoreSet {
                        name, ttl_s, value, ..
                    } => (
                        name,
                        store::Write::Set {
                            ttl_s: *ttl_s,
                            value: self.render(value, pass, next),
                        },
                    ),
                    Action::StoreIncr { name, ttl_s, by } => {
                        let by = {
                            let env = Env {
                                rt: self,
                                ctx,
                                event: pass.event,
                                key: &pass.key,
                            };
                            eval::eval(by, &env, arith)
                        };
                        (name, store::Write::Incr { ttl_s: *ttl_s, by })
                    }
                    Action::StoreDel { name } => (name, store::Write::Del),
                    Action::StoreExpire { name, seconds } => {
                        (name, store::Write::Expire { seconds: *seconds })
                    }
                    Action::StorePublish { channel, text } => (
                        channel,
                        store::Write::Publish {
                            message: self.render(text, pass, next),
                        },
                    ),
                    _ => unreachable!("matched as a store action"),
                };
                let key = || self.render_pass_key(pass);
                let cx = NameCtx {
                    probe_id: &self.options.probe_id,
                    app: &self.plan.name,
                    packet: &ctx,
                    key: &key,
                };
                if let Some(st) = &self.store {
                    st.borrow_mut().write(name, &cx, w);
                }
            }
            Light::NoOp => {}
        }
    }

    /// Reads a store key for an expression or a text (`None` without a
    /// store, or when missing).
    fn store_read<R>(
        &self,
        name: &streamon_lang::StoreName,
        pass_key: &dyn Fn() -> String,
        ctx: &dyn FieldSource,
        with: impl FnOnce(Option<&[u8]>) -> R,
    ) -> R {
        let Some(st) = &self.store else {
            return with(None);
        };
        let cx = NameCtx {
            probe_id: &self.options.probe_id,
            app: &self.plan.name,
            packet: ctx,
            key: pass_key,
        };
        // A store read inside a store read cannot happen (names hold no
        // reads), so the borrow is never taken twice.
        st.borrow_mut().read(name, &cx, with)
    }

    fn reset_metric(&mut self, m: usize, key: Option<KeyRef>, pass: &Pass<'_, '_>) {
        let slot = self.plan.slots[m].clone();
        match key {
            None => {
                for id in [slot.detector, slot.monitor].into_iter().flatten() {
                    let op = Op::new(id, OpKind::Clear, &[], 0, pass.ts).expect("empty key");
                    self.engine.apply_one(&op);
                }
            }
            Some(kref) => {
                // A Bloom filter cannot forget one key: only the monitor
                // resets (docs/metric-contract.md).
                if slot.detector.is_some() && slot.monitor.is_none() {
                    self.stats.resets_unsupported += 1;
                }
                let Some(vm) = slot.monitor else { return };
                if self.plan.metric_plans[vm as usize].kind == MetricKind::HyperLogLog {
                    self.stats.resets_unsupported += 1;
                    return;
                }
                let Some(k) = self.build_key(kref, &pass.ctx) else {
                    self.stats.ops_missing_key += 1;
                    return;
                };
                let op = Op::new(vm, OpKind::ResetKey, k.as_bytes(), 0, pass.ts)
                    .expect("folded keys fit");
                self.engine.apply_one(&op);
            }
        }
    }

    fn emit(
        &mut self,
        pass: &Pass<'_, '_>,
        next: StateId,
        topic: &str,
        text: String,
        raw: Option<String>,
        sink: &mut dyn EventSink,
    ) {
        let program = &self.plan.program;
        let info = program.state_info(pass.event, pass.state);
        let bp = self.plan.behaviours[pass.event][pass.state.index()]
            .as_ref()
            .expect("checked");
        let features = bp
            .features_used
            .iter()
            .map(|&f| {
                (
                    program.features[f as usize].name.clone(),
                    self.feature_values[f as usize],
                )
            })
            .collect();
        let event = match &program.events[pass.event].kind {
            EventKind::Packet { .. } => format!("packet:{}", pass.event),
            EventKind::Message { .. } => format!("message:{}", pass.event),
            EventKind::Timeout { class, .. } => {
                format!("timeout:{}", program.timeout_classes[class.index()].name)
            }
        };
        let ev = OutputEvent {
            ts: pass.ts,
            app: self.plan.name.clone(),
            topic: topic.to_string(),
            state_from: program.states[pass.state.index()].name.clone(),
            state_to: program.states[next.index()].name.clone(),
            code: info.code.clone(),
            level: info.level.clone(),
            key: self.render_pass_key(pass),
            key_fields: self.key_fields(pass),
            text,
            features,
            event,
            packet_no: pass.ctx.packet_no(),
            raw,
        };
        *self.stats.published.entry(topic.to_string()).or_default() += 1;
        sink.emit(&ev);
    }

    fn render_pass_key(&self, pass: &Pass<'_, '_>) -> String {
        self.render_event_key(pass.event, &pass.key, &pass.ctx)
    }

    fn render_event_key(&self, event: usize, key: &StateKey, ctx: &Ctx<'_, '_>) -> String {
        match self.plan.program.events[event].primary_key() {
            Some(k) => render_fields(k, ctx),
            None => hex(key.as_bytes()),
        }
    }

    /// The event key's fields, each rendered: what a chained probe reads
    /// as the message's key fields. Empty for a timeout without a
    /// declared key.
    fn key_fields(&self, pass: &Pass<'_, '_>) -> Vec<(String, String)> {
        let Some(k) = self.plan.program.events[pass.event].primary_key() else {
            return Vec::new();
        };
        k.fields
            .iter()
            .filter_map(|f| Some((f.name().to_string(), pass.ctx.get(*f)?.to_string())))
            .collect()
    }

    fn render_key(&self, k: KeyRef, ctx: &Ctx<'_, '_>) -> String {
        render_fields(&self.plan.keys[k.0 as usize], ctx)
    }

    fn render(&self, t: &Template, pass: &Pass<'_, '_>, next: StateId) -> String {
        let program = &self.plan.program;
        let mut out = String::new();
        for part in &t.parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Subst(s) => match s {
                    Subst::Field(f) => {
                        if let Some(v) = pass.ctx.get(*f) {
                            out.push_str(&v.to_string());
                        }
                    }
                    Subst::Feature(f) => {
                        out.push_str(&format!("{:.6}", self.feature_values[f.index()]))
                    }
                    Subst::Metric(m) => {
                        out.push_str(&format!("{:.6}", self.metric_values[m.index()]))
                    }
                    Subst::Timestamp => out.push_str(&pass.ts.to_string()),
                    Subst::Key => out.push_str(&self.render_pass_key(pass)),
                    Subst::State(a) => {
                        out.push_str(attr(program.state_info(pass.event, pass.state), *a))
                    }
                    Subst::NextState(a) => {
                        out.push_str(attr(program.state_info(pass.event, next), *a))
                    }
                    Subst::ProbeId => out.push_str(&self.options.probe_id),
                    Subst::MsgFeature(i) => {
                        if let Some(v) = msg_feature(&pass.ctx, program, *i) {
                            out.push_str(&format!("{v:.6}"));
                        }
                    }
                },
                TemplatePart::Store(name) => {
                    let key = || self.render_pass_key(pass);
                    self.store_read(name, &key, &pass.ctx, |v| {
                        if let Some(v) = v {
                            out.push_str(&String::from_utf8_lossy(v));
                        }
                    });
                }
            }
        }
        out
    }
}

fn attr(info: &streamon_lang::StateInfo, a: StateAttr) -> &str {
    match a {
        StateAttr::Code => &info.code,
        StateAttr::Level => &info.level,
        StateAttr::Description => &info.description,
    }
}

/// Feature `msg_features[i]` of the pass's message.
fn msg_feature(ctx: &Ctx<'_, '_>, program: &streamon_lang::Program, i: u32) -> Option<f64> {
    match ctx {
        Ctx::Message(m) => m.feature(program.msg_features.get(i as usize)?),
        Ctx::Packet(_) => None,
    }
}

fn render_fields(k: &Key, ctx: &Ctx<'_, '_>) -> String {
    let mut s = String::new();
    for (i, f) in k.fields.iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        if let Some(v) = ctx.get(*f) {
            s.push_str(&v.to_string());
        }
    }
    s
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn value_of(a: &Action) -> &streamon_lang::Expr {
    match a {
        Action::TableUpdate { value, .. } => value,
        _ => unreachable!("only called on table updates"),
    }
}

#[derive(Clone, Copy)]
enum ActionAt {
    Condition(usize, usize),
    Post(usize),
}

/// The copyable part of an action, so the runtime can match on it while
/// mutating itself.
enum Light {
    Publish(String),
    Print,
    Exec,
    TableUpdate,
    TableReset(usize),
    MetricReset,
    Block(f64),
    Unblock,
    TimeoutSet(u32, f64),
    Store,
    NoOp,
}

trait CloneLight {
    fn clone_light(&self) -> Light;
}

impl CloneLight for Action {
    fn clone_light(&self) -> Light {
        match self {
            Action::Publish { topic, .. } => Light::Publish(topic.clone()),
            Action::Print(_) => Light::Print,
            Action::Exec(_) => Light::Exec,
            Action::TableUpdate { .. } => Light::TableUpdate,
            Action::TableReset(t) => Light::TableReset(t.index()),
            Action::MetricReset { .. } => Light::MetricReset,
            Action::Block { seconds, .. } => Light::Block(*seconds),
            Action::Unblock { .. } => Light::Unblock,
            Action::TimeoutSet { class, seconds, .. } => Light::TimeoutSet(class.0, *seconds),
            Action::StoreSet { .. }
            | Action::StoreIncr { .. }
            | Action::StoreDel { .. }
            | Action::StoreExpire { .. }
            | Action::StorePublish { .. } => Light::Store,
            Action::NoOp(_) => Light::NoOp,
        }
    }
}

struct Env<'r, 'p, 'a> {
    rt: &'r AppRuntime,
    ctx: Ctx<'p, 'a>,
    /// The pass's event and key, for `%key` in store names.
    event: usize,
    key: &'r StateKey,
}

impl ExprEnv for Env<'_, '_, '_> {
    fn feature(&self, i: u32) -> f64 {
        self.rt.feature_values[i as usize]
    }
    fn metric(&self, i: u32) -> f64 {
        self.rt.metric_values[i as usize]
    }
    fn field(&self, f: streamon_packet::Field) -> f64 {
        self.ctx
            .get(f)
            .and_then(|v| v.as_u64())
            .map(|v| v as f64)
            .unwrap_or(0.0)
    }
    fn table(&self, t: u32, key: &Key) -> f64 {
        let kref = self.rt.plan.key_ref(key);
        let mut buf = KeyBuf::new();
        if !write_fields(&self.ctx, &key.fields, &mut buf) {
            return 0.0;
        }
        let k = StateKey::from_bytes(self.rt.plan.shape_of[kref.0 as usize], buf.as_bytes());
        self.rt.tables[t as usize].get(&k).copied().unwrap_or(0.0)
    }
    fn store(&self, read: streamon_lang::StoreRead, name: &streamon_lang::StoreName) -> f64 {
        let key = || self.rt.render_event_key(self.event, self.key, &self.ctx);
        self.rt.store_read(name, &key, &self.ctx, |v| match read {
            streamon_lang::StoreRead::Value => store::as_number(v),
            streamon_lang::StoreRead::Exists => v.is_some() as u8 as f64,
        })
    }
    fn msg_feature(&self, i: u32) -> f64 {
        msg_feature(&self.ctx, &self.rt.plan.program, i).unwrap_or(0.0)
    }
}
