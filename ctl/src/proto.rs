//! The control channel's message set, version 1, defined once.
//!
//! Each control message is one ZeroMQ frame holding one JSON object (the
//! controller's ROUTER adds and strips the peer's routing frame):
//!
//! ```text
//! {"v":1,"type":"deploy","nonce":1764400000000001,"app":"portscan","xml":"<streamon>…"}
//! ```
//!
//! `v` is [`PROTOCOL_VERSION`]; `type` names the message; the other fields
//! are the variant's. Probes send [`Message::Announce`] once at start and
//! [`Message::Heartbeat`] every interval (both carry a full
//! [`ProbeReport`], so a restarted controller registers a probe from its
//! next heartbeat), and answer every command with [`Message::Ack`] or
//! [`Message::Refuse`]. The controller sends [`Message::Welcome`] and the
//! commands (`deploy`, `swap`, `start`, `stop`, `remove`, `status`).
//!
//! Every command carries a `nonce`: a probe executes a command only when
//! its nonce is greater than the last one it accepted, so a replayed (or
//! reordered, stale) command is refused with [`Reason::Replayed`]. The
//! controller draws nonces from the wall clock in microseconds and from
//! the `last_nonce` each probe reports, so they keep growing across
//! controller restarts.
//!
//! [`decode`] never panics; what it refuses comes back as a [`ProtoError`]
//! whose [`ProtoError::reason`] is the refusal's [`Reason`]: a message over
//! [`MAX_MESSAGE_BYTES`] is `oversized` (not even parsed), a frame that is
//! not a JSON object is `malformed`, another `v` is `version`, a `type` not
//! in this list is `unknown_type`, and a known type with missing, extra or
//! out-of-range fields is `invalid`. The full list, with examples, is in
//! `docs/controller.md`.

use serde::{Deserialize, Serialize};

/// The version every message carries as `v`; [`decode`] refuses others.
pub const PROTOCOL_VERSION: u64 = 1;

/// Largest control message [`decode`] parses; longer ones are refused as
/// [`Reason::Oversized`] without being parsed.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// `ZMQ_MAXMSGSIZE` on control sockets: libzmq disconnects a peer that
/// sends more (so a peer cannot make us buffer gigabytes); between
/// [`MAX_MESSAGE_BYTES`] and this, the message is received and refused
/// with a reason.
pub const TRANSPORT_MAX_BYTES: i64 = 4 << 20;

/// Largest application program (`xml`) a deploy or swap may carry.
pub const MAX_APP_BYTES: usize = 256 << 10;

/// Longest probe, controller or application name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// One application as a probe reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppStatus {
    /// Application name.
    pub name: String,
    /// [`digest`] of the program text it runs.
    pub digest: String,
    /// Whether it is fed packets (`stop` pauses it, keeping its state).
    pub running: bool,
}

/// What a probe says about itself in `announce` and `heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeReport {
    /// The probe's name (`%client.id`).
    pub probe: String,
    /// Reports sent since the agent started (0 is the announce).
    pub seq: u64,
    /// Where its events are published (a connectable endpoint).
    pub events_endpoint: String,
    /// Installed applications, in order.
    pub apps: Vec<AppStatus>,
    /// The greatest command nonce it has accepted (0: none).
    pub last_nonce: u64,
    /// Packets processed since the agent started.
    pub packets: u64,
    /// Events published since the agent started.
    pub events: u64,
    /// Control messages it refused since the agent started.
    pub refused: u64,
}

/// Why a message or command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    Oversized,
    /// Not one frame of UTF-8 JSON object.
    Malformed,
    /// `v` is not [`PROTOCOL_VERSION`].
    Version,
    /// `type` is not in the message set.
    UnknownType,
    /// A known type with missing, extra or out-of-range fields.
    Invalid,
    /// A type the receiver never accepts from this side (a probe sending
    /// `deploy`, a controller sending `heartbeat`).
    Unexpected,
    /// The nonce is not greater than the last accepted one.
    Replayed,
    /// No application of that name on the probe.
    UnknownApp,
    /// `deploy` of a name already installed (use `swap`).
    AlreadyDeployed,
    /// The program has errors (the detail lists them, `file:line:col`).
    CheckFailed,
    /// The program checks but cannot be installed (a metric parameter the
    /// contract refuses).
    InstallFailed,
    /// The sender is not who it claims to be (a probe name announced with
    /// another probe's key).
    Unauthorised,
    /// A reason from a newer peer.
    #[serde(other)]
    Other,
}

