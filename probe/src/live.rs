//! The probe's live state, served over the Redis protocol.
//!
//! Two halves, so that the packet path locks nothing shared:
//!
//! * [`LiveTable`], per application, owned by the probe thread: the last
//!   pass of the `capacity` most recently entered keys (state after the
//!   pass, metric and feature values, packet time). Recording a pass is a
//!   hash lookup and a copy into preallocated slots: no allocation, no
//!   lock. When full, the key that entered longest ago is replaced.
//! * [`LiveView`], shared with the RESP server's threads: the latest
//!   [`Snapshot`] behind an `Arc`. A reader that finds the snapshot older
//!   than [`LiveConfig::max_age`] raises a flag and waits (at most
//!   [`LiveConfig::wait`]) for a new one; the probe thread checks the flag
//!   (one relaxed atomic load per packet) and, when raised, builds a
//!   snapshot between two packets and publishes it. The only lock is taken
//!   to swap or clone the `Arc`: by readers, and by the probe thread when
//!   it publishes, never per packet.
//!
//! **Freshness.** An answer reflects the probe as it was at most `max_age`
//! (default 100 ms) before the command, plus the time to the probe's next
//! packet boundary (while it replays or captures) or the next check of an
//! idle probe (1 ms when `streamon run --hold` keeps it open after the
//! trace). A probe that does not answer within `wait` (default 250 ms) is
//! served from the last snapshot it published.
//!
//! Key layout (`docs/microcloud.md`), `<probe>` the probe id:
//!
//! | key | type | value |
//! |---|---|---|
//! | `streamon:<probe>:app:<app>:state:<key>` | hash | `state`, `ts`, one field per metric and feature |
//! | `streamon:<probe>:ip:<addr>:<app>.state` | string | the XFSM state of a single-address key |
//! | `streamon:<probe>:ip:<addr>:<app>.<metric or feature>` | string | its value at the key's last pass |
//! | `streamon:<probe>:app:<app>:metric:<counter>` | string | an application counter (`AppStats`) |
//! | `streamon:<probe>:probe:<counter>` | string | a probe counter (`ProbeStats`) |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ahash::RandomState;
use streamon_microcloud::names::KeyName;
use streamon_microcloud::{KeyTtl, LiveState, StateValue};

use crate::key::StateKey;

/// Longest rendered key text kept per entry (longer keys are cut).
pub const KEY_TEXT_MAX: usize = 96;

/// One application's last passes, on the probe thread.
pub struct LiveTable {
    index: HashMap<StateKey, u32, RandomState>,
    slots: Vec<Slot>,
    /// `width` values per slot: metrics, then features.
    values: Vec<f64>,
    width: usize,
    capacity: usize,
    /// Next slot to replace when full (the one that entered longest ago).
    hand: usize,
}

#[derive(Clone)]
struct Slot {
    key: StateKey,
    text: [u8; KEY_TEXT_MAX],
    text_len: u8,
    addr: Option<IpAddr>,
    state: u32,
    ts: u64,
}

/// Renders a key's text into a slot without allocating (cut when long).
pub(crate) struct KeyText<'a> {
    buf: &'a mut [u8; KEY_TEXT_MAX],
    len: usize,
}

impl std::fmt::Write for KeyText<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for ch in s.chars() {
            let mut tmp = [0u8; 4];
            let b = ch.encode_utf8(&mut tmp).as_bytes();
            if self.len + b.len() > KEY_TEXT_MAX {
                return Ok(());
            }
            self.buf[self.len..self.len + b.len()].copy_from_slice(b);
            self.len += b.len();
        }
        Ok(())
    }
}

/// What a pass leaves in the table.
pub(crate) struct PassRecord<'a> {
    pub key: StateKey,
    pub state: u32,
    pub ts: u64,
    /// The key as a single address, when it is one.
    pub addr: Option<IpAddr>,
    pub metrics: &'a [f64],
    pub features: &'a [f64],
}

impl LiveTable {
    /// A table for `capacity` keys of `metrics + features` values each;
    /// everything is allocated here.
    pub fn new(capacity: usize, metrics: usize, features: usize) -> LiveTable {
        let capacity = capacity.clamp(1, 1 << 24);
        let width = metrics + features;
        LiveTable {
            // Twice the keys held: replacing keys leaves tombstones, and a
            // half-empty table rehashes in place instead of growing.
            index: HashMap::with_capacity_and_hasher(capacity * 2, RandomState::new()),
            slots: Vec::with_capacity(capacity),
            values: vec![0.0; capacity * width],
            width,
            capacity,
            hand: 0,
        }
    }

