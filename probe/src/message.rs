//! Messages from other probes as input events (D-StreaMon probe chaining).
//!
//! A probe that subscribes to other probes' events hands each received
//! event to [`crate::Probe::message`] as a [`Message`]; the applications'
//! `<event type="message" topic=… primary-key=…>` events run on it the way
//! packet events run on packets. Its values are read through the same
//! [`Field`]s as a packet's:
//!
//! - the `msg_*` fields (`msg_probe`, `msg_app`, `msg_topic`, `msg_key`,
//!   `msg_code`, `msg_level`, `msg_state`, `msg_text`, `msg_ts`), which no
//!   packet has;
//! - the publisher's *key fields* (`ip_src` of a publisher keyed by
//!   `ip_src`), typed as the packet field of that name, so a chained
//!   application keys and selects on them as on a packet's;
//! - its features, by name, as `msg.NAME` in expressions and texts.
//!
//! A message is built and validated once, when it is received
//! ([`Message::check_limits`]): a message over the limits below is refused
//! with a typed error, so the runtime never sees one.
//!
//! **Time.** A message event runs at the message's `ts` (the publisher's
//! packet time), never at its arrival time: a chained replay gives the same
//! result at any speed. Each application's time never goes backwards, so a
//! message older than the application's latest packet or message runs at
//! that latest time instead.

use std::net::IpAddr;

use streamon_packet::{Field, FieldType, FieldValue, Parsed};

/// Most features a message may carry.
pub const MAX_MESSAGE_FEATURES: usize = 256;
/// Most key fields a message may carry (a key has at most 8 fields).
pub const MAX_MESSAGE_KEY_FIELDS: usize = 8;
/// Longest string field of a message, in bytes.
pub const MAX_MESSAGE_STRING: usize = 1024;

/// Why a received event cannot be a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A key field that is not a packet field.
    #[error("key field {0:?} is not a field name")]
    UnknownKeyField(String),
    /// A `msg_*` field given as a key field.
    #[error("key field {0:?} is a message field, not a packet field")]
    MessageFieldAsKey(String),
    /// A key field value that does not parse as its field's type.
    #[error("key field {field} value {value:?} is not {expected}")]
    BadKeyValue {
        /// The field.
        field: &'static str,
        /// The value, cut at 64 characters.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// Too many features or key fields.
    #[error("{what}: {count} is more than {max}")]
    TooMany {
        /// `features` or `key fields`.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string longer than [`MAX_MESSAGE_STRING`].
    #[error("{what} of {len} bytes is longer than {MAX_MESSAGE_STRING}")]
    TooLong {
        /// Which string.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// Packet bytes (topic `raw`): nothing an application can key on.
    #[error("a `raw` message carries packet bytes, not an event")]
    Raw,
}

/// A key field's value, owned.
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    Addr(IpAddr),
    UInt(u64),
    Str(Box<[u8]>),
}

/// One event received from another probe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// Topic (`alert`).
    pub topic: String,
    /// The publishing probe's id.
    pub probe: String,
    /// The publishing application (empty from a text line).
    pub app: String,
    /// The publisher's event key, rendered (empty from a text line).
    pub key: String,
    /// The publisher key's state after its pass (empty from a text line).
    pub state: String,
    /// State code.
    pub code: String,
    /// State level.
    pub level: String,
    /// The text (a text line's description).
    pub text: String,
    /// The publisher's packet time, ns since the epoch.
    pub ts: u64,
    /// Features, by name, in the publisher's order.
    pub features: Vec<(String, f64)>,
    key_fields: Vec<(Field, Owned)>,
}

impl Message {
    /// Adds a key field of the publisher's key: `name` must be a packet
    /// field (`ip_src`), `value` its rendering (`10.0.0.1`, `443`,
    /// `example.com`).
    pub fn push_key_field(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        let field =
            Field::from_name(name).ok_or_else(|| MessageError::UnknownKeyField(cut(name)))?;
        if name.starts_with("msg_") {
            return Err(MessageError::MessageFieldAsKey(cut(name)));
        }
        if self.key_fields.len() == MAX_MESSAGE_KEY_FIELDS {
            return Err(MessageError::TooMany {
                what: "key fields",
                count: self.key_fields.len() + 1,
                max: MAX_MESSAGE_KEY_FIELDS,
            });
        }
        let bad = |expected| MessageError::BadKeyValue {
            field: field.name(),
            value: cut(value),
            expected,
        };
        let v = match field.field_type() {
            FieldType::Addr => Owned::Addr(value.parse().map_err(|_| bad("an IP address"))?),
            FieldType::UInt { key_width } => {
                let v: u64 = value.parse().map_err(|_| bad("an unsigned integer"))?;
                if key_width < 8 && v >> (8 * u32::from(key_width)) != 0 {
                    return Err(bad("within the field's width"));
                }
                Owned::UInt(v)
            }
            FieldType::Str => {
                if value.len() > MAX_MESSAGE_STRING {
                    return Err(MessageError::TooLong {
                        what: "a key field",
                        len: value.len(),
                    });
                }
                Owned::Str(value.as_bytes().into())
            }
        };
        self.key_fields.retain(|(f, _)| *f != field);
        self.key_fields.push((field, v));
        Ok(())
    }

