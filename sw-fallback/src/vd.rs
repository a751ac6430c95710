//! The variation detector: a pair of blocked Bloom filters that swap roles.
//!
//! StreaMon's `BloomPair` (ITC'14 §III; reference §4.2), blocked so that
//! all k bits of a key sit in one 512-bit block: one cache line per filter
//! in software, one wide block-RAM word in hardware. The two filters' blocks
//! with the same index are stored side by side (128 bytes) so one op touches
//! two adjacent lines.
//!
//! Detectors of the same size share one array, interleaved block by block
//! (see [`crate::Lanes`]): a key has the same block index in all of them, so
//! a packet that queries several detectors with one key touches one
//! contiguous run of lines instead of one random line pair per detector.

use streamon_contract::dump::BLOCK_WORDS;
use streamon_contract::fixed::{adapt_swap_threshold, initial_swap_threshold, swap_factor};
use streamon_contract::h3::Positions;
use streamon_contract::MetricPlan;

use crate::Lanes;

/// Two blocks, filter 0 then filter 1.
pub(crate) type BlockPair = [u64; 2 * BLOCK_WORDS];

pub(crate) struct VariationDetector {
    log2_bits: u32,
    hashes: u32,
    /// Where this detector's block pairs sit in its group's array.
    pub(crate) lanes: Lanes,
    /// Index (0 or 1) of the learning filter; the other one detects.
    learning: usize,
    zeros: [u32; 2],
    threshold: u32,
    swaps: u64,
}

impl VariationDetector {
    /// Block pairs a detector of this plan needs.
    pub(crate) fn blocks(plan: &MetricPlan) -> usize {
        1usize << (plan.log2_size - 9)
    }

    pub(crate) fn new(plan: &MetricPlan, lanes: Lanes) -> Self {
        let m = 1u32 << plan.log2_size;
        VariationDetector {
            log2_bits: plan.log2_size,
            hashes: plan.width,
            lanes,
            learning: 0,
            zeros: [m, m],
            threshold: initial_swap_threshold(plan.log2_size),
            swaps: 0,
        }
    }

    pub(crate) fn clear(&mut self, mem: &mut [BlockPair]) {
        self.lanes
            .of_mut(mem)
            .for_each(|b| *b = [0; 2 * BLOCK_WORDS]);
        let m = 1u32 << self.log2_bits;
        self.learning = 0;
        self.zeros = [m, m];
        self.threshold = initial_swap_threshold(self.log2_bits);
        self.swaps = 0;
    }

    /// The index in the group's memory of the key's block pair.
    #[inline]
    pub(crate) fn block(&self, pos: &Positions) -> usize {
        self.lanes.index(pos.bloom_block(self.log2_bits))
    }

    /// Prefetches the block pair at `at` (both 64-byte lines).
    #[inline]
    pub(crate) fn prefetch(mem: &[BlockPair], at: usize) {
        let p = mem[at].as_ptr();
        crate::prefetch::prefetch(p);
        crate::prefetch::prefetch(p.wrapping_add(BLOCK_WORDS));
    }

    /// Walks the key's k bits in its block pair: `(seen, newly set in
    /// filter 0, newly set in filter 1)`, setting them when `SET`.
    ///
    /// Bit by bit rather than as a 512-bit mask: k is small, and counting
    /// newly set bits needs no popcount (which the x86_64 baseline lacks, so
    /// `count_ones` over eight mask words costs more than the k probes).
    /// The k bits are distinct (see `Positions::bloom_bit`), so each probe
    /// still sees its bit as it was before this op.
    #[inline(always)]
    fn walk<const SET: bool>(
        &self,
        mem: &mut [BlockPair],
        at: usize,
        pos: &Positions,
    ) -> (u64, u32, u32) {
        // The common k get a fully unrolled walk (a constant trip count).
        match self.hashes {
            4 => self.walk_k::<SET>(mem, at, pos, 4),
            8 => self.walk_k::<SET>(mem, at, pos, 8),
            k => self.walk_k::<SET>(mem, at, pos, k),
        }
    }

