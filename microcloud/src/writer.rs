//! The asynchronous channel: batched, pipelined writes to a MicroCloud node.
//!
//! The probe calls [`Writer::submit`] (or a shortcut such as
//! [`Writer::incr_by`]) from its hot path. That call never blocks and never
//! does I/O: it moves the operation into a bounded queue, or counts it in
//! `dropped_full` if the queue is full. One thread per writer drains the
//! queue, groups operations into batches and sends each batch as one Redis
//! pipeline (one round trip), as the MicroCloud paper's asynchronous
//! channel does (§III-C: "by grouping together requests and by executing
//! them in batches network bandwidth can be saved").
//!
//! # Batching
//!
//! A batch is flushed when it holds [`WriterConfig::batch_max_ops`]
//! operations, or [`WriterConfig::flush_interval`] after its first
//! operation arrived, whichever comes first. Under load batches fill up
//! and each round trip carries many operations; when traffic is light an
//! operation waits at most `flush_interval` (plus one round trip) before
//! it is visible in Redis.
//!
//! # Redis down
//!
//! When a connection attempt or a round trip fails, the batch stays in the
//! retry buffer and the thread reconnects with exponential backoff
//! (`backoff_min` doubling up to `backoff_max`). Meanwhile it keeps
//! draining the queue into the retry buffer, so producers keep enqueueing;
//! the retry buffer holds at most [`WriterConfig::retry_buffer_ops`]
//! operations, and beyond that the *oldest* are discarded and counted in
//! `dropped_down` (a monitoring cache values fresh data over old). Memory
//! is therefore bounded by `queue_capacity + retry_buffer_ops` operations.
//!
//! Delivery is at least once: if a connection breaks after Redis applied
//! part of a pipeline but before the replies arrived, the whole batch is
//! sent again. `SET`, `HSET`, `PEXPIRE`, `DEL` are idempotent; an `INCRBY` in
//! such a batch may be counted twice.
//!
//! # Counters ([`WriterStats`])
//!
//! | counter | counted where |
//! |---|---|
//! | `enqueued` | `submit`, when the operation entered the queue |
//! | `dropped_full` | `submit`, when the queue was full (operation lost) |
//! | `written` | writer thread, operations of a batch whose round trip completed |
//! | `rejected` | writer thread, commands Redis answered with an error (wrong type, ...); included in `written` |
//! | `batches` | writer thread, completed round trips (pipelines) |
//! | `dropped_down` | writer thread, operations discarded from a full retry buffer, or left over at shutdown with Redis unreachable |
//! | `retries` | writer thread, failed connection attempts and failed round trips, each followed by a retry |
//! | `connects` | writer thread, successful connections |
//!
//! Once the writer is idle, `enqueued == written + dropped_down`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Whether a key outlives the updates that create it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// The key stays until something deletes it (MicroCloud paper §III-B:
    /// user-to-IP mappings).
    Persistent,
    /// The key expires this long after its *last* update: every write
    /// refreshes the TTL (`SET ... PX`, or `PEXPIRE` after `INCRBY`/`HSET`),
    /// so an idle host's counters disappear on their own.
    Volatile(Duration),
}

/// One write to the MicroCloud.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    /// `SET key value` (`PX ttl` if volatile).
    Set {
        /// Key name (see [`crate::names`]).
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Persistence.
        persistence: Persistence,
    },
    /// `INCRBY key delta` (then `PEXPIRE` if volatile).
    IncrBy {
        /// Key name.
        key: String,
        /// Increment.
        delta: i64,
        /// Persistence.
        persistence: Persistence,
    },
    /// `INCRBYFLOAT key delta` (then `PEXPIRE` if volatile).
    IncrByFloat {
        /// Key name.
        key: String,
        /// Increment (must be finite; Redis refuses NaN and infinities).
        delta: f64,
        /// Persistence.
        persistence: Persistence,
    },
    /// `HSET key field value` (then `PEXPIRE` if volatile).
    HSet {
        /// Key name.
        key: String,
        /// Field.
        field: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// Persistence of the whole hash.
        persistence: Persistence,
    },
    /// `PUBLISH channel message`.
    Publish {
        /// Channel name.
        channel: String,
        /// Message.
        message: Vec<u8>,
    },
    /// `PEXPIRE key ttl`: deferred deletion (paper §III-B: a user who
    /// disconnects is only marked for deletion, so flows still in the
    /// cache can be matched with them).
    Expire {
        /// Key name.
        key: String,
        /// Time left before Redis deletes the key.
        ttl: Duration,
    },
    /// `DEL key`: immediate deletion of a (persistent) key.
    Del {
        /// Key name.
        key: String,
    },
}

