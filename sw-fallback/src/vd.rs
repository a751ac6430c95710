//! The variation detector: a pair of blocked Bloom filters that swap roles.
//!
//! StreaMon's `BloomPair` (ITC'14 §III; reference §4.2), blocked so that
//! all k bits of a key sit in one 512-bit block: one cache line per filter
//! in software, one wide block-RAM word in hardware. The two filters' blocks
//! with the same index are stored side by side (128 bytes) so one op touches
//! two adjacent lines.

use streamon_contract::dump::BLOCK_WORDS;
use streamon_contract::fixed::{adapt_swap_threshold, initial_swap_threshold, swap_factor};
use streamon_contract::h3::Positions;
use streamon_contract::MetricPlan;

use crate::memory::HugeArray;

/// Two blocks, filter 0 then filter 1.
type BlockPair = [u64; 2 * BLOCK_WORDS];

pub(crate) struct VariationDetector {
    log2_bits: u32,
    hashes: u32,
    blocks: HugeArray<BlockPair>,
    /// Index (0 or 1) of the learning filter; the other one detects.
    learning: usize,
    zeros: [u32; 2],
    threshold: u32,
    swaps: u64,
}

impl VariationDetector {
    pub(crate) fn new(plan: &MetricPlan) -> Self {
        let n_blocks = 1usize << (plan.log2_size - 9);
        let m = 1u32 << plan.log2_size;
        VariationDetector {
            log2_bits: plan.log2_size,
            hashes: plan.width,
            blocks: HugeArray::zeroed(n_blocks),
            learning: 0,
            zeros: [m, m],
            threshold: initial_swap_threshold(plan.log2_size),
            swaps: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.blocks
            .iter_mut()
            .for_each(|b| *b = [0; 2 * BLOCK_WORDS]);
        let m = 1u32 << self.log2_bits;
        self.learning = 0;
        self.zeros = [m, m];
        self.threshold = initial_swap_threshold(self.log2_bits);
        self.swaps = 0;
    }

    #[inline]
    pub(crate) fn block_ptr(&self, pos: &Positions) -> *const u64 {
        self.blocks[pos.bloom_block(self.log2_bits)].as_ptr()
    }

    /// The key's k bits as a mask over one 8-word block.
    #[inline]
    fn mask(&self, pos: &Positions) -> [u64; BLOCK_WORDS] {
        let mut mask = [0u64; BLOCK_WORDS];
        for i in 0..self.hashes {
            let bit = pos.bloom_bit(i);
            mask[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        mask
    }

    /// 1 if every bit of the key is set in the detecting filter, else 0.
    #[inline]
    pub(crate) fn get(&self, pos: &Positions) -> u64 {
        self.get_masked(pos, &self.mask(pos))
    }

    #[inline]
    fn get_masked(&self, pos: &Positions, mask: &[u64; BLOCK_WORDS]) -> u64 {
        let block = &self.blocks[pos.bloom_block(self.log2_bits)];
        let det = (1 - self.learning) * BLOCK_WORDS;
        let mut missing = 0u64;
        for w in 0..BLOCK_WORDS {
            missing |= mask[w] & !block[det + w];
        }
        (missing == 0) as u64
    }

    /// Inserts the key into both filters; returns true if the filters swapped.
    #[inline]
    pub(crate) fn set(&mut self, pos: &Positions) -> bool {
        let mask = self.mask(pos);
        self.set_masked(pos, &mask)
    }

    /// `get` then `set` with one mask: `(seen, swapped)`.
    #[inline]
    pub(crate) fn get_set(&mut self, pos: &Positions) -> (u64, bool) {
        let mask = self.mask(pos);
        let seen = self.get_masked(pos, &mask);
        (seen, self.set_masked(pos, &mask))
    }

    #[inline]
    fn set_masked(&mut self, pos: &Positions, mask: &[u64; BLOCK_WORDS]) -> bool {
        let block = &mut self.blocks[pos.bloom_block(self.log2_bits)];
        for f in 0..2 {
            let mut newly = 0u32;
            for w in 0..BLOCK_WORDS {
                let word = &mut block[f * BLOCK_WORDS + w];
                newly += (mask[w] & !*word).count_ones();
                *word |= mask[w];
            }
            self.zeros[f] -= newly;
        }
        if self.zeros[self.learning] < self.threshold {
            self.swap();
            true
        } else {
            false
        }
    }

    /// The learning filter becomes the detecting one; the old detecting
    /// filter is cleared and learns; the threshold adapts to how full the old
    /// detecting filter was (`dd` zeros): `t ← t · √(m / 2dd)`.
    fn swap(&mut self) {
        let old_det = 1 - self.learning;
        let dd = self.zeros[old_det];
        let off = old_det * BLOCK_WORDS;
        for b in self.blocks.iter_mut() {
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

    pub(crate) fn dump(&self, out: &mut Vec<u64>) {
        let det = 1 - self.learning;
        out.extend([
            self.learning as u64,
            self.zeros[self.learning] as u64,
            self.zeros[det] as u64,
            self.threshold as u64,
        ]);
        for f in 0..2 {
            for b in self.blocks.iter() {
                out.extend_from_slice(&b[f * BLOCK_WORDS..(f + 1) * BLOCK_WORDS]);
            }
        }
    }

    pub(crate) fn event_count(&self) -> u64 {
        self.swaps
    }
}
