//! The controller's persistent store: received events and the desired
//! deployment, in a data directory.
//!
//! - `events.jsonl`: every received event, one JSON object per line,
//!   appended by a writer thread fed through a bounded queue (a full queue
//!   drops the event and counts it: the controller's loop never waits on
//!   the disk). Each record has an `id` (1, 2, … across restarts) and the
//!   controller's receive time. On start the file is read back: the last
//!   [`RECENT_EVENTS`] events and [`RECENT_ALERTS`] alerts are kept in
//!   memory for the API and the dashboard, and `events.idx` (rebuilt then,
//!   extended by the writer) records the byte offset of every
//!   [`INDEX_STRIDE`]-th id, so a reader can seek to an id. A line cut by
//!   a crash is counted as corrupt and skipped, and the next record starts
//!   on a new line.
//! - `state.json`: what should run where (probes, their public keys, their
//!   applications with program text and running flag), replaced
//!   atomically (write, fsync, rename) on every change. A restarted
//!   controller re-synchronises probes from it.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::CtlError;

/// Events kept in memory for the API.
pub const RECENT_EVENTS: usize = 1000;

/// Alerts (topics `alert*` and `critical*`) kept in memory for the
/// dashboard.
pub const RECENT_ALERTS: usize = 200;

/// How long a written event may sit in the writer's buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One `events.idx` entry per this many ids.
pub const INDEX_STRIDE: u64 = 256;

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Store-wide id, from 1.
    pub id: u64,
    /// When the controller received it, ms since the epoch (wall clock).
    pub received_ms: u64,
    /// Publishing probe.
    pub probe: String,
    /// Application.
    pub app: String,
    /// Topic.
    pub topic: String,
    /// Event key.
    pub key: String,
    /// State code and level.
    pub code: String,
    /// Level.
    pub level: String,
    /// Rendered text.
    pub text: String,
    /// Destination state.
    pub state_to: String,
    /// Trace time, ns.
    pub ts: u64,
    /// The publisher's per-topic sequence number.
    pub seq: u64,
    /// Features by name.
    pub features: BTreeMap<String, f64>,
}

impl StoredEvent {
    /// Whether the dashboard shows it as an alert.
    pub fn is_alert(&self) -> bool {
        self.topic.starts_with("alert") || self.topic.starts_with("critical")
    }
}

/// An application the controller wants on a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredApp {
    /// The program.
    pub xml: String,
    /// Whether it should be fed packets.
    pub running: bool,
}

/// A probe the controller knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredProbe {
    /// Its public key, Z85 (the key it first authenticated with; a probe
    /// of the same name with another key is refused).
    pub key: String,
    /// Applications by name.
    pub apps: BTreeMap<String, DesiredApp>,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Probes by name.
    pub probes: BTreeMap<String, DesiredProbe>,
}

/// Store counters.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Events appended.
    pub written: AtomicU64,
    /// Events dropped because the writer's queue was full.
    pub queue_full_drops: AtomicU64,
    /// Events that could not be written (disk error).
    pub write_errors: AtomicU64,
    /// Lines of `events.jsonl` that did not parse at load.
    pub corrupt_lines: AtomicU64,
}

/// What [`EventStore::open`] read back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The last [`RECENT_EVENTS`] events, oldest first.
    pub recent: VecDeque<StoredEvent>,
    /// The last [`RECENT_ALERTS`] alerts, oldest first.
    pub alerts: VecDeque<StoredEvent>,
    /// Events per probe.
    pub per_probe: BTreeMap<String, u64>,
    /// The desired state.
    pub desired: DesiredState,
}

/// The event file's writer thread and the state file.
pub struct EventStore {
    dir: PathBuf,
    tx: Option<SyncSender<StoredEvent>>,
    thread: Option<JoinHandle<()>>,
    next_id: u64,
    /// Counters, shared with the writer thread.
    pub counters: Arc<StoreCounters>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CtlError + '_ {
    move |e| CtlError::Store {
        path: path.to_path_buf(),
        source: e,
    }
}

