//! Walking one TPACKET_V3 block: the block descriptor, then a chain of
//! `tpacket3_hdr` + frame records, every offset checked against the block
//! before it is used (a corrupt block is counted, never trusted).
//!
//! Layouts (`<linux/if_packet.h>`), native byte order:
//!
//! | struct | field | offset |
//! |---|---|---|
//! | `tpacket_block_desc` | `block_status` | 8 |
//! | | `num_pkts` | 12 |
//! | | `offset_to_first_pkt` | 16 |
//! | `tpacket3_hdr` | `tp_next_offset` | 0 |
//! | | `tp_sec`, `tp_nsec` | 4, 8 |
//! | | `tp_snaplen`, `tp_len` | 12, 16 |
//! | | `tp_status` | 20 |
//! | | `tp_mac` | 24 (u16) |
//! | | `hv1.tp_vlan_tci` | 32 |
//! | | `hv1.tp_vlan_tpid` | 36 (u16) |
//!
//! With VLAN offload the kernel takes the 802.1Q tag off the frame and
//! reports it in `tp_vlan_tci`; the tag is put back in place (the socket
//! reserves 4 bytes of headroom for it, as libpcap does), so frames look
//! exactly as they did on the wire.

/// Size of `struct tpacket_block_desc`.
pub(crate) const BLOCK_DESC_LEN: usize = 48;
/// Size of `struct tpacket3_hdr`.
pub(crate) const PKT_HDR_LEN: usize = 48;
/// Bytes of an 802.1Q tag.
pub(crate) const VLAN_TAG_LEN: usize = 4;

const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The frame from its MAC header, as on the wire (VLAN tag restored).
    pub data: &'a [u8],
    /// Kernel receive time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Length on the wire (more than `data.len()` when the frame did not
    /// fit the block).
    pub orig_len: u32,
}

/// What walking a block found wrong (counted in
/// [`crate::CaptureStats::ring_errors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockError {
    /// The descriptor's first-packet offset is outside the block.
    FirstOffset,
    /// A packet header or its frame reaches past the block end.
    PacketBounds,
    /// A record with an offloaded VLAN tag whose wire length (`tp_len`)
    /// plus the restored tag does not fit `u32`: no frame is that long.
    WireLength,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at + 2)?;
    Some(u16::from_ne_bytes(bytes.try_into().ok()?))
}

/// A cursor over the frames of one user-owned block.
pub(crate) struct BlockWalker {
    remaining: u32,
    offset: usize,
}

/// Per-block counters the walker adds to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WalkCounts {
    pub vlan_restored: u64,
    pub vlan_no_room: u64,
}

impl BlockWalker {
    /// Reads the descriptor of `block`.
    pub(crate) fn new(block: &[u8]) -> Result<BlockWalker, BlockError> {
        let num = u32_at(block, 12).ok_or(BlockError::FirstOffset)?;
        let first = u32_at(block, 16).ok_or(BlockError::FirstOffset)? as usize;
        if num > 0 && (first < BLOCK_DESC_LEN || first + PKT_HDR_LEN > block.len()) {
            return Err(BlockError::FirstOffset);
        }
        Ok(BlockWalker {
            remaining: num,
            offset: first,
        })
    }