impl Reason {
    /// The wire name (`replayed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Oversized => "oversized",
            Reason::Malformed => "malformed",
            Reason::Version => "version",
            Reason::UnknownType => "unknown_type",
            Reason::Invalid => "invalid",
            Reason::Unexpected => "unexpected",
            Reason::Replayed => "replayed",
            Reason::UnknownApp => "unknown_app",
            Reason::AlreadyDeployed => "already_deployed",
            Reason::CheckFailed => "check_failed",
            Reason::InstallFailed => "install_failed",
            Reason::Unauthorised => "unauthorised",
            Reason::Other => "other",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One control message (see the module doc for who sends which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// Probe → controller, once at start.
    Announce(ProbeReport),
    /// Probe → controller, every heartbeat interval.
    Heartbeat(ProbeReport),
    /// Controller → probe, answering `announce` (and a heartbeat from a
    /// probe it did not know).
    Welcome {
        /// The controller's name.
        controller: String,
        /// The heartbeat interval the controller expects, ms.
        heartbeat_ms: u64,
    },
    /// Controller → probe: install a new application.
    Deploy {
        /// Command nonce.
        nonce: u64,
        /// Application name.
        app: String,
        /// The program.
        xml: String,
    },
    /// Controller → probe: replace a running application's program
    /// (fresh state for it, none lost for the others).
    Swap {
        /// Command nonce.
        nonce: u64,
        /// Application name.
        app: String,
        /// The new program.
        xml: String,
    },
    /// Controller → probe: feed packets to a stopped application again.
    Start {
        /// Command nonce.
        nonce: u64,
        /// Application name.
        app: String,
    },
    /// Controller → probe: stop feeding packets to an application (it
    /// keeps its state).
    Stop {
        /// Command nonce.
        nonce: u64,
        /// Application name.
        app: String,
    },
    /// Controller → probe: uninstall an application.
    Remove {
        /// Command nonce.
        nonce: u64,
        /// Application name.
        app: String,
    },
    /// Controller → probe: report now (answered by an `ack` whose
    /// `detail` is the probe's counters as JSON).
    Status {
        /// Command nonce.
        nonce: u64,
    },
    /// Probe → controller: the command with this nonce was carried out.
    Ack {
        /// The probe.
        probe: String,
        /// The command's nonce.
        nonce: u64,
        /// The command's type (`deploy`).
        command: String,
        /// Warnings of an install, counters of a `status`, or empty.
        detail: String,
        /// The probe's applications after the command.
        apps: Vec<AppStatus>,
    },
    /// Either way: a message that was refused, and why.
    Refuse {
        /// The refused command's nonce, when it could be read.
        nonce: Option<u64>,
        /// The refused message's type, when it could be read.
        command: Option<String>,
        /// Why.
        reason: Reason,
        /// Human-readable detail (diagnostics of a failed check, the
        /// parser's message, …).
        detail: String,
    },
}

/// The `type` names of every message, in the order of [`Message`].
pub const MESSAGE_TYPES: [&str; 11] = [
    "announce",
    "heartbeat",
    "welcome",
    "deploy",
    "swap",
    "start",
    "stop",
    "remove",
    "status",
    "ack",
    "refuse",
];

impl Message {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Announce(_) => "announce",
            Message::Heartbeat(_) => "heartbeat",
            Message::Welcome { .. } => "welcome",
            Message::Deploy { .. } => "deploy",
            Message::Swap { .. } => "swap",
            Message::Start { .. } => "start",
            Message::Stop { .. } => "stop",
            Message::Remove { .. } => "remove",
            Message::Status { .. } => "status",
            Message::Ack { .. } => "ack",
            Message::Refuse { .. } => "refuse",
        }
    }

    /// The nonce of a command.
    pub fn nonce(&self) -> Option<u64> {
        match self {
            Message::Deploy { nonce, .. }
            | Message::Swap { nonce, .. }
            | Message::Start { nonce, .. }
            | Message::Stop { nonce, .. }
            | Message::Remove { nonce, .. }
            | Message::Status { nonce } => Some(*nonce),
            _ => None,
        }
    }

    /// Field checks serde cannot express: names, sizes, nonces.
    fn validate(&self) -> Result<(), String> {
        let name = |what: &str, n: &str| check_name(n).map_err(|e| format!("{what}: {e}"));
        let xml = |x: &str| {
            if x.len() > MAX_APP_BYTES {
                Err(format!("xml: {} bytes, more than {MAX_APP_BYTES}", x.len()))
            } else {
                Ok(())
            }
        };
        if self.nonce() == Some(0) {
            return Err("nonce: must be greater than 0".into());
        }
        match self {
            Message::Announce(r) | Message::Heartbeat(r) => {
                name("probe", &r.probe)?;
                for a in &r.apps {
                    name("apps[].name", &a.name)?;
                }
                Ok(())
            }
            Message::Welcome { controller, .. } => name("controller", controller),
            Message::Deploy { app, xml: x, .. } | Message::Swap { app, xml: x, .. } => {
                name("app", app)?;
                xml(x)
            }
            Message::Start { app, .. }
            | Message::Stop { app, .. }
            | Message::Remove { app, .. } => name("app", app),
            Message::Ack { probe, .. } => name("probe", probe),
            Message::Status { .. } | Message::Refuse { .. } => Ok(()),
        }
    }
}

