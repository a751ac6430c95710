//! The probe on the ZeroMQ bus (feature `bus`): what `streamon run
//! --publish` and `--subscribe` set up, from command-line values to
//! `streamon-bus` sockets.
//!
//! Key files are the `streamon-bus` Z85 files: `NAME.key` (secret) with
//! its `NAME.pub` (public) beside it.

use std::path::{Path, PathBuf};

use streamon_bus::curve::{self, KeyPair};
use streamon_bus::{BusError, PayloadFormat, Publisher, PublisherConfig};

/// Setting up the probe's bus sockets failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket or key operation failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A secret key file whose name does not end in `.key`.
    #[error("{0}: a secret key file must be NAME.key, with NAME.pub beside it")]
    KeyName(PathBuf),
}

/// How `--publish` publishes.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    /// Endpoint to bind (`tcp://*:5560`).
    pub endpoint: String,
    /// Payload format of every topic but `raw`.
    pub format: PayloadFormat,
    /// `ZMQ_SNDHWM`: events queued per subscriber before libzmq drops.
    pub sndhwm: i32,
    /// The probe id put in every payload.
    pub probe_id: String,
    /// CURVE server secret key file (`NAME.key`, `NAME.pub` beside it).
    pub curve_key: Option<PathBuf>,
    /// Public key files of the subscribers allowed under CURVE.
    pub curve_allow: Vec<PathBuf>,
}

/// Reads `NAME.key` and the `NAME.pub` beside it.
pub fn read_keypair_file(secret: &Path) -> Result<KeyPair, NetError> {
    if secret.extension().is_none_or(|e| e != "key") {
        return Err(NetError::KeyName(secret.to_path_buf()));
    }
    Ok(KeyPair {
        secret: curve::read_key(secret)?,
        public: curve::read_key(&secret.with_extension("pub"))?,
    })
}

/// Binds the publisher `spec` describes.
pub fn open_publisher(spec: &PublishSpec) -> Result<Publisher, NetError> {
    let mut c = PublisherConfig::new(&spec.probe_id);
    c.endpoint = spec.endpoint.clone();
    c.format = spec.format;
    c.sndhwm = spec.sndhwm;
    if let Some(key) = &spec.curve_key {
        let pair = read_keypair_file(key)?;
        let allowed = spec
            .curve_allow
            .iter()
            .map(|p| curve::read_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        c.curve = Some((pair, allowed));
    }
    Ok(Publisher::bind(&c)?)
}
