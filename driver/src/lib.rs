//! streamon's SmartNIC driver.
//!
//! The probe's metric layer can run on the FPGA of a SmartNIC. This crate is
//! the host side of that device: it defines the device interface once
//! ([`regs`]: the BAR0 register map; [`ring`]: the DMA ring formats carrying
//! the contract's 64-byte `Op` and 16-byte `OpResult`), reaches a device
//! through a [`RegionProvider`] (BAR0 registers + DMA memory), and drives it
//! as a [`streamon_contract::MetricEngine`] ([`DeviceEngine`]).
//!
//! Two providers, one driver:
//!
//! * [`vfio::VfioProvider`]: a real card bound to `vfio-pci`; BAR0 is
//!   mmapped from the VFIO device, ring memory is DMA-mapped through the
//!   IOMMU. Setup steps: `docs/operations.md`.
//! * [`sim_nic::SimNic`]: a simulated card in shared memory whose device side
//!   is a thread polling the doorbells and running a `MetricEngine` (the
//!   software engine; the Verilated RTL with the `sim` feature), writing
//!   completions back exactly as the hardware does.
//!
//! `unsafe` lives only in [`mmio`], [`dma`] and [`vfio`]; every block has a
//! `// SAFETY:` comment. Memory the device writes is reached only through
//! volatile or atomic accesses, never through `&`/`&mut`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod dma;
pub mod engine;
pub mod mmio;
pub mod provider;
pub mod regs;
pub mod ring;
pub mod sim_nic;
pub mod vfio;

pub use engine::{
    DeviceEngine, DeviceError, DriverConfig, DriverCounters, DriverError, STATUS_DEVICE_ERROR,
};
pub use provider::RegionProvider;
pub use sim_nic::{FaultPlan, SimNic, SimNicConfig};
