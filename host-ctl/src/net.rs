//! The probe on the ZeroMQ bus (feature `bus`): what `streamon run
//! --publish` and `--subscribe` set up, from command-line values to
//! `streamon-bus` sockets, and the [`Inbox`] through which a chained probe
//! receives other probes' events as input events of its applications.
//!
//! Key files are the `streamon-bus` Z85 files: `NAME.key` (secret) with
//! its `NAME.pub` (public) beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamon_bus::curve::{self, KeyPair};
use streamon_bus::{
    to_message, BusError, PayloadFormat, Publisher, PublisherConfig, Subscriber, SubscriberConfig,
    SubscriberStats,
};
use streamon_probe::{EventSink, Message, MessageError};

use crate::runner::{FrameTarget, MessageFeed};

/// Setting up the probe's bus sockets failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket or key operation failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A secret key file whose name does not end in `.key`.
    #[error("{0}: a secret key file must be NAME.key, with NAME.pub beside it")]
    KeyName(PathBuf),
    /// A CURVE publisher to subscribe to, but no key of our own.
    #[error("subscribing to {0} with CURVE needs this probe's key (--curve-key)")]
    NoClientKey(String),
}

/// How `--publish` publishes.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    /// Endpoint to bind (`tcp://*:5560`).
    pub endpoint: String,
    /// Payload format of every topic but `raw`.
    pub format: PayloadFormat,
    /// `ZMQ_SNDHWM`: events queued per subscriber before libzmq drops.
    pub sndhwm: i32,
    /// The probe id put in every payload.
    pub probe_id: String,
    /// CURVE server secret key file (`NAME.key`, `NAME.pub` beside it).
    pub curve_key: Option<PathBuf>,
    /// Public key files of the subscribers allowed under CURVE.
    pub curve_allow: Vec<PathBuf>,
}

/// Reads `NAME.key` and the `NAME.pub` beside it.
pub fn read_keypair_file(secret: &Path) -> Result<KeyPair, NetError> {
    if secret.extension().is_none_or(|e| e != "key") {
        return Err(NetError::KeyName(secret.to_path_buf()));
    }
    Ok(KeyPair {
        secret: curve::read_key(secret)?,
        public: curve::read_key(&secret.with_extension("pub"))?,
    })
}

/// Binds the publisher `spec` describes.
pub fn open_publisher(spec: &PublishSpec) -> Result<Publisher, NetError> {
    let mut c = PublisherConfig::new(&spec.probe_id);
    c.endpoint = spec.endpoint.clone();
    c.format = spec.format;
    c.sndhwm = spec.sndhwm;
    if let Some(key) = &spec.curve_key {
        let pair = read_keypair_file(key)?;
        let allowed = spec
            .curve_allow
            .iter()
            .map(|p| curve::read_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        c.curve = Some((pair, allowed));
    }
    Ok(Publisher::bind(&c)?)
}

/// One `--subscribe ENDPOINT[@SERVER.pub]`: a publisher to subscribe to,
/// with its CURVE public key file when it serves CURVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeSpec {
    /// The publisher's endpoint (`tcp://probe1:5560`).
    pub endpoint: String,
    /// The publisher's public key file, for CURVE.
    pub server_key: Option<PathBuf>,
}

impl std::str::FromStr for SubscribeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (endpoint, key) = match s.rsplit_once('@') {
            Some((e, k)) => (e, Some(PathBuf::from(k))),
            None => (s, None),
        };
        if !endpoint.contains("://") {
            return Err(format!(
                "{s:?}: expected ENDPOINT[@SERVER_KEY.pub], e.g. tcp://127.0.0.1:5560"
            ));
        }
        Ok(SubscribeSpec {
            endpoint: endpoint.to_string(),
            server_key: key,
        })
    }
}

/// What an [`Inbox`] has done, beyond each subscriber's own counters.
#[derive(Debug, Clone, Default)]
pub struct InboxStats {
    /// Messages handed to the probe.
    pub delivered: u64,
    /// Messages received by the subscriber thread of a live capture
    /// ([`InboxThread`]) while its queue to the capture loop was full;
    /// dropped.
    pub queue_dropped: u64,
    /// Received events that cannot be messages, by reason (`raw`,
    /// `key field`, `too many`, `too long`); skipped.
    pub refused: BTreeMap<&'static str, u64>,
    /// Why the last one was refused.
    pub last_refused: Option<String>,
}

/// The probe's subscriptions to other probes (probe chaining): one
/// [`Subscriber`] per publisher, filtered to the topics of the installed
/// message events. Every received event becomes a [`Message`] for
/// [`Probe::message`] ([`streamon_probe::Message`]), or is counted as
/// refused.
///
/// Queues are bounded: each subscriber's `ZMQ_RCVHWM` (libzmq drops past
/// it, counted from the JSON `seq` as `lost`), and [`Inbox::drain`] takes
/// at most `max` messages per call, so a flooding publisher delays the
/// probe's packets by a bounded amount and then loses messages, counted,
/// instead of growing memory.
pub struct Inbox {
    subs: Vec<Subscriber>,
    endpoints: Vec<String>,
    stats: InboxStats,
    /// The subscriber tried first by the next receive (round robin, so a
    /// flooding publisher does not starve the others).
    next_sub: usize,
}

