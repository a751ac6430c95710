//! streamon's host side: everything that talks to people.
//!
//! * [`replay`]: feed a trace file through a [`streamon_probe::Probe`],
//!   with progress and a summary of every counter;
//! * [`tracegen`]: deterministic, seeded synthetic traces (the demo's SYN
//!   flood, and attacks no public capture has at the right size);
//! * [`net`] (feature `bus`): the probe's ZeroMQ publisher and
//!   subscriptions (`run --publish`, `--subscribe`);
//! * the `streamon` binary (`src/bin/streamon.rs`): `run`, `check`, `demo`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "bus")]
pub mod net;
pub mod replay;
pub mod tracegen;
