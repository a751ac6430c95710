//! The canonical dump of a metric's logical state.
//!
//! After a run, the software engine and the hardware (through its memory
//! dump port) each produce one `Vec<u64>` per metric in this layout; the
//! equivalence tests compare them word for word. The layout describes the
//! *logical* state: however an implementation clears memory (the hardware
//! uses per-word epochs, the software `memset`), a cleared word dumps as 0.
//!
//! Every dump starts with `[kind, log2_size, width, counter]`, where
//! `counter` is the metric's event count (swaps for a detector, evictions for
//! an exact table, 0 otherwise). Then, by kind:
//!
//! * **VariationDetector**: `[learning, zeros_learning, zeros_detecting,
//!   threshold]`, then filter 0's blocks, then filter 1's; a block is 8 words,
//!   word `j` holding bits `64j..64j+64` (bit `b` of the block is bit `b % 64`
//!   of word `b / 64`).
//! * **DecayingFilter**: for each row, each cell: `value, tick` (2 words).
//! * **CountMin**: for each row, each cell: `value` (1 word).
//! * **HyperLogLog**: `[Z, V]`, then the registers, 8 per word, register `r`
//!   in byte `r % 8` (little-endian) of word `r / 8`.
//! * **Global**: `[sum]`.
//! * **Exact tables**: for each bucket, each way, 9 words:
//!   `[key[0..8], key[8..16], key[16..24], key[24..32], key[32..40],
//!   occupied | key_len << 8, value, tick, aux]`, key words little-endian,
//!   key bytes beyond `key_len` zero; a free slot is 9 zero words.

/// Words in the dump header.
pub const HEADER_WORDS: usize = 4;

/// Words per exact-table slot.
pub const SLOT_WORDS: usize = 9;

/// Words of detector registers after the header.
pub const VD_REGISTER_WORDS: usize = 4;

/// Words per 512-bit Bloom block.
pub const BLOCK_WORDS: usize = 8;