    /// The key fields, by name, rendered.
    pub fn key_fields(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.key_fields.iter().map(|(f, v)| {
            let s = match v {
                Owned::Addr(a) => a.to_string(),
                Owned::UInt(u) => u.to_string(),
                Owned::Str(s) => String::from_utf8_lossy(s).into_owned(),
            };
            (f.name(), s)
        })
    }

    /// Refuses a message over the limits (module docs).
    pub fn check_limits(&self) -> Result<(), MessageError> {
        if self.features.len() > MAX_MESSAGE_FEATURES {
            return Err(MessageError::TooMany {
                what: "features",
                count: self.features.len(),
                max: MAX_MESSAGE_FEATURES,
            });
        }
        let strings = [
            ("topic", &self.topic),
            ("probe id", &self.probe),
            ("app", &self.app),
            ("key", &self.key),
            ("state", &self.state),
            ("code", &self.code),
            ("level", &self.level),
            ("text", &self.text),
        ];
        for (what, s) in strings {
            if s.len() > MAX_MESSAGE_STRING {
                return Err(MessageError::TooLong { what, len: s.len() });
            }
        }
        for (name, _) in &self.features {
            if name.len() > MAX_MESSAGE_STRING {
                return Err(MessageError::TooLong {
                    what: "a feature name",
                    len: name.len(),
                });
            }
        }
        Ok(())
    }

    /// Feature `name`, if the message has it.
    pub fn feature(&self, name: &str) -> Option<f64> {
        self.features
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// What keys, selectors and expressions read: a packet's fields or a
/// message's.
pub trait FieldSource {
    /// The value of `field`, `None` when absent.
    fn field(&self, field: Field) -> Option<FieldValue<'_>>;
}

impl FieldSource for Parsed<'_> {
    #[inline]
    fn field(&self, field: Field) -> Option<FieldValue<'_>> {
        self.get(field)
    }
}

impl FieldSource for Message {
    fn field(&self, field: Field) -> Option<FieldValue<'_>> {
        fn s(s: &str) -> Option<FieldValue<'_>> {
            Some(FieldValue::Str(s.as_bytes()))
        }
        match field {
            Field::MsgProbe => s(&self.probe),
            Field::MsgApp => s(&self.app),
            Field::MsgTopic => s(&self.topic),
            Field::MsgKey => s(&self.key),
            Field::MsgCode => s(&self.code),
            Field::MsgLevel => s(&self.level),
            Field::MsgState => s(&self.state),
            Field::MsgText => s(&self.text),
            Field::MsgTs => Some(FieldValue::UInt(self.ts)),
            _ => self
                .key_fields
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, v)| match v {
                    Owned::Addr(a) => FieldValue::Addr(*a),
                    Owned::UInt(u) => FieldValue::UInt(*u),
                    Owned::Str(s) => FieldValue::Str(s),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_fields_are_typed_as_packet_fields() {
        let mut m = Message {
            topic: "symptom".into(),
            code: "SCAN".into(),
            ts: 7,
            ..Message::default()
        };
        m.push_key_field("ip_src", "10.0.0.1").unwrap();
        m.push_key_field("dst_port", "443").unwrap();
        assert_eq!(
            m.field(Field::IpSrc),
            Some(FieldValue::Addr("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(m.field(Field::DstPort), Some(FieldValue::UInt(443)));
        assert_eq!(m.field(Field::IpDst), None);
        assert_eq!(m.field(Field::MsgCode), Some(FieldValue::Str(b"SCAN")));
        assert_eq!(m.field(Field::MsgTs), Some(FieldValue::UInt(7)));
        assert_eq!(
            m.key_fields().collect::<Vec<_>>(),
            [("ip_src", "10.0.0.1".into()), ("dst_port", "443".into())]
        );
    }

    #[test]
    fn bad_key_fields_are_typed_errors() {
        let mut m = Message::default();
        assert_eq!(
            m.push_key_field("ip_srcc", "1"),
            Err(MessageError::UnknownKeyField("ip_srcc".into()))
        );
        assert!(matches!(
            m.push_key_field("msg_code", "x"),
            Err(MessageError::MessageFieldAsKey(_))
        ));
        assert!(matches!(
            m.push_key_field("ip_src", "not.an.address"),
            Err(MessageError::BadKeyValue {
                field: "ip_src",
                ..
            })
        ));
        assert!(matches!(
            m.push_key_field("dst_port", "65536"),
            Err(MessageError::BadKeyValue { .. })
        ));
        assert!(matches!(
            m.push_key_field("domain_name", &"a".repeat(2000)),
            Err(MessageError::TooLong { .. })
        ));
    }

    #[test]
    fn limits() {
        let mut m = Message::default();
        assert_eq!(m.check_limits(), Ok(()));
        m.features = (0..=MAX_MESSAGE_FEATURES)
            .map(|i| (format!("f{i}"), 1.0))
            .collect();
        assert!(matches!(
            m.check_limits(),
            Err(MessageError::TooMany { .. })
        ));
        m.features.clear();
        m.text = "x".repeat(MAX_MESSAGE_STRING + 1);
        assert!(matches!(
            m.check_limits(),
            Err(MessageError::TooLong { what: "text", .. })
        ));
    }
}
