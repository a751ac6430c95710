//! The bus's wire formats, defined once.
//!
//! Every event is a two-frame ZeroMQ multipart message `[topic][payload]`,
//! as in the original D-StreaMon exporter (`23Exporter.cpp`): frame 1 is the
//! topic's UTF-8 bytes (no NUL), which is what subscribers' prefix filters
//! match; frame 2 is one of:
//!
//! - **text line** ([`PayloadFormat::Text`]), the original D-StreaMon payload
//!   so existing subscribers keep working:
//!   `<ts ns> <probe id> <code> <level> "<description>" k1=v1 k2=v2 …`,
//!   single spaces, the description escaped (`\"`, `\\`, and `\n`/`\r` so
//!   the line stays one line), each feature value with 6 decimals
//!   (`17.000000`), as `%f` printed them. The description is the event's
//!   rendered text, or its destination state when the text is empty (the
//!   probe's [`OutputEvent`] carries the rendered `Publish` text, not
//!   `%state.description`). An empty code or level gives an empty token
//!   between two single spaces, which parses back to empty.
//! - **JSON object** ([`PayloadFormat::Json`]), versioned (`"v": 1`), with
//!   the probe id, app, topic, key, key fields (an object of the key's
//!   fields by name, rendered; a decoder takes its absence as empty, as
//!   from a publisher older than the field), states, code, level, text, features (an
//!   object in emission order; non-finite values as the strings `"NaN"`,
//!   `"inf"`, `"-inf"`, which JSON numbers cannot carry), trace time,
//!   triggering event and packet number, and a per-publisher, per-topic
//!   sequence number `seq` (0, 1, 2, … for each topic) by which a
//!   subscriber counts the events libzmq dropped for it: a PUB socket
//!   drops silently for a subscriber whose queue is at its high-water mark,
//!   and the `zmq` 0.9 crate exposes no `ZMQ_XPUB_NODROP` that would make
//!   the publisher see it. The text line has no room for it (old
//!   subscribers parse it).
//! - for topic `raw`, whatever the format, the **packet bytes** themselves
//!   (the event's hex `raw` decoded).
//!
//! A subscriber tells the two text payloads apart by their first byte: `{`
//! is JSON, a digit is a text line. [`decode`] never panics: every malformed
//! input is a [`WireError`].

use std::fmt::Write as _;

use streamon_probe::{Message, MessageError, OutputEvent};

/// The topic whose payload is the packet bytes.
pub const RAW_TOPIC: &str = "raw";

/// Version of the JSON payload; [`decode`] refuses any other.
pub const JSON_VERSION: u64 = 1;

/// Which payload a publisher puts in frame 2 (topic `raw` excepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    /// The original D-StreaMon text line.
    #[default]
    Text,
    /// One versioned JSON object.
    Json,
}

/// Why an event could not be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A token of the text line would break its syntax.
    #[error("{field} {value:?} cannot be a text-line token (empty, space, '\"' or '=')")]
    BadToken {
        /// Which field (`probe id`, `code`, `level`, `feature name`).
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A `raw` event without packet bytes.
    #[error("raw event without packet bytes")]
    MissingRaw,
    /// A `raw` event whose bytes are not hex.
    #[error("raw packet bytes are not hex at offset {offset}")]
    BadHex {
        /// Byte offset of the first bad digit (or the odd length).
        offset: usize,
    },
}

/// Why a received message is not a bus event.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not exactly two frames.
    #[error("expected 2 frames [topic][payload], got {count}")]
    FrameCount {
        /// Frames received.
        count: usize,
    },
    /// The topic frame is not UTF-8.
    #[error("topic frame is not UTF-8")]
    TopicNotUtf8,
    /// The payload of a non-`raw` topic is not UTF-8.
    #[error("payload is not UTF-8")]
    PayloadNotUtf8,
    /// Neither `{` (JSON) nor a digit (text line) starts the payload.
    #[error("payload is neither a JSON object nor a text line")]
    UnknownPayload,
    /// The JSON payload does not parse into an event record.
    #[error("bad JSON payload")]
    Json(#[source] serde_json::Error),
    /// The JSON payload carries a version this code does not know.
    #[error("unsupported JSON payload version {found}")]
    Version {
        /// The version found.
        found: u64,
    },
    /// The JSON record's topic differs from the topic frame.
    #[error("JSON topic {payload:?} differs from the topic frame {frame:?}")]
    TopicMismatch {
        /// Topic frame.
        frame: String,
        /// Topic in the payload.
        payload: String,
    },
    /// The message is larger than the receiver accepts.
    #[error("message of {bytes} bytes exceeds the limit of {max}")]
    Oversized {
        /// Size of both frames.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The text line is malformed.
    #[error("bad text line at byte {at}: {what}")]
    Line {
        /// Byte offset into the payload.
        at: usize,
        /// What was expected.
        what: &'static str,
    },
}

/// One event as published: what the typed subscriber gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The topic frame.
    pub topic: String,
    /// The decoded payload.
    pub payload: Payload,
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The original text line.
    Line(TextLine),
    /// The JSON record.
    Record(EventRecord),
    /// Topic `raw`: packet bytes.
    Raw(Vec<u8>),
}

