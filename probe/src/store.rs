//! The knowledge store (the MicroCloud's Redis) as applications use it:
//! the `kv_*` actions and the `kv(…)`, `kv_exists(…)`, `%kv(…)` reads.
//!
//! A [`KnowledgeStore`] is the probe's link: one [`Writer`] (the
//! asynchronous, batched channel) shared by every application, and the
//! settings of the lookup channel. Each application gets its own [`Lookup`]
//! (own connection and cache), so nothing is locked between applications.
//!
//! Writes never block the packet path: an action renders its key name and
//! hands the operation to the writer's bounded queue; a full queue drops
//! it and counts it (`kv_dropped`). Reads are answered from the lookup
//! cache (staleness bound: [`LookupConfig::cache_ttl`]) or by one `GET`
//! bounded by [`LookupConfig::timeout`]; failures read as "missing" and are
//! counted (`kv_read_errors`). See `docs/language.md` (the knowledge store)
//! and `docs/microcloud.md`.
//!
//! Allocation: a write allocates the key name and value it queues (the
//! queue owns them), as a published event does. A read that hits the cache
//! allocates nothing: the name is rendered into a reused buffer.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::message::FieldSource;
use streamon_lang::{NamePart, StoreName};
use streamon_microcloud::names::{escape_segment_into, ROOT};
use streamon_microcloud::writer::ConfigError;
use streamon_microcloud::{
    Lookup, LookupConfig, Persistence, WriteOp, Writer, WriterConfig, WriterStats,
};

/// The probe's link to a MicroCloud node. Cloning shares the writer.
#[derive(Clone)]
pub struct KnowledgeStore {
    writer: Arc<Writer>,
    url: String,
    lookup: LookupConfig,
}

impl std::fmt::Debug for KnowledgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeStore")
            .field("url", &self.url)
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

impl KnowledgeStore {
    /// Starts the writer thread for the Redis at `url` (it connects in the
    /// background, and retries while Redis is down).
    pub fn connect(
        url: &str,
        writer: WriterConfig,
        lookup: LookupConfig,
    ) -> Result<KnowledgeStore, ConfigError> {
        // Validate the URL for the lookup channel too, before any packet.
        Lookup::new(url, lookup.clone())?;
        Ok(KnowledgeStore {
            writer: Arc::new(Writer::start(url, writer)?),
            url: url.to_string(),
            lookup,
        })
    }

    /// The writer's counters.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// The shared writer (to wait for it to drain at the end of a run).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn for_app(&self) -> AppStore {
        AppStore {
            writer: self.writer.clone(),
            // The URL was validated by `connect`.
            lookup: Lookup::new(&self.url, self.lookup.clone()).ok(),
            name: String::with_capacity(128),
            scratch: String::with_capacity(64),
            counters: StoreCounters::default(),
        }
    }
}

/// Per-application store counters (merged into `AppStats`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoreCounters {
    pub writes: u64,
    pub dropped: u64,
    pub missing_field: u64,
    pub reads: u64,
    pub read_errors: u64,
}

/// One application's side of the store.
pub(crate) struct AppStore {
    writer: Arc<Writer>,
    lookup: Option<Lookup>,
    /// The key name being built (reused).
    name: String,
    /// A field value being rendered (reused).
    scratch: String,
    pub counters: StoreCounters,
}

/// What a pass knows that a name may substitute.
pub(crate) struct NameCtx<'a> {
    pub probe_id: &'a str,
    pub app: &'a str,
    /// The pass's packet or message.
    pub packet: &'a dyn FieldSource,
    /// `%key`, rendered on demand (rare: a name that uses it).
    pub key: &'a dyn Fn() -> String,
}

