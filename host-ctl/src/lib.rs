//! streamon's host side: everything that talks to people.
//!
//! * [`backend`]: which metric engine runs the applications (`--backend
//!   sw|sim|sim-nic|vfio:<PCI address>`), refusing what the hardware lacks;
//! * [`replay`]: feed a trace file through a [`streamon_probe::Probe`],
//!   with progress and a summary of every counter;
//! * [`live`]: feed a live capture (`streamon-capture`) the same way, until
//!   Ctrl-C, a duration or a frame count;
//! * [`runner`]: a probe on one thread or on `--threads N`;
//! * [`tracegen`]: deterministic, seeded synthetic traces (the demo's SYN
//!   flood, and attacks no public capture has at the right size);
//! * [`net`] (feature `bus`): the probe's ZeroMQ publisher and
//!   subscriptions (`run --publish`, `--subscribe`);
//! * the `streamon` binary (`src/bin/streamon.rs`): `run`, `check`, `demo`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod live;
#[cfg(feature = "bus")]
pub mod net;
pub mod replay;
pub mod runner;
pub mod tracegen;