/// The fields of an original D-StreaMon text line.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    /// Trace time, ns since the epoch.
    pub ts: u64,
    /// The publishing probe (`%client.id`).
    pub probe: String,
    /// State code (`A1`).
    pub code: String,
    /// State level (`LOW`).
    pub level: String,
    /// The description, unescaped.
    pub description: String,
    /// Features, in line order, 6 decimals of precision.
    pub features: Vec<(String, f64)>,
}

/// The JSON payload: a whole [`OutputEvent`] plus the probe id.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The publishing probe.
    pub probe: String,
    /// Application name.
    pub app: String,
    /// Topic.
    pub topic: String,
    /// The event's key, rendered.
    pub key: String,
    /// The key's fields by name, rendered (`ip_src` → `10.0.0.1`); empty
    /// from a publisher that did not send them.
    pub key_fields: Vec<(String, String)>,
    /// State before the pass.
    pub state_from: String,
    /// State after the pass.
    pub state_to: String,
    /// State code.
    pub code: String,
    /// State level.
    pub level: String,
    /// Rendered text.
    pub text: String,
    /// Features by name, in emission order.
    pub features: Vec<(String, f64)>,
    /// Trace time, ns since the epoch.
    pub ts: u64,
    /// Which event ran (`packet:0`, `timeout:idle`).
    pub event: String,
    /// Packet number.
    pub packet_no: u64,
    /// The publisher's sequence number within this topic.
    pub seq: u64,
}

/// Frames of one message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames {
    /// Frame 1.
    pub topic: Vec<u8>,
    /// Frame 2.
    pub payload: Vec<u8>,
}

/// Encodes `ev` as published by `probe` in `format`, as the `seq`-th event
/// of its topic (JSON only carries `seq`).
pub fn encode(
    ev: &OutputEvent,
    probe: &str,
    format: PayloadFormat,
    seq: u64,
) -> Result<Frames, EncodeError> {
    let mut payload = Vec::new();
    encode_payload(ev, probe, format, seq, &mut payload)?;
    Ok(Frames {
        topic: ev.topic.as_bytes().to_vec(),
        payload,
    })
}

/// Writes the payload frame of `ev` into `out` (cleared first); the
/// publisher reuses one buffer this way.
pub fn encode_payload(
    ev: &OutputEvent,
    probe: &str,
    format: PayloadFormat,
    seq: u64,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.clear();
    if ev.topic == RAW_TOPIC {
        let hex = ev.raw.as_deref().ok_or(EncodeError::MissingRaw)?;
        return decode_hex(hex, out);
    }
    match format {
        PayloadFormat::Text => {
            let s = text_line(ev, probe)?;
            out.extend_from_slice(s.as_bytes());
        }
        PayloadFormat::Json => {
            // Writing into a Vec cannot fail, and every field serialises.
            serde_json::to_writer(&mut *out, &JsonOut { ev, probe, seq })
                .expect("JSON of an event into a Vec never fails");
        }
    }
    Ok(())
}

