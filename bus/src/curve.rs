//! CurveZMQ: key pairs, Z85 key files, and the publisher's authenticator.
//!
//! The publisher is the CURVE server; subscribers are CURVE clients that
//! know the server's public key. libzmq asks a ZAP handler bound to
//! `inproc://zeromq.zap.01` (RFC 27) in the publisher's context whether a
//! client's public key may connect; [`Authenticator`] is that handler, run
//! on its own thread. It answers `200` to the authorised keys and `400` to
//! every other, counts both, and keeps the last refusals. The same thread
//! watches the publisher socket's monitor for handshakes that fail before
//! ZAP is asked (a client without CURVE, or one that has the wrong server
//! key) and counts those too.
//!
//! The ZAP handler is bound *before* the publisher binds: libzmq accepts
//! every CURVE client when no handler is bound.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::BusError;

/// The ZAP endpoint libzmq queries (RFC 27).
pub const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// A CURVE key pair, binary (32 bytes each).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Public key.
    pub public: [u8; 32],
    /// Secret key.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &z85(&self.public))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// A fresh key pair from libzmq (libsodium).
    pub fn generate() -> Result<KeyPair, BusError> {
        let k = zmq::CurveKeyPair::new().map_err(|e| BusError::Zmq("curve keypair", e))?;
        Ok(KeyPair {
            public: k.public_key,
            secret: k.secret_key,
        })
    }
}

/// Z85 text of a 32-byte key (40 characters).
pub fn z85(key: &[u8; 32]) -> String {
    // 32 is a multiple of 4, the only thing Z85 encoding can refuse.
    zmq::z85_encode(key).expect("32 bytes are Z85-encodable")
}

/// The Z85 alphabet (ZeroMQ RFC 32), value = index.
const Z85_ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Why a text is not a Z85 CURVE key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Z85Error {
    /// A key is 40 characters.
    #[error("{0} characters, a key has 40")]
    Length(usize),
    /// A character outside the Z85 alphabet.
    #[error("character {ch:?} at {at} is not Z85")]
    Char {
        /// 0-based character position in the (trimmed) text.
        at: usize,
        /// The character.
        ch: char,
    },
    /// Five characters whose value does not fit 32 bits.
    #[error("the group at {at} is over 2^32 - 1")]
    Overflow {
        /// 0-based position of the group's first character.
        at: usize,
    },
}

/// Parses a 40-character Z85 key (surrounding blanks ignored).
///
/// Decoded here rather than by `zmq::z85_decode` (zmq 0.9), which leaks
/// its input copy on every call (found by the `curve_key` fuzz target) and
/// ignores libzmq's refusal of characters outside the alphabet, so a
/// corrupt key file became a wrong key instead of an error.
pub fn parse_z85(text: &str) -> Result<[u8; 32], BusError> {
    let text = text.trim();
    decode_z85(text).map_err(|why| BusError::BadKey {
        text: text.chars().take(40).collect(),
        why,
    })
}

fn decode_z85(text: &str) -> Result<[u8; 32], Z85Error> {
    let n = text.chars().count();
    if n != 40 || text.len() != 40 {
        return Err(Z85Error::Length(n));
    }
    let mut key = [0u8; 32];
    for (g, (chunk, out)) in text
        .as_bytes()
        .chunks_exact(5)
        .zip(key.chunks_exact_mut(4))
        .enumerate()
    {
        let mut v: u64 = 0;
        for (i, &b) in chunk.iter().enumerate() {
            let at = g * 5 + i;
            let d = Z85_ALPHABET
                .iter()
                .position(|&a| a == b)
                .ok_or(Z85Error::Char {
                    at,
                    ch: char::from(b),
                })?;
            v = v * 85 + d as u64;
        }
        let v = u32::try_from(v).map_err(|_| Z85Error::Overflow { at: g * 5 })?;
        out.copy_from_slice(&v.to_be_bytes());
    }
    Ok(key)
}

/// Writes a fresh key pair as `dir/name.key` (secret, Z85, mode 0600,
/// created new: an existing file is an error) and `dir/name.pub` (public,
/// Z85). Returns the pair.
pub fn keygen(dir: &Path, name: &str) -> Result<KeyPair, BusError> {
    let pair = KeyPair::generate()?;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| BusError::KeyFile { path, source: e }
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(io(&secret_path))?;
    writeln!(f, "{}", z85(&pair.secret)).map_err(io(&secret_path))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&public_path)
        .map_err(io(&public_path))?;
    writeln!(f, "{}", z85(&pair.public)).map_err(io(&public_path))?;
    Ok(pair)
}

