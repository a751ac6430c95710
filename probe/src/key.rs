//! Keys as the runtime stores them: a shape tag plus at most 40 bytes.
//!
//! A key's bytes are the canonical encodings of its fields, concatenated
//! (`streamon_packet::FieldValue::write_key`). Keys longer than the metric
//! layer's 40-byte maximum are *folded*: their first 24 bytes, then the
//! 16-byte XXH3-128 digest of the whole key. Folding makes every key a fixed
//! size, so building and storing one never allocates; two different keys
//! fold together only if XXH3-128 collides.
//!
//! The shape (the field types of the key, interned per application) keeps
//! keys of different shapes apart in the state table, as the language
//! defines; metric ops carry only the bytes.

use streamon_contract::KEY_MAX;
use streamon_packet::{Field, KeyBuf};

use crate::message::FieldSource;

/// Bytes of a folded key kept verbatim.
const FOLD_PREFIX: usize = 24;

/// A key: shape index and up to 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey {
    /// Interned shape index (per application).
    pub shape: u16,
    /// Number of meaningful bytes.
    pub len: u8,
    /// The bytes, zero-padded.
    pub bytes: [u8; KEY_MAX],
}

impl StateKey {
    /// The meaningful bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Builds a key from raw bytes, folding if needed.
    pub fn from_bytes(shape: u16, raw: &[u8]) -> StateKey {
        let mut bytes = [0u8; KEY_MAX];
        let len = if raw.len() <= KEY_MAX {
            bytes[..raw.len()].copy_from_slice(raw);
            raw.len()
        } else {
            bytes[..FOLD_PREFIX].copy_from_slice(&raw[..FOLD_PREFIX]);
            let digest = xxhash_rust::xxh3::xxh3_128(raw).to_le_bytes();
            bytes[FOLD_PREFIX..].copy_from_slice(&digest);
            KEY_MAX
        };
        StateKey {
            shape,
            len: len as u8,
            bytes,
        }
    }
}

/// Writes the key of `fields` for packet (or message) `p` into `buf`.
/// Returns `false` when `p` lacks one of the fields (the key does not
/// exist for it).
pub fn write_fields<S: FieldSource + ?Sized>(p: &S, fields: &[Field], buf: &mut KeyBuf) -> bool {
    buf.clear();
    for &f in fields {
        let Some(v) = p.field(f) else { return false };
        // A key longer than KeyBuf's 1 KiB: no key.
        if v.write_key(f, buf).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_kept_and_long_keys_fold() {
        let k = StateKey::from_bytes(3, b"abc");
        assert_eq!(k.as_bytes(), b"abc");
        assert_eq!(k.shape, 3);
        let long_a = [7u8; 100];
        let mut long_b = long_a;
        long_b[99] = 8;
        let a = StateKey::from_bytes(0, &long_a);
        let b = StateKey::from_bytes(0, &long_b);
        assert_eq!(a.len as usize, KEY_MAX);
        assert_eq!(&a.as_bytes()[..24], &long_a[..24]);
        assert_ne!(a, b, "keys differing after the prefix stay apart");
    }
}
