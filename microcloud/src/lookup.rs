//! The synchronous channel: `GET`/`HGET` with a timeout, behind a cache.
//!
//! The probe asks the MicroCloud for information it needs now (the user
//! behind an IP address, paper §III-C) on a connection of its own, separate
//! from the [`crate::writer`] channel so a lookup never waits behind a
//! batch. Answers are cached locally.
//!
//! # Staleness bound
//!
//! A cached answer, including "no such key", is served for
//! [`LookupConfig::cache_ttl`] after Redis gave it, and never after: a
//! value returned by [`Lookup::get`] was true in Redis at most `cache_ttl`
//! ago. Writes made through a [`crate::Writer`] are not seen through the
//! cache before that (no read-your-writes); call [`Lookup::invalidate`]
//! when that matters.
//!
//! # Timeouts
//!
//! Connecting, sending and receiving are each bounded by
//! [`LookupConfig::timeout`], so a lookup on a hung server returns
//! [`LookupError::Timeout`] within about twice that (connect + round trip).
//! After a timeout or a connection error the connection is dropped (a late
//! reply would otherwise answer the next request), and for
//! [`LookupConfig::reconnect_backoff`] lookups that miss the cache fail at
//! once with [`LookupError::Unavailable`] instead of waiting again.
//!
//! # Counters ([`LookupStats`])
//!
//! `hits`: answered from the cache. `misses`: sent to Redis (whatever the
//! outcome). `timeouts`: misses that hit the timeout. `errors`: misses that
//! failed otherwise, and lookups refused during the reconnect backoff.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::writer::ConfigError;

/// Tuning of a [`Lookup`].
#[derive(Clone, Debug)]
pub struct LookupConfig {
    /// Bound on connecting, and on each send and receive. Default 50 ms.
    pub timeout: Duration,
    /// How long a cached answer is served (the staleness bound). Default
    /// 1 s.
    pub cache_ttl: Duration,
    /// Most cached answers; beyond it expired entries are purged, then
    /// arbitrary ones. Default 65 536.
    pub cache_capacity: usize,
    /// After a failure, how long cache misses fail at once. Default 100 ms.
    pub reconnect_backoff: Duration,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            timeout: Duration::from_millis(50),
            cache_ttl: Duration::from_secs(1),
            cache_capacity: 65_536,
            reconnect_backoff: Duration::from_millis(100),
        }
    }
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Redis did not answer within the timeout.
    #[error("lookup timed out")]
    Timeout,
    /// Redis could not be reached, or is in its reconnect backoff.
    #[error("microcloud node unavailable")]
    Unavailable(#[source] Option<redis::RedisError>),
    /// Redis answered with an error (for example `WRONGTYPE`).
    #[error("microcloud node refused the lookup")]
    Refused(#[source] redis::RedisError),
}

/// Counters of a [`Lookup`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Answered from the cache.
    pub hits: u64,
    /// Sent to Redis.
    pub misses: u64,
    /// Misses that timed out.
    pub timeouts: u64,
    /// Other failures.
    pub errors: u64,
}

/// A cached answer and when Redis gave it.
type Cached = (Option<Vec<u8>>, Instant);

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key: String,
    field: Option<Vec<u8>>,
}

/// The synchronous lookup channel to one MicroCloud node. One per thread
/// (methods take `&mut self`).
pub struct Lookup {
    client: redis::Client,
    conn: Option<redis::Connection>,
    config: LookupConfig,
    /// `GET` answers, looked up by `&str` without building a key.
    gets: HashMap<String, Cached>,
    /// `HGET` answers.
    fields: HashMap<(String, Vec<u8>), Cached>,
    unavailable_until: Option<Instant>,
    stats: LookupStats,
}

impl Lookup {
    /// A lookup channel to the Redis at `url`. Connects lazily.
    pub fn new(url: &str, config: LookupConfig) -> Result<Lookup, ConfigError> {
        let client = redis::Client::open(url).map_err(|source| ConfigError::Url {
            url: url.to_string(),
            source,
        })?;
        Ok(Lookup {
            client,
            conn: None,
            config,
            gets: HashMap::new(),
            fields: HashMap::new(),
            unavailable_until: None,
            stats: LookupStats::default(),
        })
    }

