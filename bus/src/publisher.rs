//! The probe side: a PUB socket behind the probe's `EventSink`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use streamon_probe::{EventSink, OutputEvent};

use crate::curve::{AuthStats, Authenticator, KeyPair};
use crate::wire::{self, PayloadFormat};
use crate::BusError;

/// The original exporter's endpoint (`23Exporter.cpp`).
pub const DEFAULT_ENDPOINT: &str = "tcp://*:5560";

/// Default `ZMQ_SNDHWM`: messages queued per subscriber before libzmq
/// drops for it (libzmq's own default).
pub const DEFAULT_SNDHWM: i32 = 1000;

/// How a [`Publisher`] is set up.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Endpoint to bind. Default [`DEFAULT_ENDPOINT`]; tests use
    /// `tcp://127.0.0.1:*` and read [`Publisher::endpoint`].
    pub endpoint: String,
    /// The probe's id (`%client.id`), in every payload. Non-empty, no
    /// spaces, `"` or `=` (it is a text-line token).
    pub probe_id: String,
    /// Payload format. Default [`PayloadFormat::Text`], the original.
    pub format: PayloadFormat,
    /// `ZMQ_SNDHWM`. Default [`DEFAULT_SNDHWM`]; lower it to bound memory
    /// per slow subscriber, raise it to ride out longer stalls.
    pub sndhwm: i32,
    /// CurveZMQ: the server's key pair and the authorised client public
    /// keys. Default `None` (plain TCP, any subscriber).
    pub curve: Option<(KeyPair, Vec<[u8; 32]>)>,
}

impl PublisherConfig {
    /// Defaults for probe `probe_id`.
    pub fn new(probe_id: &str) -> Self {
        PublisherConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            probe_id: probe_id.to_string(),
            format: PayloadFormat::Text,
            sndhwm: DEFAULT_SNDHWM,
            curve: None,
        }
    }
}

/// What a [`Publisher`] has done. Every event handed to `emit` is counted
/// in exactly one of `sent`, `encode_errors`, `send_drops`.
///
/// Events libzmq drops for one subscriber whose queue is at `ZMQ_SNDHWM`
/// are *not* visible here: a PUB socket drops silently, and the `zmq` 0.9
/// crate cannot set `ZMQ_XPUB_NODROP` (which would turn them into
/// `EAGAIN`s for everyone). Subscribers count them from the JSON `seq`
/// ([`crate::SubscriberStats::lost`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Events handed to libzmq.
    pub sent: u64,
    /// Events that could not be encoded (a `raw` event without hex bytes,
    /// a code or feature name with a space in text format); the last
    /// reason is in [`Publisher::last_encode_error`].
    pub encode_errors: u64,
    /// Events libzmq refused without blocking (`EAGAIN`, or the socket
    /// failing): dropped, never retried.
    pub send_drops: u64,
    /// Subscription messages received (one per topic prefix a subscriber
    /// subscribes to, counted again when it reconnects).
    pub subscriptions: u64,
    /// Unsubscription messages received (a subscriber that closes cleanly
    /// or drops a prefix).
    pub unsubscriptions: u64,
    /// The authenticator's counters, under CURVE.
    pub auth: Option<AuthStats>,
}

static MONITOR_ID: AtomicUsize = AtomicUsize::new(0);

/// Publishes events on a PUB socket; an [`EventSink`] for the probe.
///
/// `emit` encodes the event into a reused buffer and sends it once with
/// `ZMQ_DONTWAIT`: nothing is queued in this struct, so nothing is ever
/// re-sent (the original re-published stale entries of a never-cleared
/// map, streamon-original.md §13 B.4).
///
/// The socket is an `XPUB` in verbose mode: it sends exactly as a `PUB`
/// does, and it also hands up every (un)subscription, which
/// [`Publisher::wait_subscriptions`] uses so that a replay starts only
/// once its subscribers are listening (ZeroMQ's "slow joiner": a PUB drops
/// whatever it sends before a subscription has arrived).
pub struct Publisher {
    // Field order is drop order: the socket closes before the
    // authenticator stops and the context terminates.
    socket: zmq::Socket,
    auth: Option<Authenticator>,
    _ctx: zmq::Context,
    endpoint: String,
    probe_id: String,
    format: PayloadFormat,
    payload: Vec<u8>,
    seq: HashMap<String, u64>,
    stats: PublisherStats,
    last_encode_error: Option<wire::EncodeError>,
}

