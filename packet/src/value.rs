//! Field values as the event layer hands them out, and their canonical key
//! bytes.
//!
//! A [`FieldValue`] is what [`Parsed::get`](crate::Parsed::get) returns: a
//! small `Copy` value that borrows strings from the frame. Its key encoding
//! ([`FieldValue::write_key`]) is the one definition of how a field becomes
//! bytes of a state-table or metric key, so the software engine, the
//! hardware and external names (Redis) agree on what a key means:
//!
//! | type | key bytes |
//! |---|---|
//! | [`FieldType::Addr`] | 4 (IPv4) or 16 (IPv6) bytes, network order |
//! | [`FieldType::UInt`] | the field's `key_width` bytes, big-endian |
//! | [`FieldType::Str`] | one length byte, then the bytes (cut at 255) |
//!
//! Nothing here allocates: keys are written into a fixed-size [`KeyBuf`].

use std::fmt;
use std::net::IpAddr;

use crate::field::{Field, FieldType};

/// The value of one packet field, borrowed from the frame it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldValue<'a> {
    /// An IPv4 or IPv6 address.
    Addr(IpAddr),
    /// An unsigned integer (ports, flags, lengths, counters).
    UInt(u64),
    /// A byte string borrowed from the frame (or from the parser's decoded
    /// DNS name buffer). Not necessarily UTF-8.
    Str(&'a [u8]),
}

impl<'a> FieldValue<'a> {
    /// The address, if this is an [`FieldValue::Addr`].
    #[inline]
    pub fn as_addr(&self) -> Option<IpAddr> {
        match *self {
            FieldValue::Addr(a) => Some(a),
            _ => None,
        }
    }