impl WriteOp {
    /// Appends this operation's commands, RESP-encoded, to `out`; returns
    /// how many commands that is (each gets one reply).
    fn encode(&self, out: &mut Vec<u8>) -> usize {
        let mut num = itoa_buf();
        match self {
            WriteOp::Set {
                key,
                value,
                persistence,
            } => match persistence {
                Persistence::Persistent => {
                    resp_command(out, &[b"SET", key.as_bytes(), value]);
                    1
                }
                Persistence::Volatile(ttl) => {
                    let ms = fmt_num(&mut num, ttl_ms(*ttl));
                    resp_command(out, &[b"SET", key.as_bytes(), value, b"PX", ms]);
                    1
                }
            },
            WriteOp::IncrBy {
                key,
                delta,
                persistence,
            } => {
                resp_command(out, &[b"INCRBY", key.as_bytes(), fmt_num(&mut num, delta)]);
                1 + expire(out, key, persistence)
            }
            WriteOp::IncrByFloat {
                key,
                delta,
                persistence,
            } => {
                let d = format!("{delta}");
                resp_command(out, &[b"INCRBYFLOAT", key.as_bytes(), d.as_bytes()]);
                1 + expire(out, key, persistence)
            }
            WriteOp::HSet {
                key,
                field,
                value,
                persistence,
            } => {
                resp_command(out, &[b"HSET", key.as_bytes(), field, value]);
                1 + expire(out, key, persistence)
            }
            WriteOp::Publish { channel, message } => {
                resp_command(out, &[b"PUBLISH", channel.as_bytes(), message]);
                1
            }
            WriteOp::Expire { key, ttl } => expire(out, key, &Persistence::Volatile(*ttl)),
            WriteOp::Del { key } => {
                resp_command(out, &[b"DEL", key.as_bytes()]);
                1
            }
        }
    }
}

/// `PEXPIRE key ttl` if volatile; returns the number of commands added.
fn expire(out: &mut Vec<u8>, key: &str, p: &Persistence) -> usize {
    match p {
        Persistence::Persistent => 0,
        Persistence::Volatile(ttl) => {
            let mut num = itoa_buf();
            let ms = fmt_num(&mut num, ttl_ms(*ttl));
            resp_command(out, &[b"PEXPIRE", key.as_bytes(), ms]);
            1
        }
    }
}

fn itoa_buf() -> Vec<u8> {
    Vec::with_capacity(24)
}

fn fmt_num(buf: &mut Vec<u8>, n: impl std::fmt::Display) -> &[u8] {
    use std::io::Write as _;
    buf.clear();
    // Writing to a Vec cannot fail.
    let _ = write!(buf, "{n}");
    buf
}

/// One command as a RESP multibulk request.
fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses `PX 0`).
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Tuning of a [`Writer`].
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Operations the queue between producers and the writer thread holds.
    /// Default 65 536: 0.65 s at 100 k updates/s.
    pub queue_capacity: usize,
    /// Most operations in one pipeline. Default 1024.
    pub batch_max_ops: usize,
    /// Longest an operation waits for its batch to fill. Default 1 ms.
    pub flush_interval: Duration,
    /// Most operations kept for retry while Redis is unreachable. Default
    /// 65 536.
    pub retry_buffer_ops: usize,
    /// First reconnection delay. Default 10 ms.
    pub backoff_min: Duration,
    /// Longest reconnection delay. Default 1 s.
    pub backoff_max: Duration,
    /// Bound on connecting, and on each read and write of a round trip.
    /// Default 1 s.
    pub io_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 65_536,
            batch_max_ops: 1024,
            flush_interval: Duration::from_millis(1),
            retry_buffer_ops: 65_536,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
        }
    }
}

