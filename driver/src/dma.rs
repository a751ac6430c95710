//! DMA memory: a region the device reads and writes by IOVA while the host
//! reaches it through a pointer ([`DmaRegion`], ixy.rs's `Dma<T>`).
//!
//! The device may write this memory at any time, so — as the `# Safety`
//! section of `vfio-ioctls`'s `vfio_dma_map` demands — no Rust reference to
//! it ever exists: every access below is a bounds-checked volatile copy or a
//! 16/32-bit atomic (the ownership words of ring descriptors, with acquire /
//! release ordering).
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// One DMA-able memory region: host pointer, IOVA, length.
#[derive(Clone)]
pub struct DmaRegion {
    host: NonNull<u8>,
    len: usize,
    iova: u64,
    /// Owns the mapping (and the IOMMU mapping, for VFIO); dropped last.
    _keep: Arc<dyn Send + Sync>,
}

// SAFETY: the pointer refers to a mapping owned by `_keep` (`Send + Sync`);
// all accesses are volatile or atomic, which any thread may perform.
unsafe impl Send for DmaRegion {}
// SAFETY: as above.
unsafe impl Sync for DmaRegion {}

impl std::fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaRegion")
            .field("host", &self.host)
            .field("len", &self.len)
            .field("iova", &format_args!("{:#x}", self.iova))
            .finish()
    }
}

impl DmaRegion {
    /// Wraps mapped DMA memory.
    ///
    /// # Safety
    /// `host..host + len` must be mapped readable and writable, 64-byte
    /// aligned, for as long as `keep` lives; the device (if any) reaches the
    /// same bytes at `iova`; and nobody may hold a Rust reference into it:
    /// only volatile and atomic accesses.
    pub unsafe fn new(
        host: NonNull<u8>,
        len: usize,
        iova: u64,
        keep: Arc<dyn Send + Sync>,
    ) -> DmaRegion {
        assert_eq!(host.as_ptr() as usize % 64, 0, "DMA region misaligned");
        DmaRegion {
            host,
            len,
            iova,
            _keep: keep,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address the device uses.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The host address (for diagnostics; never dereferenced outside this
    /// module).
    pub fn host_addr(&self) -> usize {
        self.host.as_ptr() as usize
    }

    #[inline]
    fn at(&self, offset: usize, n: usize, align: usize) -> *mut u8 {
        assert!(
            offset.checked_add(n).is_some_and(|end| end <= self.len) && offset % align == 0,
            "DMA access {offset:#x}+{n} outside the {:#x}-byte region or misaligned",
            self.len
        );
        // SAFETY: `offset + n <= len` was just checked.
        unsafe { self.host.as_ptr().add(offset) }
    }

    /// Copies `N` bytes in with volatile stores: 8 bytes at a time where the
    /// address is 8-aligned, then 4, 2 and 1 (a volatile store of a whole
    /// `[u8; N]` is lowered to `N` single-byte stores, which made byte
    /// copies the largest cost of the ring path).
    ///
    /// # Panics
    /// If the range is outside the region (a driver bug: offsets come from
    /// ring indices masked to the ring size).
    #[inline]
    pub fn write_array<const N: usize>(&self, offset: usize, bytes: &[u8; N]) {
        let p = self.at(offset, N, 1);
        let mut i = 0;
        macro_rules! store {
            ($t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                while i + W <= N && (p as usize + i) % W == 0 {
                    let v = <$t>::from_ne_bytes(bytes[i..i + W].try_into().expect("W bytes"));
                    // SAFETY: in bounds (`at` checked `offset + N`, and
                    // `i + W <= N`), aligned for `$t` (checked just above);
                    // the memory is never referenced, only accessed
                    // volatilely or atomically (`new`'s contract).
                    unsafe { p.add(i).cast::<$t>().write_volatile(v) };
                    i += W;
                }
            }};
        }
        store!(u64);
        store!(u32);
        store!(u16);
        while i < N {
            // SAFETY: in bounds (`i < N`, `at` checked `offset + N`); bytes
            // need no alignment; volatile only (`new`'s contract).
            unsafe { p.add(i).write_volatile(bytes[i]) };
            i += 1;
        }
    }

    /// Copies `N` bytes out with volatile loads, widest first as in
    /// [`DmaRegion::write_array`].
    ///
    /// # Panics
    /// As [`DmaRegion::write_array`].
    #[inline]
    pub fn read_array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let p = self.at(offset, N, 1);
        let mut out = [0u8; N];
        let mut i = 0;
        macro_rules! load {
            ($t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                while i + W <= N && (p as usize + i) % W == 0 {
                    // SAFETY: as in `write_array`.
                    let v = unsafe { p.add(i).cast::<$t>().read_volatile() };
                    out[i..i + W].copy_from_slice(&v.to_ne_bytes());
                    i += W;
                }
            }};
        }
        load!(u64);
        load!(u32);
        load!(u16);
        while i < N {
            // SAFETY: as in `write_array`'s byte loop.
            out[i] = unsafe { p.add(i).read_volatile() };
            i += 1;
        }
        out
    }

