//! The DMA ring formats and the ring logic both ends run.
//!
//! One queue pair = a **submission ring** of [`SubmissionDescriptor`]s (80
//! bytes: the 64-byte contract [`Op`] verbatim, then its sequence number and
//! ownership word) that the driver produces and the device consumes, and a
//! **completion ring** of [`CompletionDescriptor`]s (32 bytes: the 16-byte
//! [`OpResult`], the op's sequence, the ownership word and the device's
//! submission head) that the device produces and the driver consumes.
//!
//! Ownership is an NVMe-style **phase bit**: ring memory starts zeroed, the
//! producer writes entries with phase 1 on its first pass around the ring,
//! 0 on the second, and so on; the consumer expects the same phase and knows
//! an entry is new when the phase matches. Producer and consumer each keep
//! a [`RingCursor`] (index + phase). Indices exchanged through doorbells are
//! ring slots `0..size`.
//!
//! Memory ordering (see `docs/device.md`): the producer writes the
//! descriptor bytes, then stores the ownership word with **release**; the
//! consumer loads the ownership word with **acquire**, and only then reads the
//! bytes. A doorbell write is preceded by a release fence.
//!
//! Everything on the wire is little-endian; the `#[repr(C)]` structs below
//! document the layout and are checked against the byte encoders.

use std::mem::{offset_of, size_of};

use streamon_contract::{Op, OpResult};

use crate::dma::DmaRegion;

/// Ownership word bit 0: the phase of the pass that wrote the entry.
pub const DESC_PHASE: u16 = 1 << 0;
/// Ownership word bit 1 (submissions): last descriptor of a doorbell batch.
pub const DESC_BATCH_END: u16 = 1 << 1;

/// One submission-ring entry. 80 bytes.
///
/// | bytes | field |
/// |---|---|
/// | 0..64 | `op`: the contract's [`Op`], verbatim |
/// | 64..68 | `seq`: the op's sequence number (wrapping `u32`) |
/// | 68..70 | `flags`: [`DESC_PHASE`], [`DESC_BATCH_END`]; written last |
/// | 70..72 | `batch_len`: descriptors in this doorbell batch |
/// | 72..80 | reserved, zero |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SubmissionDescriptor {
    /// The op.
    pub op: Op,
    /// Sequence number the completion must echo.
    pub seq: u32,
    /// Ownership word.
    pub flags: u16,
    /// Descriptors in the batch this one belongs to.
    pub batch_len: u16,
    /// Reserved, zero.
    pub reserved: u64,
}

/// Size of a submission descriptor in bytes.
pub const SQ_DESC_LEN: usize = 80;
/// Offset of the ownership word in a submission descriptor.
pub const SQ_FLAGS_OFFSET: usize = 68;
const _: () = assert!(size_of::<SubmissionDescriptor>() == SQ_DESC_LEN);
const _: () = assert!(offset_of!(SubmissionDescriptor, op) == 0);
const _: () = assert!(offset_of!(SubmissionDescriptor, seq) == 64);
const _: () = assert!(offset_of!(SubmissionDescriptor, flags) == SQ_FLAGS_OFFSET);
const _: () = assert!(offset_of!(SubmissionDescriptor, batch_len) == 70);
const _: () = assert!(offset_of!(SubmissionDescriptor, reserved) == 72);

impl SubmissionDescriptor {
    /// The 80-byte little-endian wire form.
    pub fn to_bytes(&self) -> [u8; SQ_DESC_LEN] {
        let mut b = [0u8; SQ_DESC_LEN];
        b[0..64].copy_from_slice(&self.op.to_bytes());
        b[64..68].copy_from_slice(&self.seq.to_le_bytes());
        b[68..70].copy_from_slice(&self.flags.to_le_bytes());
        b[70..72].copy_from_slice(&self.batch_len.to_le_bytes());
        b[72..80].copy_from_slice(&self.reserved.to_le_bytes());
        b
    }

