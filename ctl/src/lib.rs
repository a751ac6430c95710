//! The D-StreaMon controller, re-created with security (issue 6).
//!
//! The original steered probes with Ansible and a Semaphore web GUI and
//! had no security (D-StreaMon, arXiv 1608.01377, §III). Here probes and
//! the controller talk over one ZeroMQ control channel with CurveZMQ:
//!
//! - [`proto`]: the versioned control message set (announce, heartbeat,
//!   welcome, deploy, swap, start, stop, remove, status, ack, refuse),
//!   defined once, with golden byte tests; decoding never panics.
//! - [`agent`]: a probe run by a controller: applications added, removed,
//!   swapped, stopped at run time, each keeping its own metric state;
//!   commands only from the controller's key, replays refused.
//! - [`controller`]: the service: probe registry with health, validation
//!   before deployment, re-synchronisation of returning probes, event
//!   collection from every probe, bounded queues with counted drops.
//! - [`store`]: its persistent event store and desired state.
//! - [`http`] and [`dashboard`]: the web dashboard and JSON API.
//! - [`keys`]: key generation and distribution for the CLI.
//!
//! The `streamon-ctl` binary (`src/bin/streamon-ctl.rs`) puts them on the
//! command line: `serve`, `probe`, `keys`, `app`. See `docs/controller.md`.
//!
//! This crate links libzmq; `streamon-host-ctl` (the `streamon` command and
//! its demo) does not depend on it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod controller;
pub mod dashboard;
pub mod http;
pub mod keys;
pub mod proto;
pub mod store;

use std::path::PathBuf;

pub use agent::{Agent, AgentConfig, AgentStats, Input};
pub use controller::{start, ControllerConfig, ControllerHandle, Op, View};

/// What can go wrong setting up or running the control plane.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A bad setting (name, key, path).
    #[error("{0}")]
    Config(String),
    /// A libzmq call failed; the text names the operation.
    #[error("zmq: {0}")]
    Zmq(&'static str, #[source] zmq::Error),
    /// Binding the control endpoint failed.
    #[error("cannot bind {endpoint}")]
    Bind {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: zmq::Error,
    },
    /// Connecting to the controller failed.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: zmq::Error,
    },
    /// The event bus (publisher, subscriber, keys).
    #[error(transparent)]
    Bus(#[from] streamon_bus::BusError),
    /// Reading or writing the store failed.
    #[error("store file {path}")]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `state.json` does not parse.
    #[error("state file {path}: {detail}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// Binding the HTTP server failed.
    #[error("cannot serve HTTP on {addr}")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
