//! The controller service: probe registry, deployment, event collection.
//!
//! One thread owns every ZeroMQ socket (sockets are not shared between
//! threads):
//!
//! - the control ROUTER, a CURVE server whose ZAP handler admits only the
//!   authorised probe keys (refusals are counted and logged). A probe's
//!   name is bound to the key it first authenticated with (kept in
//!   `state.json`): another key announcing that name is refused;
//! - one [`Subscriber`] per probe, a CURVE client of the probe's event
//!   publisher, created from the endpoint the probe announces.
//!
//! **Registry.** Probes announce themselves and send heartbeats; a probe
//! silent for `down_after` is marked down; when it reports again it is
//! marked up and re-synchronised: the controller compares the applications
//! the probe reports (name, program digest, running) with the desired ones
//! and sends `deploy`, `swap`, `start`, `stop`, `remove` until they agree.
//! One command per application is in flight at a time; a refused one
//! (other than a stale nonce) is not retried until the operator changes
//! that application.
//!
//! **Operators** change the desired state through [`ControllerHandle::op`]
//! (the HTTP API calls it): programs are checked and planned before they
//! are accepted, so a probe never receives a program that does not check.
//!
//! **Flood control.** Each turn handles at most `control_per_turn` control
//! messages and `events_per_turn` events per probe; each control peer has
//! a token bucket (`control_rate` messages/s, burst of the same), and what
//! exceeds it is dropped unanswered and counted; subscribers have a
//! bounded receive queue (libzmq drops beyond it; the JSON `seq` gaps are
//! counted as lost); the store's queue is bounded (drops counted).
//! Nothing a peer sends can make the loop wait or grow without bound.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use streamon_bus::curve::{Authenticator, KeyPair};
use streamon_bus::{Payload, Subscriber, SubscriberConfig};

use crate::proto::{self, AppStatus, Message, ProbeReport, Reason};
use crate::store::{push_bounded, DesiredApp, DesiredProbe, DesiredState, EventStore, StoredEvent};
use crate::store::{RECENT_ALERTS, RECENT_EVENTS};
use crate::CtlError;

/// How a controller is set up.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The controller's name, sent in `welcome`.
    pub name: String,
    /// Control endpoint to bind (`tcp://*:5570`).
    pub bind: String,
    /// The controller's key pair (probes know its public key).
    pub keys: KeyPair,
    /// Probe public keys admitted on the control channel.
    pub authorized: Vec<[u8; 32]>,
    /// Where events and the desired state are kept.
    pub data_dir: PathBuf,
    /// Heartbeat interval told to probes. Default 500 ms.
    pub heartbeat: Duration,
    /// Silence after which a probe is marked down. Default 2 s.
    pub down_after: Duration,
    /// Address of the dashboard and HTTP API (`127.0.0.1:8570`; port 0
    /// picks one). `None`: no HTTP server.
    pub http: Option<String>,
    /// Events the store's queue holds before it drops. Default 65536.
    pub store_queue: usize,
    /// Events taken from one probe per turn. Default 512.
    pub events_per_turn: usize,
    /// Control messages handled per turn. Default 256.
    pub control_per_turn: usize,
    /// Control messages per second (and burst) one peer may send before
    /// the excess is dropped. Default 200.
    pub control_rate: u32,
    /// `ZMQ_RCVHWM` of each probe's subscriber. Default 10000.
    pub events_rcvhwm: i32,
}

impl ControllerConfig {
    /// Defaults around the required parts.
    pub fn new(name: &str, bind: &str, keys: KeyPair, data_dir: PathBuf) -> Self {
        ControllerConfig {
            name: name.to_string(),
            bind: bind.to_string(),
            keys,
            authorized: Vec::new(),
            data_dir,
            heartbeat: Duration::from_millis(500),
            down_after: Duration::from_secs(2),
            http: None,
            store_queue: 65536,
            events_per_turn: 512,
            control_per_turn: 256,
            control_rate: 200,
            events_rcvhwm: 10_000,
        }
    }
}

/// An operator's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Install a new application on a probe.
    Deploy {
        /// Probe name.
        probe: String,
        /// Application name.
        app: String,
        /// Program.
        xml: String,
    },
    /// Replace an application's program.
    Swap {
        /// Probe name.
        probe: String,
        /// Application name.
        app: String,
        /// New program.
        xml: String,
    },
    /// Feed packets to a stopped application.
    Start {
        /// Probe name.
        probe: String,
        /// Application name.
        app: String,
    },
    /// Stop feeding packets to an application (it keeps its state).
    Stop {
        /// Probe name.
        probe: String,
        /// Application name.
        app: String,
    },
    /// Uninstall an application.
    Remove {
        /// Probe name.
        probe: String,
        /// Application name.
        app: String,
    },
    /// Ask a probe for its counters (the answer lands in its view's
    /// `status`).
    Status {
        /// Probe name.
        probe: String,
    },
}