    /// The next frame of `block` (the same block [`BlockWalker::new`] read),
    /// or `None` at the end.
    pub(crate) fn next<'b>(
        &mut self,
        block: &'b mut [u8],
        counts: &mut WalkCounts,
    ) -> Option<Result<Frame<'b>, BlockError>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let at = self.offset;
        let hdr = match block.get(at..at + PKT_HDR_LEN) {
            Some(h) => h,
            None => return self.corrupt(BlockError::PacketBounds),
        };
        let field = |o: usize| u32_at(hdr, o).unwrap_or(0);
        let next = field(0) as usize;
        let ts_ns = u64::from(field(4)) * 1_000_000_000 + u64::from(field(8));
        let snaplen = field(12) as usize;
        let len = field(16);
        let status = field(20);
        let mac = at + usize::from(u16_at(hdr, 24).unwrap_or(0));
        let tci = field(32) as u16;
        let tpid = u16_at(hdr, 36).unwrap_or(0);
        if mac < at + PKT_HDR_LEN || mac + snaplen > block.len() {
            return self.corrupt(BlockError::PacketBounds);
        }
        if next == 0 {
            self.remaining = 0;
        } else {
            match at.checked_add(next) {
                Some(n) if n > at => self.offset = n,
                _ => self.remaining = 0,
            }
        }
        if status & TP_STATUS_VLAN_VALID != 0 && snaplen >= 12 {
            // Put the tag back between the MAC addresses and the EtherType:
            // move the 12 address bytes 4 back into the reserved headroom.
            if mac - VLAN_TAG_LEN >= at + PKT_HDR_LEN {
                // Checked before the block is touched: a corrupt record
                // must not be half-restored.
                let Some(orig_len) = len.checked_add(VLAN_TAG_LEN as u32) else {
                    return self.corrupt(BlockError::WireLength);
                };
                let start = mac - VLAN_TAG_LEN;
                block.copy_within(mac..mac + 12, start);
                let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 && tpid != 0 {
                    tpid
                } else {
                    0x8100
                };
                block[start + 12..start + 14].copy_from_slice(&tpid.to_be_bytes());
                block[start + 14..start + 16].copy_from_slice(&tci.to_be_bytes());
                counts.vlan_restored += 1;
                return Some(Ok(Frame {
                    data: &block[start..mac + snaplen],
                    ts_ns,
                    orig_len,
                }));
            }
            counts.vlan_no_room += 1;
        }
        Some(Ok(Frame {
            data: &block[mac..mac + snaplen],
            ts_ns,
            orig_len: len,
        }))
    }

    fn corrupt<'b>(&mut self, why: BlockError) -> Option<Result<Frame<'b>, BlockError>> {
        self.remaining = 0;
        Some(Err(why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a block the way the kernel does: descriptor, then records
    /// aligned to 16 bytes, `reserve` bytes of headroom before each frame.
    fn block(frames: &[(&[u8], Option<u16>)], reserve: usize) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let mut at = BLOCK_DESC_LEN;
        b[12..16].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        b[16..20].copy_from_slice(&(at as u32).to_ne_bytes());
        for (i, (f, vlan)) in frames.iter().enumerate() {
            let mac = (PKT_HDR_LEN + reserve).next_multiple_of(16);
            let rec = (mac + f.len()).next_multiple_of(16);
            let next = if i + 1 == frames.len() { 0 } else { rec };
            let h = &mut b[at..at + PKT_HDR_LEN];
            h[0..4].copy_from_slice(&(next as u32).to_ne_bytes());
            h[4..8].copy_from_slice(&7u32.to_ne_bytes());
            h[8..12].copy_from_slice(&(i as u32).to_ne_bytes());
            h[12..16].copy_from_slice(&(f.len() as u32).to_ne_bytes());
            h[16..20].copy_from_slice(&(f.len() as u32 + 10).to_ne_bytes());
            let status = if vlan.is_some() {
                TP_STATUS_VLAN_VALID
            } else {
                0
            };
            h[20..24].copy_from_slice(&status.to_ne_bytes());
            h[24..26].copy_from_slice(&(mac as u16).to_ne_bytes());
            h[32..36].copy_from_slice(&u32::from(vlan.unwrap_or(0)).to_ne_bytes());
            b[at + mac..at + mac + f.len()].copy_from_slice(f);
            at += rec;
        }
        b
    }

    /// Frames as (bytes, ts_ns, orig_len).
    type Walked = Vec<(Vec<u8>, u64, u32)>;

    fn walk(b: &mut [u8]) -> (Walked, usize, WalkCounts) {
        let mut w = BlockWalker::new(b).expect("descriptor");
        let mut counts = WalkCounts::default();
        let (mut out, mut errors) = (Vec::new(), 0);
        while let Some(r) = w.next(b, &mut counts) {
            match r {
                Ok(f) => out.push((f.data.to_vec(), f.ts_ns, f.orig_len)),
                Err(_) => errors += 1,
            }
        }
        (out, errors, counts)
    }

    /// Found by the `capture_block` fuzz target: a VLAN record whose
    /// `tp_len` is `u32::MAX` overflowed when the restored tag was added.
    #[test]
    fn a_vlan_record_with_an_impossible_wire_length_is_an_error_not_a_panic() {
        let f = [0xbbu8; 20];
        let mut b = block(&[(&f, Some(0x0123))], VLAN_TAG_LEN);
        let at = BLOCK_DESC_LEN;
        b[at + 16..at + 20].copy_from_slice(&u32::MAX.to_ne_bytes());
        let before = b.clone();
        let mut w = BlockWalker::new(&b).expect("descriptor");
        let mut counts = WalkCounts::default();
        assert_eq!(
            w.next(&mut b, &mut counts).map(|r| r.err()),
            Some(Some(BlockError::WireLength))
        );
        assert!(
            w.next(&mut b, &mut counts).is_none(),
            "the block ends there"
        );
        assert_eq!(counts.vlan_restored, 0);
        assert_eq!(b, before, "a corrupt record is not half-restored");
        // One less fits, and is restored.
        b[at + 16..at + 20].copy_from_slice(&(u32::MAX - 4).to_ne_bytes());
        let (frames, errors, _) = walk(&mut b);
        assert_eq!((frames.len(), errors, frames[0].2), (1, 0, u32::MAX));
    }

    #[test]
    fn walks_every_record_with_times_and_lengths() {
        let a = [1u8; 60];
        let c = [2u8; 61];
        let mut b = block(&[(&a, None), (&c, None)], 0);
        let (frames, errors, _) = walk(&mut b);
        assert_eq!(errors, 0);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], (a.to_vec(), 7_000_000_000, 70));
        assert_eq!(frames[1], (c.to_vec(), 7_000_000_001, 71));
    }

    #[test]
    fn puts_an_offloaded_vlan_tag_back() {
        let mut f = vec![0xaau8; 6];
        f.extend([0xbb; 6]);
        f.extend([0x08, 0x00, 0x45]);
        let mut b = block(&[(&f, Some(0x0123))], VLAN_TAG_LEN);
        let (frames, errors, counts) = walk(&mut b);
        assert_eq!((errors, counts.vlan_restored), (0, 1));
        let mut want = vec![0xaau8; 6];
        want.extend([0xbb; 6]);
        want.extend([0x81, 0x00, 0x01, 0x23, 0x08, 0x00, 0x45]);
        assert_eq!(frames[0].0, want);
        assert_eq!(frames[0].2, f.len() as u32 + 10 + 4);
    }

    #[test]
    fn a_record_past_the_block_end_is_an_error_not_a_panic() {
        let a = [1u8; 60];
        let mut b = block(&[(&a, None)], 0);
        // snaplen far past the end
        b[BLOCK_DESC_LEN + 12..BLOCK_DESC_LEN + 16].copy_from_slice(&100_000u32.to_ne_bytes());
        let (frames, errors, _) = walk(&mut b);
        assert_eq!((frames.len(), errors), (0, 1));

        let mut b = block(&[(&a, None)], 0);
        b[16..20].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(BlockWalker::new(&b).err(), Some(BlockError::FirstOffset));

        // a packet count larger than the chain: the walk stops at next = 0
        let mut b = block(&[(&a, None)], 0);
        b[12..16].copy_from_slice(&9u32.to_ne_bytes());
        let (frames, errors, _) = walk(&mut b);
        assert_eq!((frames.len(), errors), (1, 0));
    }
}
