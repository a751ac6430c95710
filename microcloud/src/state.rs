//! The probe's live state as the Redis-protocol server sees it.
//!
//! [`LiveState`] is what the probe implements over its flow cache and app
//! states (MicroCloud paper §III-C: per-packet counters are never pushed to
//! the MicroCloud, monitoring applications query the probe for them with
//! the same protocol they use on MicroCloud nodes). [`MemoryState`] is a
//! plain in-memory implementation for tests and examples.
//!
//! Implementations answer from a consistent-enough snapshot: a key listed
//! by [`LiveState::keys`] may have expired by the time it is read, and the
//! server then answers as Redis does for a missing key.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// A value in the state view: the two Redis types the probe exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateValue {
    /// A string (counters are decimal strings, as Redis stores them).
    String(Vec<u8>),
    /// A hash: field/value pairs.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
}

impl StateValue {
    /// The Redis type name (`TYPE` answer).
    pub fn type_name(&self) -> &'static str {
        match self {
            StateValue::String(_) => "string",
            StateValue::Hash(_) => "hash",
        }
    }
}

/// Time to live of a key (`TTL`/`PTTL` answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key (`-2`).
    Missing,
    /// The key never expires (`-1`).
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// The read-only view of a probe's state served over RESP.
///
/// Calls come from the server's connection threads, concurrently with the
/// probe updating its state: take short locks, never block on I/O.
pub trait LiveState: Send + Sync {
    /// Calls `visit` once for every live key, in any order. The server
    /// filters by pattern itself; the order may change between calls.
    fn keys(&self, visit: &mut dyn FnMut(&[u8]));

    /// The value of `key`, or `None` if it does not exist.
    fn get(&self, key: &[u8]) -> Option<StateValue>;

    /// The fields of the hash `key`: `None` if the key is missing or not
    /// a hash. The default goes through [`LiveState::get`].
    fn hgetall(&self, key: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        match self.get(key)? {
            StateValue::Hash(h) => Some(h),
            StateValue::String(_) => None,
        }
    }

    /// The time to live of `key`.
    fn ttl(&self, key: &[u8]) -> KeyTtl;

    /// Number of keys (`DBSIZE`). The default counts [`LiveState::keys`].
    fn len(&self) -> usize {
        let mut n = 0;
        self.keys(&mut |_| n += 1);
        n
    }

    /// True if there are no keys.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`LiveState`] in a `HashMap` behind a lock, with optional expiry on
/// the wall clock. Expired keys are invisible and removed lazily.
#[derive(Debug, Default)]
pub struct MemoryState {
    map: RwLock<HashMap<Vec<u8>, Entry>>,
}

/// A value and when it expires (`None`: never).
type Entry = (StateValue, Option<Instant>);

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a persistent string.
    pub fn set(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.insert(key.into(), StateValue::String(value.into()), None);
    }

    /// Sets a string that expires after `ttl`.
    pub fn set_volatile(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, ttl: Duration) {
        self.insert(
            key.into(),
            StateValue::String(value.into()),
            Some(Instant::now() + ttl),
        );
    }

    /// Sets one field of a persistent hash (replacing a string key).
    pub fn hset(
        &self,
        key: impl Into<Vec<u8>>,
        field: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) {
        let (key, field, value) = (key.into(), field.into(), value.into());
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(key)
            .or_insert_with(|| (StateValue::Hash(Vec::new()), None));
        if !matches!(entry.0, StateValue::Hash(_)) {
            *entry = (StateValue::Hash(Vec::new()), None);
        }
        if let StateValue::Hash(h) = &mut entry.0 {
            match h.iter_mut().find(|(f, _)| *f == field) {
                Some(slot) => slot.1 = value,
                None => h.push((field, value)),
            }
        }
    }

    /// Removes a key.
    pub fn remove(&self, key: &[u8]) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn insert(&self, key: Vec<u8>, value: StateValue, expires: Option<Instant>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (value, expires));
    }

    fn live(expires: &Option<Instant>, now: Instant) -> bool {
        expires.is_none_or(|t| t > now)
    }
}

impl LiveState for MemoryState {
    fn keys(&self, visit: &mut dyn FnMut(&[u8])) {
        let now = Instant::now();
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        for (k, (_, exp)) in map.iter() {
            if Self::live(exp, now) {
                visit(k);
            }
        }
    }

    fn get(&self, key: &[u8]) -> Option<StateValue> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (v, exp) = map.get(key)?;
        Self::live(exp, Instant::now()).then(|| v.clone())
    }

    fn ttl(&self, key: &[u8]) -> KeyTtl {
        let now = Instant::now();
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            None => KeyTtl::Missing,
            Some((_, None)) => KeyTtl::Persistent,
            Some((_, Some(t))) if *t > now => KeyTtl::Expires(*t - now),
            Some(_) => KeyTtl::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_state_basics() {
        let s = MemoryState::new();
        s.set("a", "1");
        s.hset("h", "f", "v");
        s.hset("h", "f", "w");
        s.set_volatile("v", "x", Duration::from_secs(100));
        s.set_volatile("gone", "x", Duration::ZERO);
        assert_eq!(s.get(b"a"), Some(StateValue::String(b"1".to_vec())));
        assert_eq!(s.hgetall(b"h"), Some(vec![(b"f".to_vec(), b"w".to_vec())]));
        assert_eq!(s.hgetall(b"a"), None);
        assert_eq!(s.ttl(b"a"), KeyTtl::Persistent);
        assert!(matches!(s.ttl(b"v"), KeyTtl::Expires(d) if d > Duration::from_secs(99)));
        assert_eq!(s.ttl(b"gone"), KeyTtl::Missing);
        assert_eq!(s.get(b"gone"), None);
        assert_eq!(s.len(), 3);
        s.remove(b"a");
        assert_eq!(s.len(), 2);
    }
}