    /// Records a pass; `render` writes the key's text when the key enters.
    pub(crate) fn record(&mut self, r: PassRecord<'_>, render: impl FnOnce(&mut KeyText<'_>)) {
        let i = match self.index.get(&r.key) {
            Some(&i) => i as usize,
            None => {
                let i = if self.slots.len() < self.capacity {
                    self.slots.push(Slot {
                        key: r.key,
                        text: [0; KEY_TEXT_MAX],
                        text_len: 0,
                        addr: None,
                        state: 0,
                        ts: 0,
                    });
                    self.slots.len() - 1
                } else {
                    let i = self.hand;
                    self.hand = (self.hand + 1) % self.capacity;
                    let old = self.slots[i].key;
                    self.index.remove(&old);
                    i
                };
                self.index.insert(r.key, i as u32);
                let slot = &mut self.slots[i];
                slot.key = r.key;
                let mut t = KeyText {
                    buf: &mut slot.text,
                    len: 0,
                };
                render(&mut t);
                slot.text_len = t.len as u8;
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.addr = r.addr;
        slot.state = r.state;
        slot.ts = r.ts;
        let v = &mut self.values[i * self.width..(i + 1) * self.width];
        let m = r.metrics.len().min(self.width);
        v[..m].copy_from_slice(&r.metrics[..m]);
        let f = r.features.len().min(self.width - m);
        v[m..m + f].copy_from_slice(&r.features[..f]);
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no pass was recorded.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Calls `f(key text, address, state index, ts, values)` for each key.
    pub fn for_each(&self, mut f: impl FnMut(&str, Option<IpAddr>, u32, u64, &[f64])) {
        for (i, s) in self.slots.iter().enumerate() {
            let text = String::from_utf8_lossy(&s.text[..s.text_len as usize]);
            f(
                &text,
                s.addr,
                s.state,
                s.ts,
                &self.values[i * self.width..(i + 1) * self.width],
            );
        }
    }
}

/// Tuning of a [`LiveView`].
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// A snapshot younger than this answers without asking the probe.
    /// Default 100 ms.
    pub max_age: Duration,
    /// How long a reader waits for the probe to publish a fresh snapshot.
    /// Default 250 ms.
    pub wait: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_age: Duration::from_millis(100),
            wait: Duration::from_millis(250),
        }
    }
}

/// The probe's state at one instant, as Redis keys.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The keys and their values.
    pub map: HashMap<Vec<u8>, StateValue>,
    /// When it was taken (wall clock, for freshness only).
    pub taken: Option<Instant>,
}

impl Snapshot {
    /// Builds keys under `streamon:<probe>:`.
    pub fn builder(probe_id: &str) -> SnapshotBuilder {
        SnapshotBuilder {
            probe: probe_id.to_string(),
            snap: Snapshot {
                map: HashMap::new(),
                taken: Some(Instant::now()),
            },
        }
    }
}

/// Fills a [`Snapshot`] (see the module doc for the layout).
pub struct SnapshotBuilder {
    probe: String,
    snap: Snapshot,
}

impl SnapshotBuilder {
    /// A probe counter: `streamon:<probe>:probe:<name>`.
    pub fn probe_counter(&mut self, name: &str, v: u64) {
        let k = KeyName::probe(&self.probe).push("probe").push(name);
        self.string(k, v.to_string());
    }

    /// An application counter: `streamon:<probe>:app:<app>:metric:<name>`.
    pub fn app_counter(&mut self, app: &str, name: &str, v: u64) {
        let k = streamon_microcloud::names::app_metric(&self.probe, app, name);
        self.string(k, v.to_string());
    }

    /// One key of an application: its hash, and its `ip` strings when the
    /// key is one address.
    #[allow(clippy::too_many_arguments)]
    pub fn app_key(
        &mut self,
        app: &str,
        key_text: &str,
        addr: Option<IpAddr>,
        state: &str,
        ts: u64,
        names: &[String],
        values: &[f64],
    ) {
        let mut fields = Vec::with_capacity(names.len() + 2);
        fields.push((b"state".to_vec(), state.as_bytes().to_vec()));
        fields.push((b"ts".to_vec(), ts.to_string().into_bytes()));
        for (n, v) in names.iter().zip(values) {
            fields.push((n.as_bytes().to_vec(), fmt_value(*v).into_bytes()));
        }
        let k = streamon_microcloud::names::app_state(&self.probe, app, key_text);
        self.snap
            .map
            .insert(k.into_string().into_bytes(), StateValue::Hash(fields));
        if let Some(addr) = addr {
            let host = |leaf: &str| {
                let mut seg = String::with_capacity(app.len() + 1 + leaf.len());
                seg.push_str(app);
                seg.push('.');
                seg.push_str(leaf);
                streamon_microcloud::names::host_metric(&self.probe, addr, &seg)
            };
            let k = host("state");
            self.snap.map.insert(
                k.into_string().into_bytes(),
                StateValue::String(state.as_bytes().to_vec()),
            );
            for (n, v) in names.iter().zip(values) {
                let k = host(n);
                self.snap.map.insert(
                    k.into_string().into_bytes(),
                    StateValue::String(fmt_value(*v).into_bytes()),
                );
            }
        }
    }