    /// Parses the wire form (every byte pattern is accepted).
    pub fn from_bytes(b: &[u8; SQ_DESC_LEN]) -> SubmissionDescriptor {
        SubmissionDescriptor {
            op: Op::from_bytes(b[0..64].try_into().expect("64 bytes")),
            seq: u32::from_le_bytes(b[64..68].try_into().expect("4 bytes")),
            flags: u16::from_le_bytes([b[68], b[69]]),
            batch_len: u16::from_le_bytes([b[70], b[71]]),
            reserved: u64::from_le_bytes(b[72..80].try_into().expect("8 bytes")),
        }
    }
}

/// One completion-ring entry. 32 bytes.
///
/// | bytes | field |
/// |---|---|
/// | 0..16 | `result`: the contract's [`OpResult`], verbatim |
/// | 16..20 | `seq`: the sequence number of the op answered |
/// | 20..22 | `flags`: [`DESC_PHASE`]; written last |
/// | 22..24 | reserved, zero |
/// | 24..28 | `sq_head`: the device's submission head after reading the op |
/// | 28..32 | reserved, zero |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct CompletionDescriptor {
    /// The result.
    pub result: OpResult,
    /// Sequence number of the op answered.
    pub seq: u32,
    /// Ownership word.
    pub flags: u16,
    /// Reserved, zero.
    pub reserved0: u16,
    /// The device's submission-ring head (slot it reads next).
    pub sq_head: u32,
    /// Reserved, zero.
    pub reserved1: u32,
}

/// Size of a completion descriptor in bytes.
pub const CQ_DESC_LEN: usize = 32;
/// Offset of the ownership word in a completion descriptor.
pub const CQ_FLAGS_OFFSET: usize = 20;
const _: () = assert!(size_of::<CompletionDescriptor>() == CQ_DESC_LEN);
const _: () = assert!(offset_of!(CompletionDescriptor, result) == 0);
const _: () = assert!(offset_of!(CompletionDescriptor, seq) == 16);
const _: () = assert!(offset_of!(CompletionDescriptor, flags) == CQ_FLAGS_OFFSET);
const _: () = assert!(offset_of!(CompletionDescriptor, sq_head) == 24);

impl CompletionDescriptor {
    /// The 32-byte little-endian wire form.
    pub fn to_bytes(&self) -> [u8; CQ_DESC_LEN] {
        let mut b = [0u8; CQ_DESC_LEN];
        b[0..16].copy_from_slice(&self.result.to_bytes());
        b[16..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..22].copy_from_slice(&self.flags.to_le_bytes());
        b[22..24].copy_from_slice(&self.reserved0.to_le_bytes());
        b[24..28].copy_from_slice(&self.sq_head.to_le_bytes());
        b[28..32].copy_from_slice(&self.reserved1.to_le_bytes());
        b
    }

    /// Parses the wire form.
    pub fn from_bytes(b: &[u8; CQ_DESC_LEN]) -> CompletionDescriptor {
        CompletionDescriptor {
            result: OpResult::from_bytes(b[0..16].try_into().expect("16 bytes")),
            seq: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")),
            flags: u16::from_le_bytes([b[20], b[21]]),
            reserved0: u16::from_le_bytes([b[22], b[23]]),
            sq_head: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
            reserved1: u32::from_le_bytes(b[28..32].try_into().expect("4 bytes")),
        }
    }
}

/// Smallest ring, in entries.
pub const RING_MIN: u32 = 2;
/// Largest ring, in entries.
pub const RING_MAX: u32 = 1 << 16;

/// A ring size that is not a power of two in `RING_MIN..=RING_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring size {0} is not a power of two in {RING_MIN}..={RING_MAX}")]
pub struct BadRingSize(pub u32);

/// One end's position in a ring: the slot index and the phase of the
/// current pass. Advancing past the last slot wraps to 0 and flips the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingCursor {
    size: u32,
    index: u32,
    phase: bool,
}