/// Checks a probe, controller or application name: 1 to
/// [`MAX_NAME_BYTES`] bytes of ASCII letters, digits, `-`, `_`, `.`, not
/// starting with `.` (names become file names and text-line tokens).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{:?} must be 1 to {MAX_NAME_BYTES} bytes",
            shorten(name)
        ));
    }
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(format!(
            "{:?} may hold only letters, digits, '-', '_', '.' (not first)",
            shorten(name)
        ));
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    s.chars().take(MAX_NAME_BYTES).collect()
}

/// Why a received frame is not a control message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    Oversized {
        /// Its length.
        len: usize,
    },
    /// Not a JSON object (or not one frame).
    #[error("not a control message: {0}")]
    Malformed(String),
    /// `v` missing or not [`PROTOCOL_VERSION`].
    #[error("protocol version {got}, expected {PROTOCOL_VERSION}")]
    Version {
        /// What `v` held (`missing` when absent).
        got: String,
    },
    /// `type` not in [`MESSAGE_TYPES`].
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known type whose fields are wrong.
    #[error("invalid {kind}: {detail}")]
    Invalid {
        /// The type.
        kind: String,
        /// What is wrong.
        detail: String,
    },
}

impl ProtoError {
    /// The refusal reason for this error.
    pub fn reason(&self) -> Reason {
        match self {
            ProtoError::Oversized { .. } => Reason::Oversized,
            ProtoError::Malformed(_) => Reason::Malformed,
            ProtoError::Version { .. } => Reason::Version,
            ProtoError::UnknownType(_) => Reason::UnknownType,
            ProtoError::Invalid { .. } => Reason::Invalid,
        }
    }