    /// Stores `N` little-endian `u64` words with `N` volatile 8-byte stores
    /// (the ring descriptors' hot path: no byte arrays in between).
    ///
    /// # Panics
    /// If the range is outside the region or `offset` is not 8-aligned.
    #[inline]
    pub fn write_words<const N: usize>(&self, offset: usize, words: &[u64; N]) {
        let p = self.at(offset, 8 * N, 8).cast::<u64>();
        for (i, w) in words.iter().enumerate() {
            // SAFETY: in bounds and 8-aligned (`at` checked `offset + 8N`
            // and the alignment; the region base is 64-aligned); the memory
            // is only accessed volatilely or atomically (`new`'s contract).
            unsafe { p.add(i).write_volatile(w.to_le()) }
        }
    }

    /// Loads `N` little-endian `u64` words with `N` volatile 8-byte loads.
    ///
    /// # Panics
    /// As [`DmaRegion::write_words`].
    #[inline]
    pub fn read_words<const N: usize>(&self, offset: usize) -> [u64; N] {
        let p = self.at(offset, 8 * N, 8).cast::<u64>();
        // SAFETY: as in `write_words`.
        std::array::from_fn(|i| u64::from_le(unsafe { p.add(i).read_volatile() }))
    }

    /// Volatile little-endian `u16` store.
    pub fn write_u16(&self, offset: usize, value: u16) {
        self.write_array(offset, &value.to_le_bytes());
    }

    /// Volatile little-endian `u64` store.
    pub fn write_u64(&self, offset: usize, value: u64) {
        self.write_array(offset, &value.to_le_bytes());
    }

    /// Volatile little-endian `u64` load.
    pub fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.read_array(offset))
    }

    /// Volatile little-endian `u32` store.
    pub fn write_u32(&self, offset: usize, value: u32) {
        self.write_array(offset, &value.to_le_bytes());
    }

    /// Volatile little-endian `u32` load.
    pub fn read_u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.read_array(offset))
    }

    #[inline]
    fn atomic_u16(&self, offset: usize) -> &AtomicU16 {
        let p = self.at(offset, 2, 2).cast::<u16>();
        // SAFETY: in bounds and 2-aligned (checked); an atomic over memory the
        // device also accesses atomically is allowed by `new`'s contract. The
        // `&AtomicU16` is a reference to an atomic, not to plain data: it
        // permits concurrent writers, and lives no longer than `self`.
        unsafe { AtomicU16::from_ptr(p) }
    }

    /// Loads a descriptor's ownership word with **acquire** ordering: the
    /// descriptor bytes read after it are at least as new as the word.
    #[inline]
    pub fn load_u16_acquire(&self, offset: usize) -> u16 {
        u16::from_le(self.atomic_u16(offset).load(Ordering::Acquire))
    }

    /// Stores a descriptor's ownership word with **release** ordering: the
    /// descriptor bytes written before it are visible to whoever acquires it.
    #[inline]
    pub fn store_u16_release(&self, offset: usize, value: u16) {
        self.atomic_u16(offset)
            .store(value.to_le(), Ordering::Release)
    }

    /// Zeroes the whole region (volatile, 8 bytes at a time).
    pub fn zero(&self) {
        let mut off = 0;
        while off + 8 <= self.len {
            self.write_u64(off, 0);
            off += 8;
        }
        while off < self.len {
            self.write_array(off, &[0u8; 1]);
            off += 1;
        }
    }
}

