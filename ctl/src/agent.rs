//! The probe agent: a probe that a controller steers at run time.
//!
//! One thread runs everything, so the packet path takes no lock: it
//! interleaves batches of frames from its input with the control socket.
//! The control socket is a DEALER connected to the controller's ROUTER as
//! a CURVE client that knows the controller's public key: the CURVE
//! handshake fails with any server that does not hold the matching secret
//! key, so commands are accepted only from that controller. Failed
//! handshakes are counted and logged (the socket's monitor reports them).
//!
//! Events go out on a [`streamon_bus::Publisher`] (JSON payloads, CURVE,
//! open only to the controller's key and any extra subscriber keys).
//!
//! Commands install, swap, start, stop and remove applications in the
//! running [`Probe`]; each application owns its engine and state, so
//! doing any of that to one leaves the others' metric state as it was.
//! Every command must carry a nonce greater than the last accepted one;
//! everything refused is answered with a reason, counted by reason in
//! [`AgentStats::refused`], and logged to standard error.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use streamon_bus::curve::KeyPair;
use streamon_bus::{PayloadFormat, Publisher, PublisherConfig};
use streamon_packet::pcap::PcapSource;
use streamon_probe::{sw_engine, EventSink, InstallFailure, OutputEvent, Probe, RuntimeOptions};

use crate::proto::{self, AppStatus, Message, ProbeReport, Reason};
use crate::CtlError;

/// Frames processed between two looks at the control socket.
const FRAMES_PER_TURN: usize = 512;

/// Bounds on the heartbeat interval a controller may ask for, ms.
const MIN_HEARTBEAT_MS: u64 = 50;
const MAX_HEARTBEAT_MS: u64 = 60_000;

/// Control messages handled per turn (the rest wait for the next turn).
const MESSAGES_PER_TURN: usize = 64;

/// Where packets come from.
#[derive(Debug, Clone, Default)]
pub enum Input {
    /// None: the probe only runs timers and commands (tests).
    #[default]
    None,
    /// These capture files, once each, in order.
    Pcaps(Vec<PathBuf>),
    /// A spool directory: every `*.pcap` / `*.pcapng` file that appears in
    /// it is replayed once, oldest name first, then renamed `*.done`
    /// (write a file elsewhere and rename it in, so it is whole).
    Spool(PathBuf),
    /// Live capture on this interface (`AF_PACKET` ring of
    /// `streamon-capture`; needs `CAP_NET_RAW`). Packet time is the
    /// kernel's receive time.
    Iface(String),
}

/// How an [`Agent`] is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The probe's name (`%client.id`; see [`proto::check_name`]).
    pub probe_id: String,
    /// The controller's control endpoint (`tcp://10.0.0.1:5570`).
    pub controller: String,
    /// The controller's public key.
    pub controller_key: [u8; 32],
    /// This probe's key pair.
    pub keys: KeyPair,
    /// Where to bind the event publisher (`tcp://*:5560`).
    pub events_bind: String,
    /// The publisher endpoint announced to the controller. Default: the
    /// bound endpoint (which is not connectable from elsewhere when bound
    /// to `*`).
    pub events_advertise: Option<String>,
    /// Public keys, besides the controller's, allowed to subscribe.
    pub extra_subscribers: Vec<[u8; 32]>,
    /// Heartbeat interval until the controller's `welcome` sets its own
    /// (bounded to 50 ms – 60 s).
    pub heartbeat: Duration,
    /// Packet input.
    pub input: Input,
}

