//! The op record that enters the metric layer and the result that leaves it.
//!
//! Both are `#[repr(C)]` with fixed sizes (64 and 16 bytes) because they are
//! also the DMA descriptor payloads of the driver's rings and the port
//! layout of the hardware op decoder. All multi-byte fields are little-endian
//! when serialised ([`Op::to_bytes`], [`OpResult::to_bytes`]).

use crate::MetricId;

/// Maximum key length in bytes. Longer application keys are folded by the
/// probe before they reach the metric layer (see `docs/metric-contract.md`).
pub const KEY_MAX: usize = 40;

/// What an op asks its metric to do.
///
/// Which kinds a metric accepts depends on its [`crate::MetricKind`]; any
/// other kind gets [`Status::UnsupportedOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpKind {
    /// Variation detector: is the key in the detecting filter? Result 1 or 0.
    VdGet = 1,
    /// Variation detector: insert the key into both filters. Result 0.
    VdSet = 2,
    /// Variation detector: `VdGet` then `VdSet` on the same key; the result
    /// is the get's.
    VdGetSet = 3,
    /// Counter: add the op's value to the key. Result: the key's value after
    /// the add.
    Add = 4,
    /// Counter: read the key's value. Never inserts.
    Get = 5,
    /// Counter: add, then read (the read includes this op's value).
    AddGet = 6,
    /// Reset one key: only that key's state (see the contract per metric).
    ResetKey = 7,
    /// Clear the whole metric back to its installed state.
    Clear = 8,
}

impl OpKind {
    /// Decodes a raw kind byte.
    #[inline]
    pub fn from_u8(raw: u8) -> Option<OpKind> {
        Some(match raw {
            1 => OpKind::VdGet,
            2 => OpKind::VdSet,
            3 => OpKind::VdGetSet,
            4 => OpKind::Add,
            5 => OpKind::Get,
            6 => OpKind::AddGet,
            7 => OpKind::ResetKey,
            8 => OpKind::Clear,
            _ => return None,
        })
    }

    /// True for the kinds that read a variation detector (and so can open a
    /// gate for the next op).
    #[inline]
    pub fn is_vd_get(self) -> bool {
        matches!(self, OpKind::VdGet | OpKind::VdGetSet)
    }
}

/// Op flag: apply this op only if the previous op in the stream was a
/// variation-detector get that answered 0 ("key not seen"). Valid on `Add`
/// and `AddGet`. When the gate is closed, `Add` does nothing and `AddGet`
/// acts as `Get`; the result carries [`ResultFlags::GATED`]. This is how a
/// detector plus a counter count distinct keys.
pub const OP_FLAG_IF_NEW: u8 = 0x01;

/// One metric operation. 64 bytes, `#[repr(C)]`.
///
/// | bytes  | field     |
/// |--------|-----------|
/// | 0..2   | `metric`  |
/// | 2      | `kind`    |
/// | 3      | `flags`   |
/// | 4      | `key_len` |
/// | 5..8   | reserved (zero) |
/// | 8..12  | `value`   |
/// | 12..16 | reserved (zero) |
/// | 16..24 | `ts_ns`   |
/// | 24..64 | `key`     |
///
/// Fields are public because ops are built on the per-packet path; use
/// [`Op::new`] to get the zero padding right. Engines ignore key bytes at and
/// beyond `key_len` (they hash and store them as zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Op {
    /// Target metric.
    pub metric: MetricId,
    /// Raw [`OpKind`] byte (raw so that a bad byte from a ring is reported,
    /// not unrepresentable).
    pub kind: u8,
    /// `OP_FLAG_*` bits.
    pub flags: u8,
    /// Number of meaningful bytes in `key` (0..=40).
    pub key_len: u8,
    /// Reserved, zero.
    pub reserved0: [u8; 3],
    /// Increment for `Add`/`AddGet` (ignored by other kinds).
    pub value: u32,
    /// Reserved, zero.
    pub reserved1: u32,
    /// Packet time in nanoseconds (trace time, never the wall clock).
    pub ts_ns: u64,
    /// Key bytes, zero-padded.
    pub key: [u8; KEY_MAX],
}

const _: () = assert!(std::mem::size_of::<Op>() == 64);
const _: () = assert!(std::mem::offset_of!(Op, value) == 8);
const _: () = assert!(std::mem::offset_of!(Op, ts_ns) == 16);
const _: () = assert!(std::mem::offset_of!(Op, key) == 24);

impl Default for Op {
    #[inline]
    fn default() -> Self {
        Op {
            metric: 0,
            kind: 0,
            flags: 0,
            key_len: 0,
            reserved0: [0; 3],
            value: 0,
            reserved1: 0,
            ts_ns: 0,
            key: [0; KEY_MAX],
        }
    }
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = (self.key_len as usize).min(KEY_MAX);
        f.debug_struct("Op")
            .field("metric", &self.metric)
            .field("kind", &OpKind::from_u8(self.kind).ok_or(self.kind))
            .field("flags", &self.flags)
            .field("key", &HexBytes(&self.key[..len]))
            .field("key_len", &self.key_len)
            .field("value", &self.value)
            .field("ts_ns", &self.ts_ns)
            .finish()
    }
}