/// Counters of a [`Writer`] (see the module doc for where each is counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Operations accepted into the queue.
    pub enqueued: u64,
    /// Operations whose round trip completed.
    pub written: u64,
    /// Commands Redis answered with an error.
    pub rejected: u64,
    /// Completed round trips.
    pub batches: u64,
    /// Operations refused because the queue was full.
    pub dropped_full: u64,
    /// Operations discarded while Redis was unreachable.
    pub dropped_down: u64,
    /// Failed connection attempts and round trips.
    pub retries: u64,
    /// Successful connections.
    pub connects: u64,
}

#[derive(Default)]
struct Counters {
    enqueued: AtomicU64,
    written: AtomicU64,
    rejected: AtomicU64,
    batches: AtomicU64,
    dropped_full: AtomicU64,
    dropped_down: AtomicU64,
    retries: AtomicU64,
    connects: AtomicU64,
    connected: AtomicBool,
    retry_buffered: AtomicUsize,
}

/// Errors starting a [`Writer`] or a [`crate::lookup::Lookup`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The Redis URL could not be parsed.
    #[error("invalid redis url '{url}'")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// The writer thread could not be spawned.
    #[error("cannot spawn the writer thread")]
    Spawn(#[source] std::io::Error),
}

/// The asynchronous write channel to one MicroCloud node.
///
/// Dropping it flushes what is queued (one attempt if Redis is down) and
/// joins the thread.
pub struct Writer {
    tx: Option<SyncSender<WriteOp>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread for the Redis at `url`
    /// (`redis://127.0.0.1:6379/`). Does not wait for a connection: the
    /// thread connects, and reconnects, on its own.
    pub fn start(url: &str, config: WriterConfig) -> Result<Writer, ConfigError> {
        let client = redis::Client::open(url).map_err(|source| ConfigError::Url {
            url: url.to_string(),
            source,
        })?;
        let (tx, rx) = sync_channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            rx,
            client,
            counters: counters.clone(),
            config,
            conn: None,
            pending: VecDeque::new(),
            packed: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("microcloud-writer".into())
            .spawn(move || worker.run())
            .map_err(ConfigError::Spawn)?;
        Ok(Writer {
            tx: Some(tx),
            counters,
            thread: Some(thread),
        })
    }