impl RingCursor {
    /// A cursor at slot 0 of the first pass (phase 1).
    pub fn new(size: u32) -> Result<RingCursor, BadRingSize> {
        if !size.is_power_of_two() || !(RING_MIN..=RING_MAX).contains(&size) {
            return Err(BadRingSize(size));
        }
        Ok(RingCursor {
            size,
            index: 0,
            phase: true,
        })
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The current slot.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The phase of the current pass.
    pub fn phase(&self) -> bool {
        self.phase
    }

    /// The ownership-word phase bit for this pass.
    pub fn phase_bit(&self) -> u16 {
        if self.phase {
            DESC_PHASE
        } else {
            0
        }
    }

    /// Moves `n` slots on (`n` ≤ size), flipping the phase on a wrap.
    pub fn advance(&mut self, n: u32) {
        debug_assert!(n <= self.size);
        let next = self.index + n;
        if next >= self.size {
            self.phase = !self.phase;
        }
        self.index = next & (self.size - 1);
    }

    /// Slots from `from` forward to `to` (mod size).
    pub fn distance(&self, from: u32, to: u32) -> u32 {
        to.wrapping_sub(from) & (self.size - 1)
    }
}

/// The driver's end of a submission ring: writes descriptors at the tail.
#[derive(Debug)]
pub struct SubmissionRing {
    mem: DmaRegion,
    tail: RingCursor,
}

impl SubmissionRing {
    /// A ring of `size` entries over `mem` (zeroed here).
    ///
    /// # Panics
    /// If `mem` is smaller than `size * SQ_DESC_LEN`.
    pub fn new(mem: DmaRegion, size: u32) -> Result<SubmissionRing, BadRingSize> {
        let tail = RingCursor::new(size)?;
        assert!(
            mem.len() >= size as usize * SQ_DESC_LEN,
            "ring memory too small"
        );
        mem.zero();
        Ok(SubmissionRing { mem, tail })
    }

    /// The ring's memory.
    pub fn memory(&self) -> &DmaRegion {
        &self.mem
    }

    /// The tail cursor (next slot to write).
    pub fn tail(&self) -> RingCursor {
        self.tail
    }