fn check_token(field: &'static str, value: &str, allow_empty: bool) -> Result<(), EncodeError> {
    let bad = (!allow_empty && value.is_empty())
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=');
    if bad {
        return Err(EncodeError::BadToken {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn text_line(ev: &OutputEvent, probe: &str) -> Result<String, EncodeError> {
    check_token("probe id", probe, false)?;
    check_token("code", &ev.code, true)?;
    check_token("level", &ev.level, true)?;
    let description = if ev.text.is_empty() {
        &ev.state_to
    } else {
        &ev.text
    };
    let mut s = String::with_capacity(64 + description.len() + 24 * ev.features.len());
    // Writing into a String cannot fail.
    let _ = write!(s, "{} {} {} {} \"", ev.ts, probe, ev.code, ev.level);
    for c in description.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    for (k, v) in &ev.features {
        check_token("feature name", k, false)?;
        let _ = write!(s, " {k}={v:.6}");
    }
    Ok(s)
}

fn decode_hex(hex: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let b = hex.as_bytes();
    if b.len() & 1 == 1 {
        return Err(EncodeError::BadHex { offset: b.len() });
    }
    out.reserve(b.len() / 2);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or(EncodeError::BadHex { offset: 2 * i })?;
        let lo = nibble(pair[1]).ok_or(EncodeError::BadHex { offset: 2 * i + 1 })?;
        out.push(hi << 4 | lo);
    }
    Ok(())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes one received message.
pub fn decode(frames: &[Vec<u8>]) -> Result<Delivered, WireError> {
    let [topic, payload] = frames else {
        return Err(WireError::FrameCount {
            count: frames.len(),
        });
    };
    decode_frames(topic, payload)
}

/// Decodes the two frames of one message.
pub fn decode_frames(topic: &[u8], payload: &[u8]) -> Result<Delivered, WireError> {
    let topic = std::str::from_utf8(topic)
        .map_err(|_| WireError::TopicNotUtf8)?
        .to_string();
    if topic == RAW_TOPIC {
        return Ok(Delivered {
            topic,
            payload: Payload::Raw(payload.to_vec()),
        });
    }
    let text = std::str::from_utf8(payload).map_err(|_| WireError::PayloadNotUtf8)?;
    let payload = match text.as_bytes().first() {
        Some(b'{') => {
            let r = parse_json(text)?;
            if r.topic != topic {
                return Err(WireError::TopicMismatch {
                    frame: topic,
                    payload: r.topic,
                });
            }
            Payload::Record(r)
        }
        Some(b'0'..=b'9') => Payload::Line(parse_line(text)?),
        _ => return Err(WireError::UnknownPayload),
    };
    Ok(Delivered { topic, payload })
}

/// Parses an original D-StreaMon text line.
pub fn parse_line(line: &str) -> Result<TextLine, WireError> {
    let mut p = LineParser { s: line, at: 0 };
    let ts = p.token("timestamp")?;
    if !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(p.err_at(0, "a timestamp in ns (digits)"));
    }
    let ts = ts
        .parse::<u64>()
        .map_err(|_| p.err_at(0, "a timestamp that fits 64 bits"))?;
    let probe = p.token("probe id")?.to_string();
    if probe.is_empty() {
        return Err(p.err_at(p.at, "a probe id"));
    }
    let code = p.token("code")?.to_string();
    let level = p.token("level")?.to_string();
    let description = p.quoted()?;
    let mut features = Vec::new();
    while p.at < line.len() {
        p.expect(b' ', "a space before a feature")?;
        let start = p.at;
        let tok = p.rest_token();
        let Some((k, v)) = tok.split_once('=') else {
            return Err(p.err_at(start, "a feature `name=value`"));
        };
        if k.is_empty() || k.contains('"') {
            return Err(p.err_at(start, "a feature name"));
        }
        let v = v
            .parse::<f64>()
            .map_err(|_| p.err_at(start + k.len() + 1, "a number"))?;
        features.push((k.to_string(), v));
    }
    Ok(TextLine {
        ts,
        probe,
        code,
        level,
        description,
        features,
    })
}

struct LineParser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> LineParser<'a> {
    fn err_at(&self, at: usize, what: &'static str) -> WireError {
        WireError::Line { at, what }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), WireError> {
        if self.s.as_bytes().get(self.at) == Some(&b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err_at(self.at, what))
        }
    }

    /// A token up to the next single space, consuming the space.
    fn token(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        let rest = &self.s[self.at..];
        let Some(end) = rest.find(' ') else {
            return Err(self.err_at(self.s.len(), what));
        };
        let tok = &rest[..end];
        if tok.contains('"') {
            return Err(self.err_at(self.at, what));
        }
        self.at += end + 1;
        Ok(tok)
    }

    /// A token up to the next space or the end, not consuming the space.
    fn rest_token(&mut self) -> &'a str {
        let rest = &self.s[self.at..];
        let end = rest.find(' ').unwrap_or(rest.len());
        self.at += end;
        &rest[..end]
    }

    fn quoted(&mut self) -> Result<String, WireError> {
        self.expect(b'"', "'\"' opening the description")?;
        let mut out = String::new();
        let mut chars = self.s[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 'r')) => out.push('\r'),
                    _ => return Err(self.err_at(self.at + i, "an escape \\\" \\\\ \\n or \\r")),
                },
                c => out.push(c),
            }
        }
        Err(self.err_at(self.s.len(), "'\"' closing the description"))
    }
}