/// One receive of [`Inbox::recv_one`].
// Matched as soon as it is returned; boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
enum Got {
    Message(Message),
    Refused,
    Nothing,
}

impl Inbox {
    /// Connects to every publisher of `specs`, for `topics` (prefix
    /// filters; the probe's message topics). `client`: this probe's CURVE
    /// key pair, for publishers given with a server key.
    pub fn connect(
        specs: &[SubscribeSpec],
        topics: &[String],
        client: Option<&KeyPair>,
        rcvhwm: Option<i32>,
    ) -> Result<Inbox, NetError> {
        let mut subs = Vec::new();
        for spec in specs {
            let curve = match &spec.server_key {
                None => None,
                Some(k) => {
                    let me = client.ok_or(NetError::NoClientKey(spec.endpoint.clone()))?;
                    Some((me.clone(), curve::read_key(k)?))
                }
            };
            subs.push(Subscriber::connect(&SubscriberConfig {
                endpoints: vec![spec.endpoint.clone()],
                topics: topics.to_vec(),
                rcvhwm,
                curve,
                max_message_bytes: None,
            })?);
        }
        Ok(Inbox {
            subs,
            endpoints: specs.iter().map(|s| s.endpoint.clone()).collect(),
            stats: InboxStats::default(),
            next_sub: 0,
        })
    }

    /// The next queued message of any subscriber, without waiting; a
    /// received event that cannot be a message is counted as refused.
    fn recv_one(&mut self) -> Result<Got, NetError> {
        let n = self.subs.len();
        for k in 0..n {
            let i = (self.next_sub + k) % n;
            let Some(d) = self.subs[i].try_recv()? else {
                continue;
            };
            self.next_sub = (i + 1) % n;
            return Ok(match to_message(&d) {
                Ok(m) => Got::Message(m),
                Err(e) => {
                    let reason = match e {
                        MessageError::Raw => "raw",
                        MessageError::UnknownKeyField(_)
                        | MessageError::MessageFieldAsKey(_)
                        | MessageError::BadKeyValue { .. } => "key field",
                        MessageError::TooMany { .. } => "too many",
                        MessageError::TooLong { .. } => "too long",
                    };
                    *self.stats.refused.entry(reason).or_default() += 1;
                    self.stats.last_refused = Some(e.to_string());
                    Got::Refused
                }
            });
        }
        Ok(Got::Nothing)
    }

    /// Hands at most `max` queued messages to `target` (a [`Probe`] or a
    /// [`crate::runner::Runner`]), without waiting; returns how many were
    /// received (delivered or refused).
    ///
    /// [`Probe`]: streamon_probe::Probe
    pub fn drain(
        &mut self,
        target: &mut dyn FrameTarget,
        sink: &mut dyn EventSink,
        max: usize,
    ) -> Result<usize, NetError> {
        let mut n = 0;
        while n < max {
            match self.recv_one()? {
                Got::Nothing => break,
                Got::Refused => {}
                Got::Message(m) => {
                    self.stats.delivered += 1;
                    target.message(m, sink);
                }
            }
            n += 1;
        }
        Ok(n)
    }

    /// Receives on a thread of its own from now on (a live capture, whose
    /// loop waits on the capture ring, not on these sockets): the messages
    /// go through a queue of `capacity` that the capture loop drains
    /// between ring blocks ([`InboxThread`]).
    pub fn spawn(self, capacity: usize) -> InboxThread {
        let (tx, rx) = sync_channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let mut inbox = self;
        let handle = std::thread::Builder::new()
            .name("subscriber".into())
            .spawn(move || {
                let result = (|| -> Result<(), NetError> {
                    while !thread_shared.stop.load(Ordering::Relaxed) {
                        // Bounded wait: the stop flag is seen within it.
                        if !inbox.wait(Duration::from_millis(20))? {
                            continue;
                        }
                        loop {
                            let m = match inbox.recv_one()? {
                                Got::Nothing => break,
                                Got::Refused => continue,
                                Got::Message(m) => m,
                            };
                            match tx.try_send(m) {
                                Ok(()) => {}
                                Err(TrySendError::Full(_)) => {
                                    thread_shared.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                                // The capture loop is gone: stop.
                                Err(TrySendError::Disconnected(_)) => return Ok(()),
                            }
                        }
                    }
                    Ok(())
                })();
                (inbox, result)
            })
            .expect("spawning the subscriber thread");
        InboxThread {
            rx,
            shared,
            handle: Some(handle),
            delivered: 0,
        }
    }

    /// Waits until a message is queued, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> Result<bool, NetError> {
        Ok(Subscriber::wait_any(&self.subs, timeout)?)
    }