/// What the agent has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AgentStats {
    /// Commands carried out.
    pub accepted: u64,
    /// Messages refused, by reason (`replayed`, `malformed`, …).
    pub refused: BTreeMap<String, u64>,
    /// Refusals the controller sent us.
    pub refusals_received: u64,
    /// Control-channel handshakes that failed (a server without the
    /// controller's secret key, or a transport error).
    pub handshake_failures: u64,
    /// Control messages libzmq would not queue (the controller away and
    /// the queue full): dropped.
    pub control_send_drops: u64,
    /// Heartbeats (and the announce) queued.
    pub reports_sent: u64,
    /// Frames processed.
    pub packets: u64,
    /// Events handed to the publisher.
    pub events: u64,
    /// Capture files replayed to the end.
    pub files_done: u64,
    /// Capture files that failed (unreadable, truncated): the frames
    /// before the damage were processed.
    pub files_failed: u64,
    /// Live capture: frames the kernel dropped (ring full), as of the
    /// last report.
    pub capture_kernel_drops: u64,
    /// Live capture: errors reading the ring.
    pub capture_errors: u64,
}

/// A log line the agent wrote (kept for tests and the status reply).
pub const RECENT_LOG: usize = 32;

/// Counts events on their way to the publisher.
struct CountingSink<'a> {
    inner: &'a mut Publisher,
    events: &'a mut u64,
}

impl EventSink for CountingSink<'_> {
    fn emit(&mut self, ev: &OutputEvent) {
        *self.events += 1;
        self.inner.emit(ev);
    }
}

static MONITOR_ID: AtomicUsize = AtomicUsize::new(0);

/// A probe steered by a controller (see the module doc).
pub struct Agent {
    // Field order is drop order: sockets before the context.
    control: zmq::Socket,
    monitor: zmq::Socket,
    publisher: Publisher,
    _ctx: zmq::Context,
    config: AgentConfig,
    events_endpoint: String,
    probe: Probe,
    digests: HashMap<String, String>,
    last_nonce: u64,
    seq: u64,
    next_report: Instant,
    stats: AgentStats,
    log: VecDeque<String>,
    current: Option<(PathBuf, PcapSource<File>)>,
    queue: VecDeque<PathBuf>,
    /// Spooled files already queued: never replayed twice, even when
    /// renaming them fails.
    spooled: HashSet<PathBuf>,
    next_spool_scan: Instant,
    live: Option<streamon_capture::Capture>,
}

impl Agent {
    /// Binds the publisher, connects to the controller and queues the
    /// announce.
    pub fn start(config: AgentConfig) -> Result<Agent, CtlError> {
        proto::check_name(&config.probe_id).map_err(CtlError::Config)?;
        let mut subscribers = vec![config.controller_key];
        subscribers.extend(config.extra_subscribers.iter().copied());
        let mut publisher = Publisher::bind(&PublisherConfig {
            endpoint: config.events_bind.clone(),
            probe_id: config.probe_id.clone(),
            format: PayloadFormat::Json,
            sndhwm: streamon_bus::DEFAULT_SNDHWM,
            curve: Some((config.keys.clone(), subscribers)),
        })?;
        // A stopping agent lets its last events reach the controller, for
        // a bounded time.
        publisher.set_linger(std::time::Duration::from_secs(2))?;
        let events_endpoint = config
            .events_advertise
            .clone()
            .unwrap_or_else(|| publisher.endpoint().to_string());
        let ctx = zmq::Context::new();
        let z = |what| move |e| CtlError::Zmq(what, e);
        let control = ctx.socket(zmq::DEALER).map_err(z("dealer socket"))?;
        control.set_linger(0).map_err(z("set linger"))?;
        control
            .set_maxmsgsize(proto::TRANSPORT_MAX_BYTES)
            .map_err(z("set maxmsgsize"))?;
        control.set_sndhwm(100).map_err(z("set sndhwm"))?;
        control.set_reconnect_ivl(100).map_err(z("set reconnect"))?;
        control
            .set_reconnect_ivl_max(1000)
            .map_err(z("set reconnect max"))?;
        control
            .set_curve_serverkey(&config.controller_key)
            .map_err(z("curve server key"))?;
        control
            .set_curve_publickey(&config.keys.public)
            .map_err(z("curve public key"))?;
        control
            .set_curve_secretkey(&config.keys.secret)
            .map_err(z("curve secret key"))?;
        let mon = format!(
            "inproc://streamon-agent-monitor-{}",
            MONITOR_ID.fetch_add(1, Ordering::Relaxed)
        );
        control
            .monitor(&mon, zmq::SocketEvent::ALL as i32)
            .map_err(z("socket monitor"))?;
        let monitor = ctx.socket(zmq::PAIR).map_err(z("monitor socket"))?;
        monitor.set_linger(0).map_err(z("set linger"))?;
        monitor.connect(&mon).map_err(z("connect monitor"))?;
        control
            .connect(&config.controller)
            .map_err(|e| CtlError::Connect {
                endpoint: config.controller.clone(),
                source: e,
            })?;
        let live = match &config.input {
            Input::Iface(iface) => Some(
                streamon_capture::Capture::open(iface, &streamon_capture::CaptureConfig::default())
                    .map_err(|e| CtlError::Config(format!("live capture on {iface}: {e}")))?,
            ),
            _ => None,
        };
        let queue = match &config.input {
            Input::Pcaps(p) => p.iter().cloned().collect(),
            _ => VecDeque::new(),
        };
        let mut agent = Agent {
            control,
            monitor,
            publisher,
            _ctx: ctx,
            events_endpoint,
            probe: Probe::new(),
            digests: HashMap::new(),
            last_nonce: 0,
            seq: 0,
            next_report: Instant::now(),
            stats: AgentStats::default(),
            log: VecDeque::new(),
            current: None,
            queue,
            spooled: HashSet::new(),
            next_spool_scan: Instant::now(),
            live,
            config,
        };
        agent.report();
        Ok(agent)
    }