/// Reads a Z85 key file (`.pub` or `.key`).
pub fn read_key(path: &Path) -> Result<[u8; 32], BusError> {
    let text = fs::read_to_string(path).map_err(|e| BusError::KeyFile {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_z85(&text)
}

/// Reads the pair `dir/name.key` + `dir/name.pub`.
pub fn read_keypair(dir: &Path, name: &str) -> Result<KeyPair, BusError> {
    Ok(KeyPair {
        secret: read_key(&dir.join(format!("{name}.key")))?,
        public: read_key(&dir.join(format!("{name}.pub")))?,
    })
}

/// One refused connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The peer's address, as libzmq gives it.
    pub address: String,
    /// Why: `unauthorised key <z85>`, `mechanism NULL`, or a handshake
    /// failure from the monitor.
    pub reason: String,
}

/// How many refusals [`AuthStats::recent_refusals`] keeps.
pub const RECENT_REFUSALS: usize = 16;

/// What the authenticator has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// ZAP requests answered 200.
    pub accepted: u64,
    /// ZAP requests answered 400 (unauthorised key or wrong mechanism).
    pub refused: u64,
    /// Handshakes the monitor saw fail before or without ZAP (a client
    /// without CURVE, a client with the wrong server key, a ZAP refusal).
    pub handshake_failures: u64,
    /// The last [`RECENT_REFUSALS`] refusals, oldest first.
    pub recent_refusals: Vec<Refusal>,
}

#[derive(Default)]
struct Shared {
    accepted: AtomicU64,
    refused: AtomicU64,
    handshake_failures: AtomicU64,
    recent: Mutex<Vec<Refusal>>,
    stop: AtomicBool,
}

impl Shared {
    fn refuse(&self, address: String, reason: String) {
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() == RECENT_REFUSALS {
            r.remove(0);
        }
        r.push(Refusal { address, reason });
    }
}

