//! The H3 hash and how every structure cuts its positions from it.
//!
//! H3 (Carter & Wegman's class of universal hashes) XORs together one random
//! 64-bit row per set bit of the key. In hardware it is a fixed XOR tree (the
//! matrix is a synthesis-time constant), one key per clock; in software it is
//! one table lookup per key byte ([`H3_BYTE_TABLE`]).
//!
//! The matrix comes from SplitMix64 seeded with [`H3_SEED`] (the ASCII bytes
//! of "STREAMON"), drawn in this order: the rows for key bit `8*i + b`
//! (byte `i` in 0..40, bit `b` in 0..8, LSB first), then one row per key
//! length 0..=40 ([`H3_LEN_ROWS`]), so keys that differ only by trailing zero
//! bytes hash apart.
//!
//! `h = LEN_ROW[len] ^ XOR { ROW[8*i+b] : i < len, bit b of key[i] set }`.
//!
//! From `h`, with `lo = h as u32`, `hi = (h >> 32) as u32` and
//! `stride = hi | 1`, the i-th position stream value is
//! `g(i) = lo + i * stride (mod 2^32)` (Kirsch–Mitzenmacher double hashing):
//! * a row of `2^b` cells (counting filters, count-min) uses `g(i) >> (32 - b)`;
//! * a blocked Bloom filter of `2^n` bits uses block `hi >> (32 - (n - 9))`
//!   and bits `g(i) & 511`, which are distinct for i < 512 because `stride`
//!   is odd;
//! * an exact table of `2^b` buckets uses bucket `g(0) >> (32 - b)`;
//! * a HyperLogLog with `2^p` registers uses register `hi >> (32 - p)` and
//!   rank `leading_zeros(lo) + 1` (33 when `lo == 0`).

use crate::op::KEY_MAX;

/// The seed of the H3 matrix: the ASCII bytes "STREAMON", big-endian.
pub const H3_SEED: u64 = 0x5354_5245_414D_4F4E;

const fn splitmix64(state: u64) -> (u64, u64) {
    let state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (state, z ^ (z >> 31))
}

const fn build_rows() -> ([u64; KEY_MAX * 8], [u64; KEY_MAX + 1]) {
    let mut rows = [0u64; KEY_MAX * 8];
    let mut len_rows = [0u64; KEY_MAX + 1];
    let mut state = H3_SEED;
    let mut i = 0;
    while i < KEY_MAX * 8 {
        let (s, v) = splitmix64(state);
        state = s;
        rows[i] = v;
        i += 1;
    }
    let mut l = 0;
    while l <= KEY_MAX {
        let (s, v) = splitmix64(state);
        state = s;
        len_rows[l] = v;
        l += 1;
    }
    (rows, len_rows)
}

const ROWS_AND_LEN: ([u64; KEY_MAX * 8], [u64; KEY_MAX + 1]) = build_rows();

/// The H3 matrix: row `8*i + b` is XORed in when bit `b` of key byte `i` is set.
pub const H3_ROWS: [u64; KEY_MAX * 8] = ROWS_AND_LEN.0;

/// One row per key length, always XORed in.
pub const H3_LEN_ROWS: [u64; KEY_MAX + 1] = ROWS_AND_LEN.1;

const fn build_byte_table() -> [[u64; 256]; KEY_MAX] {
    let mut t = [[0u64; 256]; KEY_MAX];
    let mut i = 0;
    while i < KEY_MAX {
        let mut v = 0;
        while v < 256 {
            let mut acc = 0u64;
            let mut b = 0;
            while b < 8 {
                if v & (1 << b) != 0 {
                    acc ^= H3_ROWS[i * 8 + b];
                }
                b += 1;
            }
            t[i][v] = acc;
            v += 1;
        }
        i += 1;
    }
    t
}

/// `H3_BYTE_TABLE[i][v]` = XOR of the rows of the set bits of byte value `v`
/// at key position `i`: the software form of the matrix (80 KiB).
pub static H3_BYTE_TABLE: [[u64; 256]; KEY_MAX] = build_byte_table();

/// Hashes a key (at most [`KEY_MAX`] bytes; longer input is cut at
/// [`KEY_MAX`], which engines never pass because they reject such ops).
#[inline]
pub fn h3(key: &[u8]) -> u64 {
    let key = &key[..key.len().min(KEY_MAX)];
    let mut h = H3_LEN_ROWS[key.len()];
    for (row, &byte) in H3_BYTE_TABLE.iter().zip(key) {
        h ^= row[byte as usize];
    }
    h
}

