//! Events on the wire: the probe's ZeroMQ publish/subscribe bus (issue 6).
//!
//! D-StreaMon makes every probe an independent publisher: the XFSM's
//! `Publish` actions label events with a topic (`alert`, `log`, `raw`, …)
//! and subscribers (a controller, another probe, an operator's client)
//! listen to the topics they care about (D-StreaMon, arXiv 1608.01377,
//! §III-B). This crate is that bus:
//!
//! - [`wire`]: the two-frame message `[topic][payload]` and its payloads,
//!   the original text line and a versioned JSON record, defined once with
//!   golden byte tests; parsing never panics.
//! - [`Publisher`]: a PUB socket (default `tcp://*:5560`, as the original)
//!   that implements the probe's [`streamon_probe::EventSink`]. It never
//!   blocks the packet path: each event is encoded and sent once, without
//!   waiting; what cannot be sent is counted in [`PublisherStats`].
//! - [`Subscriber`]: a SUB socket connected to one or more publishers with
//!   prefix topic filters, yielding typed [`wire::Delivered`] events and
//!   counting malformed messages and (JSON) events lost on the way.
//! - [`curve`]: CurveZMQ on both sockets: key pairs, Z85 key files, and a
//!   ZAP authenticator so the publisher serves only authorised subscribers.
//!
//! Who doesn't need it: the probe itself. Nothing here is on the
//! per-packet path except [`Publisher::emit`](streamon_probe::EventSink::emit).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod curve;
mod publisher;
mod subscriber;
pub mod wire;

use std::path::PathBuf;

pub use publisher::{Publisher, PublisherConfig, PublisherStats, DEFAULT_ENDPOINT, DEFAULT_SNDHWM};
pub use subscriber::{Subscriber, SubscriberConfig, SubscriberStats, DEFAULT_MAX_MESSAGE_BYTES};
pub use wire::{to_message, Delivered, EventRecord, Payload, PayloadFormat, TextLine};

/// Setting up or using a bus socket failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A libzmq call failed; the text names the operation.
    #[error("zmq: {0}")]
    Zmq(&'static str, #[source] zmq::Error),
    /// Binding the publisher's endpoint failed.
    #[error("cannot bind {endpoint}")]
    Bind {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: zmq::Error,
    },
    /// Connecting to a publisher's endpoint failed.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: zmq::Error,
    },
    /// A key is not 40 characters of Z85.
    #[error("not a Z85 CURVE key ({why}): {text:?}")]
    BadKey {
        /// The text, at most 40 characters of it.
        text: String,
        /// What is wrong with it.
        why: curve::Z85Error,
    },
    /// Reading or writing a key file failed.
    #[error("key file {path}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The probe id cannot be a text-line token.
    #[error("probe id {0:?} must be non-empty, without spaces, '\"' or '='")]
    BadProbeId(String),
    /// The authenticator thread could not start.
    #[error("cannot start the ZAP thread: {0}")]
    Thread(String),
}
