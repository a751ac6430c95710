//! streamon's host side: everything that talks to people.
//!
//! * [`replay`]: feed a trace file through a [`streamon_probe::Probe`],
//!   with progress and a summary of every counter;
//! * [`tracegen`]: deterministic, seeded synthetic traces (the demo's SYN
//!   flood, and attacks no public capture has at the right size);
//! * the `streamon` binary (`src/bin/streamon.rs`): `run`, `check`, `demo`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod replay;
pub mod tracegen;