impl Publisher {
    /// Binds a publisher as `config` says. With CURVE, the ZAP handler is
    /// bound before the socket, so no client slips in unauthenticated.
    pub fn bind(config: &PublisherConfig) -> Result<Self, BusError> {
        if config.probe_id.is_empty()
            || config
                .probe_id
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '=')
        {
            return Err(BusError::BadProbeId(config.probe_id.clone()));
        }
        let ctx = zmq::Context::new();
        let socket = ctx
            .socket(zmq::XPUB)
            .map_err(|e| BusError::Zmq("pub socket", e))?;
        let z = |what| move |e| BusError::Zmq(what, e);
        socket
            .set_xpub_verbose(true)
            .map_err(z("set xpub verbose"))?;
        socket.set_sndhwm(config.sndhwm).map_err(z("set sndhwm"))?;
        // Dropping the publisher must not wait for slow subscribers.
        socket.set_linger(0).map_err(z("set linger"))?;
        let auth = match &config.curve {
            None => None,
            Some((server, clients)) => {
                socket.set_curve_server(true).map_err(z("curve server"))?;
                socket
                    .set_curve_secretkey(&server.secret)
                    .map_err(z("curve secret key"))?;
                socket.set_zap_domain("streamon").map_err(z("zap domain"))?;
                let mon = format!(
                    "inproc://streamon-bus-monitor-{}",
                    MONITOR_ID.fetch_add(1, Ordering::Relaxed)
                );
                socket
                    .monitor(&mon, zmq::SocketEvent::ALL as i32)
                    .map_err(z("socket monitor"))?;
                Some(Authenticator::start(&ctx, clients.clone(), &mon)?)
            }
        };
        socket.bind(&config.endpoint).map_err(|e| BusError::Bind {
            endpoint: config.endpoint.clone(),
            source: e,
        })?;
        let endpoint = socket
            .get_last_endpoint()
            .map_err(z("last endpoint"))?
            .unwrap_or_else(|_| config.endpoint.clone());
        Ok(Publisher {
            socket,
            auth,
            _ctx: ctx,
            endpoint,
            probe_id: config.probe_id.clone(),
            format: config.format,
            payload: Vec::with_capacity(512),
            seq: HashMap::new(),
            stats: PublisherStats::default(),
            last_encode_error: None,
        })
    }

    /// How long dropping the publisher may wait for events still queued
    /// for connected subscribers (libzmq's linger). Bound with 0: a drop
    /// discards them, so the last events of a run can be lost while `sent`
    /// counts them and no subscriber sees a gap. A probe ending a run sets
    /// a bounded wait, so a slow or gone subscriber delays the exit by at
    /// most `wait`.
    pub fn set_linger(&mut self, wait: Duration) -> Result<(), BusError> {
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        self.socket
            .set_linger(ms)
            .map_err(|e| BusError::Zmq("set linger", e))
    }

    /// The bound endpoint, with the port libzmq chose for `:*`
    /// (`tcp://127.0.0.1:41233`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Counters so far (with the authenticator's, under CURVE).
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            auth: self.auth.as_ref().map(Authenticator::stats),
            ..self.stats.clone()
        }
    }

    /// Why the last event could not be encoded.
    pub fn last_encode_error(&self) -> Option<&wire::EncodeError> {
        self.last_encode_error.as_ref()
    }

    /// Reads the (un)subscription messages queued so far, without waiting,
    /// and counts them; returns how many subscriptions were read. Called
    /// by [`Publisher::wait_subscriptions`]; a long-running publisher may
    /// call it now and then (libzmq keeps them in an unbounded list, one
    /// per subscriber and prefix, so they are few).
    pub fn poll_subscriptions(&mut self) -> u64 {
        let mut n = 0;
        while let Ok(msg) = self.socket.recv_bytes(zmq::DONTWAIT) {
            match msg.first() {
                Some(1) => {
                    self.stats.subscriptions += 1;
                    n += 1;
                }
                Some(0) => self.stats.unsubscriptions += 1,
                _ => {}
            }
        }
        n
    }

    /// Waits until `n` subscription messages in all have arrived (a
    /// subscriber sends one per topic prefix), or `timeout` passes.
    /// Returns the subscriptions seen so far. Only the wall clock of the
    /// start-up is involved: nothing the probe decides depends on it.
    pub fn wait_subscriptions(&mut self, n: u64, timeout: Duration) -> Result<u64, BusError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll_subscriptions();
            let left = deadline.saturating_duration_since(Instant::now());
            if self.stats.subscriptions >= n || left.is_zero() {
                return Ok(self.stats.subscriptions);
            }
            let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
            self.socket
                .poll(zmq::POLLIN, ms.min(50))
                .map_err(|e| BusError::Zmq("poll", e))?;
        }
    }

    /// Sends `topic` + `payload` as is, for tests and for relaying (a
    /// probe that republishes what it subscribed to). Counted like
    /// [`EventSink::emit`].
    pub fn send_frames(&mut self, topic: &[u8], payload: &[u8]) {
        let r = self
            .socket
            .send(topic, zmq::SNDMORE | zmq::DONTWAIT)
            .and_then(|()| self.socket.send(payload, zmq::DONTWAIT));
        match r {
            Ok(()) => self.stats.sent += 1,
            Err(_) => self.stats.send_drops += 1,
        }
    }
}

impl EventSink for Publisher {
    fn emit(&mut self, ev: &OutputEvent) {
        let seq = match self.seq.get_mut(&ev.topic) {
            Some(n) => n,
            None => self.seq.entry(ev.topic.clone()).or_insert(0),
        };
        let this = *seq;
        if let Err(e) =
            wire::encode_payload(ev, &self.probe_id, self.format, this, &mut self.payload)
        {
            self.stats.encode_errors += 1;
            self.last_encode_error = Some(e);
            return;
        }
        // The sequence advances for every event handed to libzmq, so a
        // subscriber's gap is exactly what libzmq dropped for it.
        *seq += 1;
        let payload = std::mem::take(&mut self.payload);
        self.send_frames(ev.topic.as_bytes(), &payload);
        self.payload = payload;
    }
}
