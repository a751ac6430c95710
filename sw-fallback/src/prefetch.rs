//! Software prefetch: the one place this crate uses `unsafe`.
//!
//! The batch path hashes a whole batch first and asks for every cache line
//! it will touch before touching any, so the misses of a batch overlap
//! instead of queueing one after another.
#![allow(unsafe_code)]

/// Hints the CPU to bring the cache line holding `p` into L1.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is only a hint: it never faults and has no
    // architectural effect even for an invalid address, and SSE (which it
    // needs) is part of the x86_64 baseline every Rust x86_64 target enables.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