impl EventStore {
    /// Opens (creating) the store in `dir`, reads it back, and starts the
    /// writer with a queue of `queue` events.
    pub fn open(dir: &Path, queue: usize) -> Result<(EventStore, Loaded), CtlError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let counters = Arc::new(StoreCounters::default());
        let events = dir.join("events.jsonl");
        let mut loaded = Loaded::default();
        let mut index: Vec<(u64, u64)> = Vec::new();
        let mut last_id = 0;
        let mut ends_with_newline = true;
        if events.exists() {
            let f = File::open(&events).map_err(io(&events))?;
            let mut r = BufReader::new(f);
            // Bytes, not `String`: a crash can cut a line inside a UTF-8
            // character, and that line must be a counted corrupt line, not
            // an I/O error that stops the controller from starting.
            let mut line = Vec::new();
            let mut offset = 0u64;
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line).map_err(io(&events))?;
                if n == 0 {
                    break;
                }
                ends_with_newline = line.ends_with(b"\n");
                match serde_json::from_slice::<StoredEvent>(line.trim_ascii_end()) {
                    // The last id leaves room for the next one.
                    Ok(ev) if ev.id > last_id && ev.id < u64::MAX => {
                        last_id = ev.id;
                        if ev.id % INDEX_STRIDE == 1 {
                            index.push((ev.id, offset));
                        }
                        *loaded.per_probe.entry(ev.probe.clone()).or_default() += 1;
                        if ev.is_alert() {
                            push_bounded(&mut loaded.alerts, ev.clone(), RECENT_ALERTS);
                        }
                        push_bounded(&mut loaded.recent, ev, RECENT_EVENTS);
                    }
                    _ if line.trim_ascii().is_empty() => {}
                    _ => {
                        counters.corrupt_lines.fetch_add(1, Ordering::Relaxed);
                    }
                }
                offset += n as u64;
            }
        }
        let state = dir.join("state.json");
        if state.exists() {
            let text = fs::read_to_string(&state).map_err(io(&state))?;
            loaded.desired = serde_json::from_str(&text).map_err(|e| CtlError::StateFile {
                path: state.clone(),
                detail: e.to_string(),
            })?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events)
            .map_err(io(&events))?;
        if !ends_with_newline {
            file.write_all(b"\n").map_err(io(&events))?;
        }
        let idx_path = dir.join("events.idx");
        let mut idx_text = String::new();
        for (id, off) in &index {
            idx_text.push_str(&format!("{id} {off}\n"));
        }
        fs::write(&idx_path, idx_text).map_err(io(&idx_path))?;
        let idx = OpenOptions::new()
            .append(true)
            .open(&idx_path)
            .map_err(io(&idx_path))?;
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("streamon-ctl-store".into())
            .spawn(move || writer(rx, file, idx, &c))
            .map_err(|e| CtlError::Config(format!("cannot start the store writer: {e}")))?;
        Ok((
            EventStore {
                dir: dir.to_path_buf(),
                tx: Some(tx),
                thread: Some(thread),
                next_id: last_id + 1,
                counters,
            },
            loaded,
        ))
    }

    /// Assigns the event its id and queues it for writing; when the queue
    /// is full the event is dropped and counted (it is still shown live).
    pub fn append(&mut self, mut ev: StoredEvent) -> StoredEvent {
        ev.id = self.next_id;
        self.next_id += 1;
        if let Some(tx) = &self.tx {
            match tx.try_send(ev.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.counters
                        .queue_full_drops
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        ev
    }

    /// Replaces `state.json` atomically.
    pub fn save_state(&self, state: &DesiredState) -> Result<(), CtlError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(state).expect("the state serialises");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// A reader of the event file, for another thread.
    pub fn read_handle(&self) -> StoreReader {
        StoreReader {
            dir: self.dir.clone(),
        }
    }

    /// Waits until every queued event is written (tests, shutdown).
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads `events.jsonl` through its index.
#[derive(Debug, Clone)]
pub struct StoreReader {
    dir: PathBuf,
}

impl StoreReader {
    /// Reads stored events with id ≥ `from_id` (at most `limit`), seeking
    /// with `events.idx`. Events still in the writer's buffer (at most
    /// 100 ms old) are not seen yet.
    pub fn read_from(&self, from_id: u64, limit: usize) -> Result<Vec<StoredEvent>, CtlError> {
        let idx_path = self.dir.join("events.idx");
        let idx = fs::read_to_string(&idx_path).map_err(io(&idx_path))?;
        let mut start = 0u64;
        for line in idx.lines() {
            let mut it = line.split(' ');
            if let (Some(Ok(id)), Some(Ok(off))) = (
                it.next().map(str::parse::<u64>),
                it.next().map(str::parse::<u64>),
            ) {
                if id <= from_id {
                    start = off;
                }
            }
        }
        let events = self.dir.join("events.jsonl");
        let mut f = File::open(&events).map_err(io(&events))?;
        f.seek(SeekFrom::Start(start)).map_err(io(&events))?;
        let mut out = Vec::new();
        // Split on bytes: a corrupt line (not UTF-8) is skipped, as at open.
        for line in BufReader::new(f).split(b'\n') {
            let line = line.map_err(io(&events))?;
            if let Ok(ev) = serde_json::from_slice::<StoredEvent>(&line) {
                if ev.id >= from_id {
                    out.push(ev);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Pushes `v`, dropping the oldest beyond `cap`.
pub fn push_bounded<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

fn writer(rx: Receiver<StoredEvent>, file: File, mut idx: File, c: &StoreCounters) {
    let mut offset = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = std::io::BufWriter::new(file);
    let mut line = Vec::with_capacity(512);
    let mut last_flush = Instant::now();
    loop {
        let ev = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                last_flush = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        line.clear();
        if serde_json::to_writer(&mut line, &ev).is_err() {
            c.write_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        line.push(b'\n');
        match out.write_all(&line) {
            Ok(()) => {
                if ev.id % INDEX_STRIDE == 1 {
                    // The offset is of the file, so what is buffered must
                    // be in it before a reader seeks there.
                    let _ = out.flush();
                    let _ = writeln!(idx, "{} {offset}", ev.id);
                }
                offset += line.len() as u64;
                c.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                c.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Under a steady stream, still reach the file at least this often.
        if last_flush.elapsed() >= FLUSH_EVERY {
            let _ = out.flush();
            last_flush = Instant::now();
        }
    }
    let _ = out.flush();
    let _ = out.get_ref().sync_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, text: &str) -> String {
        let ev = StoredEvent {
            id,
            received_ms: 1,
            probe: "p1".into(),
            app: "dns".into(),
            topic: "alert".into(),
            key: "k".into(),
            code: "A1".into(),
            level: "LOW".into(),
            text: text.into(),
            state_to: "suspect".into(),
            ts: 2,
            seq: id,
            features: BTreeMap::new(),
        };
        serde_json::to_string(&ev).unwrap()
    }

    /// Found by the `ctl_store` fuzz target: a line cut inside a UTF-8
    /// character (a crash mid-write) made `open` fail with "stream did not
    /// contain valid UTF-8", so the controller would not start, and
    /// `read_from` failed the same way.
    #[test]
    fn a_line_cut_inside_a_character_is_a_corrupt_line() {
        let dir = tempfile::tempdir().unwrap();
        let cut = event(2, "é");
        let at = cut.find('é').unwrap() + 1;
        let mut file = format!("{}\n", event(1, "a")).into_bytes();
        file.extend_from_slice(&cut.as_bytes()[..at]);
        file.push(b'\n');
        file.extend_from_slice(format!("{}\n", event(3, "b")).as_bytes());
        fs::write(dir.path().join("events.jsonl"), &file).unwrap();
        let (mut store, loaded) = EventStore::open(dir.path(), 4).unwrap();
        let ids: Vec<u64> = loaded.recent.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(store.counters.corrupt_lines.load(Ordering::Relaxed), 1);
        let read = store.read_handle().read_from(1, 10).unwrap();
        assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(store.append(loaded.recent[0].clone()).id, 4);
        store.close();
    }

    /// Seen while writing the `ctl_store` target: an event with id
    /// `u64::MAX` left no id for the next one (`last_id + 1` overflowed).
    #[test]
    fn an_id_that_leaves_no_next_id_is_a_corrupt_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("{}\n{}\n", event(5, "a"), event(u64::MAX, "b"));
        fs::write(dir.path().join("events.jsonl"), file).unwrap();
        let (mut store, loaded) = EventStore::open(dir.path(), 4).unwrap();
        assert_eq!(loaded.recent.len(), 1);
        assert_eq!(store.counters.corrupt_lines.load(Ordering::Relaxed), 1);
        assert_eq!(store.append(loaded.recent[0].clone()).id, 6);
        store.close();
    }
}
