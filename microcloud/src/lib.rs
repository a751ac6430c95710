//! MicroCloud channels for the streamon probe.
//!
//! The MicroCloud design (Deri and Fusco, *MicroCloud-based Network Traffic
//! Monitoring*, `shared/papers/microcloud-monitoring.md`) puts a shared
//! key-value store (Redis) next to the probes. Probes enrich it in near
//! real time, and monitoring applications read it, or the probes' own live
//! state, with the Redis protocol. This crate is the probe's side of that:
//!
//! - [`names`]: the key naming scheme (`streamon:<probe>:ip:<addr>:<metric>`,
//!   ...), escaping, and Redis' glob matching, defined once;
//! - [`writer`]: the asynchronous channel, batched pipelined writes
//!   (`SET`, volatile `SET PX`, `INCRBY`, `INCRBYFLOAT`, `HSET`,
//!   `PUBLISH`) from a bounded queue that never blocks the probe;
//! - [`lookup`]: the synchronous channel, `GET`/`HGET` with a timeout
//!   behind a local cache with a stated staleness bound;
//! - [`resp`], [`server`], [`state`]: a read-only Redis-protocol server
//!   that answers `KEYS`, `SCAN`, `GET`, ... from the probe's
//!   [`state::LiveState`].
//!
//! `docs/microcloud.md` describes the key layout, the counters and the
//! limits for operators. Nothing here knows about packets: the probe maps
//! its events and app actions onto these calls.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod lookup;
pub mod names;
pub mod resp;
pub mod server;
pub mod state;
pub mod writer;

pub use lookup::{Lookup, LookupConfig, LookupError, LookupStats};
pub use server::{RespServer, ServerConfig, ServerStats};
pub use state::{KeyTtl, LiveState, MemoryState, StateValue};
pub use writer::{Persistence, WriteOp, Writer, WriterConfig, WriterStats};