    /// Writes one descriptor at the tail and hands it to the device
    /// (ownership word last, with release), then advances the tail. The
    /// caller rings the doorbell after a batch.
    #[inline]
    pub fn push(&mut self, op: &Op, seq: u32, batch_len: u16, batch_end: bool) {
        let off = self.tail.index() as usize * SQ_DESC_LEN;
        self.mem.write_words(off, &op_to_words(op));
        self.mem.write_u32(off + 64, seq);
        // bytes 68..70 (the ownership word) are stored below, last; they are
        // never written by a plain store, so the device's atomic load of
        // them never races with one.
        self.mem.write_u16(off + 70, batch_len);
        self.mem.write_u64(off + 72, 0);
        let flags = self.tail.phase_bit() | if batch_end { DESC_BATCH_END } else { 0 };
        self.mem.store_u16_release(off + SQ_FLAGS_OFFSET, flags);
        self.tail.advance(1);
    }
}

/// An [`Op`] as the eight little-endian `u64` words of its wire form
/// (`Op::to_bytes`, read as words): the ring's hot path writes these
/// without building the byte array.
#[inline]
pub fn op_to_words(op: &Op) -> [u64; 8] {
    let k = |i: usize| u64::from_le_bytes(op.key[i..i + 8].try_into().expect("8 key bytes"));
    [
        u64::from(op.metric)
            | u64::from(op.kind) << 16
            | u64::from(op.flags) << 24
            | u64::from(op.key_len) << 32
            | u64::from(op.reserved0[0]) << 40
            | u64::from(op.reserved0[1]) << 48
            | u64::from(op.reserved0[2]) << 56,
        u64::from(op.value) | u64::from(op.reserved1) << 32,
        op.ts_ns,
        k(0),
        k(8),
        k(16),
        k(24),
        k(32),
    ]
}

/// The inverse of [`op_to_words`] (`Op::from_bytes` of the same bytes).
#[inline]
pub fn op_from_words(w: &[u64; 8]) -> Op {
    let mut key = [0u8; 40];
    for (chunk, word) in key.chunks_exact_mut(8).zip(&w[3..]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Op {
        metric: w[0] as u16,
        kind: (w[0] >> 16) as u8,
        flags: (w[0] >> 24) as u8,
        key_len: (w[0] >> 32) as u8,
        reserved0: [(w[0] >> 40) as u8, (w[0] >> 48) as u8, (w[0] >> 56) as u8],
        value: w[1] as u32,
        reserved1: (w[1] >> 32) as u32,
        ts_ns: w[2],
        key,
    }
}

/// An [`OpResult`] as the two little-endian words of its wire form.
#[inline]
fn result_to_words(r: &OpResult) -> [u64; 2] {
    [
        r.value,
        u64::from(r.metric)
            | u64::from(r.status) << 16
            | u64::from(r.flags) << 24
            | u64::from(r.reserved) << 32,
    ]
}

/// The inverse of [`result_to_words`].
#[inline]
fn result_from_words(w: [u64; 2]) -> OpResult {
    OpResult {
        value: w[0],
        metric: w[1] as u16,
        status: (w[1] >> 16) as u8,
        flags: (w[1] >> 24) as u8,
        reserved: (w[1] >> 32) as u32,
    }
}

/// Why a device could not take a submission descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqReadError {
    /// The entry's phase bit is not the expected one: the doorbell ran ahead
    /// of the descriptors written.
    PhaseMismatch {
        /// Slot.
        index: u32,
    },
}

/// The device's end of a submission ring (used by the simulated NIC; kept
/// here so both ends of the format live in one file).
#[derive(Debug)]
pub struct SubmissionReader {
    mem: DmaRegion,
    head: RingCursor,
}

impl SubmissionReader {
    /// Reads `mem` as a ring of `size` entries, starting at slot 0, phase 1.
    pub fn new(mem: DmaRegion, size: u32) -> Result<SubmissionReader, BadRingSize> {
        let head = RingCursor::new(size)?;
        if mem.len() < size as usize * SQ_DESC_LEN {
            return Err(BadRingSize(size));
        }
        Ok(SubmissionReader { mem, head })
    }

    /// The head cursor (next slot to read).
    pub fn head(&self) -> RingCursor {
        self.head
    }

    /// Reads the descriptor at the head (acquire on the ownership word, then
    /// the bytes) and advances.
    #[inline]
    pub fn pop(&mut self) -> Result<SubmissionDescriptor, SqReadError> {
        let off = self.head.index() as usize * SQ_DESC_LEN;
        let flags = self.mem.load_u16_acquire(off + SQ_FLAGS_OFFSET);
        if flags & DESC_PHASE != self.head.phase_bit() {
            return Err(SqReadError::PhaseMismatch {
                index: self.head.index(),
            });
        }
        let op = op_from_words(&self.mem.read_words::<8>(off));
        let [tail] = self.mem.read_words::<1>(off + 72);
        let seq = self.mem.read_u32(off + 64);
        let batch_len = u16::from_le_bytes(self.mem.read_array::<2>(off + 70));
        self.head.advance(1);
        Ok(SubmissionDescriptor {
            op,
            seq,
            flags,
            batch_len,
            reserved: tail,
        })
    }
}

/// The device's end of a completion ring: writes at the tail.
#[derive(Debug)]
pub struct CompletionWriter {
    mem: DmaRegion,
    tail: RingCursor,
}

impl CompletionWriter {
    /// Writes `mem` as a ring of `size` entries from slot 0, phase 1.
    pub fn new(mem: DmaRegion, size: u32) -> Result<CompletionWriter, BadRingSize> {
        let tail = RingCursor::new(size)?;
        if mem.len() < size as usize * CQ_DESC_LEN {
            return Err(BadRingSize(size));
        }
        Ok(CompletionWriter { mem, tail })
    }