/// Serialises the JSON payload without copying the event.
struct JsonOut<'a> {
    ev: &'a OutputEvent,
    probe: &'a str,
    seq: u64,
}

impl serde::Serialize for JsonOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.ev;
        let mut m = s.serialize_map(Some(16))?;
        m.serialize_entry("v", &JSON_VERSION)?;
        m.serialize_entry("probe", self.probe)?;
        m.serialize_entry("app", &e.app)?;
        m.serialize_entry("topic", &e.topic)?;
        m.serialize_entry("key", &e.key)?;
        m.serialize_entry("key_fields", &KeyFieldsOut(&e.key_fields))?;
        m.serialize_entry("state_from", &e.state_from)?;
        m.serialize_entry("state_to", &e.state_to)?;
        m.serialize_entry("code", &e.code)?;
        m.serialize_entry("level", &e.level)?;
        m.serialize_entry("text", &e.text)?;
        m.serialize_entry("features", &FeaturesOut(&e.features))?;
        m.serialize_entry("ts", &e.ts)?;
        m.serialize_entry("event", &e.event)?;
        m.serialize_entry("packet_no", &e.packet_no)?;
        m.serialize_entry("seq", &self.seq)?;
        m.end()
    }
}

struct KeyFieldsOut<'a>(&'a [(String, String)]);

impl serde::Serialize for KeyFieldsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct FeaturesOut<'a>(&'a [(String, f64)]);

impl serde::Serialize for FeaturesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            match *v {
                v if v.is_finite() => m.serialize_entry(k, &v)?,
                v if v.is_nan() => m.serialize_entry(k, "NaN")?,
                v if v > 0.0 => m.serialize_entry(k, "inf")?,
                _ => m.serialize_entry(k, "-inf")?,
            }
        }
        m.end()
    }
}

#[derive(serde::Deserialize)]
struct JsonIn {
    v: u64,
    probe: String,
    app: String,
    topic: String,
    key: String,
    /// Added within version 1: absent from older publishers.
    #[serde(default)]
    key_fields: KeyFieldsIn,
    state_from: String,
    state_to: String,
    code: String,
    level: String,
    text: String,
    features: FeaturesIn,
    ts: u64,
    event: String,
    packet_no: u64,
    seq: u64,
}