    /// The message type, when it could be read.
    pub fn kind(&self) -> Option<String> {
        match self {
            ProtoError::Invalid { kind, .. } => Some(kind.clone()),
            ProtoError::UnknownType(k) => Some(k.clone()),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u64,
    #[serde(flatten)]
    msg: &'a Message,
}

/// The frame of `msg`: `{"v":1,"type":…,…}`, fields in declaration order.
pub fn encode(msg: &Message) -> Vec<u8> {
    // Serialising these types cannot fail: string keys, no maps of
    // non-string keys, no non-finite floats.
    serde_json::to_vec(&Envelope {
        v: PROTOCOL_VERSION,
        msg,
    })
    .expect("control messages serialise")
}

/// Decodes one frame. Never panics; see the module doc for the refusals.
pub fn decode(frame: &[u8]) -> Result<Message, ProtoError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(ProtoError::Oversized { len: frame.len() });
    }
    let text = std::str::from_utf8(frame)
        .map_err(|e| ProtoError::Malformed(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    let serde_json::Value::Object(mut obj) = value else {
        return Err(ProtoError::Malformed("not a JSON object".into()));
    };
    match obj.remove("v") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(other) => {
            let mut got = other.to_string();
            got.truncate(32);
            return Err(ProtoError::Version { got });
        }
        None => {
            return Err(ProtoError::Version {
                got: "missing".into(),
            })
        }
    }
    let kind = match obj.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => return Err(ProtoError::Malformed("\"type\" is not a string".into())),
        None => return Err(ProtoError::Malformed("no \"type\" field".into())),
    };
    if !MESSAGE_TYPES.contains(&kind.as_str()) {
        return Err(ProtoError::UnknownType(shorten(&kind)));
    }
    let msg: Message = serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
        ProtoError::Invalid {
            kind: kind.clone(),
            detail: e.to_string(),
        }
    })?;
    msg.validate()
        .map_err(|detail| ProtoError::Invalid { kind, detail })?;
    Ok(msg)
}