/// An application as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppView {
    /// Name.
    pub name: String,
    /// Whether the controller wants it fed packets.
    pub want_running: bool,
    /// Whether the probe reports it fed packets (`None`: not installed).
    pub running: Option<bool>,
    /// `synced`, `pending` (a command in flight or the probe away),
    /// `failed`, or `unwanted` (on the probe, being removed).
    pub state: String,
    /// The probe's refusal, for `failed`.
    pub error: Option<String>,
}

/// A probe as the dashboard shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeView {
    /// Name.
    pub name: String,
    /// Public key, Z85.
    pub key: String,
    /// `up`, `down`, or `unknown` (in `state.json`, not heard from since
    /// this controller started).
    pub health: String,
    /// Wall-clock ms of its last report (0: never).
    pub last_seen_ms: u64,
    /// Its event publisher.
    pub events_endpoint: String,
    /// Applications: desired ones, and any others it reports.
    pub apps: Vec<AppView>,
    /// What it reported last.
    pub reported: Vec<AppStatus>,
    /// Packets it processed (its report).
    pub packets: u64,
    /// Events it published (its report).
    pub events_published: u64,
    /// Events received from it.
    pub events_received: u64,
    /// Reports received.
    pub reports: u64,
    /// Times it was marked down.
    pub times_down: u64,
    /// Times it came back after being down.
    pub rejoins: u64,
    /// The last `status` answer, JSON.
    pub status: Option<serde_json::Value>,
}

/// Controller counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ControllerCounters {
    /// Control messages received.
    pub control_received: u64,
    /// Control messages refused, by reason.
    pub control_refused: BTreeMap<String, u64>,
    /// Control messages dropped by a peer's rate limit.
    pub control_rate_limited: u64,
    /// Control messages that could not be sent (peer gone, queue full).
    pub control_send_drops: u64,
    /// Commands sent to probes.
    pub commands_sent: u64,
    /// Commands probes refused.
    pub commands_refused: u64,
    /// Events received and stored (or queued for the store).
    pub events_received: u64,
    /// Malformed or oversized event messages (sum over subscribers).
    pub events_malformed: u64,
    /// Events missing from publishers' sequences (dropped at a publisher's
    /// or our high-water mark).
    pub events_lost: u64,
    /// Events not stored: the store's queue was full.
    pub store_queue_full_drops: u64,
    /// Events written to `events.jsonl`.
    pub store_written: u64,
    /// Store write errors.
    pub store_write_errors: u64,
    /// Lines of `events.jsonl` that did not parse at start.
    pub store_corrupt_lines: u64,
    /// CURVE clients the ZAP handler admitted.
    pub auth_accepted: u64,
    /// CURVE clients the ZAP handler refused (unauthorised keys).
    pub auth_refused: u64,
    /// Failed CURVE handshakes on the control socket.
    pub auth_handshake_failures: u64,
}

/// What the dashboard and API read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    /// The controller's name.
    pub controller: String,
    /// Probes by name.
    pub probes: BTreeMap<String, ProbeView>,
    /// Latest alerts, oldest first.
    pub alerts: VecDeque<StoredEvent>,
    /// Latest events of every topic, oldest first.
    #[serde(skip)]
    pub recent: VecDeque<StoredEvent>,
    /// Counters.
    pub counters: ControllerCounters,
    /// Latest log lines, oldest first.
    pub log: VecDeque<String>,
}

/// Log lines kept in the view.
const LOG_LINES: usize = 100;

type Reply = Sender<Result<serde_json::Value, String>>;

/// A running controller: its thread, its endpoints, its view.
pub struct ControllerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    http: Option<crate::http::HttpServer>,
    control_endpoint: String,
    ops: Sender<(Op, Reply)>,
    view: Arc<Mutex<View>>,
}

impl ControllerHandle {
    /// The bound control endpoint (with the port chosen for `:*`).
    pub fn control_endpoint(&self) -> &str {
        &self.control_endpoint
    }

    /// The dashboard's address, when serving HTTP.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(|h| h.addr())
    }

    /// A copy of the view.
    pub fn view(&self) -> View {
        lock(&self.view).clone()
    }

    /// Carries out an operator's request; the answer says what was
    /// accepted, or why not.
    pub fn op(&self, op: Op) -> Result<serde_json::Value, String> {
        run_op(&self.ops, op)
    }

    /// Stops the controller and waits for it (events queued for the store
    /// are written).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.http.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControllerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

pub(crate) fn run_op(ops: &Sender<(Op, Reply)>, op: Op) -> Result<serde_json::Value, String> {
    let (tx, rx) = mpsc::channel();
    ops.send((op, tx))
        .map_err(|_| "the controller has stopped".to_string())?;
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the controller did not answer".to_string())?
}