    /// This inbox's counters.
    pub fn stats(&self) -> &InboxStats {
        &self.stats
    }

    /// Each subscriber's counters, with its endpoint.
    pub fn subscriber_stats(&self) -> Vec<(&str, SubscriberStats)> {
        self.endpoints
            .iter()
            .map(String::as_str)
            .zip(self.subs.iter().map(Subscriber::stats))
            .collect()
    }

    /// The last malformed message of each subscriber that had one.
    pub fn last_malformed(&self) -> Vec<(&str, String)> {
        self.endpoints
            .iter()
            .zip(&self.subs)
            .filter_map(|(e, s)| Some((e.as_str(), s.last_malformed()?.to_string())))
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    dropped: AtomicU64,
}

/// An [`Inbox`] receiving on its own thread ([`Inbox::spawn`]), for a
/// probe that captures live and subscribes: the capture loop waits on the
/// ring, this thread on the ZeroMQ sockets, so neither input blocks the
/// other. Messages cross over a bounded queue; one that finds the queue
/// full is dropped and counted ([`InboxStats::queue_dropped`]), so a
/// flooding publisher costs the capture loop a bounded amount of work per
/// ring block and never memory.
pub struct InboxThread {
    rx: Receiver<Message>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<(Inbox, Result<(), NetError>)>>,
    delivered: u64,
}

impl InboxThread {
    /// Hands at most `max` queued messages to `target`, without waiting;
    /// returns how many.
    pub fn drain_queue(
        &mut self,
        target: &mut dyn FrameTarget,
        sink: &mut dyn EventSink,
        max: usize,
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Ok(m) = self.rx.try_recv() else { break };
            target.message(m, sink);
            n += 1;
        }
        self.delivered += n as u64;
        n
    }

    /// Stops the thread, hands every message it had queued to `target`
    /// (after everything handed over before), and gives the [`Inbox`]
    /// back with the counters of both sides; the error is the thread's,
    /// if a receive failed (the messages before it were delivered).
    pub fn stop(
        mut self,
        target: &mut dyn FrameTarget,
        sink: &mut dyn EventSink,
    ) -> (Option<Inbox>, Result<(), NetError>) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let joined = self.handle.take().map(JoinHandle::join);
        while self.drain_queue(target, sink, usize::MAX) > 0 {}
        match joined {
            Some(Ok((mut inbox, result))) => {
                inbox.stats.delivered += self.delivered;
                inbox.stats.queue_dropped += self.shared.dropped.load(Ordering::Relaxed);
                (Some(inbox), result)
            }
            // The thread panicked (it has no panicking path by design).
            _ => (None, Ok(())),
        }
    }
}

impl MessageFeed for InboxThread {
    fn feed(&mut self, target: &mut dyn FrameTarget, sink: &mut dyn EventSink) -> usize {
        self.drain_queue(target, sink, DRAIN_BATCH)
    }
}

impl Drop for InboxThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Capacity of an [`InboxThread`]'s queue, in messages.
pub const THREAD_QUEUE: usize = 4096;

/// When [`receive_until`] stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct StopWhen {
    /// After this long without a message, once one has come.
    pub idle: Option<Duration>,
    /// After this long in all.
    pub total: Option<Duration>,
}

/// Most messages one [`Inbox::drain`] call hands over between packets.
pub const DRAIN_BATCH: usize = 1024;

/// Receives messages into `target` until `stop` says so (both `None`:
/// forever) or `signal` is raised (Ctrl-C, SIGTERM). The wall clock only
/// decides when to stop listening; message events run in message time.
/// With worker threads the events of each drained lot are emitted as soon
/// as the workers have them ([`FrameTarget::flush`]).
pub fn receive_until(
    inbox: &mut Inbox,
    target: &mut dyn FrameTarget,
    sink: &mut dyn EventSink,
    stop: StopWhen,
    signal: &AtomicBool,
) -> Result<(), NetError> {
    let start = Instant::now();
    // Messages already came (between the frames of a capture file): the
    // idle time counts from now.
    let mut last = (inbox.stats.delivered > 0 || !inbox.stats.refused.is_empty()).then_some(start);
    loop {
        let now = Instant::now();
        if signal.load(Ordering::Relaxed) {
            return Ok(());
        }
        if stop.total.is_some_and(|t| now.duration_since(start) >= t) {
            return Ok(());
        }
        if let (Some(idle), Some(l)) = (stop.idle, last) {
            if now.duration_since(l) >= idle {
                return Ok(());
            }
        }
        if inbox.drain(target, sink, DRAIN_BATCH)? > 0 {
            last = Some(Instant::now());
            target.flush(sink);
            continue;
        }
        target.flush(sink);
        inbox.wait(Duration::from_millis(50))?;
    }
}
