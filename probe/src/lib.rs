//! The probe runtime: applications installed into a running probe and run
//! on packets, in software, deterministically in packet time.
//!
//! * [`plan`]: installing a checked program (`streamon-lang`) into its
//!   in-memory plan: contract metrics, per-(event, state) op templates,
//!   interned keys. No code is generated.
//! * [`app`]: one application at run time: metric engine, XFSM states,
//!   tables, timers, block list, counters.
//! * [`probe`]: several isolated applications fed the same packets;
//!   [`parallel`]: the same, the applications spread over threads, with
//!   the events merged back into single-thread order;
//! * [`message`]: events received from other probes, input events of the
//!   applications' message events (probe chaining).
//! * [`eval`]: selectors and expressions; [`timers`]: the packet-time timer
//!   queue; [`key`]: fixed-size keys; [`exec`]: bounded off-path `exec`;
//!   [`output`]: emitted events and sinks (JSON Lines, text);
//!   [`store`]: the knowledge store (`kv_*` actions and reads, Redis);
//!   [`live`]: the live view of the probe's state for the RESP server.
//!
//! Time is always the packet's: nothing here reads the wall clock, so a
//! replay gives the same events at any speed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod eval;
pub mod exec;
pub mod key;
pub mod live;
pub mod message;
pub mod output;
pub mod parallel;
pub mod plan;
pub mod probe;
pub mod store;
pub mod timers;

pub use app::{AppRuntime, AppStats, RuntimeOptions};
pub use message::{FieldSource, Message, MessageError};
pub use output::{EventSink, Format, OutputEvent, VecSink, WriterSink};
pub use parallel::{ParallelProbe, WorkerLost};
pub use probe::{sw_engine, EngineFactory, EngineRefusal, InstallFailure, Probe, ProbeStats};
pub use store::KnowledgeStore;