/// The ZAP handler and handshake monitor of one publisher (see the module
/// doc). Stops and joins its thread when dropped.
pub struct Authenticator {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Authenticator {
    /// Binds the ZAP handler in `ctx`, authorising `clients`' public keys,
    /// connects to the CURVE server socket's monitor at `monitor` (already
    /// set up with `Socket::monitor`), and starts the thread. The server
    /// socket (a publisher, the controller's ROUTER) must set its ZAP
    /// domain and bind only after this returns. An accepted client's
    /// messages carry its public key, Z85, as their `User-Id` property.
    pub fn start(
        ctx: &zmq::Context,
        clients: Vec<[u8; 32]>,
        monitor: &str,
    ) -> Result<Self, BusError> {
        let zap = ctx
            .socket(zmq::REP)
            .map_err(|e| BusError::Zmq("zap socket", e))?;
        zap.set_linger(0)
            .map_err(|e| BusError::Zmq("zap linger", e))?;
        zap.bind(ZAP_ENDPOINT)
            .map_err(|e| BusError::Zmq("bind zap handler", e))?;
        let mon = ctx
            .socket(zmq::PAIR)
            .map_err(|e| BusError::Zmq("monitor socket", e))?;
        mon.set_linger(0)
            .map_err(|e| BusError::Zmq("monitor linger", e))?;
        mon.connect(monitor)
            .map_err(|e| BusError::Zmq("connect monitor", e))?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("streamon-bus-zap".into())
            .spawn(move || zap_loop(&zap, &mon, &clients, &s))
            .map_err(|e| BusError::Thread(e.to_string()))?;
        Ok(Authenticator {
            shared,
            thread: Some(thread),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> AuthStats {
        let s = &self.shared;
        AuthStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            handshake_failures: s.handshake_failures.load(Ordering::Relaxed),
            recent_refusals: s.recent.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

impl Drop for Authenticator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn zap_loop(zap: &zmq::Socket, mon: &zmq::Socket, clients: &[[u8; 32]], s: &Shared) {
    while !s.stop.load(Ordering::Relaxed) {
        let mut items = [zap.as_poll_item(zmq::POLLIN), mon.as_poll_item(zmq::POLLIN)];
        // 50 ms: how long `Drop` may wait for the thread.
        if zmq::poll(&mut items, 50).is_err() {
            continue;
        }
        let (zap_ready, mon_ready) = (items[0].is_readable(), items[1].is_readable());
        if zap_ready {
            if let Ok(req) = zap.recv_multipart(0) {
                let reply = answer(&req, clients, s);
                let _ = zap.send_multipart(reply, 0);
            }
        }
        if mon_ready {
            while let Ok(frames) = mon.recv_multipart(zmq::DONTWAIT) {
                monitor_event(&frames, s);
            }
        }
    }
}

fn answer(req: &[Vec<u8>], clients: &[[u8; 32]], s: &Shared) -> Vec<Vec<u8>> {
    // RFC 27 request: version, request id, domain, address, identity,
    // mechanism, credentials…
    let frame = |i: usize| req.get(i).cloned().unwrap_or_default();
    let address = String::from_utf8_lossy(&frame(3)).into_owned();
    let mechanism = frame(5);
    let (code, text): (&[u8], &[u8]) = if frame(0) != b"1.0" {
        s.refuse(address.clone(), "ZAP version not 1.0".into());
        (b"400", b"bad ZAP version")
    } else if mechanism != b"CURVE" {
        s.refuse(
            address.clone(),
            format!("mechanism {}", String::from_utf8_lossy(&mechanism)),
        );
        (b"400", b"CURVE required")
    } else {
        match <[u8; 32]>::try_from(frame(6).as_slice()) {
            Ok(key) if clients.contains(&key) => (b"200", b"OK"),
            Ok(key) => {
                s.refuse(address.clone(), format!("unauthorised key {}", z85(&key)));
                (b"400", b"unauthorised key")
            }
            Err(_) => {
                s.refuse(address.clone(), "malformed CURVE credentials".into());
                (b"400", b"malformed credentials")
            }
        }
    };
    if code == b"200" {
        s.accepted.fetch_add(1, Ordering::Relaxed);
    } else {
        s.refused.fetch_add(1, Ordering::Relaxed);
    }
    vec![
        b"1.0".to_vec(),
        frame(1),
        code.to_vec(),
        text.to_vec(),
        // User-Id: the key in Z85, so receivers read it as text.
        match <[u8; 32]>::try_from(frame(6).as_slice()) {
            Ok(key) if code == b"200" => z85(&key).into_bytes(),
            _ => Vec::new(),
        },
        Vec::new(),
    ]
}

fn monitor_event(frames: &[Vec<u8>], s: &Shared) {
    // Frame 1: event id (u16 LE) + value (u32 LE); frame 2: address.
    let Some(head) = frames.first().filter(|f| f.len() >= 6) else {
        return;
    };
    let id = u32::from(u16::from_le_bytes([head[0], head[1]]));
    let failed = [
        zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL,
        zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL,
        zmq::SocketEvent::HANDSHAKE_FAILED_AUTH,
    ]
    .iter()
    .any(|e| u32::from(e.to_raw()) == id);
    if failed {
        s.handshake_failures.fetch_add(1, Ordering::Relaxed);
        let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
        let address = frames
            .get(1)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default();
        s.refuse(
            address,
            format!("handshake failed (event {id:#x}, detail {value:#x})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ZeroMQ RFC 32 test vector ("HelloWorld" is these 8 bytes),
    /// four times over to make a key.
    #[test]
    fn decodes_the_rfc_vector_and_round_trips() {
        let text = "HelloWorld".repeat(4);
        let key = parse_z85(&format!("  {text}\n")).unwrap();
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        for chunk in key.chunks(8) {
            assert_eq!(chunk, bytes);
        }
        assert_eq!(z85(&key), text);
        let pair = KeyPair::generate().unwrap();
        assert_eq!(parse_z85(&z85(&pair.public)).unwrap(), pair.public);
        assert_eq!(parse_z85(&z85(&pair.secret)).unwrap(), pair.secret);
    }

    fn why(text: &str) -> Z85Error {
        match parse_z85(text) {
            Err(BusError::BadKey { why, .. }) => why,
            other => panic!("{other:?}"),
        }
    }

    /// Seen while fixing the leak the `curve_key` fuzz target found:
    /// libzmq refused a character outside the alphabet but
    /// `zmq::z85_decode` ignored that, so such a text read as a wrong key.
    #[test]
    fn refuses_what_is_not_z85_with_where_and_why() {
        let good = "HelloWorld".repeat(4);
        let bad = good.replacen('W', "\"", 1);
        assert_eq!(why(&bad), Z85Error::Char { at: 5, ch: '"' });
        assert_eq!(why(&good[..39]), Z85Error::Length(39));
        let wide = format!("{}é", &good[..38]);
        assert_eq!(why(&wide), Z85Error::Length(39));
        // "%nSc1" is 2^32 exactly.
        let over = format!("%nSc1{}", &good[5..]);
        assert_eq!(why(&over), Z85Error::Overflow { at: 0 });
        let max = format!("%nSc0{}", &good[5..]);
        assert_eq!(parse_z85(&max).unwrap()[..4], [0xff; 4]);
        let e = parse_z85(&bad).unwrap_err().to_string();
        assert!(e.contains("at 5"), "{e}");
    }
}