pub(crate) fn lock(v: &Mutex<View>) -> MutexGuard<'_, View> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

static MONITOR_ID: AtomicUsize = AtomicUsize::new(0);

/// Starts a controller: opens the store, binds the control socket (and
/// the HTTP server), and runs the loop on its own thread.
pub fn start(config: ControllerConfig) -> Result<ControllerHandle, CtlError> {
    proto::check_name(&config.name).map_err(CtlError::Config)?;
    let (store, loaded) = EventStore::open(&config.data_dir, config.store_queue)?;
    let ctx = zmq::Context::new();
    let z = |what| move |e| CtlError::Zmq(what, e);
    let router = ctx.socket(zmq::ROUTER).map_err(z("router socket"))?;
    router.set_linger(0).map_err(z("set linger"))?;
    router
        .set_maxmsgsize(proto::TRANSPORT_MAX_BYTES)
        .map_err(z("set maxmsgsize"))?;
    router.set_rcvhwm(10_000).map_err(z("set rcvhwm"))?;
    router.set_curve_server(true).map_err(z("curve server"))?;
    router
        .set_curve_secretkey(&config.keys.secret)
        .map_err(z("curve secret key"))?;
    router
        .set_zap_domain("streamon-ctl")
        .map_err(z("zap domain"))?;
    let mon = format!(
        "inproc://streamon-ctl-monitor-{}",
        MONITOR_ID.fetch_add(1, Ordering::Relaxed)
    );
    router
        .monitor(&mon, zmq::SocketEvent::ALL as i32)
        .map_err(z("socket monitor"))?;
    let auth = Authenticator::start(&ctx, config.authorized.clone(), &mon)?;
    router.bind(&config.bind).map_err(|e| CtlError::Bind {
        endpoint: config.bind.clone(),
        source: e,
    })?;
    let control_endpoint = router
        .get_last_endpoint()
        .map_err(z("last endpoint"))?
        .unwrap_or_else(|_| config.bind.clone());

    let mut view = View {
        controller: config.name.clone(),
        alerts: loaded.alerts,
        recent: loaded.recent,
        ..View::default()
    };
    for (name, p) in &loaded.desired.probes {
        view.probes.insert(
            name.clone(),
            ProbeView {
                name: name.clone(),
                key: p.key.clone(),
                health: "unknown".into(),
                events_received: loaded.per_probe.get(name).copied().unwrap_or(0),
                ..ProbeView::default()
            },
        );
    }
    let view = Arc::new(Mutex::new(view));
    let (ops_tx, ops_rx) = mpsc::channel();
    let http = match &config.http {
        Some(addr) => Some(crate::http::HttpServer::start(
            addr,
            view.clone(),
            ops_tx.clone(),
            store.read_handle(),
        )?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut state = Loop {
        router,
        _auth: auth,
        _ctx: ctx,
        nonce: 0,
        probes: HashMap::new(),
        buckets: HashMap::new(),
        desired: loaded.desired,
        store,
        view: view.clone(),
        ops: ops_rx,
        next_check: Instant::now(),
        auth_logged: 0,
        config,
    };
    for name in state.desired.probes.keys() {
        state.probes.insert(name.clone(), Live::default());
    }
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("streamon-ctl".into())
        .spawn(move || state.run(&s))
        .map_err(|e| CtlError::Config(format!("cannot start the controller thread: {e}")))?;
    Ok(ControllerHandle {
        stop,
        thread: Some(thread),
        http,
        control_endpoint,
        ops: ops_tx,
        view,
    })
}

/// What the loop knows of a probe beyond its view.
#[derive(Default)]
struct Live {
    identity: Option<Vec<u8>>,
    last_seen: Option<Instant>,
    up: bool,
    subscriber: Option<(String, Subscriber)>,
    /// Application → (nonce, sent at) of the command in flight.
    pending: HashMap<String, (u64, Instant)>,
    /// Application → (digest of the refused program, reason).
    failed: HashMap<String, (String, String)>,
    last_nonce: u64,
    /// The subscriber's counters already added to the totals.
    seen_lost: u64,
    seen_malformed: u64,
}

/// What a probe must do for one application to match the desired state.
enum Change {
    Deploy(String),
    Swap(String),
    Run(bool),
    Remove,
}

impl Change {
    fn message(self, nonce: u64, app: &str) -> Message {
        let app = app.to_string();
        match self {
            Change::Deploy(xml) => Message::Deploy { nonce, app, xml },
            Change::Swap(xml) => Message::Swap { nonce, app, xml },
            Change::Run(true) => Message::Start { nonce, app },
            Change::Run(false) => Message::Stop { nonce, app },
            Change::Remove => Message::Remove { nonce, app },
        }
    }
}

/// A peer's token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How long a command may stay unanswered before it is sent again.
const PENDING_TIMEOUT: Duration = Duration::from_secs(3);

struct Loop {
    // Field order is drop order: sockets and subscribers before the
    // authenticator and the context.
    router: zmq::Socket,
    probes: HashMap<String, Live>,
    _auth: Authenticator,
    _ctx: zmq::Context,
    nonce: u64,
    buckets: HashMap<Vec<u8>, Bucket>,
    desired: DesiredState,
    store: EventStore,
    view: Arc<Mutex<View>>,
    ops: Receiver<(Op, Reply)>,
    next_check: Instant,
    /// ZAP refusals and handshake failures already logged.
    auth_logged: u64,
    config: ControllerConfig,
}

impl Loop {
    fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.turn() {
                self.log(format!("error: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.store.close();
    }

    fn log(&self, line: String) {
        eprintln!("streamon-ctl controller {}: {line}", self.config.name);
        push_bounded(&mut lock(&self.view).log, line, LOG_LINES);
    }

    fn turn(&mut self) -> Result<(), CtlError> {
        let ready = self
            .router
            .poll(zmq::POLLIN, 10)
            .map_err(|e| CtlError::Zmq("poll", e))?;
        if ready > 0 {
            for _ in 0..self.config.control_per_turn {
                let identity = match self.router.recv_bytes(zmq::DONTWAIT) {
                    Ok(i) => i,
                    Err(zmq::Error::EAGAIN) => break,
                    Err(e) => return Err(CtlError::Zmq("recv", e)),
                };
                let mut frames = Vec::new();
                while self.router.get_rcvmore().unwrap_or(false) {
                    match self.router.recv_msg(0) {
                        Ok(m) => frames.push(m),
                        Err(e) => return Err(CtlError::Zmq("recv", e)),
                    }
                }
                self.on_control(identity, frames);
            }
        }
        self.collect_events();
        while let Ok((op, reply)) = self.ops.try_recv() {
            let r = self.on_op(op);
            let _ = reply.send(r);
        }
        if Instant::now() >= self.next_check {
            self.next_check = Instant::now() + Duration::from_millis(100);
            self.check_health();
            self.refresh_counters();
        }
        Ok(())
    }

    fn allow(&mut self, identity: &[u8]) -> bool {
        let rate = f64::from(self.config.control_rate.max(1));
        let now = Instant::now();
        if self.buckets.len() > 10_000 {
            // Identities are per connection; forget idle ones.
            self.buckets
                .retain(|_, b| now.duration_since(b.at) < Duration::from_secs(10));
        }
        let b = self.buckets.entry(identity.to_vec()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn count_refusal(&self, reason: Reason) {
        *lock(&self.view)
            .counters
            .control_refused
            .entry(reason.as_str().to_string())
            .or_default() += 1;
    }

    fn send_to(&self, identity: &[u8], msg: &Message) -> bool {
        let ok = self
            .router
            .send(identity, zmq::SNDMORE | zmq::DONTWAIT)
            .and_then(|()| self.router.send(proto::encode(msg), zmq::DONTWAIT))
            .is_ok();
        if !ok {
            lock(&self.view).counters.control_send_drops += 1;
        }
        ok
    }

    fn refuse(&self, identity: &[u8], reason: Reason, command: Option<String>, detail: String) {
        self.count_refusal(reason);
        self.log(format!(
            "refused {} from peer {}: {reason}: {detail}",
            command.as_deref().unwrap_or("message"),
            hex(identity)
        ));
        self.send_to(
            identity,
            &Message::Refuse {
                nonce: None,
                command,
                reason,
                detail,
            },
        );
    }

    fn on_control(&mut self, identity: Vec<u8>, mut frames: Vec<zmq::Message>) {
        lock(&self.view).counters.control_received += 1;
        if !self.allow(&identity) {
            lock(&self.view).counters.control_rate_limited += 1;
            return;
        }
        if frames.len() != 1 {
            let n = frames.len();
            self.refuse(
                &identity,
                Reason::Malformed,
                None,
                format!("{n} frames, a control message is one"),
            );
            return;
        }
        let mut frame = frames.pop().expect("one frame");
        let key = frame.gets("User-Id").unwrap_or_default().to_string();
        let msg = match proto::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(&identity, e.reason(), e.kind(), e.to_string());
                return;
            }
        };
        match msg {
            Message::Announce(r) => self.on_report(identity, key, r, true),
            Message::Heartbeat(r) => self.on_report(identity, key, r, false),
            Message::Ack {
                probe,
                nonce,
                command,
                detail,
                apps,
            } => {
                if let Some(name) = self.bound(&identity, &key, &probe) {
                    self.on_ack(&name, nonce, &command, detail, apps);
                }
            }
            Message::Refuse {
                nonce,
                command,
                reason,
                detail,
            } => self.on_probe_refusal(&identity, nonce, command, reason, detail),
            other => {
                let kind = other.kind().to_string();
                self.refuse(
                    &identity,
                    Reason::Unexpected,
                    Some(kind.clone()),
                    format!("a controller does not take {kind:?} messages"),
                );
            }
        }
    }

    /// The probe `claimed` if `identity` is its connection and `key` its key.
    fn bound(&self, identity: &[u8], key: &str, claimed: &str) -> Option<String> {
        let live = self.probes.get(claimed)?;
        let want = self.desired.probes.get(claimed)?;
        (live.identity.as_deref() == Some(identity) && want.key == key).then(|| claimed.to_string())
    }

    fn on_report(&mut self, identity: Vec<u8>, key: String, r: ProbeReport, announce: bool) {
        let name = r.probe.clone();
        match self.desired.probes.get(&name) {
            Some(p) if p.key != key => {
                let detail = format!("probe {name:?} is bound to key {}, not {key}", p.key);
                self.refuse(
                    &identity,
                    Reason::Unauthorised,
                    Some("announce".into()),
                    detail,
                );
                return;
            }
            Some(_) => {}
            None => {
                self.desired.probes.insert(
                    name.clone(),
                    DesiredProbe {
                        key: key.clone(),
                        apps: BTreeMap::new(),
                    },
                );
                self.save();
                self.log(format!("new probe {name} (key {key})"));
            }
        }
        let live = self.probes.entry(name.clone()).or_default();
        let was_up = live.up;
        let first = live.last_seen.is_none();
        let new_connection = live.identity.as_deref() != Some(identity.as_slice());
        live.identity = Some(identity.clone());
        live.last_seen = Some(Instant::now());
        live.up = true;
        live.last_nonce = live.last_nonce.max(r.last_nonce);
        if new_connection {
            // A new connection: whatever was in flight went to the old one.
            live.pending.clear();
        }
        let resubscribe = match &live.subscriber {
            Some((ep, _)) => *ep != r.events_endpoint,
            None => true,
        };
        {
            let mut v = lock(&self.view);
            let pv = v.probes.entry(name.clone()).or_default();
            pv.name = name.clone();
            pv.key = key.clone();
            if !was_up && !first {
                pv.rejoins += 1;
            }
            pv.health = "up".into();
            pv.last_seen_ms = now_ms();
            pv.events_endpoint = r.events_endpoint.clone();
            pv.reported = r.apps.clone();
            pv.packets = r.packets;
            pv.events_published = r.events;
            pv.reports += 1;
        }
        if !was_up && !first {
            self.log(format!(
                "probe {name} is back; re-synchronising its applications"
            ));
        } else if first {
            self.log(format!(
                "probe {name} up (events at {}, {} applications)",
                r.events_endpoint,
                r.apps.len()
            ));
        }
        if resubscribe {
            self.subscribe(&name, &key, &r.events_endpoint);
        }
        if announce || new_connection {
            self.send_to(
                &identity,
                &Message::Welcome {
                    controller: self.config.name.clone(),
                    heartbeat_ms: self.config.heartbeat.as_millis() as u64,
                },
            );
        }
        self.reconcile(&name);
    }

    fn subscribe(&mut self, name: &str, key: &str, endpoint: &str) {
        let server = match streamon_bus::curve::parse_z85(key) {
            Ok(k) => k,
            Err(e) => {
                self.log(format!("cannot subscribe to {name}: {e}"));
                return;
            }
        };
        let config = SubscriberConfig {
            endpoints: vec![endpoint.to_string()],
            topics: Vec::new(),
            rcvhwm: Some(self.config.events_rcvhwm),
            curve: Some((self.config.keys.clone(), server)),
            max_message_bytes: None,
        };
        match Subscriber::connect(&config) {
            Ok(s) => {
                let live = self.probes.entry(name.to_string()).or_default();
                live.seen_lost = 0;
                live.seen_malformed = 0;
                live.subscriber = Some((endpoint.to_string(), s));
            }
            Err(e) => self.log(format!("cannot subscribe to {name} at {endpoint}: {e}")),
        }
    }

    fn next_nonce(&mut self, probe_last: u64) -> u64 {
        let n = (self.nonce + 1).max(now_us()).max(probe_last + 1);
        self.nonce = n;
        n
    }

    /// Sends what it takes for `name` to run its desired applications.
    fn reconcile(&mut self, name: &str) {
        let Some(want) = self.desired.probes.get(name).cloned() else {
            return;
        };
        let reported = lock(&self.view)
            .probes
            .get(name)
            .map(|p| p.reported.clone())
            .unwrap_or_default();
        let Some(live) = self.probes.get_mut(name) else {
            return;
        };
        if !live.up {
            self.update_app_views(name);
            return;
        }
        let now = Instant::now();
        live.pending
            .retain(|_, (_, at)| now.duration_since(*at) < PENDING_TIMEOUT);
        let mut to_send: Vec<(String, Change)> = Vec::new();
        for (app, d) in &want.apps {
            if live.pending.contains_key(app) {
                continue;
            }
            let digest = proto::digest(&d.xml);
            if live.failed.get(app).is_some_and(|(dg, _)| *dg == digest) {
                continue;
            }
            let change = match reported.iter().find(|r| r.name == *app) {
                None => Change::Deploy(d.xml.clone()),
                Some(r) if r.digest != digest => Change::Swap(d.xml.clone()),
                Some(r) if r.running != d.running => Change::Run(d.running),
                Some(_) => continue,
            };
            to_send.push((app.clone(), change));
        }
        for r in &reported {
            if !want.apps.contains_key(&r.name) && !live.pending.contains_key(&r.name) {
                to_send.push((r.name.clone(), Change::Remove));
            }
        }
        let identity = live.identity.clone().unwrap_or_default();
        let probe_last = live.last_nonce;
        for (app, change) in to_send {
            let nonce = self.next_nonce(probe_last);
            let msg = change.message(nonce, &app);
            let kind = msg.kind();
            if self.send_to(&identity, &msg) {
                lock(&self.view).counters.commands_sent += 1;
                self.log(format!("{kind} {app} on {name} (nonce {nonce})"));
                if let Some(live) = self.probes.get_mut(name) {
                    live.pending.insert(app, (nonce, Instant::now()));
                }
            }
        }
        self.update_app_views(name);
    }

    /// Recomputes the application list of `name`'s view.
    fn update_app_views(&self, name: &str) {
        let want = self.desired.probes.get(name);
        let live = self.probes.get(name);
        let mut v = lock(&self.view);
        let Some(pv) = v.probes.get_mut(name) else {
            return;
        };
        let mut apps = Vec::new();
        if let Some(want) = want {
            for (app, d) in &want.apps {
                let digest = proto::digest(&d.xml);
                let r = pv.reported.iter().find(|r| r.name == *app);
                let failed = live
                    .and_then(|l| l.failed.get(app))
                    .filter(|(dg, _)| *dg == digest);
                let synced = r.is_some_and(|r| r.digest == digest && r.running == d.running)
                    && pv.health == "up";
                apps.push(AppView {
                    name: app.clone(),
                    want_running: d.running,
                    running: r.map(|r| r.running),
                    state: if failed.is_some() {
                        "failed".into()
                    } else if synced {
                        "synced".into()
                    } else {
                        "pending".into()
                    },
                    error: failed.map(|(_, e)| e.clone()),
                });
            }
        }
        for r in &pv.reported {
            if !want.is_some_and(|w| w.apps.contains_key(&r.name)) {
                apps.push(AppView {
                    name: r.name.clone(),
                    want_running: false,
                    running: Some(r.running),
                    state: "unwanted".into(),
                    error: None,
                });
            }
        }
        pv.apps = apps;
    }

    fn on_ack(
        &mut self,
        name: &str,
        nonce: u64,
        command: &str,
        detail: String,
        apps: Vec<AppStatus>,
    ) {
        if let Some(live) = self.probes.get_mut(name) {
            live.pending.retain(|_, (n, _)| *n != nonce);
            live.last_nonce = live.last_nonce.max(nonce);
        }
        {
            let mut v = lock(&self.view);
            if let Some(pv) = v.probes.get_mut(name) {
                pv.reported = apps;
                if command == "status" {
                    pv.status = serde_json::from_str(&detail).ok();
                }
            }
        }
        if !detail.is_empty() && command != "status" {
            self.log(format!("{name}: {command} warnings: {detail}"));
        }
        self.reconcile(name);
    }

    fn on_probe_refusal(
        &mut self,
        identity: &[u8],
        nonce: Option<u64>,
        command: Option<String>,
        reason: Reason,
        detail: String,
    ) {
        let found = self.probes.iter_mut().find_map(|(name, live)| {
            if live.identity.as_deref() != Some(identity) {
                return None;
            }
            let app = nonce.and_then(|n| {
                live.pending
                    .iter()
                    .find(|(_, (pn, _))| *pn == n)
                    .map(|(a, _)| a.clone())
            });
            Some((name.clone(), app))
        });
        let Some((name, app)) = found else {
            self.log(format!(
                "a refusal from unknown peer {}: {reason}: {detail}",
                hex(identity)
            ));
            return;
        };
        lock(&self.view).counters.commands_refused += 1;
        self.log(format!(
            "{name} refused {} (nonce {}): {reason}: {detail}",
            command.as_deref().unwrap_or("a message"),
            nonce.map_or("-".into(), |n| n.to_string())
        ));
        if let Some(app) = app {
            let digest = self
                .desired
                .probes
                .get(&name)
                .and_then(|p| p.apps.get(&app))
                .map(|d| proto::digest(&d.xml))
                .unwrap_or_default();
            if let Some(live) = self.probes.get_mut(&name) {
                live.pending.remove(&app);
                if reason == Reason::Replayed {
                    // Our nonce fell behind the probe's: the next one is
                    // drawn past it (the heartbeat tells its last one).
                    live.last_nonce = live.last_nonce.max(nonce.unwrap_or(0));
                } else {
                    live.failed
                        .insert(app, (digest, format!("{reason}: {detail}")));
                }
            }
            self.update_app_views(&name);
        }
    }

    fn collect_events(&mut self) {
        let budget = self.config.events_per_turn;
        let names: Vec<String> = self.probes.keys().cloned().collect();
        for name in names {
            let mut got = Vec::new();
            let mut lost = 0;
            let mut malformed = 0;
            if let Some(live) = self.probes.get_mut(&name) {
                if let Some((_, sub)) = live.subscriber.as_mut() {
                    for _ in 0..budget {
                        match sub.try_recv() {
                            Ok(Some(d)) => got.push(d),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    let s = sub.stats();
                    lost = s.lost - live.seen_lost;
                    malformed = s.malformed + s.oversized - live.seen_malformed;
                    live.seen_lost = s.lost;
                    live.seen_malformed = s.malformed + s.oversized;
                }
            }
            if got.is_empty() && lost == 0 && malformed == 0 {
                continue;
            }
            let received = now_ms();
            let mut stored = Vec::with_capacity(got.len());
            for d in got {
                let ev = match d.payload {
                    Payload::Record(r) => StoredEvent {
                        id: 0,
                        received_ms: received,
                        probe: r.probe,
                        app: r.app,
                        topic: r.topic,
                        key: r.key,
                        code: r.code,
                        level: r.level,
                        text: r.text,
                        state_to: r.state_to,
                        ts: r.ts,
                        seq: r.seq,
                        features: r
                            .features
                            .into_iter()
                            .filter(|(_, v)| v.is_finite())
                            .collect(),
                    },
                    Payload::Line(l) => StoredEvent {
                        id: 0,
                        received_ms: received,
                        probe: l.probe,
                        app: String::new(),
                        topic: d.topic,
                        key: String::new(),
                        code: l.code,
                        level: l.level,
                        text: l.description,
                        state_to: String::new(),
                        ts: l.ts,
                        seq: 0,
                        features: l
                            .features
                            .into_iter()
                            .filter(|(_, v)| v.is_finite())
                            .collect(),
                    },
                    // Raw packets are for chained probes, not the store.
                    Payload::Raw(_) => continue,
                };
                stored.push(self.store.append(ev));
            }
            let mut v = lock(&self.view);
            v.counters.events_lost += lost;
            v.counters.events_malformed += malformed;
            v.counters.events_received += stored.len() as u64;
            if let Some(pv) = v.probes.get_mut(&name) {
                pv.events_received += stored.len() as u64;
            }
            for ev in stored {
                if ev.is_alert() {
                    push_bounded(&mut v.alerts, ev.clone(), RECENT_ALERTS);
                }
                push_bounded(&mut v.recent, ev, RECENT_EVENTS);
            }
        }
    }

    fn check_health(&mut self) {
        let now = Instant::now();
        let mut downs = Vec::new();
        for (name, live) in &mut self.probes {
            if live.up
                && live
                    .last_seen
                    .is_some_and(|t| now.duration_since(t) > self.config.down_after)
            {
                live.up = false;
                live.pending.clear();
                downs.push(name.clone());
            }
        }
        for name in downs {
            {
                let mut v = lock(&self.view);
                if let Some(pv) = v.probes.get_mut(&name) {
                    pv.health = "down".into();
                    pv.times_down += 1;
                }
            }
            self.log(format!(
                "probe {name} is down (silent for more than {} ms)",
                self.config.down_after.as_millis()
            ));
            self.update_app_views(&name);
        }
        // Commands that timed out are sent again.
        let names: Vec<String> = self
            .probes
            .iter()
            .filter(|(_, l)| {
                l.up && l
                    .pending
                    .values()
                    .any(|(_, at)| now.duration_since(*at) >= PENDING_TIMEOUT)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in names {
            self.reconcile(&n);
        }
    }

    fn refresh_counters(&mut self) {
        let a = self._auth.stats();
        let c = &self.store.counters;
        let mut v = lock(&self.view);
        v.counters.auth_accepted = a.accepted;
        v.counters.auth_refused = a.refused;
        v.counters.auth_handshake_failures = a.handshake_failures;
        v.counters.store_written = c.written.load(Ordering::Relaxed);
        v.counters.store_queue_full_drops = c.queue_full_drops.load(Ordering::Relaxed);
        v.counters.store_write_errors = c.write_errors.load(Ordering::Relaxed);
        v.counters.store_corrupt_lines = c.corrupt_lines.load(Ordering::Relaxed);
        drop(v);
        // Log each refusal of the ZAP handler and of the handshake once.
        let total = a.refused + a.handshake_failures;
        if total > self.auth_logged {
            let new = (total - self.auth_logged) as usize;
            let recent = &a.recent_refusals;
            for r in &recent[recent.len().saturating_sub(new)..] {
                self.log(format!(
                    "refused a control connection from {}: {}",
                    r.address, r.reason
                ));
            }
            self.auth_logged = total;
        }
    }

    fn save(&self) {
        if let Err(e) = self.store.save_state(&self.desired) {
            self.log(format!("cannot save the desired state: {e}"));
        }
    }

    fn on_op(&mut self, op: Op) -> Result<serde_json::Value, String> {
        let probe = match &op {
            Op::Deploy { probe, .. }
            | Op::Swap { probe, .. }
            | Op::Start { probe, .. }
            | Op::Stop { probe, .. }
            | Op::Remove { probe, .. }
            | Op::Status { probe } => probe.clone(),
        };
        let Some(want) = self.desired.probes.get_mut(&probe) else {
            return Err(format!("no probe {probe:?} has announced itself"));
        };
        let mut warnings = Vec::new();
        match &op {
            Op::Deploy { app, xml, .. } | Op::Swap { app, xml, .. } => {
                proto::check_name(app).map_err(|e| format!("application name {e}"))?;
                let exists = want.apps.contains_key(app);
                if matches!(op, Op::Deploy { .. }) && exists {
                    return Err(format!("{app:?} is already deployed on {probe}; swap it"));
                }
                if matches!(op, Op::Swap { .. }) && !exists {
                    return Err(format!("{app:?} is not deployed on {probe}"));
                }
                warnings = validate(app, xml)?;
                let running = want.apps.get(app).map(|a| a.running).unwrap_or(true);
                want.apps.insert(
                    app.clone(),
                    DesiredApp {
                        xml: xml.clone(),
                        running,
                    },
                );
            }
            Op::Start { app, .. } | Op::Stop { app, .. } => {
                let Some(a) = want.apps.get_mut(app) else {
                    return Err(format!("{app:?} is not deployed on {probe}"));
                };
                a.running = matches!(op, Op::Start { .. });
            }
            Op::Remove { app, .. } => {
                if want.apps.remove(app).is_none() {
                    return Err(format!("{app:?} is not deployed on {probe}"));
                }
            }
            Op::Status { .. } => {
                let live = self.probes.get(&probe);
                if let Some(id) = live.filter(|l| l.up).and_then(|l| l.identity.clone()) {
                    let last = live.map(|l| l.last_nonce).unwrap_or(0);
                    let nonce = self.next_nonce(last);
                    self.send_to(&id, &Message::Status { nonce });
                }
                let v = lock(&self.view);
                return Ok(serde_json::to_value(v.probes.get(&probe)).unwrap_or_default());
            }
        }
        if let (Op::Deploy { app, .. } | Op::Swap { app, .. }, Some(live)) =
            (&op, self.probes.get_mut(&probe))
        {
            live.failed.remove(app);
        }
        self.save();
        self.log(format!("operator: {op:?}", op = OpSummary(&op)));
        self.reconcile(&probe);
        Ok(serde_json::json!({ "accepted": true, "warnings": warnings }))
    }
}

/// `Op` without the program text, for the log.
struct OpSummary<'a>(&'a Op);

impl std::fmt::Debug for OpSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, probe, app) = match self.0 {
            Op::Deploy { probe, app, .. } => ("deploy", probe, app.as_str()),
            Op::Swap { probe, app, .. } => ("swap", probe, app.as_str()),
            Op::Start { probe, app } => ("start", probe, app.as_str()),
            Op::Stop { probe, app } => ("stop", probe, app.as_str()),
            Op::Remove { probe, app } => ("remove", probe, app.as_str()),
            Op::Status { probe } => ("status", probe, ""),
        };
        write!(f, "{what} {app} on {probe}")
    }
}

/// Checks and plans a program as a probe would install it; returns its
/// warnings, or every error (`app.xml:line:col: …`).
pub fn validate(app: &str, xml: &str) -> Result<Vec<String>, String> {
    if xml.len() > proto::MAX_APP_BYTES {
        return Err(format!(
            "the program is {} bytes, more than {}",
            xml.len(),
            proto::MAX_APP_BYTES
        ));
    }
    let file = format!("{app}.xml");
    let (program, warnings) = streamon_lang::parse_and_check(xml, &file).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let plan = streamon_probe::plan::AppPlan::install(app, program).map_err(|e| e.to_string())?;
    let mut out: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    out.extend(plan.warnings.iter().cloned());
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