/// Renders `name` as `streamon:<probe>:<segments>` into `out`. Returns
/// `false` when the packet lacks a field the name substitutes.
pub(crate) fn render_name(
    out: &mut String,
    scratch: &mut String,
    name: &StoreName,
    cx: &NameCtx<'_>,
) -> bool {
    out.clear();
    out.push_str(ROOT);
    out.push(':');
    escape_segment_into(name.probe.as_deref().unwrap_or(cx.probe_id), out);
    for seg in &name.segments {
        out.push(':');
        for part in seg {
            match part {
                NamePart::Literal(s) => escape_segment_into(s, out),
                NamePart::Field(f) => {
                    let Some(v) = cx.packet.field(*f) else {
                        return false;
                    };
                    scratch.clear();
                    // Writing to a String cannot fail.
                    let _ = write!(scratch, "{v}");
                    escape_segment_into(scratch, out);
                }
                NamePart::Key => escape_segment_into(&(cx.key)(), out),
                NamePart::App => escape_segment_into(cx.app, out),
            }
        }
    }
    true
}

fn persistence(ttl_s: Option<f64>) -> Persistence {
    match ttl_s {
        None => Persistence::Persistent,
        Some(s) => Persistence::Volatile(Duration::from_secs_f64(s.clamp(0.001, 1e9))),
    }
}

/// A write an action makes, before its key name is rendered.
pub(crate) enum Write {
    Set { ttl_s: Option<f64>, value: String },
    Incr { ttl_s: Option<f64>, by: f64 },
    Del,
    Expire { seconds: f64 },
    Publish { message: String },
}

impl AppStore {
    /// Queues one write under `name`.
    pub(crate) fn write(&mut self, name: &StoreName, cx: &NameCtx<'_>, w: Write) {
        if !render_name(&mut self.name, &mut self.scratch, name, cx) {
            self.counters.missing_field += 1;
            return;
        }
        let key = self.name.clone();
        let op = match w {
            Write::Set { ttl_s, value } => WriteOp::Set {
                key,
                value: value.into_bytes(),
                persistence: persistence(ttl_s),
            },
            Write::Incr { ttl_s, by } => {
                let persistence = persistence(ttl_s);
                // INCRBY when the increment is an integer Redis can hold
                // exactly; INCRBYFLOAT otherwise.
                if by.fract() == 0.0 && by.abs() < 9.0e15 {
                    WriteOp::IncrBy {
                        key,
                        delta: by as i64,
                        persistence,
                    }
                } else {
                    WriteOp::IncrByFloat {
                        key,
                        delta: by,
                        persistence,
                    }
                }
            }
            Write::Del => WriteOp::Del { key },
            Write::Expire { seconds } => WriteOp::Expire {
                key,
                ttl: Duration::from_secs_f64(seconds.clamp(0.001, 1e9)),
            },
            Write::Publish { message } => WriteOp::Publish {
                channel: key,
                message: message.into_bytes(),
            },
        };
        if self.writer.submit(op) {
            self.counters.writes += 1;
        } else {
            self.counters.dropped += 1;
        }
    }

    /// Reads `name`; calls `with` on the value (`None`: missing, not
    /// readable, or the store could not answer).
    pub(crate) fn read<R>(
        &mut self,
        name: &StoreName,
        cx: &NameCtx<'_>,
        with: impl FnOnce(Option<&[u8]>) -> R,
    ) -> R {
        if !render_name(&mut self.name, &mut self.scratch, name, cx) {
            self.counters.missing_field += 1;
            return with(None);
        }
        self.counters.reads += 1;
        let Some(lookup) = self.lookup.as_mut() else {
            self.counters.read_errors += 1;
            return with(None);
        };
        match lookup.get_ref(&self.name) {
            Ok(v) => with(v),
            Err(_) => {
                self.counters.read_errors += 1;
                with(None)
            }
        }
    }
}

/// A store value as a number: decimal text (what `INCRBY`/`INCRBYFLOAT`
/// leave); anything else reads 0.
pub(crate) fn as_number(v: Option<&[u8]>) -> f64 {
    v.and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|x| x.is_finite())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(as_number(Some(b"42")), 42.0);
        assert_eq!(as_number(Some(b"1.5")), 1.5);
        assert_eq!(as_number(Some(b"alice")), 0.0);
        assert_eq!(as_number(Some(b"inf")), 0.0);
        assert_eq!(as_number(None), 0.0);
    }
}
