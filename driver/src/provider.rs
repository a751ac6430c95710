//! The one seam between the driver and a device: a [`RegionProvider`] hands
//! out the BAR0 register window and DMA memory. The driver code above it
//! ([`crate::DeviceEngine`]) is the same for a real card
//! ([`crate::vfio::VfioProvider`]) and the simulated one
//! ([`crate::sim_nic::SimNic`]), as ixy.rs's `IxyDevice` hides its backends.

use crate::dma::DmaRegion;
use crate::mmio::Mmio;

/// Where a device's registers and DMA memory come from.
pub trait RegionProvider: Send {
    /// BAR0, mapped. Every register access goes through its bounds-checked
    /// `read32`/`write32`.
    fn registers(&self) -> &Mmio;

    /// Allocates `len` bytes of zeroed memory the device can reach at the
    /// returned region's IOVA (64-byte aligned; rounded up to pages).
    fn alloc_dma(&self, len: usize) -> std::io::Result<DmaRegion>;

    /// A one-line description for logs and errors ("vfio 0000:01:00.0",
    /// "simulated NIC (software engine)").
    fn describe(&self) -> String;
}
