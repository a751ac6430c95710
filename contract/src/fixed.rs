//! Fixed-point formats and every rounding of the metric layer.
//!
//! * **Counts** of time-decaying metrics (`tewma`, `tewma-fast`) are unsigned
//!   Q40.24 in a `u64`: an `Add` of value `v` adds `v << 24`. Decoding to a
//!   rate happens on the host ([`crate::MetricPlan::decode`]).
//! * **Decay factors** are Q1.16 in a `u32`, at most `1 << 16` (= 1.0).
//!   Applying one is `(count * factor) >> 16`, computed exactly in 128 bits
//!   by software and as limb products in hardware; the rounding is toward
//!   zero (floor), so a decayed count never exceeds the exact real value.
//! * **Ticks** are `(ts_ns >> tick_shift) as u32`, per metric. The age of a
//!   cell is `now.wrapping_sub(then)` read as an `i32`; a negative age (an
//!   out-of-order packet) counts as 0 and never moves a cell's tick back.
//! * The variation detector's swap-threshold factors ([`swap_factor`]) are
//!   integer square roots, so even that table involves no floating point.

/// Fractional bits of a decaying count.
pub const COUNT_FRAC_BITS: u32 = 24;

/// Fractional bits of a decay factor; `ONE_Q16` is 1.0.
pub const FACTOR_FRAC_BITS: u32 = 16;

/// 1.0 as a decay factor.
pub const ONE_Q16: u32 = 1 << FACTOR_FRAC_BITS;

/// Entries in a decay table: ages of `DECAY_TABLE_LEN` ticks or more decay
/// a count to zero.
pub const DECAY_TABLE_LEN: usize = 2048;

/// Converts an increment to a decaying count (Q40.24).
#[inline]
pub fn count_from_value(value: u32) -> u64 {
    (value as u64) << COUNT_FRAC_BITS
}

/// Applies a Q1.16 factor to a count: `floor(count * factor / 2^16)`.
#[inline]
pub fn apply_factor(count: u64, factor: u32) -> u64 {
    ((count as u128 * factor as u128) >> FACTOR_FRAC_BITS) as u64
}

/// The tick of a timestamp for a metric with this `tick_shift`.
#[inline]
pub fn tick(ts_ns: u64, tick_shift: u8) -> u32 {
    (ts_ns >> tick_shift) as u32
}

/// Age in ticks of something last touched at `then`, seen at `now`;
/// 0 when `now` is before `then` (modulo 2^32, read as signed).
#[inline]
pub fn age(now: u32, then: u32) -> u32 {
    let d = now.wrapping_sub(then) as i32;
    if d < 0 {
        0
    } else {
        d as u32
    }
}

/// The tick a cell keeps after being written at `now`: `now`, unless `now`
/// is before the cell's tick (out-of-order packet), which never moves time
/// back.
#[inline]
pub fn later_tick(now: u32, then: u32) -> u32 {
    if (now.wrapping_sub(then) as i32) < 0 {
        then
    } else {
        now
    }
}

/// Decays `count` by `age` ticks with `table` (index ≥ table length → 0).
#[inline]
pub fn decay(count: u64, age: u32, table: &[u32]) -> u64 {
    match table.get(age as usize) {
        Some(&f) => apply_factor(count, f),
        None => 0,
    }
}

/// Integer square root: the largest `r` with `r * r <= n`.
pub const fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    // Newton iteration from an over-estimate; monotonically decreasing.
    let mut x = 1u64 << (64 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Number of entries of the swap-factor table.
pub const SWAP_FACTOR_LEN: usize = 1024;

/// The variation detector's threshold-adaptation factor (Q?.16) for a
/// detecting filter with `dd` zero bits out of `m = 2^log2_bits`:
/// `√(m / (2·dd))`, with `dd` quantised to 1/1024 of `m` and taken at the
/// middle of its bucket: `isqrt(2^42 / (2·idx + 1))` where
/// `idx = min(dd * 1024 / m, 1023)`.
#[inline]
pub fn swap_factor(dd: u32, log2_bits: u32) -> u32 {
    let idx = ((dd as u64) << 10 >> log2_bits).min(SWAP_FACTOR_LEN as u64 - 1) as usize;
    SWAP_FACTORS[idx]
}

const fn build_swap_factors() -> [u32; SWAP_FACTOR_LEN] {
    let mut t = [0u32; SWAP_FACTOR_LEN];
    let mut i = 0;
    while i < SWAP_FACTOR_LEN {
        t[i] = isqrt((1u64 << 42) / (2 * i as u64 + 1)) as u32;
        i += 1;
    }
    t
}

/// `SWAP_FACTORS[idx] = isqrt(2^42 / (2·idx + 1))`: the constant table both
/// the hardware ROM and the software read.
pub static SWAP_FACTORS: [u32; SWAP_FACTOR_LEN] = build_swap_factors();

/// The variation detector's initial swap threshold for `m = 2^log2_bits`:
/// `floor(m / √2) = isqrt(m² / 2)`; the first swap comes when about 29 % of
/// the learning filter's bits are set.
pub const fn initial_swap_threshold(log2_bits: u32) -> u32 {
    isqrt(1u64 << (2 * log2_bits - 1)) as u32
}

/// The threshold after a swap: `floor(threshold * factor / 2^16)` clamped
/// to `[m/16, m − m/16]` so the detector neither swaps on every insert nor
/// never again.
pub fn adapt_swap_threshold(threshold: u32, factor: u32, log2_bits: u32) -> u32 {
    let m = 1u64 << log2_bits;
    let t = (threshold as u64 * factor as u64) >> 16;
    t.clamp(m / 16, m - m / 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn isqrt_edges() {
        for n in 0..10_000u64 {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
        assert_eq!(isqrt(u64::MAX), u32::MAX as u64);
        assert_eq!(isqrt(1 << 42), 1 << 21);
    }

    proptest! {
        #[test]
        fn isqrt_is_floor_sqrt(n in any::<u64>()) {
            let r = isqrt(n) as u128;
            prop_assert!(r * r <= n as u128 && (r + 1) * (r + 1) > n as u128);
        }

        #[test]
        fn decay_never_grows(count in any::<u64>(), f in 0u32..=ONE_Q16) {
            prop_assert!(apply_factor(count, f) <= count);
        }
    }

    #[test]
    fn first_swap_at_29_percent() {
        let m = 1u32 << 20;
        let t = initial_swap_threshold(20);
        // zeros < m/√2  <=>  set bits > 29.3 % of m
        let set_fraction = 1.0 - t as f64 / m as f64;
        assert!((set_fraction - 0.2929).abs() < 1e-3, "{set_fraction}");
    }

    #[test]
    fn swap_factor_matches_formula() {
        // dd = m/2 gives sqrt(1) = 1.0 (within the quantisation).
        let f = swap_factor(1 << 19, 20);
        assert!((f as f64 / 65536.0 - 1.0).abs() < 1e-3, "{f}");
        // dd = m/8 gives sqrt(4) = 2.0.
        let f = swap_factor(1 << 17, 20);
        assert!((f as f64 / 65536.0 - 2.0).abs() < 5e-3, "{f}");
    }

    #[test]
    fn ages_are_signed() {
        assert_eq!(age(10, 3), 7);
        assert_eq!(age(3, 10), 0);
        assert_eq!(age(2, u32::MAX - 1), 4);
        assert_eq!(later_tick(3, 10), 10);
        assert_eq!(later_tick(10, 3), 10);
    }
}