    #[inline(always)]
    fn walk_k<const SET: bool>(
        &self,
        mem: &mut [BlockPair],
        at: usize,
        pos: &Positions,
        k: u32,
    ) -> (u64, u32, u32) {
        let block = &mut mem[at];
        let det = 1 - self.learning;
        let mut g = pos.g(0);
        let stride = pos.g(1).wrapping_sub(g);
        if !SET {
            let mut missing = 0u32;
            for _ in 0..k {
                let b = g & 511;
                g = g.wrapping_add(stride);
                let (w, s) = ((b >> 6) as usize, b & 63);
                missing += (!block[det * BLOCK_WORDS + w] >> s & 1) as u32;
            }
            return ((missing == 0) as u64, 0, 0);
        }
        let (mut new0, mut new1) = (0u32, 0u32);
        for _ in 0..k {
            let b = g & 511;
            g = g.wrapping_add(stride);
            let (w, s) = ((b >> 6) as usize, b & 63);
            let (a, c) = (block[w], block[BLOCK_WORDS + w]);
            new0 += (!a >> s & 1) as u32;
            new1 += (!c >> s & 1) as u32;
            block[w] = a | 1 << s;
            block[BLOCK_WORDS + w] = c | 1 << s;
        }
        // The key was seen iff none of its bits was new to the detecting
        // filter: the count already says so, no separate test per bit.
        let new_det = if det == 0 { new0 } else { new1 };
        ((new_det == 0) as u64, new0, new1)
    }

    /// 1 if every bit of the key is set in the detecting filter, else 0.
    /// `at` is [`Self::block`] of `pos`, here and below.
    #[inline]
    pub(crate) fn get(&self, mem: &mut [BlockPair], at: usize, pos: &Positions) -> u64 {
        self.walk::<false>(mem, at, pos).0
    }

    /// Inserts the key into both filters; returns true if the filters swapped.
    #[inline]
    pub(crate) fn set(&mut self, mem: &mut [BlockPair], at: usize, pos: &Positions) -> bool {
        let (_, new0, new1) = self.walk::<true>(mem, at, pos);
        self.count_new(mem, new0, new1)
    }

    /// `get` then `set` in one walk: `(seen, swapped)`.
    #[inline]
    pub(crate) fn get_set(
        &mut self,
        mem: &mut [BlockPair],
        at: usize,
        pos: &Positions,
    ) -> (u64, bool) {
        let (seen, new0, new1) = self.walk::<true>(mem, at, pos);
        (seen, self.count_new(mem, new0, new1))
    }

    #[inline]
    fn count_new(&mut self, mem: &mut [BlockPair], new0: u32, new1: u32) -> bool {
        self.zeros[0] -= new0;
        self.zeros[1] -= new1;
        if self.zeros[self.learning] < self.threshold {
            self.swap(mem);
            true
        } else {
            false
        }
    }

    /// The learning filter becomes the detecting one; the old detecting
    /// filter is cleared and learns; the threshold adapts to how full the old
    /// detecting filter was (`dd` zeros): `t ← t · √(m / 2dd)`.
    #[cold]
    #[inline(never)]
    fn swap(&mut self, mem: &mut [BlockPair]) {
        let old_det = 1 - self.learning;
        let dd = self.zeros[old_det];
        let off = old_det * BLOCK_WORDS;
        for b in self.lanes.of_mut(mem) {
            b[off..off + BLOCK_WORDS].fill(0);
        }
        self.zeros[old_det] = 1 << self.log2_bits;
        self.learning = old_det;
        self.threshold = adapt_swap_threshold(
            self.threshold,
            swap_factor(dd, self.log2_bits),
            self.log2_bits,
        );
        self.swaps += 1;
    }

    pub(crate) fn dump(&self, mem: &[BlockPair], out: &mut Vec<u64>) {
        let det = 1 - self.learning;
        out.extend([
            self.learning as u64,
            self.zeros[self.learning] as u64,
            self.zeros[det] as u64,
            self.threshold as u64,
        ]);
        for f in 0..2 {
            for b in self.lanes.of(mem) {
                out.extend_from_slice(&b[f * BLOCK_WORDS..(f + 1) * BLOCK_WORDS]);
            }
        }
    }

    pub(crate) fn event_count(&self) -> u64 {
        self.swaps
    }
}