/// FNV-1a 64 of a program's text, 16 hex digits: tells the controller
/// whether a probe runs the program it should (not a security measure:
/// the channel is authenticated by CURVE).
pub fn digest(xml: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in xml.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        let m = Message::Deploy {
            nonce: 7,
            app: "portscan".into(),
            xml: "<streamon/>".into(),
        };
        assert_eq!(
            encode(&m),
            br#"{"v":1,"type":"deploy","nonce":7,"app":"portscan","xml":"<streamon/>"}"#
        );
        let r = Message::Refuse {
            nonce: Some(7),
            command: Some("deploy".into()),
            reason: Reason::Replayed,
            detail: "nonce 7 is not greater than 9".into(),
        };
        assert_eq!(
            encode(&r),
            br#"{"v":1,"type":"refuse","nonce":7,"command":"deploy","reason":"replayed","detail":"nonce 7 is not greater than 9"}"#
        );
        let hb = Message::Heartbeat(ProbeReport {
            probe: "p1".into(),
            seq: 3,
            events_endpoint: "tcp://10.0.0.2:5560".into(),
            apps: vec![AppStatus {
                name: "ddos".into(),
                digest: digest("x"),
                running: true,
            }],
            last_nonce: 7,
            packets: 10,
            events: 2,
            refused: 0,
        });
        assert_eq!(
            encode(&hb),
            br#"{"v":1,"type":"heartbeat","probe":"p1","seq":3,"events_endpoint":"tcp://10.0.0.2:5560","apps":[{"name":"ddos","digest":"af63f54c86021707","running":true}],"last_nonce":7,"packets":10,"events":2,"refused":0}"#
        );
        for m in [m, r, hb] {
            assert_eq!(decode(&encode(&m)), Ok(m));
        }
    }

    #[test]
    fn every_message_type_round_trips() {
        let report = ProbeReport {
            probe: "p".into(),
            seq: 0,
            events_endpoint: "e".into(),
            apps: vec![],
            last_nonce: 0,
            packets: 0,
            events: 0,
            refused: 0,
        };
        let all = [
            Message::Announce(report.clone()),
            Message::Heartbeat(report),
            Message::Welcome {
                controller: "c".into(),
                heartbeat_ms: 500,
            },
            Message::Deploy {
                nonce: 1,
                app: "a".into(),
                xml: "x".into(),
            },
            Message::Swap {
                nonce: 2,
                app: "a".into(),
                xml: "y".into(),
            },
            Message::Start {
                nonce: 3,
                app: "a".into(),
            },
            Message::Stop {
                nonce: 4,
                app: "a".into(),
            },
            Message::Remove {
                nonce: 5,
                app: "a".into(),
            },
            Message::Status { nonce: 6 },
            Message::Ack {
                probe: "p".into(),
                nonce: 6,
                command: "status".into(),
                detail: "{}".into(),
                apps: vec![],
            },
            Message::Refuse {
                nonce: None,
                command: None,
                reason: Reason::Malformed,
                detail: "d".into(),
            },
        ];
        let kinds: Vec<&str> = all.iter().map(Message::kind).collect();
        assert_eq!(kinds, MESSAGE_TYPES);
        for m in all {
            assert_eq!(decode(&encode(&m)).as_ref(), Ok(&m), "{}", m.kind());
        }
    }

    fn reason_of(frame: &[u8]) -> Reason {
        decode(frame).expect_err("refused").reason()
    }

    #[test]
    fn refusals_have_reasons() {
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            decode(&big),
            Err(ProtoError::Oversized {
                len: MAX_MESSAGE_BYTES + 1
            })
        );
        assert_eq!(reason_of(b"\xff\xfe"), Reason::Malformed);
        assert_eq!(reason_of(b"{\"v\":1,"), Reason::Malformed);
        assert_eq!(reason_of(b"[1,2]"), Reason::Malformed);
        assert_eq!(reason_of(br#"{"v":1}"#), Reason::Malformed);
        assert_eq!(reason_of(br#"{"v":1,"type":5}"#), Reason::Malformed);
        assert_eq!(
            reason_of(br#"{"type":"status","nonce":1}"#),
            Reason::Version
        );
        assert_eq!(
            reason_of(br#"{"v":2,"type":"status","nonce":1}"#),
            Reason::Version
        );
        assert_eq!(
            decode(br#"{"v":1,"type":"format_disk","nonce":1}"#),
            Err(ProtoError::UnknownType("format_disk".into()))
        );
        // Known type, wrong fields.
        assert_eq!(
            reason_of(br#"{"v":1,"type":"deploy","nonce":1}"#),
            Reason::Invalid
        );
        assert_eq!(
            reason_of(br#"{"v":1,"type":"status","nonce":1,"extra":true}"#),
            Reason::Invalid
        );
        assert_eq!(
            reason_of(br#"{"v":1,"type":"status","nonce":-1}"#),
            Reason::Invalid
        );
        assert_eq!(
            reason_of(br#"{"v":1,"type":"status","nonce":0}"#),
            Reason::Invalid
        );
        assert_eq!(
            reason_of(br#"{"v":1,"type":"start","nonce":1,"app":"../etc"}"#),
            Reason::Invalid
        );
        let xml = "x".repeat(MAX_APP_BYTES + 1);
        let m = format!(r#"{{"v":1,"type":"deploy","nonce":1,"app":"a","xml":"{xml}"}}"#);
        let e = decode(m.as_bytes()).unwrap_err();
        assert_eq!(e.reason(), Reason::Invalid);
        assert!(e.to_string().contains("more than"), "{e}");
        // A reason from a newer peer still decodes.
        let m = decode(
            br#"{"v":1,"type":"refuse","nonce":null,"command":null,"reason":"quota","detail":""}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            Message::Refuse {
                reason: Reason::Other,
                ..
            }
        ));
    }

    #[test]
    fn truncations_and_byte_flips_never_panic() {
        let m = encode(&Message::Deploy {
            nonce: 99,
            app: "portscan".into(),
            xml: "<streamon><statedef id=\"a\"/></streamon>".into(),
        });
        for cut in 0..m.len() {
            let _ = decode(&m[..cut]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut f = m.clone();
            let i = (x % f.len() as u64) as usize;
            f[i] = (x >> 32) as u8;
            if let Ok(d) = decode(&f) {
                // What decodes re-encodes to something that decodes alike.
                assert_eq!(decode(&encode(&d)), Ok(d));
            }
        }
    }

    #[test]
    fn names() {
        assert!(check_name("probe-1.lab_2").is_ok());
        for bad in ["", ".hidden", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
