//! The consumer side: a SUB socket yielding typed events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::curve::KeyPair;
use crate::wire::{self, Delivered, Payload, WireError};
use crate::BusError;

/// How a [`Subscriber`] is set up.
#[derive(Debug, Clone, Default)]
pub struct SubscriberConfig {
    /// Publisher endpoints to connect to (`tcp://probe1:5560`). libzmq
    /// reconnects by itself when a publisher goes away and comes back.
    pub endpoints: Vec<String>,
    /// Topic prefixes to receive (`alert` also receives `alert2`). Empty:
    /// every topic.
    pub topics: Vec<String>,
    /// `ZMQ_RCVHWM`. Default (`None`): libzmq's 1000.
    pub rcvhwm: Option<i32>,
    /// CurveZMQ: this client's key pair and the publisher's public key.
    /// Default `None` (plain TCP).
    pub curve: Option<(KeyPair, [u8; 32])>,
    /// Largest message (both frames) decoded; larger ones are counted in
    /// [`SubscriberStats::oversized`] and skipped. Default (`None`):
    /// [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: Option<usize>,
}

/// Default [`SubscriberConfig::max_message_bytes`]: a `raw` message of a
/// 64 KiB frame (the largest snap length) plus its topic frame.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 + 64;

/// What a [`Subscriber`] has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Events decoded and returned.
    pub received: u64,
    /// Messages that were not bus events (wrong frame count, bad UTF-8,
    /// bad JSON or text line); skipped. The last reason is in
    /// [`Subscriber::last_malformed`].
    pub malformed: u64,
    /// Messages larger than [`SubscriberConfig::max_message_bytes`];
    /// skipped without decoding.
    pub oversized: u64,
    /// JSON events missing from a publisher's per-topic `seq` (dropped at
    /// the publisher's high-water mark or ours). A `seq` going backwards is
    /// a restarted publisher, not a loss.
    pub lost: u64,
}

/// Receives events from one or more publishers.
pub struct Subscriber {
    socket: zmq::Socket,
    _ctx: zmq::Context,
    stats: SubscriberStats,
    max_message_bytes: usize,
    last_malformed: Option<WireError>,
    /// Next expected `seq` per (probe, topic).
    next_seq: HashMap<(String, String), u64>,
}

impl Subscriber {
    /// Connects as `config` says.
    pub fn connect(config: &SubscriberConfig) -> Result<Self, BusError> {
        let ctx = zmq::Context::new();
        let socket = ctx
            .socket(zmq::SUB)
            .map_err(|e| BusError::Zmq("sub socket", e))?;
        let z = |what| move |e| BusError::Zmq(what, e);
        socket.set_linger(0).map_err(z("set linger"))?;
        if let Some(h) = config.rcvhwm {
            socket.set_rcvhwm(h).map_err(z("set rcvhwm"))?;
        }
        if let Some((me, server)) = &config.curve {
            socket
                .set_curve_serverkey(server)
                .map_err(z("curve server key"))?;
            socket
                .set_curve_publickey(&me.public)
                .map_err(z("curve public key"))?;
            socket
                .set_curve_secretkey(&me.secret)
                .map_err(z("curve secret key"))?;
        }
        if config.topics.is_empty() {
            socket.set_subscribe(b"").map_err(z("subscribe"))?;
        }
        for t in &config.topics {
            socket.set_subscribe(t.as_bytes()).map_err(z("subscribe"))?;
        }
        for ep in &config.endpoints {
            socket.connect(ep).map_err(|e| BusError::Connect {
                endpoint: ep.clone(),
                source: e,
            })?;
        }
        Ok(Subscriber {
            socket,
            _ctx: ctx,
            stats: SubscriberStats::default(),
            max_message_bytes: config
                .max_message_bytes
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            last_malformed: None,
            next_seq: HashMap::new(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> SubscriberStats {
        self.stats.clone()
    }

    /// Why the last malformed message was skipped.
    pub fn last_malformed(&self) -> Option<&WireError> {
        self.last_malformed.as_ref()
    }

    /// The next event, waiting at most `timeout`; `None` when none came.
    /// Malformed messages are counted and skipped, never returned.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Delivered>, BusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
            let ready = match self.socket.poll(zmq::POLLIN, ms) {
                Ok(n) => n,
                // A signal (Ctrl-C for a probe that handles it) is no
                // error: the caller looks at its flag and comes back.
                Err(zmq::Error::EINTR) => return Ok(None),
                Err(e) => return Err(BusError::Zmq("poll", e)),
            };
            if ready == 0 {
                return Ok(None);
            }
            if let Some(d) = self.try_recv()? {
                return Ok(Some(d));
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// The next event if one is queued, without waiting. Malformed
    /// messages are counted and skipped.
    pub fn try_recv(&mut self) -> Result<Option<Delivered>, BusError> {
        loop {
            let frames = match self.socket.recv_multipart(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(None),
                Err(e) => return Err(BusError::Zmq("recv", e)),
            };
            let bytes: usize = frames.iter().map(Vec::len).sum();
            if bytes > self.max_message_bytes {
                self.stats.oversized += 1;
                self.last_malformed = Some(WireError::Oversized {
                    bytes,
                    max: self.max_message_bytes,
                });
                continue;
            }
            match wire::decode(&frames) {
                Ok(d) => {
                    self.stats.received += 1;
                    if let Payload::Record(r) = &d.payload {
                        self.track_seq(&r.probe, &r.topic, r.seq);
                    }
                    return Ok(Some(d));
                }
                Err(e) => {
                    self.stats.malformed += 1;
                    self.last_malformed = Some(e);
                }
            }
        }
    }

    /// Waits until one of `subs` has a message queued, at most `timeout`;
    /// `Ok(false)` when none came, or when a signal interrupted the wait
    /// (the caller checks its stop flag and waits again).
    pub fn wait_any(subs: &[Subscriber], timeout: Duration) -> Result<bool, BusError> {
        let mut items: Vec<zmq::PollItem<'_>> = subs
            .iter()
            .map(|s| s.socket.as_poll_item(zmq::POLLIN))
            .collect();
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        match zmq::poll(&mut items, ms) {
            Ok(n) => Ok(n > 0),
            Err(zmq::Error::EINTR) => Ok(false),
            Err(e) => Err(BusError::Zmq("poll", e)),
        }
    }

    fn track_seq(&mut self, probe: &str, topic: &str, seq: u64) {
        let key = (probe.to_string(), topic.to_string());
        if let Some(&next) = self.next_seq.get(&key) {
            if seq > next {
                self.stats.lost += seq - next;
            }
        }
        self.next_seq.insert(key, seq.saturating_add(1));
    }
}