    /// The tail cursor.
    pub fn tail(&self) -> RingCursor {
        self.tail
    }

    /// Writes one completion (bytes, then the ownership word with release)
    /// and advances. `desc.flags` is replaced by the phase of this pass.
    #[inline]
    pub fn push(&mut self, desc: &CompletionDescriptor) {
        let off = self.tail.index() as usize * CQ_DESC_LEN;
        self.mem.write_words(off, &result_to_words(&desc.result));
        self.mem.write_u32(off + 16, desc.seq);
        // bytes 20..22: the ownership word, stored last (below); 22..24
        // (reserved) are zero from the ring's initialisation and never
        // written.
        self.mem.write_words(
            off + 24,
            &[u64::from(desc.sq_head) | u64::from(desc.reserved1) << 32],
        );
        self.mem
            .store_u16_release(off + CQ_FLAGS_OFFSET, self.tail.phase_bit());
        self.tail.advance(1);
    }
}

/// The driver's end of a completion ring: polls the head.
#[derive(Debug)]
pub struct CompletionRing {
    mem: DmaRegion,
    head: RingCursor,
}

impl CompletionRing {
    /// A ring of `size` entries over `mem` (zeroed here, so no slot looks
    /// written in phase 1).
    ///
    /// # Panics
    /// If `mem` is smaller than `size * CQ_DESC_LEN`.
    pub fn new(mem: DmaRegion, size: u32) -> Result<CompletionRing, BadRingSize> {
        let head = RingCursor::new(size)?;
        assert!(
            mem.len() >= size as usize * CQ_DESC_LEN,
            "ring memory too small"
        );
        mem.zero();
        Ok(CompletionRing { mem, head })
    }

    /// The ring's memory.
    pub fn memory(&self) -> &DmaRegion {
        &self.mem
    }

    /// The head cursor (next slot to read).
    pub fn head(&self) -> RingCursor {
        self.head
    }