    /// `GET key`, from the cache if fresh enough.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, LookupError> {
        self.lookup(CacheKey {
            key: key.to_string(),
            field: None,
        })
    }

    /// `GET key` like [`Lookup::get`], returning a view into the cache: a
    /// fresh cached answer costs one hash lookup and no allocation (the
    /// probe's per-packet path reads through this).
    pub fn get_ref(&mut self, key: &str) -> Result<Option<&[u8]>, LookupError> {
        let now = Instant::now();
        let fresh = self
            .gets
            .get(key)
            .is_some_and(|(_, at)| now.duration_since(*at) < self.config.cache_ttl);
        if fresh {
            self.stats.hits += 1;
        } else {
            let v = self.fetch(CacheKey {
                key: key.to_string(),
                field: None,
            })?;
            self.store(
                CacheKey {
                    key: key.to_string(),
                    field: None,
                },
                v,
            );
        }
        Ok(self.gets.get(key).and_then(|(v, _)| v.as_deref()))
    }

    /// `HGET key field`, from the cache if fresh enough.
    pub fn hget(&mut self, key: &str, field: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        self.lookup(CacheKey {
            key: key.to_string(),
            field: Some(field.to_vec()),
        })
    }

    /// Forgets the cached answers for `key` (its value and all its fields).
    pub fn invalidate(&mut self, key: &str) {
        self.gets.remove(key);
        self.fields.retain(|k, _| k.0 != key);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LookupStats {
        self.stats
    }

    fn cached(&self, ck: &CacheKey) -> Option<&Cached> {
        match &ck.field {
            None => self.gets.get(&ck.key),
            // Building the tuple clones; HGET is not on a per-packet path.
            Some(f) => self.fields.get(&(ck.key.clone(), f.clone())),
        }
    }

    fn lookup(&mut self, ck: CacheKey) -> Result<Option<Vec<u8>>, LookupError> {
        let now = Instant::now();
        let ttl = self.config.cache_ttl;
        let hit = self
            .cached(&ck)
            .filter(|(_, at)| now.duration_since(*at) < ttl)
            .map(|(v, _)| v.clone());
        if let Some(v) = hit {
            self.stats.hits += 1;
            return Ok(v);
        }
        let v = self.fetch(ck.clone())?;
        self.store(ck, v.clone());
        Ok(v)
    }

    /// A cache miss: asks Redis, unless in the reconnect backoff.
    fn fetch(&mut self, ck: CacheKey) -> Result<Option<Vec<u8>>, LookupError> {
        let now = Instant::now();
        if self.unavailable_until.is_some_and(|t| now < t) {
            self.stats.errors += 1;
            return Err(LookupError::Unavailable(None));
        }
        self.stats.misses += 1;
        let answer = self.query(&ck);
        match answer {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_timeout() {
                    self.stats.timeouts += 1;
                } else {
                    self.stats.errors += 1;
                }
                if e.code().is_some() {
                    // Redis answered (WRONGTYPE, ...): the connection is fine.
                    return Err(LookupError::Refused(e));
                }
                self.conn = None;
                self.unavailable_until = Some(Instant::now() + self.config.reconnect_backoff);
                if e.is_timeout() {
                    Err(LookupError::Timeout)
                } else {
                    Err(LookupError::Unavailable(Some(e)))
                }
            }
        }
    }

    fn query(&mut self, ck: &CacheKey) -> redis::RedisResult<Option<Vec<u8>>> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let t = self.config.timeout;
                let c = self.client.get_connection_with_timeout(t)?;
                c.set_read_timeout(Some(t))?;
                c.set_write_timeout(Some(t))?;
                c
            }
        };
        let mut cmd = match &ck.field {
            None => redis::cmd("GET"),
            Some(_) => redis::cmd("HGET"),
        };
        cmd.arg(&ck.key);
        if let Some(f) = &ck.field {
            cmd.arg(f);
        }
        let answer = cmd.query(&mut conn);
        self.conn = Some(conn);
        answer
    }

    fn store(&mut self, ck: CacheKey, v: Option<Vec<u8>>) {
        let now = Instant::now();
        let cap = self.config.cache_capacity.max(1);
        if self.gets.len() + self.fields.len() >= cap {
            let ttl = self.config.cache_ttl;
            self.gets.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            self.fields
                .retain(|_, (_, at)| now.duration_since(*at) < ttl);
            while self.gets.len() + self.fields.len() >= cap {
                if let Some(k) = self.gets.keys().next().cloned() {
                    self.gets.remove(&k);
                } else if let Some(k) = self.fields.keys().next().cloned() {
                    self.fields.remove(&k);
                } else {
                    break;
                }
            }
        }
        match ck.field {
            None => {
                self.gets.insert(ck.key, (v, now));
            }
            Some(f) => {
                self.fields.insert((ck.key, f), (v, now));
            }
        }
    }
}