    /// The integer, if this is a [`FieldValue::UInt`].
    #[inline]
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            FieldValue::UInt(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes, if this is a [`FieldValue::Str`].
    #[inline]
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Number of key bytes [`FieldValue::write_key`] appends for `field`.
    #[inline]
    pub fn key_len(&self, field: Field) -> usize {
        match *self {
            FieldValue::Addr(IpAddr::V4(_)) => 4,
            FieldValue::Addr(IpAddr::V6(_)) => 16,
            FieldValue::UInt(_) => usize::from(uint_key_width(field)),
            FieldValue::Str(s) => 1 + s.len().min(255),
        }
    }

    /// Appends the canonical key encoding of this value, as the value of
    /// `field`, to `out` (see the [module docs](self) for the layout).
    ///
    /// `field` supplies the integer width: a `UInt` is written as the low
    /// `key_width` bytes of the field's [`FieldType`], big-endian (a value
    /// wider than the field keeps only its low bytes). A `UInt` given for a
    /// non-integer field is written as 8 bytes.
    ///
    /// On overflow nothing is appended and `out` is left as it was.
    #[inline]
    pub fn write_key(&self, field: Field, out: &mut KeyBuf) -> Result<(), KeyOverflow> {
        match *self {
            FieldValue::Addr(IpAddr::V4(a)) => out.push_array(a.octets()),
            FieldValue::Addr(IpAddr::V6(a)) => out.push_array(a.octets()),
            // Truncating casts on purpose: a key keeps the low bytes.
            FieldValue::UInt(v) => match uint_key_width(field) {
                1 => out.push_array([v as u8]),
                2 => out.push_array((v as u16).to_be_bytes()),
                4 => out.push_array((v as u32).to_be_bytes()),
                _ => out.push_array(v.to_be_bytes()),
            },
            FieldValue::Str(s) => {
                let s = &s[..s.len().min(255)];
                if out.remaining() < 1 + s.len() {
                    return Err(KeyOverflow);
                }
                // Cannot fail: the room was checked above.
                out.push_array([s.len() as u8])?;
                out.push(s)
            }
        }
    }
}

/// Key width of an integer field; 8 for fields that are not integers.
#[inline]
fn uint_key_width(field: Field) -> u8 {
    match field.field_type() {
        FieldType::UInt { key_width } if matches!(key_width, 1 | 2 | 4 | 8) => key_width,
        _ => 8,
    }
}

/// Human-readable form: dotted IPv4, RFC 5952 IPv6, decimal integers,
/// strings with invalid UTF-8 replaced by U+FFFD.
impl fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // std's Ipv6Addr Display follows RFC 5952 (lower-case hex,
            // longest zero run compressed, IPv4-mapped shown dotted).
            FieldValue::Addr(a) => fmt::Display::fmt(a, f),
            FieldValue::UInt(v) => fmt::Display::fmt(v, f),
            FieldValue::Str(s) => {
                for chunk in s.utf8_chunks() {
                    f.write_str(chunk.valid())?;
                    if !chunk.invalid().is_empty() {
                        f.write_str("\u{FFFD}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A key did not fit in its [`KeyBuf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("key longer than {} bytes", KeyBuf::CAPACITY)]
pub struct KeyOverflow;

/// A fixed-capacity buffer that (composite) keys are written into, so
/// building a key never allocates.
#[derive(Clone)]
pub struct KeyBuf {
    bytes: [u8; KeyBuf::CAPACITY],
    len: usize,
}

impl KeyBuf {
    /// Maximum key length in bytes: room for four full-length strings.
    pub const CAPACITY: usize = 1024;

    /// An empty key.
    pub const fn new() -> Self {
        KeyBuf {
            bytes: [0; KeyBuf::CAPACITY],
            len: 0,
        }
    }

    /// The key bytes written so far.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Number of key bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free room in bytes.
    pub fn remaining(&self) -> usize {
        Self::CAPACITY - self.len
    }

    /// Forgets the contents, keeping the buffer.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a fixed-size array; on overflow appends nothing. (The
    /// constant size lets the copy compile to a few moves.)
    #[inline]
    pub fn push_array<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), KeyOverflow> {
        let end = self.len + N;
        let dst = self.bytes.get_mut(self.len..end).ok_or(KeyOverflow)?;
        dst.copy_from_slice(&bytes);
        self.len = end;
        Ok(())
    }

    /// Appends raw bytes; on overflow appends nothing.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), KeyOverflow> {
        let end = self.len + bytes.len();
        if end > Self::CAPACITY {
            return Err(KeyOverflow);
        }
        self.bytes[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf::new()
    }
}

impl fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyBuf(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl PartialEq for KeyBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for KeyBuf {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn key(v: FieldValue<'_>, f: Field) -> Vec<u8> {
        let mut k = KeyBuf::new();
        v.write_key(f, &mut k).unwrap();
        assert_eq!(k.len(), v.key_len(f));
        k.as_bytes().to_vec()
    }

    #[test]
    fn key_encodings() {
        let v4 = FieldValue::Addr(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(key(v4, Field::IpSrc), [10, 1, 2, 3]);
        let v6 = FieldValue::Addr("2001:db8::1".parse().unwrap());
        let mut want = [0u8; 16];
        want[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        want[15] = 1;
        assert_eq!(key(v6, Field::IpDst), want);
        assert_eq!(key(FieldValue::UInt(0x1234), Field::DstPort), [0x12, 0x34]);
        assert_eq!(key(FieldValue::UInt(6), Field::Proto), [6]);
        assert_eq!(key(FieldValue::UInt(1500), Field::IpLen), [0, 0, 5, 0xdc]);
        assert_eq!(
            key(FieldValue::UInt(7), Field::PacketNo),
            [0, 0, 0, 0, 0, 0, 0, 7]
        );
        // Wider than the field: the low bytes are kept.
        assert_eq!(key(FieldValue::UInt(0x1_0203), Field::SrcPort), [2, 3]);
        assert_eq!(
            key(FieldValue::Str(b"example.com"), Field::DomainName),
            b"\x0bexample.com"
        );
        let long = [b'a'; 300];
        let k = key(FieldValue::Str(&long), Field::HttpUrl);
        assert_eq!(k.len(), 256);
        assert_eq!(k[0], 255);
    }

    #[test]
    fn key_overflow_leaves_buffer_unchanged() {
        let mut k = KeyBuf::new();
        let s = [b'x'; 255];
        for _ in 0..4 {
            FieldValue::Str(&s)
                .write_key(Field::HttpUrl, &mut k)
                .unwrap();
        }
        assert_eq!(k.len(), 1024);
        assert_eq!(
            FieldValue::UInt(1).write_key(Field::Proto, &mut k),
            Err(KeyOverflow)
        );
        assert_eq!(k.len(), 1024);
        k.clear();
        assert!(k.is_empty());
    }

    #[test]
    fn display() {
        let v4 = FieldValue::Addr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v4.to_string(), "192.0.2.1");
        let v6 = FieldValue::Addr(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        assert_eq!(v6.to_string(), "2001:db8::1");
        let mapped = FieldValue::Addr(IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped()));
        assert_eq!(mapped.to_string(), "::ffff:1.2.3.4");
        assert_eq!(FieldValue::UInt(443).to_string(), "443");
        assert_eq!(FieldValue::Str(b"a\xffb").to_string(), "a\u{FFFD}b");
    }
}