/// Key fields in publisher order (a JSON object).
#[derive(Default)]
struct KeyFieldsIn(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for KeyFieldsIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyFieldsIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of key field values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<KeyFieldsIn, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = a.next_entry::<String, String>()? {
                    out.push(kv);
                }
                Ok(KeyFieldsIn(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(serde::Deserialize)]
struct VersionOnly {
    v: u64,
}

struct FeaturesIn(Vec<(String, f64)>);

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FeatureValue {
    Num(f64),
    Str(String),
}

impl<'de> serde::Deserialize<'de> for FeaturesIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FeaturesIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of feature values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FeaturesIn, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, FeatureValue>()? {
                    let v = match v {
                        FeatureValue::Num(n) => n,
                        FeatureValue::Str(s) => match s.as_str() {
                            "NaN" => f64::NAN,
                            "inf" => f64::INFINITY,
                            "-inf" => f64::NEG_INFINITY,
                            _ => {
                                return Err(serde::de::Error::custom(format_args!(
                                    "feature {k:?}: {s:?} is not a number, \"NaN\", \"inf\" or \"-inf\""
                                )))
                            }
                        },
                    };
                    out.push((k, v));
                }
                Ok(FeaturesIn(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a JSON payload, checking its version first so a newer record
/// says "version" rather than "missing field".
pub fn parse_json(text: &str) -> Result<EventRecord, WireError> {
    let VersionOnly { v } = serde_json::from_str(text).map_err(WireError::Json)?;
    if v != JSON_VERSION {
        return Err(WireError::Version { found: v });
    }
    let j: JsonIn = serde_json::from_str(text).map_err(WireError::Json)?;
    debug_assert_eq!(j.v, JSON_VERSION);
    Ok(EventRecord {
        probe: j.probe,
        app: j.app,
        topic: j.topic,
        key: j.key,
        key_fields: j.key_fields.0,
        state_from: j.state_from,
        state_to: j.state_to,
        code: j.code,
        level: j.level,
        text: j.text,
        features: j.features.0,
        ts: j.ts,
        event: j.event,
        packet_no: j.packet_no,
        seq: j.seq,
    })
}

/// Turns a received event into an input event of the receiving probe's
/// applications (probe chaining): every field of a JSON record, or what a
/// text line has (no app, key, key fields or state). Refuses `raw`
/// packet bytes and anything over the [`Message`] limits.
pub fn to_message(d: &Delivered) -> Result<Message, MessageError> {
    // `Message` has private fields: fill a default one.
    let mut m = Message::default();
    m.topic = d.topic.clone();
    match &d.payload {
        Payload::Raw(_) => return Err(MessageError::Raw),
        Payload::Line(l) => {
            m.probe = l.probe.clone();
            m.code = l.code.clone();
            m.level = l.level.clone();
            m.text = l.description.clone();
            m.ts = l.ts;
            m.features = l.features.clone();
        }
        Payload::Record(r) => {
            m.probe = r.probe.clone();
            m.app = r.app.clone();
            m.key = r.key.clone();
            m.state = r.state_to.clone();
            m.code = r.code.clone();
            m.level = r.level.clone();
            m.text = r.text.clone();
            m.ts = r.ts;
            m.features = r.features.clone();
            for (k, v) in &r.key_fields {
                m.push_key_field(k, v)?;
            }
        }
    }
    m.check_limits()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> OutputEvent {
        OutputEvent {
            ts: 1_700_000_000_123_456_789,
            app: "dns".into(),
            topic: "alert".into(),
            state_from: "normal".into(),
            state_to: "suspect".into(),
            code: "A1".into(),
            level: "LOW".into(),
            key: "10.0.0.1".into(),
            key_fields: vec![("ip_src".into(), "10.0.0.1".into())],
            text: r#"DNS "hijack" \ suspected"#.into(),
            features: vec![("nxd_count".into(), 17.0), ("ratio".into(), 0.5)],
            event: "packet:0".into(),
            packet_no: 42,
            raw: None,
        }
    }

    const TEXT_BYTES: &[u8] =
        br#"1700000000123456789 probe1 A1 LOW "DNS \"hijack\" \\ suspected" nxd_count=17.000000 ratio=0.500000"#;

    const JSON_BYTES: &[u8] = br#"{"v":1,"probe":"probe1","app":"dns","topic":"alert","key":"10.0.0.1","key_fields":{"ip_src":"10.0.0.1"},"state_from":"normal","state_to":"suspect","code":"A1","level":"LOW","text":"DNS \"hijack\" \\ suspected","features":{"nxd_count":17.0,"ratio":0.5},"ts":1700000000123456789,"event":"packet:0","packet_no":42,"seq":7}"#;

    #[test]
    fn text_golden_bytes() {
        let f = encode(&event(), "probe1", PayloadFormat::Text, 7).unwrap();
        assert_eq!(f.topic, b"alert");
        assert_eq!(
            std::str::from_utf8(&f.payload).unwrap(),
            std::str::from_utf8(TEXT_BYTES).unwrap()
        );
    }

    #[test]
    fn json_golden_bytes() {
        let f = encode(&event(), "probe1", PayloadFormat::Json, 7).unwrap();
        assert_eq!(
            std::str::from_utf8(&f.payload).unwrap(),
            std::str::from_utf8(JSON_BYTES).unwrap()
        );
    }

    #[test]
    fn text_parses_back() {
        let d = decode(&[b"alert".to_vec(), TEXT_BYTES.to_vec()]).unwrap();
        assert_eq!(d.topic, "alert");
        let Payload::Line(l) = d.payload else {
            panic!("{d:?}")
        };
        assert_eq!(
            l,
            TextLine {
                ts: 1_700_000_000_123_456_789,
                probe: "probe1".into(),
                code: "A1".into(),
                level: "LOW".into(),
                description: r#"DNS "hijack" \ suspected"#.into(),
                features: vec![("nxd_count".into(), 17.0), ("ratio".into(), 0.5)],
            }
        );
    }

    #[test]
    fn json_parses_back() {
        let d = decode(&[b"alert".to_vec(), JSON_BYTES.to_vec()]).unwrap();
        let Payload::Record(r) = d.payload else {
            panic!("{d:?}")
        };
        let e = event();
        assert_eq!(
            r,
            EventRecord {
                probe: "probe1".into(),
                app: e.app,
                topic: e.topic,
                key: e.key,
                key_fields: e.key_fields,
                state_from: e.state_from,
                state_to: e.state_to,
                code: e.code,
                level: e.level,
                text: e.text,
                features: e.features,
                ts: e.ts,
                event: e.event,
                packet_no: e.packet_no,
                seq: 7,
            }
        );
    }

    #[test]
    fn description_falls_back_to_state_and_empty_tokens_round_trip() {
        let mut e = event();
        e.text.clear();
        e.code.clear();
        e.level.clear();
        e.features.clear();
        let f = encode(&e, "p", PayloadFormat::Text, 0).unwrap();
        assert_eq!(f.payload, b"1700000000123456789 p   \"suspect\"");
        let l = parse_line(std::str::from_utf8(&f.payload).unwrap()).unwrap();
        assert_eq!((l.code.as_str(), l.level.as_str()), ("", ""));
        assert_eq!(l.description, "suspect");
    }

    #[test]
    fn newlines_stay_on_one_line() {
        let mut e = event();
        e.text = "a\nb\r\\".into();
        let f = encode(&e, "p", PayloadFormat::Text, 0).unwrap();
        assert!(!f.payload.contains(&b'\n'));
        let l = parse_line(std::str::from_utf8(&f.payload).unwrap()).unwrap();
        assert_eq!(l.description, "a\nb\r\\");
    }

    #[test]
    fn non_finite_features_round_trip_in_json() {
        let mut e = event();
        e.features = vec![
            ("nan".into(), f64::NAN),
            ("pinf".into(), f64::INFINITY),
            ("ninf".into(), f64::NEG_INFINITY),
        ];
        let f = encode(&e, "p", PayloadFormat::Json, 0).unwrap();
        let s = std::str::from_utf8(&f.payload).unwrap();
        assert!(
            s.contains(r#""features":{"nan":"NaN","pinf":"inf","ninf":"-inf"}"#),
            "{s}"
        );
        let r = parse_json(s).unwrap();
        assert!(r.features[0].1.is_nan());
        assert_eq!(r.features[1].1, f64::INFINITY);
        assert_eq!(r.features[2].1, f64::NEG_INFINITY);
        // The text line prints them as Rust does, and parses them back.
        let f = encode(&e, "p", PayloadFormat::Text, 0).unwrap();
        let l = parse_line(std::str::from_utf8(&f.payload).unwrap()).unwrap();
        assert!(l.features[0].1.is_nan());
        assert_eq!(l.features[2].1, f64::NEG_INFINITY);
    }

    #[test]
    fn raw_topic_carries_packet_bytes() {
        let mut e = event();
        e.topic = RAW_TOPIC.into();
        e.raw = Some("00ff10Ab".into());
        for format in [PayloadFormat::Text, PayloadFormat::Json] {
            let f = encode(&e, "p", format, 0).unwrap();
            assert_eq!(f.payload, [0x00, 0xff, 0x10, 0xab]);
            let d = decode(&[f.topic, f.payload]).unwrap();
            assert_eq!(d.payload, Payload::Raw(vec![0x00, 0xff, 0x10, 0xab]));
        }
        e.raw = Some("0g".into());
        assert_eq!(
            encode(&e, "p", PayloadFormat::Text, 0),
            Err(EncodeError::BadHex { offset: 1 })
        );
        e.raw = Some("abc".into());
        assert_eq!(
            encode(&e, "p", PayloadFormat::Text, 0),
            Err(EncodeError::BadHex { offset: 3 })
        );
        e.raw = None;
        assert_eq!(
            encode(&e, "p", PayloadFormat::Text, 0),
            Err(EncodeError::MissingRaw)
        );
    }

    #[test]
    fn bad_tokens_are_refused_at_encoding() {
        let mut e = event();
        e.code = "A 1".into();
        assert!(matches!(
            encode(&e, "p", PayloadFormat::Text, 0),
            Err(EncodeError::BadToken { field: "code", .. })
        ));
        // JSON has no such restriction.
        assert!(encode(&e, "p", PayloadFormat::Json, 0).is_ok());
        let mut e = event();
        e.features[0].0 = "a=b".into();
        assert!(matches!(
            encode(&e, "p", PayloadFormat::Text, 0),
            Err(EncodeError::BadToken {
                field: "feature name",
                ..
            })
        ));
    }

    fn err(frames: &[&[u8]]) -> String {
        let v: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        decode(&v).unwrap_err().to_string()
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert_eq!(
            err(&[b"alert"]),
            "expected 2 frames [topic][payload], got 1"
        );
        assert_eq!(err(&[b"\xff", b"1"]), "topic frame is not UTF-8");
        assert_eq!(err(&[b"alert", b"\xff"]), "payload is not UTF-8");
        assert_eq!(
            err(&[b"alert", b""]),
            "payload is neither a JSON object nor a text line"
        );
        assert_eq!(
            err(&[b"alert", b"{\"v\":2}"]),
            "unsupported JSON payload version 2"
        );
        assert_eq!(err(&[b"alert", b"{\"v\":1}"]), "bad JSON payload");
        let other_topic = String::from_utf8(JSON_BYTES.to_vec()).unwrap();
        assert_eq!(
            err(&[b"log", other_topic.as_bytes()]),
            r#"JSON topic "alert" differs from the topic frame "log""#
        );
        assert_eq!(
            err(&[b"alert", b"12 p A1 LOW"]),
            "bad text line at byte 11: level"
        );
        assert_eq!(
            err(&[b"alert", b"12 p A1 LOW \"open"]),
            "bad text line at byte 17: '\"' closing the description"
        );
        assert_eq!(
            err(&[b"alert", b"12 p A1 LOW \"d\" x"]),
            "bad text line at byte 16: a feature `name=value`"
        );
        assert_eq!(
            err(&[b"alert", b"12 p A1 LOW \"d\" x=1.5e"]),
            "bad text line at byte 18: a number"
        );
        assert_eq!(
            err(&[b"alert", b"99999999999999999999 p A1 LOW \"d\""]),
            "bad text line at byte 0: a timestamp that fits 64 bits"
        );
        assert_eq!(
            err(&[b"alert", b"12 p A1 LOW \"d\\q\""]),
            "bad text line at byte 14: an escape \\\" \\\\ \\n or \\r"
        );
    }

    #[test]
    fn received_events_become_messages() {
        use streamon_probe::FieldSource;
        let d = decode(&[b"alert".to_vec(), JSON_BYTES.to_vec()]).unwrap();
        let m = to_message(&d).unwrap();
        assert_eq!((m.probe.as_str(), m.app.as_str()), ("probe1", "dns"));
        assert_eq!((m.state.as_str(), m.code.as_str()), ("suspect", "A1"));
        assert_eq!(m.feature("ratio"), Some(0.5));
        assert_eq!(
            m.field(streamon_packet_field("ip_src")),
            Some(streamon_packet::FieldValue::Addr(
                "10.0.0.1".parse().unwrap()
            ))
        );
        let d = decode(&[b"alert".to_vec(), TEXT_BYTES.to_vec()]).unwrap();
        let m = to_message(&d).unwrap();
        assert_eq!(m.text, r#"DNS "hijack" \ suspected"#);
        assert_eq!((m.ts, m.key.as_str()), (1_700_000_000_123_456_789, ""));
        let raw = decode(&[b"raw".to_vec(), vec![1, 2]]).unwrap();
        assert_eq!(to_message(&raw), Err(MessageError::Raw));
        let bad = String::from_utf8(JSON_BYTES.to_vec())
            .unwrap()
            .replace(r#"{"ip_src":"10.0.0.1"}"#, r#"{"ip_src":"x"}"#);
        let d = decode(&[b"alert".to_vec(), bad.into_bytes()]).unwrap();
        assert!(matches!(
            to_message(&d),
            Err(MessageError::BadKeyValue { .. })
        ));
    }

    fn streamon_packet_field(name: &str) -> streamon_packet::Field {
        streamon_packet::Field::from_name(name).unwrap()
    }

    #[test]
    fn raw_topic_any_bytes_decode() {
        let d = decode(&[b"raw".to_vec(), vec![0xff, 0, 1]]).unwrap();
        assert_eq!(d.payload, Payload::Raw(vec![0xff, 0, 1]));
    }
}
