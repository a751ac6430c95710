//! BAR0 register access: the one bounds-checked accessor pair
//! ([`Mmio::read32`] / [`Mmio::write32`]) every register read and write in
//! the driver goes through, like ixy.rs's `get_reg32`/`set_reg32`.
//!
//! Two access modes, chosen by the [`crate::RegionProvider`] that maps the
//! registers:
//!
//! * [`Access::Volatile`] for a real BAR mapped from VFIO: each access is one
//!   32-bit `read_volatile`/`write_volatile` (one PCIe transaction; the
//!   compiler may neither merge, split nor drop it).
//! * [`Access::Atomic`] for the simulated NIC, whose "registers" are plain
//!   shared memory read by another thread: each access is one 32-bit atomic
//!   (acquire loads, release stores), which is what the Rust memory model
//!   requires for memory shared between threads, and compiles to the same
//!   single `mov` on x86-64.
//!
//! The memory-ordering rules (release fence before a doorbell, acquire after
//! reading a phase bit) are in `docs/device.md`; the fences themselves are
//! issued by the ring code, not here.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// How a register window is accessed (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Volatile 32-bit accesses: device memory (a PCI BAR).
    Volatile,
    /// 32-bit atomics: ordinary memory shared with a device thread.
    Atomic,
}

/// A mapped register window (BAR0).
#[derive(Clone)]
pub struct Mmio {
    base: NonNull<u8>,
    len: usize,
    access: Access,
    /// Keeps the mapping alive as long as any `Mmio` refers to it.
    _keep: Arc<dyn Send + Sync>,
}

// SAFETY: `Mmio` only holds a pointer into a mapping kept alive by `_keep`
// (itself `Send + Sync`), and every access through it is a volatile or atomic
// 32-bit access, which any thread may perform concurrently.
unsafe impl Send for Mmio {}
// SAFETY: as above: `&Mmio` allows only volatile/atomic accesses.
unsafe impl Sync for Mmio {}

impl std::fmt::Debug for Mmio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mmio")
            .field("base", &self.base)
            .field("len", &self.len)
            .field("access", &self.access)
            .finish()
    }
}

impl Mmio {
    /// Wraps a mapped register window.
    ///
    /// # Safety
    /// `base..base + len` must be mapped readable and writable, 4-byte
    /// aligned, for as long as `keep` lives, and must be accessed by
    /// everybody (this process and the device) only through volatile or
    /// atomic accesses: no Rust reference to it may exist.
    pub unsafe fn new(
        base: NonNull<u8>,
        len: usize,
        access: Access,
        keep: Arc<dyn Send + Sync>,
    ) -> Mmio {
        assert_eq!(base.as_ptr() as usize % 4, 0, "register window misaligned");
        Mmio {
            base,
            len,
            access,
            _keep: keep,
        }
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty window.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The access mode.
    pub fn access(&self) -> Access {
        self.access
    }

    #[inline]
    fn reg_ptr(&self, offset: usize) -> *mut u32 {
        assert!(
            offset % 4 == 0 && offset.checked_add(4).is_some_and(|end| end <= self.len),
            "register offset {offset:#x} outside the {:#x}-byte BAR or misaligned",
            self.len
        );
        // SAFETY: `offset + 4 <= len` was just checked, so the result stays
        // inside the mapping `new`'s caller vouched for.
        unsafe { self.base.as_ptr().add(offset).cast::<u32>() }
    }

    /// Reads the 32-bit register at `offset`.
    ///
    /// # Panics
    /// If `offset` is not 4-aligned or the register is outside the window:
    /// offsets come from [`crate::regs`], so that is a driver bug.
    #[inline]
    pub fn read32(&self, offset: usize) -> u32 {
        let p = self.reg_ptr(offset);
        match self.access {
            // SAFETY: `p` is in bounds and aligned (checked by `reg_ptr`);
            // the window is only ever accessed volatilely (`new`'s contract).
            Access::Volatile => u32::from_le(unsafe { p.read_volatile() }),
            Access::Atomic => {
                // SAFETY: as above; an `AtomicU32` over shared memory is the
                // sanctioned way to race with the device thread.
                let reg = unsafe { AtomicU32::from_ptr(p) };
                u32::from_le(reg.load(Ordering::Acquire))
            }
        }
    }

    /// Writes the 32-bit register at `offset`.
    ///
    /// # Panics
    /// As [`Mmio::read32`].
    #[inline]
    pub fn write32(&self, offset: usize, value: u32) {
        let p = self.reg_ptr(offset);
        match self.access {
            // SAFETY: `p` is in bounds and aligned (checked by `reg_ptr`);
            // the window is only ever accessed volatilely.
            Access::Volatile => unsafe { p.write_volatile(value.to_le()) },
            Access::Atomic => {
                // SAFETY: as above, atomically.
                let reg = unsafe { AtomicU32::from_ptr(p) };
                reg.store(value.to_le(), Ordering::Release)
            }
        }
    }

    /// Reads a 64-bit value held in a `_LO`/`_HI` register pair. The high
    /// half is read before and after the low half so a carry between the
    /// reads is not missed (bounded: a counter cannot carry every time).
    pub fn read64(&self, lo: usize, hi: usize) -> u64 {
        let mut h1 = self.read32(hi);
        for _ in 0..4 {
            let l = self.read32(lo);
            let h2 = self.read32(hi);
            if h1 == h2 {
                return (u64::from(h1) << 32) | u64::from(l);
            }
            h1 = h2;
        }
        u64::from(h1) << 32
    }

    /// Writes a 64-bit value into a `_LO`/`_HI` pair, low half first.
    pub fn write64(&self, lo: usize, hi: usize, value: u64) {
        self.write32(lo, value as u32);
        self.write32(hi, (value >> 32) as u32);
    }
}

impl Mmio {
    /// A register window over fresh zeroed anonymous shared memory, accessed
    /// atomically: the simulated NIC's register file.
    pub fn shared_anonymous(len: usize) -> std::io::Result<Mmio> {
        let mut map = memmap2::MmapOptions::new().len(len).map_anon()?;
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
        // SAFETY: `map` is `len` bytes, page aligned and stays mapped while
        // the `Arc` holding it lives (inside the `Mmio` and its clones); the
        // pointer was taken before the map was shared, and the `MmapMut` is
        // never dereferenced again: all accesses go through `read32`/`write32`.
        Ok(unsafe { Mmio::new(base, len, Access::Atomic, Arc::new(map)) })
    }
}