    /// The publisher's endpoint as announced.
    pub fn events_endpoint(&self) -> &str {
        &self.events_endpoint
    }

    /// The heartbeat interval in force.
    pub fn heartbeat(&self) -> Duration {
        self.config.heartbeat
    }

    /// Counters so far.
    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// The last [`RECENT_LOG`] log lines, oldest first.
    pub fn recent_log(&self) -> impl Iterator<Item = &str> {
        self.log.iter().map(String::as_str)
    }

    /// The running probe (applications and their counters).
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The installed applications as reported to the controller.
    pub fn apps(&self) -> Vec<AppStatus> {
        self.probe
            .apps()
            .iter()
            .map(|a| AppStatus {
                name: a.name().to_string(),
                digest: self.digests.get(a.name()).cloned().unwrap_or_default(),
                running: self.probe.is_running(a.name()).unwrap_or(false),
            })
            .collect()
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), CtlError> {
        while !stop.load(Ordering::Relaxed) {
            self.turn(Duration::from_millis(20))?;
        }
        Ok(())
    }

    /// One turn: waits up to `idle` for control messages when there are
    /// no packets to process, handles what came, reports when due, then
    /// processes a batch of frames.
    pub fn turn(&mut self, idle: Duration) -> Result<(), CtlError> {
        let busy = self.has_input();
        let wait = if busy {
            0
        } else if self.live.is_some() {
            // The ring is not in the poll set: look at it often. The
            // kernel hands a block over at most 10 ms after its first frame.
            idle.min(Duration::from_millis(2)).as_millis() as i64
        } else {
            idle.as_millis() as i64
        };
        let mut items = [
            self.control.as_poll_item(zmq::POLLIN),
            self.monitor.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, wait).map_err(|e| CtlError::Zmq("poll", e))?;
        for _ in 0..MESSAGES_PER_TURN {
            match self.control.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => self.on_frames(&frames),
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(CtlError::Zmq("recv", e)),
            }
        }
        while let Ok(frames) = self.monitor.recv_multipart(zmq::DONTWAIT) {
            self.on_monitor(&frames);
        }
        if Instant::now() >= self.next_report {
            self.report();
        }
        self.feed();
        Ok(())
    }

    fn log(&mut self, line: String) {
        eprintln!("streamon-ctl probe {}: {line}", self.config.probe_id);
        if self.log.len() == RECENT_LOG {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    fn send(&mut self, msg: &Message) {
        if self
            .control
            .send(proto::encode(msg), zmq::DONTWAIT)
            .is_err()
        {
            self.stats.control_send_drops += 1;
        }
    }

    fn report(&mut self) {
        if let Some(cap) = self.live.as_mut() {
            match cap.stats() {
                Ok(s) => {
                    self.stats.capture_kernel_drops = s.kernel_drops;
                    self.stats.capture_errors = s.ring_errors;
                }
                Err(_) => self.stats.capture_errors += 1,
            }
        }
        let report = ProbeReport {
            probe: self.config.probe_id.clone(),
            seq: self.seq,
            events_endpoint: self.events_endpoint.clone(),
            apps: self.apps(),
            last_nonce: self.last_nonce,
            packets: self.stats.packets,
            events: self.stats.events,
            refused: self.stats.refused.values().sum(),
        };
        let msg = if self.seq == 0 {
            Message::Announce(report)
        } else {
            Message::Heartbeat(report)
        };
        self.seq += 1;
        self.stats.reports_sent += 1;
        self.send(&msg);
        self.next_report = Instant::now() + self.config.heartbeat;
    }

    fn refuse(
        &mut self,
        nonce: Option<u64>,
        command: Option<String>,
        reason: Reason,
        detail: String,
    ) {
        *self
            .stats
            .refused
            .entry(reason.as_str().to_string())
            .or_default() += 1;
        self.log(format!(
            "refused {} (nonce {}): {reason}: {detail}",
            command.as_deref().unwrap_or("message"),
            nonce.map_or("-".to_string(), |n| n.to_string())
        ));
        self.send(&Message::Refuse {
            nonce,
            command,
            reason,
            detail,
        });
    }

    fn on_frames(&mut self, frames: &[Vec<u8>]) {
        let [frame] = frames else {
            let n = frames.len();
            self.refuse(
                None,
                None,
                Reason::Malformed,
                format!("{n} frames, a control message is one"),
            );
            return;
        };
        let msg = match proto::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(None, e.kind(), e.reason(), e.to_string());
                return;
            }
        };
        match msg {
            Message::Welcome {
                controller,
                heartbeat_ms,
            } => {
                // The controller decides how often it wants to hear from
                // us (within sane bounds: it also marks us down by it).
                let ms = heartbeat_ms.clamp(MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS);
                self.config.heartbeat = Duration::from_millis(ms);
                self.next_report = self.next_report.min(Instant::now() + self.config.heartbeat);
                self.log(format!(
                    "welcomed by controller {controller} (heartbeat {ms} ms)"
                ));
            }
            Message::Refuse { reason, detail, .. } => {
                self.stats.refusals_received += 1;
                self.log(format!(
                    "the controller refused a message: {reason}: {detail}"
                ));
            }
            Message::Announce(_) | Message::Heartbeat(_) | Message::Ack { .. } => {
                let kind = msg.kind().to_string();
                self.refuse(
                    None,
                    Some(kind.clone()),
                    Reason::Unexpected,
                    format!("a probe does not take {kind:?} messages"),
                );
            }
            command => self.command(command),
        }
    }

    fn command(&mut self, msg: Message) {
        let kind = msg.kind().to_string();
        let nonce = msg.nonce().expect("commands carry a nonce");
        if nonce <= self.last_nonce {
            let detail = format!(
                "nonce {nonce} is not greater than the last accepted {}",
                self.last_nonce
            );
            self.refuse(Some(nonce), Some(kind), Reason::Replayed, detail);
            return;
        }
        self.last_nonce = nonce;
        let result = self.execute(msg);
        match result {
            Ok(detail) => {
                self.stats.accepted += 1;
                self.log(format!("{kind} (nonce {nonce}) done"));
                let apps = self.apps();
                self.send(&Message::Ack {
                    probe: self.config.probe_id.clone(),
                    nonce,
                    command: kind,
                    detail,
                    apps,
                });
            }
            Err((reason, detail)) => self.refuse(Some(nonce), Some(kind), reason, detail),
        }
    }

    fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            // Remote programs never run shell commands.
            allow_exec: false,
            probe_id: self.config.probe_id.clone(),
            store: None,
            live_keys: 0,
        }
    }

    fn execute(&mut self, msg: Message) -> Result<String, (Reason, String)> {
        let unknown = |app: &str| (Reason::UnknownApp, format!("no application {app:?}"));
        let failure = |e: InstallFailure| match e {
            InstallFailure::Check(_) => (Reason::CheckFailed, e.to_string()),
            InstallFailure::Plan(_) | InstallFailure::Engine { .. } => {
                (Reason::InstallFailed, e.to_string())
            }
        };
        match msg {
            Message::Deploy { app, xml, .. } => {
                if self.probe.is_running(&app).is_some() {
                    return Err((
                        Reason::AlreadyDeployed,
                        format!("{app:?} is installed; swap it"),
                    ));
                }
                let file = format!("{app}.xml");
                let warnings = self
                    .probe
                    .install(&app, &xml, &file, &sw_engine, self.options())
                    .map_err(failure)?;
                self.digests.insert(app, proto::digest(&xml));
                Ok(warnings.join("\n"))
            }
            Message::Swap { app, xml, .. } => {
                let file = format!("{app}.xml");
                let options = self.options();
                match self.probe.replace(&app, &xml, &file, &sw_engine, options) {
                    Ok(Some(warnings)) => {
                        self.digests.insert(app, proto::digest(&xml));
                        Ok(warnings.join("\n"))
                    }
                    Ok(None) => Err(unknown(&app)),
                    Err(e) => Err(failure(e)),
                }
            }
            Message::Start { ref app, .. } | Message::Stop { ref app, .. } => {
                let run = matches!(msg, Message::Start { .. });
                if self.probe.set_running(app, run) {
                    Ok(String::new())
                } else {
                    Err(unknown(app))
                }
            }
            Message::Remove { app, .. } => {
                if self.probe.uninstall(&app) {
                    self.digests.remove(&app);
                    Ok(String::new())
                } else {
                    Err(unknown(&app))
                }
            }
            Message::Status { .. } => {
                let apps: BTreeMap<String, serde_json::Value> = self
                    .probe
                    .app_stats()
                    .into_iter()
                    .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or_default()))
                    .collect();
                Ok(serde_json::json!({
                    "agent": self.stats,
                    "probe": self.probe.stats(),
                    "apps": apps,
                    "publisher": {
                        "sent": self.publisher.stats().sent,
                        "send_drops": self.publisher.stats().send_drops,
                        "encode_errors": self.publisher.stats().encode_errors,
                    },
                })
                .to_string())
            }
            other => Err((
                Reason::Unexpected,
                format!("{:?} is not a command", other.kind()),
            )),
        }
    }

    fn on_monitor(&mut self, frames: &[Vec<u8>]) {
        let Some(head) = frames.first().filter(|f| f.len() >= 6) else {
            return;
        };
        let id = u16::from_le_bytes([head[0], head[1]]);
        let failed = [
            zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL,
            zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL,
            zmq::SocketEvent::HANDSHAKE_FAILED_AUTH,
        ]
        .iter()
        .any(|e| e.to_raw() == id);
        if failed {
            self.stats.handshake_failures += 1;
            let detail = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
            let peer = frames
                .get(1)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_default();
            self.log(format!(
                "refused the control peer at {peer}: CURVE handshake failed (event {id:#x}, detail {detail:#x}); it does not hold the controller's key"
            ));
        }
    }

    fn has_input(&mut self) -> bool {
        if self.current.is_some() || !self.queue.is_empty() {
            return true;
        }
        if let Input::Spool(dir) = &self.config.input {
            if Instant::now() >= self.next_spool_scan {
                self.next_spool_scan = Instant::now() + Duration::from_millis(100);
                let dir = dir.clone();
                self.scan_spool(&dir);
            }
        }
        !self.queue.is_empty()
    }

    fn scan_spool(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pcap") | Some("pcapng")
                )
            })
            .collect();
        found.retain(|p| !self.spooled.contains(p));
        found.sort();
        self.spooled.extend(found.iter().cloned());
        self.queue.extend(found);
    }

    /// Processes the blocks the kernel has handed over (live capture), up
    /// to about [`FRAMES_PER_TURN`] frames.
    fn feed_live(&mut self) {
        let Some(cap) = self.live.as_mut() else {
            return;
        };
        let mut events = 0;
        let mut sink = CountingSink {
            inner: &mut self.publisher,
            events: &mut events,
        };
        let mut frames = 0;
        while frames < FRAMES_PER_TURN {
            let mut block = match cap.next_block(Duration::ZERO) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(_) => {
                    self.stats.capture_errors += 1;
                    break;
                }
            };
            while let Some(f) = block.next_frame() {
                frames += 1;
                self.stats.packets += 1;
                let meta = streamon_packet::FrameMeta {
                    ts_ns: f.ts_ns,
                    orig_len: f.orig_len,
                    packet_no: self.stats.packets,
                };
                self.probe
                    .frame(f.data, streamon_packet::LinkType::Ethernet, meta, &mut sink);
            }
        }
        self.stats.events += events;
    }

    /// Processes up to [`FRAMES_PER_TURN`] frames.
    fn feed(&mut self) {
        if self.live.is_some() {
            self.feed_live();
            return;
        }
        let mut budget = FRAMES_PER_TURN;
        while budget > 0 {
            if self.current.is_none() {
                let Some(path) = self.queue.pop_front() else {
                    return;
                };
                match PcapSource::open(&path) {
                    Ok(src) => {
                        self.log(format!("replaying {}", path.display()));
                        self.current = Some((path, src));
                    }
                    Err(e) => {
                        self.stats.files_failed += 1;
                        self.log(format!("cannot replay {}: {e}", path.display()));
                        self.retire(&path);
                        continue;
                    }
                }
            }
            let Some((_, src)) = self.current.as_mut() else {
                return;
            };
            let mut events = 0;
            let mut sink = CountingSink {
                inner: &mut self.publisher,
                events: &mut events,
            };
            let mut outcome = None;
            while budget > 0 {
                match src.next_frame() {
                    Ok(Some(f)) => {
                        budget -= 1;
                        self.stats.packets += 1;
                        let mut meta = f.meta;
                        meta.packet_no = self.stats.packets;
                        self.probe.frame(f.data, f.linktype, meta, &mut sink);
                    }
                    Ok(None) => {
                        outcome = Some(Ok(()));
                        break;
                    }
                    Err(e) => {
                        outcome = Some(Err(e));
                        break;
                    }
                }
            }
            self.stats.events += events;
            if let Some(outcome) = outcome {
                let (path, _) = self.current.take().expect("a current file");
                match outcome {
                    Ok(()) => {
                        self.stats.files_done += 1;
                        self.log(format!("replayed {}", path.display()));
                    }
                    Err(e) => {
                        self.stats.files_failed += 1;
                        self.log(format!("replay of {} failed: {e}", path.display()));
                    }
                }
                self.retire(&path);
            }
        }
    }

    /// A spooled file is renamed `*.done` so it is not replayed again.
    fn retire(&mut self, path: &Path) {
        if let Input::Spool(_) = self.config.input {
            let mut done = path.as_os_str().to_owned();
            done.push(".done");
            if let Err(e) = std::fs::rename(path, &done) {
                self.log(format!("cannot retire {}: {e}", path.display()));
            }
        }
    }
}