/// Anonymous shared memory for DMA: the simulated NIC's "host RAM" and the
/// backing store the VFIO provider maps into the IOMMU.
pub(crate) struct AnonMemory {
    map: memmap2::MmapMut,
    /// True if the mapping is backed by 2 MiB huge pages.
    pub(crate) huge: bool,
}

impl AnonMemory {
    /// Maps `len` bytes (rounded up to 4 KiB, or to 2 MiB when `try_huge` and
    /// huge pages are available), zeroed by the kernel.
    pub(crate) fn new(len: usize, try_huge: bool) -> std::io::Result<AnonMemory> {
        const HUGE: usize = 2 << 20;
        if try_huge {
            let huge_len = len.div_ceil(HUGE).max(1) * HUGE;
            if let Ok(map) = memmap2::MmapOptions::new()
                .len(huge_len)
                .huge(Some(21))
                .map_anon()
            {
                return Ok(AnonMemory { map, huge: true });
            }
        }
        let len = len.div_ceil(4096).max(1) * 4096;
        let map = memmap2::MmapOptions::new().len(len).map_anon()?;
        Ok(AnonMemory { map, huge: false })
    }

    /// Mapped length (after rounding).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The base pointer. Taken from `&mut` once, before the memory is shared;
    /// after that only this raw pointer is used.
    pub(crate) fn base(&mut self) -> NonNull<u8> {
        NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null")
    }
}

impl DmaRegion {
    /// A region over fresh anonymous memory at a chosen IOVA, with `keep`
    /// dropped after the memory (e.g. an IOMMU mapping to remove first).
    pub(crate) fn from_anon(
        mut mem: AnonMemory,
        iova: u64,
        keep: Option<Arc<dyn Send + Sync>>,
    ) -> DmaRegion {
        let base = mem.base();
        let len = mem.len();
        let owner: Arc<dyn Send + Sync> = Arc::new((keep, mem.map));
        // SAFETY: the mapping is `len` bytes, page aligned, owned by `owner`
        // for the region's life; no reference into it is ever created (the
        // `MmapMut` is only kept, never dereferenced, from here on).
        unsafe { DmaRegion::new(base, len, iova, owner) }
    }

    /// A region over anonymous memory that no device sees (tests, and the
    /// simulated NIC, whose IOMMU is a table of such regions).
    pub fn anonymous(len: usize, iova: u64) -> std::io::Result<DmaRegion> {
        Ok(DmaRegion::from_anon(
            AnonMemory::new(len, false)?,
            iova,
            None,
        ))
    }

    /// A sub-region `offset..offset + len` sharing this region's mapping.
    ///
    /// # Panics
    /// If the range is outside the region or `offset` is not 64-aligned.
    pub fn slice(&self, offset: usize, len: usize) -> DmaRegion {
        let p = self.at(offset, len, 64);
        DmaRegion {
            host: NonNull::new(p).expect("in-bounds pointer is not null"),
            len,
            iova: self.iova + offset as u64,
            _keep: self._keep.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_round_trips_and_bounds() {
        let r = DmaRegion::anonymous(4096, 0x1_0000_0000).unwrap();
        assert_eq!(r.len(), 4096);
        assert_eq!(r.iova(), 0x1_0000_0000);
        r.write_u64(8, 0x0102_0304_0506_0708);
        assert_eq!(r.read_array::<4>(8), [8, 7, 6, 5]);
        assert_eq!(r.read_u32(12), 0x0102_0304);
        r.store_u16_release(4094, 0xBEEF);
        assert_eq!(r.load_u16_acquire(4094), 0xBEEF);
        let s = r.slice(64, 128);
        assert_eq!(s.iova(), 0x1_0000_0040);
        s.write_u32(0, 7);
        assert_eq!(r.read_u32(64), 7);
        r.zero();
        assert_eq!(r.read_u64(8), 0);
        assert_eq!(s.read_u32(0), 0);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_access_panics_before_touching_memory() {
        let r = DmaRegion::anonymous(4096, 0).unwrap();
        r.write_u64(4090, 1);
    }
}