    /// Enqueues `op` without blocking. Returns false (and counts
    /// `dropped_full`) if the queue is full.
    pub fn submit(&self, op: WriteOp) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(op) {
            Ok(()) => {
                self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// `SET key value`, persistent or volatile.
    pub fn set(
        &self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        persistence: Persistence,
    ) -> bool {
        self.submit(WriteOp::Set {
            key: key.into(),
            value: value.into(),
            persistence,
        })
    }

    /// `INCRBY key delta`, persistent or volatile.
    pub fn incr_by(&self, key: impl Into<String>, delta: i64, persistence: Persistence) -> bool {
        self.submit(WriteOp::IncrBy {
            key: key.into(),
            delta,
            persistence,
        })
    }

    /// `INCRBYFLOAT key delta`, persistent or volatile.
    pub fn incr_by_float(
        &self,
        key: impl Into<String>,
        delta: f64,
        persistence: Persistence,
    ) -> bool {
        self.submit(WriteOp::IncrByFloat {
            key: key.into(),
            delta,
            persistence,
        })
    }

    /// `HSET key field value`, persistent or volatile.
    pub fn hset(
        &self,
        key: impl Into<String>,
        field: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        persistence: Persistence,
    ) -> bool {
        self.submit(WriteOp::HSet {
            key: key.into(),
            field: field.into(),
            value: value.into(),
            persistence,
        })
    }

    /// `PUBLISH channel message`.
    pub fn publish(&self, channel: impl Into<String>, message: impl Into<Vec<u8>>) -> bool {
        self.submit(WriteOp::Publish {
            channel: channel.into(),
            message: message.into(),
        })
    }

    /// `PEXPIRE key ttl` (deferred deletion).
    pub fn expire(&self, key: impl Into<String>, ttl: Duration) -> bool {
        self.submit(WriteOp::Expire {
            key: key.into(),
            ttl,
        })
    }

    /// `DEL key`.
    pub fn del(&self, key: impl Into<String>) -> bool {
        self.submit(WriteOp::Del { key: key.into() })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_down: c.dropped_down.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            connects: c.connects.load(Ordering::Relaxed),
        }
    }

    /// True while the writer thread holds a working connection.
    pub fn is_connected(&self) -> bool {
        self.counters.connected.load(Ordering::Relaxed)
    }

    /// Operations waiting in the retry buffer.
    pub fn retry_buffered(&self) -> usize {
        self.counters.retry_buffered.load(Ordering::Relaxed)
    }

    /// Waits until every operation enqueued so far is written or dropped,
    /// at most `timeout`. Returns whether that happened. For tests and
    /// shutdown; the probe never calls it on its hot path.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if s.written + s.dropped_down >= s.enqueued {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// State of the writer thread.
struct Worker {
    rx: Receiver<WriteOp>,
    client: redis::Client,
    counters: Arc<Counters>,
    config: WriterConfig,
    conn: Option<redis::Connection>,
    /// The batch being assembled, and the retry buffer while Redis is down.
    pending: VecDeque<WriteOp>,
    /// The encoded batch, reused between round trips.
    packed: Vec<u8>,
}

impl Worker {
    fn run(mut self) {
        let cfg = self.config.clone();
        let batch_max = cfg.batch_max_ops.max(1);
        let mut backoff = cfg.backoff_min;
        let mut next_connect = Instant::now();
        // When the oldest operation of the current batch arrived.
        let mut batch_since: Option<Instant> = None;
        let mut closed = false;
        loop {
            if self.conn.is_none() {
                self.drain_into_retry_buffer(&mut closed);
                let now = Instant::now();
                if now >= next_connect || closed {
                    if self.connect() {
                        backoff = cfg.backoff_min;
                    } else {
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        next_connect = Instant::now() + backoff;
                        backoff = (backoff * 2).min(cfg.backoff_max);
                        if closed {
                            // Shutting down with Redis unreachable.
                            let left = self.pending.len() as u64;
                            self.counters
                                .dropped_down
                                .fetch_add(left, Ordering::Relaxed);
                            self.pending.clear();
                            self.publish_buffered();
                            return;
                        }
                    }
                } else {
                    // Sleep until the next attempt, still taking ops in.
                    let wait = (next_connect - now).min(Duration::from_millis(50));
                    match self.rx.recv_timeout(wait) {
                        Ok(op) => self.push_bounded(op),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => closed = true,
                    }
                }
                if self.conn.is_none() {
                    continue;
                }
                batch_since = (!self.pending.is_empty()).then(Instant::now);
            }

            // Connected: fill the batch until it is full or its deadline.
            while self.pending.len() < batch_max && !closed {
                let wait = match batch_since {
                    // Idle: wake up now and then to notice shutdown.
                    None => Duration::from_millis(100),
                    Some(t) => (t + cfg.flush_interval).saturating_duration_since(Instant::now()),
                };
                let got = if wait.is_zero() {
                    match self.rx.try_recv() {
                        Ok(op) => Some(op),
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                } else {
                    match self.rx.recv_timeout(wait) {
                        Ok(op) => Some(op),
                        Err(RecvTimeoutError::Timeout) => {
                            if batch_since.is_some() {
                                break;
                            }
                            None
                        }
                        Err(RecvTimeoutError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                };
                if let Some(op) = got {
                    batch_since.get_or_insert_with(Instant::now);
                    self.pending.push_back(op);
                }
            }

            if !self.pending.is_empty() {
                let n = self.pending.len().min(batch_max);
                if self.flush(n) {
                    batch_since = (!self.pending.is_empty()).then(Instant::now);
                } else {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    self.counters.connected.store(false, Ordering::Relaxed);
                    self.conn = None;
                    if closed {
                        // Shutting down: one attempt only.
                        let left = self.pending.len() as u64;
                        self.counters
                            .dropped_down
                            .fetch_add(left, Ordering::Relaxed);
                        self.pending.clear();
                        self.publish_buffered();
                        return;
                    }
                    // Reconnect at once: a broken connection is often just
                    // a restarted server; the backoff applies after that.
                    next_connect = Instant::now();
                    self.publish_buffered();
                }
            } else if closed {
                return;
            }
        }
    }

    /// Sends the first `n` pending operations as one pipeline; removes them
    /// on success.
    fn flush(&mut self, n: usize) -> bool {
        use redis::ConnectionLike as _;
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        self.packed.clear();
        let mut commands = 0;
        for op in self.pending.iter().take(n) {
            commands += op.encode(&mut self.packed);
        }
        match conn.req_packed_commands(&self.packed, 0, commands) {
            Ok(replies) => {
                let errors = replies
                    .iter()
                    .filter(|v| matches!(v, redis::Value::ServerError(_)))
                    .count() as u64;
                self.pending.drain(..n);
                let c = &self.counters;
                c.rejected.fetch_add(errors, Ordering::Relaxed);
                c.written.fetch_add(n as u64, Ordering::Relaxed);
                c.batches.fetch_add(1, Ordering::Relaxed);
                self.publish_buffered();
                true
            }
            Err(_) => false,
        }
    }

    fn connect(&mut self) -> bool {
        let t = self.config.io_timeout;
        let conn = self.client.get_connection_with_timeout(t).and_then(|c| {
            c.set_read_timeout(Some(t))?;
            c.set_write_timeout(Some(t))?;
            Ok(c)
        });
        match conn {
            Ok(c) => {
                self.conn = Some(c);
                self.counters.connects.fetch_add(1, Ordering::Relaxed);
                self.counters.connected.store(true, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Moves everything queued into the retry buffer (Redis is down).
    fn drain_into_retry_buffer(&mut self, closed: &mut bool) {
        loop {
            match self.rx.try_recv() {
                Ok(op) => self.push_bounded(op),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    *closed = true;
                    break;
                }
            }
        }
        self.publish_buffered();
    }

    /// Appends to the retry buffer, discarding the oldest beyond its bound.
    fn push_bounded(&mut self, op: WriteOp) {
        self.pending.push_back(op);
        let cap = self.config.retry_buffer_ops.max(1);
        if self.pending.len() > cap {
            let excess = self.pending.len() - cap;
            self.pending.drain(..excess);
            self.counters
                .dropped_down
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
    }

    fn publish_buffered(&self) {
        self.counters
            .retry_buffered
            .store(self.pending.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(op: &WriteOp) -> String {
        let mut out = Vec::new();
        op.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn volatile_ops_refresh_the_ttl() {
        let s = packed(&WriteOp::Set {
            key: "k".into(),
            value: b"v".to_vec(),
            persistence: Persistence::Volatile(Duration::from_secs(2)),
        });
        assert_eq!(
            s,
            "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$4\r\n2000\r\n"
        );
        let s = packed(&WriteOp::IncrBy {
            key: "k".into(),
            delta: -3,
            persistence: Persistence::Volatile(Duration::from_micros(10)),
        });
        assert!(
            s.ends_with("$7\r\nPEXPIRE\r\n$1\r\nk\r\n$1\r\n1\r\n"),
            "{s}"
        );
        let s = packed(&WriteOp::HSet {
            key: "h".into(),
            field: b"f".to_vec(),
            value: b"v".to_vec(),
            persistence: Persistence::Persistent,
        });
        assert!(!s.contains("PEXPIRE"));
    }

    #[test]
    fn producer_never_blocks_without_redis() {
        // Port 1 on loopback: nothing listens, connections are refused.
        let w = Writer::start(
            "redis://127.0.0.1:1/",
            WriterConfig {
                queue_capacity: 8,
                retry_buffer_ops: 16,
                ..WriterConfig::default()
            },
        )
        .unwrap();
        let t = Instant::now();
        for i in 0..10_000 {
            w.incr_by(format!("k{i}"), 1, Persistence::Persistent);
        }
        assert!(t.elapsed() < Duration::from_secs(1));
        let s = w.stats();
        assert_eq!(s.enqueued + s.dropped_full, 10_000);
        assert!(s.dropped_full > 0);
        assert_eq!(s.written, 0);
    }
}