    fn string(&mut self, k: KeyName, v: String) {
        self.snap.map.insert(
            k.into_string().into_bytes(),
            StateValue::String(v.into_bytes()),
        );
    }

    /// The snapshot.
    pub fn finish(self) -> Snapshot {
        self.snap
    }
}

/// A value as Redis would show a float: shortest exact decimal.
fn fmt_value(v: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

/// The shared side: the latest snapshot, and the request flag.
pub struct LiveView {
    config: LiveConfig,
    latest: Mutex<Arc<Snapshot>>,
    published: Condvar,
    wanted: AtomicBool,
}

impl LiveView {
    /// An empty view (no snapshot yet).
    pub fn new(config: LiveConfig) -> Arc<LiveView> {
        Arc::new(LiveView {
            config,
            latest: Mutex::new(Arc::new(Snapshot::default())),
            published: Condvar::new(),
            wanted: AtomicBool::new(false),
        })
    }

    /// True when a reader waits for a fresh snapshot: the probe thread
    /// checks this between packets (one relaxed load).
    #[inline]
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Publishes a snapshot (probe thread) and wakes the readers.
    pub fn publish(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        let mut g = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        *g = snap;
        self.wanted.store(false, Ordering::Relaxed);
        self.published.notify_all();
    }

    /// The latest snapshot, asking the probe for a fresh one when it is
    /// older than `max_age` (reader threads).
    pub fn current(&self) -> Arc<Snapshot> {
        let g = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |s: &Snapshot| s.taken.is_some_and(|t| t.elapsed() < self.config.max_age);
        if fresh(&g) {
            return g.clone();
        }
        self.wanted.store(true, Ordering::Relaxed);
        let end = Instant::now() + self.config.wait;
        let mut g = g;
        loop {
            let now = Instant::now();
            if fresh(&g) || now >= end {
                return g.clone();
            }
            g = self
                .published
                .wait_timeout(g, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl LiveState for LiveView {
    fn keys(&self, visit: &mut dyn FnMut(&[u8])) {
        let s = self.current();
        for k in s.map.keys() {
            visit(k);
        }
    }

    fn get(&self, key: &[u8]) -> Option<StateValue> {
        self.current().map.get(key).cloned()
    }

    fn ttl(&self, key: &[u8]) -> KeyTtl {
        if self.current().map.contains_key(key) {
            KeyTtl::Persistent
        } else {
            KeyTtl::Missing
        }
    }

    fn len(&self) -> usize {
        self.current().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StateKey {
        StateKey::from_bytes(0, &[b])
    }

    #[test]
    fn table_replaces_the_oldest_entered_key_when_full() {
        let mut t = LiveTable::new(2, 1, 1);
        for (b, v) in [(1u8, 1.0), (2, 2.0), (1, 3.0), (3, 4.0)] {
            t.record(
                PassRecord {
                    key: key(b),
                    state: 0,
                    ts: b as u64,
                    addr: None,
                    metrics: &[v],
                    features: &[v * 10.0],
                },
                |w| {
                    let _ = write!(w, "k{b}");
                },
            );
        }
        let mut seen = Vec::new();
        t.for_each(|k, _, _, _, v| seen.push((k.to_string(), v.to_vec())));
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        // Key 1 entered first, so key 3 replaced it (its update did not
        // make it younger).
        assert_eq!(
            seen,
            [
                ("k2".to_string(), vec![2.0, 20.0]),
                ("k3".into(), vec![4.0, 40.0])
            ]
        );
    }

    #[test]
    fn key_text_is_cut_not_overflowed() {
        let mut buf = [0u8; KEY_TEXT_MAX];
        let mut t = KeyText {
            buf: &mut buf,
            len: 0,
        };
        let _ = write!(t, "{}", "é".repeat(100));
        assert_eq!(t.len, KEY_TEXT_MAX);
        assert!(std::str::from_utf8(&buf).is_ok());
    }

    #[test]
    fn readers_ask_and_the_probe_publishes() {
        let view = LiveView::new(LiveConfig {
            max_age: Duration::from_millis(50),
            wait: Duration::from_secs(5),
        });
        let v2 = view.clone();
        let probe = std::thread::spawn(move || {
            while !v2.wanted() {
                std::thread::yield_now();
            }
            let mut b = Snapshot::builder("p");
            b.probe_counter("packets", 7);
            v2.publish(b.finish());
        });
        assert_eq!(
            view.get(b"streamon:p:probe:packets"),
            Some(StateValue::String(b"7".to_vec()))
        );
        probe.join().unwrap();
        assert!(!view.wanted());
    }
}