/// The bit-serial definition of H3, written from the matrix directly. Slow;
/// kept as the reference the table form and the hardware are checked against.
pub fn h3_reference(key: &[u8]) -> u64 {
    let key = &key[..key.len().min(KEY_MAX)];
    let mut h = H3_LEN_ROWS[key.len()];
    for (i, &byte) in key.iter().enumerate() {
        for b in 0..8 {
            if byte >> b & 1 == 1 {
                h ^= H3_ROWS[i * 8 + b];
            }
        }
    }
    h
}

/// The position stream of one hashed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positions {
    lo: u32,
    hi: u32,
}

impl Positions {
    /// Splits a hash into its position stream.
    #[inline]
    pub const fn new(h: u64) -> Positions {
        Positions {
            lo: h as u32,
            hi: (h >> 32) as u32,
        }
    }

    /// `g(i) = lo + i * (hi | 1) mod 2^32`.
    #[inline]
    pub fn g(&self, i: u32) -> u32 {
        self.lo.wrapping_add(i.wrapping_mul(self.hi | 1))
    }

    /// Cell index in row `i` of a structure with `2^log2_cells` cells per row.
    #[inline]
    pub fn row_cell(&self, i: u32, log2_cells: u32) -> usize {
        top_bits(self.g(i), log2_cells) as usize
    }

    /// Block index in a blocked Bloom filter of `2^log2_bits` bits
    /// (512-bit blocks).
    #[inline]
    pub fn bloom_block(&self, log2_bits: u32) -> usize {
        top_bits(self.hi, log2_bits - 9) as usize
    }

    /// Bit `i` (0..512) within the key's Bloom block; distinct for i < 512.
    #[inline]
    pub fn bloom_bit(&self, i: u32) -> u32 {
        self.g(i) & 511
    }

    /// Bucket index in an exact table of `2^log2_buckets` buckets.
    #[inline]
    pub fn bucket(&self, log2_buckets: u32) -> usize {
        top_bits(self.g(0), log2_buckets) as usize
    }

    /// HyperLogLog register index for `2^p` registers.
    #[inline]
    pub fn hll_register(&self, p: u32) -> usize {
        top_bits(self.hi, p) as usize
    }

    /// HyperLogLog rank: position of the first set bit of `lo`, from 1;
    /// 33 when `lo` is zero.
    #[inline]
    pub fn hll_rank(&self) -> u8 {
        (self.lo.leading_zeros() + 1) as u8
    }
}

/// The top `n` bits of `x` (0 when `n == 0`).
#[inline]
fn top_bits(x: u32, n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        x >> (32 - n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generator_is_pinned() {
        // SplitMix64's published first output for state 0 (after one step
        // from seed 0) is 0xE220A8397B1DCDAF; pinning it catches a changed
        // generator, and pinning our first row catches a changed seed.
        assert_eq!(splitmix64(0).1, 0xE220_A839_7B1D_CDAF);
        assert_eq!(H3_ROWS[0], splitmix64(H3_SEED).1);
        assert_eq!(h3(b""), H3_LEN_ROWS[0]);
    }

    #[test]
    fn length_separates_trailing_zeros() {
        assert_ne!(h3(b"a"), h3(b"a\0"));
        assert_ne!(h3(b""), h3(b"\0"));
    }

    #[test]
    fn bloom_bits_are_distinct() {
        for seed in 0..1000u64 {
            let p = Positions::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut seen = [false; 512];
            for i in 0..16 {
                let b = p.bloom_bit(i) as usize;
                assert!(!seen[b]);
                seen[b] = true;
            }
        }
    }

    proptest! {
        #[test]
        fn table_matches_bit_serial_definition(key in proptest::collection::vec(any::<u8>(), 0..=KEY_MAX)) {
            prop_assert_eq!(h3(&key), h3_reference(&key));
        }

        #[test]
        fn h3_is_linear_for_equal_lengths(
            a in proptest::collection::vec(any::<u8>(), 8),
            b in proptest::collection::vec(any::<u8>(), 8),
        ) {
            // H3 is linear over GF(2): h(a) ^ h(b) ^ h(a ^ b) == h(0…0).
            let x: Vec<u8> = a.iter().zip(&b).map(|(p, q)| p ^ q).collect();
            prop_assert_eq!(h3(&a) ^ h3(&b) ^ h3(&x), h3(&[0u8; 8]));
        }
    }
}