    /// The next completion if the device has written it (phase matches,
    /// acquire), advancing the head; `None` if the slot is still the
    /// device's.
    #[inline]
    pub fn poll(&mut self) -> Option<CompletionDescriptor> {
        let off = self.head.index() as usize * CQ_DESC_LEN;
        let flags = self.mem.load_u16_acquire(off + CQ_FLAGS_OFFSET);
        if flags & DESC_PHASE != self.head.phase_bit() {
            return None;
        }
        let result = result_from_words(self.mem.read_words::<2>(off));
        let seq = self.mem.read_u32(off + 16);
        let [tail] = self.mem.read_words::<1>(off + 24);
        self.head.advance(1);
        Some(CompletionDescriptor {
            result,
            seq,
            flags,
            reserved0: u16::from_le_bytes(self.mem.read_array::<2>(off + 22)),
            sq_head: tail as u32,
            reserved1: (tail >> 32) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word forms are the byte forms read as little-endian words, for
    /// arbitrary bytes (reserved fields and out-of-range kinds included).
    #[test]
    fn word_forms_match_the_byte_forms() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..1000 {
            let mut b = [0u8; 64];
            for chunk in b.chunks_exact_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            let words: [u64; 8] = std::array::from_fn(|i| {
                u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap())
            });
            let op = Op::from_bytes(&b);
            assert_eq!(op_to_words(&op), words);
            assert_eq!(op_from_words(&words), op);
            let r = OpResult::from_bytes(b[..16].try_into().unwrap());
            assert_eq!(result_to_words(&r), [words[0], words[1]]);
            assert_eq!(result_from_words([words[0], words[1]]), r);
        }
    }
    use streamon_contract::{OpKind, ResultFlags, Status};

    fn op(i: u32) -> Op {
        Op::new(3, OpKind::AddGet, &i.to_le_bytes(), i, 1000 + u64::from(i)).unwrap()
    }

    /// Golden bytes of a submission descriptor.
    #[test]
    fn submission_descriptor_wire_layout() {
        let d = SubmissionDescriptor {
            op: Op::new(0x0102, OpKind::Add, b"\xaa\xbb", 5, 0x10).unwrap(),
            seq: 0x0A0B_0C0D,
            flags: DESC_PHASE | DESC_BATCH_END,
            batch_len: 0x0102,
            reserved: 0,
        };
        let b = d.to_bytes();
        assert_eq!(&b[0..8], &[0x02, 0x01, 4, 0, 2, 0, 0, 0]);
        assert_eq!(&b[8..12], &[5, 0, 0, 0]);
        assert_eq!(&b[16..24], &[0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[24..26], &[0xaa, 0xbb]);
        assert_eq!(
            &b[64..80],
            &[0x0D, 0x0C, 0x0B, 0x0A, 3, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(SubmissionDescriptor::from_bytes(&b), d);
    }

    /// Golden bytes of a completion descriptor.
    #[test]
    fn completion_descriptor_wire_layout() {
        let d = CompletionDescriptor {
            result: OpResult::ok(7, 0x1122_3344_5566_7788, ResultFlags::INSERTED),
            seq: 0xDEAD_BEEF,
            flags: DESC_PHASE,
            reserved0: 0,
            sq_head: 0x0000_0102,
            reserved1: 0,
        };
        let b = d.to_bytes();
        assert_eq!(
            &b[0..16],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 7, 0, 0, 8, 0, 0, 0, 0]
        );
        assert_eq!(
            &b[16..32],
            &[0xEF, 0xBE, 0xAD, 0xDE, 1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(CompletionDescriptor::from_bytes(&b), d);
    }

    /// On a little-endian host the `#[repr(C)]` struct *is* the wire form.
    #[test]
    #[cfg(target_endian = "little")]
    fn repr_c_matches_the_encoder() {
        let d = SubmissionDescriptor {
            op: op(9),
            seq: 77,
            flags: 3,
            batch_len: 4,
            reserved: 0,
        };
        let mut raw = [0u8; SQ_DESC_LEN];
        // Field by field through the documented offsets.
        raw[..64].copy_from_slice(&d.op.to_bytes());
        raw[offset_of!(SubmissionDescriptor, seq)..][..4].copy_from_slice(&d.seq.to_ne_bytes());
        raw[SQ_FLAGS_OFFSET..][..2].copy_from_slice(&d.flags.to_ne_bytes());
        raw[offset_of!(SubmissionDescriptor, batch_len)..][..2]
            .copy_from_slice(&d.batch_len.to_ne_bytes());
        assert_eq!(raw, d.to_bytes());
    }

    #[test]
    fn ring_sizes_are_checked() {
        assert_eq!(RingCursor::new(0), Err(BadRingSize(0)));
        assert_eq!(RingCursor::new(1), Err(BadRingSize(1)));
        assert_eq!(RingCursor::new(6), Err(BadRingSize(6)));
        assert_eq!(RingCursor::new(1 << 17), Err(BadRingSize(1 << 17)));
        assert!(RingCursor::new(2).is_ok() && RingCursor::new(1 << 16).is_ok());
    }

    #[test]
    fn cursor_wraps_and_flips_phase() {
        let mut c = RingCursor::new(4).unwrap();
        assert_eq!((c.index(), c.phase()), (0, true));
        c.advance(3);
        assert_eq!((c.index(), c.phase()), (3, true));
        c.advance(1);
        assert_eq!((c.index(), c.phase()), (0, false));
        c.advance(4);
        assert_eq!((c.index(), c.phase()), (0, true));
        c.advance(2);
        c.advance(3);
        assert_eq!((c.index(), c.phase()), (1, false));
        assert_eq!(c.distance(3, 1), 2);
        assert_eq!(c.distance(1, 1), 0);
    }

    fn rings(
        size: u32,
    ) -> (
        SubmissionRing,
        SubmissionReader,
        CompletionWriter,
        CompletionRing,
    ) {
        let sq = DmaRegion::anonymous(size as usize * SQ_DESC_LEN, 0x1000).unwrap();
        let cq = DmaRegion::anonymous(size as usize * CQ_DESC_LEN, 0x9000_0000).unwrap();
        (
            SubmissionRing::new(sq.clone(), size).unwrap(),
            SubmissionReader::new(sq, size).unwrap(),
            CompletionWriter::new(cq.clone(), size).unwrap(),
            CompletionRing::new(cq, size).unwrap(),
        )
    }

    #[test]
    fn empty_rings_yield_nothing() {
        let (_sq, mut rd, _wr, mut cq) = rings(8);
        assert_eq!(rd.pop(), Err(SqReadError::PhaseMismatch { index: 0 }));
        assert_eq!(cq.poll(), None);
        // A failed read does not move the head.
        assert_eq!(rd.head().index(), 0);
    }

    /// Many passes around a small ring, in batches of every size up to the
    /// ring, with a full ring (size entries written, none read) in between:
    /// everything comes out once, in order, and stale entries from the
    /// previous pass are never taken for new ones.
    #[test]
    fn round_trip_over_many_wraps_in_batches() {
        let size = 8u32;
        let (mut sq, mut rd, mut wr, mut cq) = rings(size);
        let mut seq = 0u32;
        let mut expect = 0u32;
        for round in 0..50u32 {
            let batch = 1 + round % size;
            for j in 0..batch {
                sq.push(&op(seq), seq, batch as u16, j + 1 == batch);
                seq += 1;
            }
            for j in 0..batch {
                let d = rd.pop().expect("written");
                assert_eq!(d.seq, expect);
                assert_eq!(d.op, op(expect));
                assert_eq!(d.batch_len, batch as u16);
                assert_eq!(d.flags & DESC_BATCH_END != 0, j + 1 == batch);
                wr.push(&CompletionDescriptor {
                    result: OpResult::ok(3, u64::from(d.seq) * 2, 0),
                    seq: d.seq,
                    sq_head: rd.head().index(),
                    ..Default::default()
                });
                expect += 1;
            }
            // Ring drained: the next slot is stale (previous phase).
            assert!(rd.pop().is_err());
            for _ in 0..batch {
                let c = cq.poll().expect("completed");
                assert_eq!(c.result.value, u64::from(c.seq) * 2);
                assert_eq!(c.result.status, Status::Ok as u8);
            }
            assert_eq!(cq.poll(), None);
            assert_eq!(sq.tail().index(), rd.head().index());
            assert_eq!(sq.tail().phase(), rd.head().phase());
            assert_eq!(cq.head(), wr.tail());
        }
        assert_eq!(expect, seq);
        assert!(seq > 4 * size, "the test must wrap several times");
    }

    #[test]
    fn a_full_ring_is_distinguished_from_an_empty_one_by_phase() {
        let size = 4u32;
        let (mut sq, mut rd, _wr, _cq) = rings(size);
        for i in 0..size {
            sq.push(&op(i), i, 4, i == 3);
        }
        // tail == head (both at slot 0) but the phase differs: full.
        assert_eq!(sq.tail().index(), rd.head().index());
        assert_ne!(sq.tail().phase(), rd.head().phase());
        for i in 0..size {
            assert_eq!(rd.pop().unwrap().seq, i);
        }
        // Now empty: same index, same phase.
        assert_eq!(sq.tail(), rd.head());
        assert!(rd.pop().is_err());
    }
}
