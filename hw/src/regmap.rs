//! The configuration register map and the dump address space: the one
//! definition shared by the hardware banks and the host side (`streamon-sim`).
//!
//! Configuration: a write of `cfg_data` (64 bits) to `cfg_addr` (16 bits).
//! Installing a metric writes its map entry and its bank's parameters, the
//! last parameter write of a bank resetting it to the installed state.
//!
//! Dumps: `dump_addr = bank_select << 24 | word`. In a bank, words with bit
//! 23 clear are registers (word 0: the event counter, swaps or evictions),
//! words with bit 23 set are memory (layout per bank below).

/// Number of installed metrics.
pub const N_METRICS: usize = 0x0000;
/// Metric map: entry `m` at `METRIC_MAP + m`, `kind code | bank << 4`.
pub const METRIC_MAP: usize = 0x0010;
/// Most metric ids the map holds.
pub const MAX_METRICS: usize = 16;

/// Base of detector bank `i`: `+0` log2 bits, `+1` k, `+2` initial swap
/// threshold (installs).
pub const fn vd_bank(i: usize) -> usize {
    0x0100 + 16 * i
}

/// Base of exact bank `i`: `+0` log2 buckets, `+1` ways, `+3` mode (0
/// ExactCounter, 1 ExactEwma), `+2` tick shift (installs; written last).
pub const fn exact_bank(i: usize) -> usize {
    0x0200 + 16 * i
}

/// Most exact banks with a decay-table page (pages 2..16, below the
/// decaying filters' pages).
pub const MAX_EXACT_BANKS: usize = 14;

/// Decay-table page of exact bank `i` (address bits 11..16).
pub const fn exact_page(i: usize) -> usize {
    0x02 + i
}

/// Entry `age` (0..2048) of exact bank `i`'s decay table (ExactEwma): the
/// Q1.16 factor in `cfg_data` bits 0..17. Written before the install.
pub const fn exact_factor(i: usize, age: usize) -> usize {
    exact_page(i) << 11 | age
}

/// Base of global bank `i`: `+0` installs (zeroes the sum).
pub const fn global_bank(i: usize) -> usize {
    0x0300 + 16 * i
}

/// Base of decaying-filter bank `i`: `+0` log2 cells per row, `+1` rows,
/// `+2` tick shift (installs).
pub const fn df_bank(i: usize) -> usize {
    0x0400 + 16 * i
}

/// Decay-table page of decaying-filter bank `i` (address bits 11..16).
pub const fn df_page(i: usize) -> usize {
    0x10 + i
}

/// Entry `age` (0..2048) of decaying-filter bank `i`'s decay table: the
/// Q1.16 factor in `cfg_data` bits 0..17. Written before the install.
pub const fn df_factor(i: usize, age: usize) -> usize {
    df_page(i) << 11 | age
}

/// Dump bank select of detector bank `i`.
pub const fn dump_vd(i: usize) -> u32 {
    (i as u32) << 24
}

/// Dump bank select of exact bank `i`.
pub const fn dump_exact(i: usize) -> u32 {
    (0x10 + i as u32) << 24
}

/// Dump bank select of global bank `i`.
pub const fn dump_global(i: usize) -> u32 {
    (0x20 + i as u32) << 24
}

/// Dump bank select of decaying-filter bank `i`.
pub const fn dump_df(i: usize) -> u32 {
    (0x30 + i as u32) << 24
}

/// Memory words of a bank's dump space.
pub const DUMP_MEM: u32 = 1 << 23;
/// Register word: event counter (swaps, evictions).
pub const DUMP_EVENTS: u32 = 0;
/// Detector register word: index of the learning filter.
pub const DUMP_VD_LEARNING: u32 = 1;
/// Detector register word: zero bits of filter 0.
pub const DUMP_VD_ZEROS0: u32 = 2;
/// Detector register word: zero bits of filter 1.
pub const DUMP_VD_ZEROS1: u32 = 3;
/// Detector register word: swap threshold.
pub const DUMP_VD_THRESHOLD: u32 = 4;
/// Global register word: the sum.
pub const DUMP_GLOBAL_SUM: u32 = 1;

/// Detector memory word `j` (0..8) of block `b` of filter `f`.
pub const fn dump_vd_word(f: u32, b: u32, j: u32) -> u32 {
    DUMP_MEM | f << 22 | b << 3 | j
}

/// Exact-table memory word `j` (0..9, the contract's slot words) of way `w`
/// of bucket `b`.
pub const fn dump_slot_word(b: u32, w: u32, j: u32) -> u32 {
    DUMP_MEM | b << 7 | w << 4 | j
}

/// Decaying-filter memory word `j` (0: count, 1: tick) of cell `c` (< 2^18)
/// of row `r` (< 16).
pub const fn dump_df_word(r: u32, c: u32, j: u32) -> u32 {
    DUMP_MEM | r << 19 | c << 1 | j
}
