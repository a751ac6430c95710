//! The Verilator FFI: the one module of this crate with `unsafe`.
//!
//! [`Model`] owns one Verilated pipeline (freed on drop) and exposes the
//! shim's functions (`src/shim.cpp`) as safe methods.
#![allow(unsafe_code)]

use std::ffi::c_void;

extern "C" {
    fn stm_new() -> *mut c_void;
    fn stm_free(m: *mut c_void);
    fn stm_cycles(m: *const c_void) -> u64;
    fn stm_caps(m: *mut c_void) -> u16;
    fn stm_cfg(m: *mut c_void, addr: u16, data: u64);
    fn stm_dump(m: *mut c_void, addrs: *const u32, n: usize, out: *mut u64);
    fn stm_run(
        m: *mut c_void,
        ops: *const u8,
        n: usize,
        results: *mut u8,
        when: *mut u64,
        gap: u32,
    ) -> u64;
}

/// One Verilated pipeline.
pub struct Model {
    ptr: *mut c_void,
}

impl Model {
    /// Builds and resets a model.
    pub fn new() -> Model {
        // SAFETY: stm_new has no preconditions; it returns a fresh heap
        // object that only this Model owns and frees (in Drop).
        let ptr = unsafe { stm_new() };
        assert!(!ptr.is_null(), "stm_new returned null");
        Model { ptr }
    }

    /// Clock edges simulated so far.
    pub fn cycles(&self) -> u64 {
        // SAFETY: ptr is the live model owned by self.
        unsafe { stm_cycles(self.ptr) }
    }

    /// The capability bitmap output.
    pub fn caps(&mut self) -> u16 {
        // SAFETY: ptr is the live model owned by self (&mut: no aliasing).
        unsafe { stm_caps(self.ptr) }
    }

    /// One configuration register write (one clock).
    pub fn cfg(&mut self, addr: u16, data: u64) {
        // SAFETY: ptr is the live model owned by self (&mut: no aliasing).
        unsafe { stm_cfg(self.ptr, addr, data) }
    }

    /// Reads dump words, one clock each. The pipeline must be idle (it is
    /// between `run` calls, which drain it).
    pub fn dump(&mut self, addrs: &[u32]) -> Vec<u64> {
        let mut out = vec![0u64; addrs.len()];
        // SAFETY: addrs and out are valid for addrs.len() elements and do
        // not overlap; ptr is the live model owned by self.
        unsafe { stm_dump(self.ptr, addrs.as_ptr(), addrs.len(), out.as_mut_ptr()) };
        out
    }

    /// Streams `ops` (64-byte records), `gap` idle clocks after each, and
    /// returns the 16-byte results, the clock each result appeared at
    /// (counted from the first op's clock, 1-based) and the total clocks.
    ///
    /// # Panics
    /// Panics if the model lost a result (a hardware bug).
    pub fn run(&mut self, ops: &[[u8; 64]], gap: u32) -> (Vec<[u8; 16]>, Vec<u64>, u64) {
        let mut results = vec![[0u8; 16]; ops.len()];
        let mut when = vec![0u64; ops.len()];
        if ops.is_empty() {
            return (results, when, 0);
        }
        // SAFETY: ops holds ops.len() contiguous 64-byte records, results
        // ops.len() 16-byte records and when ops.len() u64s, as the shim
        // reads and writes; none overlap; ptr is the live model.
        let clocks = unsafe {
            stm_run(
                self.ptr,
                ops.as_ptr().cast(),
                ops.len(),
                results.as_mut_ptr().cast(),
                when.as_mut_ptr(),
                gap,
            )
        };
        assert_ne!(clocks, u64::MAX, "the pipeline lost a result");
        (results, when, clocks)
    }
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: ptr came from stm_new, is freed only here, exactly once.
        unsafe { stm_free(self.ptr) }
    }
}

// SAFETY: the Verilated model has no thread affinity (single-threaded
// model, no thread-local state of ours); moving the owner to another thread
// is sound, and &mut access is required for every call that mutates.
unsafe impl Send for Model {}