struct HexBytes<'a>(&'a [u8]);

impl std::fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Op {
    /// Builds an op. A key longer than [`KEY_MAX`] is an error here rather
    /// than a truncation: keys are folded by the probe, deliberately.
    #[inline]
    pub fn new(
        metric: MetricId,
        kind: OpKind,
        key: &[u8],
        value: u32,
        ts_ns: u64,
    ) -> Result<Op, OpError> {
        if key.len() > KEY_MAX {
            return Err(OpError::KeyTooLong { len: key.len() });
        }
        let mut op = Op {
            metric,
            kind: kind as u8,
            key_len: key.len() as u8,
            value,
            ts_ns,
            ..Op::default()
        };
        op.key[..key.len()].copy_from_slice(key);
        Ok(op)
    }

    /// Returns the op with [`OP_FLAG_IF_NEW`] set.
    #[inline]
    pub fn if_new(mut self) -> Op {
        self.flags |= OP_FLAG_IF_NEW;
        self
    }

    /// The meaningful key bytes (clamped, so a corrupt `key_len` cannot
    /// index out of bounds; engines report it as [`Status::KeyTooLong`]).
    #[inline]
    pub fn key_bytes(&self) -> &[u8] {
        &self.key[..(self.key_len as usize).min(KEY_MAX)]
    }

    /// Serialises to the 64-byte wire layout (little-endian).
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..2].copy_from_slice(&self.metric.to_le_bytes());
        b[2] = self.kind;
        b[3] = self.flags;
        b[4] = self.key_len;
        b[5..8].copy_from_slice(&self.reserved0);
        b[8..12].copy_from_slice(&self.value.to_le_bytes());
        b[12..16].copy_from_slice(&self.reserved1.to_le_bytes());
        b[16..24].copy_from_slice(&self.ts_ns.to_le_bytes());
        b[24..64].copy_from_slice(&self.key);
        b
    }

    /// Parses the 64-byte wire layout. Every byte pattern is accepted here;
    /// validation happens in the engine, which answers with a [`Status`].
    pub fn from_bytes(b: &[u8; 64]) -> Op {
        let mut key = [0u8; KEY_MAX];
        key.copy_from_slice(&b[24..64]);
        Op {
            metric: u16::from_le_bytes([b[0], b[1]]),
            kind: b[2],
            flags: b[3],
            key_len: b[4],
            reserved0: [b[5], b[6], b[7]],
            value: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            reserved1: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            ts_ns: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            key,
        }
    }
}

/// Outcome of one op. The numeric values are part of the contract (the
/// hardware writes them into the result ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Status {
    /// Applied.
    #[default]
    Ok = 0,
    /// `metric` is not installed.
    UnknownMetric = 1,
    /// `key_len` > [`KEY_MAX`].
    KeyTooLong = 2,
    /// The kind is not one this metric accepts (e.g. `VdGet` on a counter,
    /// `ResetKey` on a variation detector).
    UnsupportedOp = 3,
    /// `OP_FLAG_IF_NEW` on an op that is not `Add`/`AddGet`, or whose
    /// previous op was not a variation-detector get that succeeded.
    BadGate = 4,
    /// The kind byte is not an [`OpKind`].
    UnknownOpKind = 5,
    /// No engine answered: the op went to a device (SmartNIC, simulated NIC)
    /// that failed before completing it (timeout, fatal status, a protocol
    /// error such as a completion for an op never submitted). Never written
    /// by an engine or by the hardware; the host driver writes it. Unlike
    /// the statuses above, the op **may** have changed state on the device.
    DeviceError = 0xFF,
}

impl Status {
    /// Decodes a raw status byte; unknown bytes are `None`.
    pub fn from_u8(raw: u8) -> Option<Status> {
        Some(match raw {
            0 => Status::Ok,
            1 => Status::UnknownMetric,
            2 => Status::KeyTooLong,
            3 => Status::UnsupportedOp,
            4 => Status::BadGate,
            5 => Status::UnknownOpKind,
            0xFF => Status::DeviceError,
            _ => return None,
        })
    }
}

/// Result flag bits (the `flags` byte of [`OpResult`]).
pub struct ResultFlags;

impl ResultFlags {
    /// The variation detector swapped its filters during this op.
    pub const SWAPPED: u8 = 0x01;
    /// An exact table evicted another key to make room for this one.
    pub const EVICTED: u8 = 0x02;
    /// The op's `IF_NEW` gate was closed (the detector had seen the key).
    pub const GATED: u8 = 0x04;
    /// An exact table inserted this key (it was absent).
    pub const INSERTED: u8 = 0x08;
}

