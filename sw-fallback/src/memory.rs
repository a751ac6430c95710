//! Metric memory: zeroed, huge-page backed arrays.
//!
//! Metric state is large (a StreaMon-sized configuration is 1 GiB) and
//! accessed at random, so with 4 KiB pages nearly every access also misses
//! the TLB. Each array is an anonymous mapping advised to use transparent
//! huge pages (2 MiB), and is touched once at install so that no page fault
//! (and no kernel page zeroing) lands on the per-packet path.

use bytemuck::Pod;
use memmap2::{Advice, MmapMut};

/// A fixed-length array of plain words in its own anonymous mapping.
pub(crate) struct HugeArray<T> {
    map: MmapMut,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

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
        HugeArray {
            map,
            len,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Pod> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &bytemuck::cast_slice(&self.map[..])[..self.len]
    }
}

impl<T: Pod> std::ops::DerefMut for HugeArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut(&mut self.map[..])[..self.len]
    }
}
