//! Metric memory: zeroed, huge-page backed arrays.
//!
//! Metric state is large (a StreaMon-sized configuration is 1 GiB) and
//! accessed at random, so with 4 KiB pages nearly every access also misses
//! the TLB. Each array is an anonymous mapping advised to use transparent
//! huge pages (2 MiB), and is touched once at install so that no page fault
//! (and no kernel page zeroing) lands on the per-packet path.
//!
//! Element access is on every op's path, so the slice is built from a
//! pointer and length kept at allocation (one of the two `unsafe` spots of
//! this crate) rather than re-cast with size and alignment checks each time.
#![allow(unsafe_code)]

use bytemuck::Pod;
use memmap2::{Advice, MmapMut};

/// A fixed-length array of plain words in its own anonymous mapping.
pub(crate) struct HugeArray<T> {
    /// Owns the memory `ptr` points into (kept only to be unmapped on drop;
    /// never resized while `self` lives).
    _map: MmapMut,
    ptr: *mut T,
    len: usize,
}

// SAFETY: the array owns its mapping exclusively (like a `Vec<T>`); `T` is
// plain data, so moving it between threads is sound.
unsafe impl<T: Pod + Send> Send for HugeArray<T> {}
// SAFETY: shared access only reads plain data; writes need `&mut self`.
unsafe impl<T: Pod + Sync> Sync for HugeArray<T> {}

impl<T: Pod> HugeArray<T> {
    /// `len` zeroed elements.
    ///
    /// # Panics
    /// Panics if the mapping cannot be made (out of address space): the
    /// engine cannot run without its memory, and sizes were validated at
    /// install.
    pub(crate) fn zeroed(len: usize) -> Self {
        let bytes = (len * std::mem::size_of::<T>()).max(1);
        let mut map = MmapMut::map_anon(bytes).expect("mapping metric memory");
        // Best effort: without THP the array still works, only slower.
        let _ = map.advise(Advice::HugePage);
        for page in map.chunks_mut(4096) {
            page[0] = 0;
        }
        // The checked cast proves size and alignment once (a mapping is
        // page-aligned and at least `len` elements long).
        let ptr = bytemuck::cast_slice_mut::<u8, T>(&mut map[..len * std::mem::size_of::<T>()])
            .as_mut_ptr();
        HugeArray {
            _map: map,
            ptr,
            len,
        }
    }
}

impl<T: Pod> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised (zeroed, `Pod`) elements
        // inside `self.map`, which lives as long as `self`; `&self` forbids
        // any `&mut` to them meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Pod> std::ops::DerefMut for HugeArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference to the elements.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}