/// The result of one op. 16 bytes, `#[repr(C)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct OpResult {
    /// The metric's answer (meaning per metric kind; see the contract).
    pub value: u64,
    /// Metric the op addressed (echoed).
    pub metric: MetricId,
    /// Raw [`Status`] byte.
    pub status: u8,
    /// [`ResultFlags`] bits.
    pub flags: u8,
    /// Reserved, zero.
    pub reserved: u32,
}

const _: () = assert!(std::mem::size_of::<OpResult>() == 16);

impl OpResult {
    /// A successful result.
    #[inline]
    pub fn ok(metric: MetricId, value: u64, flags: u8) -> OpResult {
        OpResult {
            value,
            metric,
            status: Status::Ok as u8,
            flags,
            reserved: 0,
        }
    }

    /// A failed result (value 0, no flags).
    #[inline]
    pub fn error(metric: MetricId, status: Status) -> OpResult {
        OpResult {
            value: 0,
            metric,
            status: status as u8,
            flags: 0,
            reserved: 0,
        }
    }

    /// The status, or the typed error it stands for.
    pub fn check(&self) -> Result<u64, OpError> {
        match Status::from_u8(self.status) {
            Some(Status::Ok) => Ok(self.value),
            Some(status) => Err(OpError::Rejected {
                metric: self.metric,
                status,
            }),
            None => Err(OpError::BadStatus { raw: self.status }),
        }
    }

    /// Serialises to the 16-byte wire layout (little-endian).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.value.to_le_bytes());
        b[8..10].copy_from_slice(&self.metric.to_le_bytes());
        b[10] = self.status;
        b[11] = self.flags;
        b[12..16].copy_from_slice(&self.reserved.to_le_bytes());
        b
    }

    /// Parses the 16-byte wire layout.
    pub fn from_bytes(b: &[u8; 16]) -> OpResult {
        OpResult {
            value: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            metric: u16::from_le_bytes([b[8], b[9]]),
            status: b[10],
            flags: b[11],
            reserved: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
        }
    }
}

/// A malformed or rejected operation, as a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// A key longer than [`KEY_MAX`] was given to [`Op::new`].
    #[error("key of {len} bytes is longer than the {KEY_MAX}-byte maximum")]
    KeyTooLong {
        /// The key's length.
        len: usize,
    },
    /// The engine rejected the op.
    #[error("metric {metric}: op rejected: {status:?}")]
    Rejected {
        /// The metric the op addressed.
        metric: MetricId,
        /// Why.
        status: Status,
    },
    /// A result carried a status byte outside the contract.
    #[error("result status byte {raw} is not defined by the contract")]
    BadStatus {
        /// The raw byte.
        raw: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes: the layout is part of the hardware and ring contract.
    #[test]
    fn op_wire_layout_is_fixed() {
        let op = Op::new(
            0x0102,
            OpKind::AddGet,
            b"\x0a\x00\x00\x01",
            7,
            0x1122334455667788,
        )
        .unwrap()
        .if_new();
        let b = op.to_bytes();
        assert_eq!(&b[0..8], &[0x02, 0x01, 6, 1, 4, 0, 0, 0]);
        assert_eq!(&b[8..16], &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            &b[16..24],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(&b[24..28], &[0x0a, 0, 0, 1]);
        assert!(b[28..].iter().all(|&x| x == 0));
        assert_eq!(Op::from_bytes(&b), op);
    }

    #[test]
    fn result_wire_layout_is_fixed() {
        let r = OpResult::ok(3, 0x0102030405060708, ResultFlags::EVICTED);
        let b = r.to_bytes();
        assert_eq!(b, [8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(OpResult::from_bytes(&b), r);
        assert_eq!(r.check(), Ok(0x0102030405060708));
        let e = OpResult::error(9, Status::KeyTooLong);
        assert_eq!(
            e.check(),
            Err(OpError::Rejected {
                metric: 9,
                status: Status::KeyTooLong
            })
        );
    }

    #[test]
    fn too_long_key_is_a_typed_error() {
        assert_eq!(
            Op::new(0, OpKind::Add, &[0u8; 41], 1, 0),
            Err(OpError::KeyTooLong { len: 41 })
        );
        assert!(Op::new(0, OpKind::Add, &[0u8; 40], 1, 0).is_ok());
    }

    #[test]
    fn kinds_and_statuses_round_trip() {
        for raw in 0..=255u8 {
            if let Some(k) = OpKind::from_u8(raw) {
                assert_eq!(k as u8, raw);
            }
            if let Some(s) = Status::from_u8(raw) {
                assert_eq!(s as u8, raw);
            }
        }
        assert_eq!(OpKind::from_u8(0), None);
        assert_eq!(OpKind::from_u8(9), None);
        assert_eq!(Status::from_u8(6), None);
        assert_eq!(Status::from_u8(0xFF), Some(Status::DeviceError));
        assert_eq!(
            OpResult::error(3, Status::DeviceError).check(),
            Err(OpError::Rejected {
                metric: 3,
                status: Status::DeviceError
            })
        );
    }
}
