//! The VFIO backend: a real streamon card bound to `vfio-pci`.
//!
//! VFIO lets a user-space process own a PCI function safely: the kernel
//! puts the device behind the IOMMU, so the card can only DMA into memory
//! this process mapped for it. A *container* (`/dev/vfio/vfio`) holds an
//! IOMMU address space; a *group* (`/dev/vfio/<n>`) is the smallest set of
//! devices the IOMMU can isolate; the *device* fd gives its regions (BAR0 is
//! region 0, PCI config space region 7). [`VfioProvider::open`] does the
//! steps in that order with `vfio-ioctls` (no KVM), maps BAR0 with
//! `memmap2`, enables bus mastering, and [`RegionProvider::alloc_dma`] maps
//! ring memory (2 MiB huge pages when available) into the container.
//!
//! When something is missing — no IOMMU, no `vfio-pci` module, the card
//! bound to another driver, no permission — [`VfioSetupError`] says which
//! and points to the numbered step of `docs/operations.md` that fixes it.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioOps};

use crate::dma::{AnonMemory, DmaRegion};
use crate::mmio::{Access, Mmio};
use crate::provider::RegionProvider;
use crate::regs;

/// VFIO region index of BAR0 (`VFIO_PCI_BAR0_REGION_INDEX`).
const BAR0_REGION: u32 = 0;
/// VFIO region index of PCI config space (`VFIO_PCI_CONFIG_REGION_INDEX`).
const CONFIG_REGION: u32 = 7;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
const REGION_FLAG_MMAP: u32 = 1 << 2;
/// PCI config space: the command register and its bus-master bit.
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MASTER: u16 = 1 << 2;
/// First IOVA handed out for DMA memory.
const IOVA_BASE: u64 = 0x1_0000_0000;

/// Why a VFIO device could not be opened. Each message names the
/// `docs/operations.md` step that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum VfioSetupError {
    /// No PCI function at that address.
    #[error("no PCI device {pci} (check the address with `lspci -D`; docs/operations.md step 1)")]
    NoSuchDevice {
        /// The address given.
        pci: String,
    },
    /// The device has no IOMMU group: the IOMMU is off.
    #[error("{pci} has no IOMMU group: enable the IOMMU (intel_iommu=on / amd_iommu=on, VT-d in firmware; docs/operations.md step 2)")]
    NoIommuGroup {
        /// The address.
        pci: String,
    },
    /// `/dev/vfio/vfio` is missing: the vfio modules are not loaded.
    #[error("/dev/vfio/vfio is missing: load the module with `modprobe vfio-pci` (docs/operations.md step 3)")]
    VfioModuleMissing,
    /// The device is bound to another driver (or none).
    #[error("{pci} is bound to {}, not vfio-pci: bind it (docs/operations.md step 4)", driver.as_deref().unwrap_or("no driver"))]
    NotBoundToVfio {
        /// The address.
        pci: String,
        /// The driver it is bound to.
        driver: Option<String>,
    },
    /// No permission on the VFIO group or container.
    #[error("no permission to open {path}: run as root or give your user the group (docs/operations.md step 5)")]
    Permission {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A VFIO ioctl failed.
    #[error("vfio: cannot {step}")]
    Vfio {
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: VfioError,
    },
    /// BAR0 cannot be mmapped or is smaller than the register map.
    #[error("{pci}: BAR0 ({size} bytes, flags {flags:#x}) cannot be mapped as a {}-byte register window", regs::BAR0_LEN)]
    BadBar {
        /// The address.
        pci: String,
        /// Region size.
        size: u64,
        /// VFIO region flags.
        flags: u32,
    },
    /// mmap of BAR0 failed.
    #[error("cannot mmap BAR0 of {pci}")]
    MapBar {
        /// The address.
        pci: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Checks the sysfs side before any ioctl, so the common setup mistakes get
/// their own error. Returns the device's sysfs path.
pub fn preflight(pci: &str) -> Result<PathBuf, VfioSetupError> {
    preflight_in(
        Path::new("/sys/bus/pci/devices"),
        Path::new("/dev/vfio"),
        pci,
    )
}

fn preflight_in(sysfs: &Path, dev_vfio: &Path, pci: &str) -> Result<PathBuf, VfioSetupError> {
    let path = sysfs.join(pci);
    if !path.exists() {
        return Err(VfioSetupError::NoSuchDevice { pci: pci.into() });
    }
    let group = std::fs::read_link(path.join("iommu_group"))
        .map_err(|_| VfioSetupError::NoIommuGroup { pci: pci.into() })?;
    let container = dev_vfio.join("vfio");
    if !container.exists() {
        return Err(VfioSetupError::VfioModuleMissing);
    }
    let driver = std::fs::read_link(path.join("driver"))
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    if driver.as_deref() != Some("vfio-pci") {
        return Err(VfioSetupError::NotBoundToVfio {
            pci: pci.into(),
            driver,
        });
    }
    let group_file = dev_vfio.join(group.file_name().unwrap_or_default());
    for file in [&container, &group_file] {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(file)
            .map_err(|source| VfioSetupError::Permission {
                path: file.clone(),
                source,
            })?;
    }
    Ok(path)
}

/// A streamon card behind VFIO.
pub struct VfioProvider {
    pci: String,
    container: Arc<VfioContainer>,
    regs: Mmio,
    next_iova: Mutex<u64>,
    /// Kept last: closing the device fd after the BAR mapping is gone.
    _device: VfioDevice,
}

impl std::fmt::Debug for VfioProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioProvider")
            .field("pci", &self.pci)
            .finish()
    }
}

impl VfioProvider {
    /// Opens the card at PCI address `pci` ("0000:01:00.0").
    pub fn open(pci: &str) -> Result<VfioProvider, VfioSetupError> {
        let sysfs = preflight(pci)?;
        let container =
            Arc::new(
                VfioContainer::new(None).map_err(|source| VfioSetupError::Vfio {
                    step: "open the container",
                    source,
                })?,
            );
        let ops: Arc<dyn VfioOps> = container.clone();
        let device =
            VfioDevice::new(&sysfs, ops, false).map_err(|source| VfioSetupError::Vfio {
                step: "open the device",
                source,
            })?;
        let flags = device.get_region_flags(BAR0_REGION);
        let size = device.get_region_size(BAR0_REGION);
        if flags & REGION_FLAG_MMAP == 0 || size < regs::BAR0_LEN as u64 {
            return Err(VfioSetupError::BadBar {
                pci: pci.into(),
                size,
                flags,
            });
        }
        let map = memmap2::MmapOptions::new()
            .offset(device.get_region_offset(BAR0_REGION))
            .len(regs::BAR0_LEN)
            .map_raw(device.as_raw_fd())
            .map_err(|source| VfioSetupError::MapBar {
                pci: pci.into(),
                source,
            })?;
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
        // SAFETY: `map` is a `BAR0_LEN`-byte shared mapping of the device's
        // BAR0 (checked mmappable and at least that large), page aligned, and
        // owned by the `Arc` given as keep-alive; `MmapRaw` exposes only raw
        // pointers, so no reference into device memory is ever created, and
        // `Mmio` accesses it only volatilely.
        let regs = unsafe { Mmio::new(base, regs::BAR0_LEN, Access::Volatile, Arc::new(map)) };
        // Bus mastering, so the card may DMA (PCI command register bit 2).
        let mut cmd = [0u8; 2];
        device.region_read(CONFIG_REGION, &mut cmd, PCI_COMMAND);
        let cmd = u16::from_le_bytes(cmd) | PCI_COMMAND_MASTER;
        device.region_write(CONFIG_REGION, &cmd.to_le_bytes(), PCI_COMMAND);
        Ok(VfioProvider {
            pci: pci.into(),
            container,
            regs,
            next_iova: Mutex::new(IOVA_BASE),
            _device: device,
        })
    }
}

/// An IOMMU mapping, removed when the last region using it is dropped
/// (before its memory is unmapped: `DmaRegion::from_anon` drops it first).
struct IommuMapping {
    container: Arc<VfioContainer>,
    iova: u64,
    len: usize,
}

impl Drop for IommuMapping {
    fn drop(&mut self) {
        // Nothing useful can be done about a failed unmap at drop time: the
        // container is closed with the provider anyway.
        let _ = self.container.vfio_dma_unmap(self.iova, self.len);
    }
}

impl RegionProvider for VfioProvider {
    fn registers(&self) -> &Mmio {
        &self.regs
    }

    fn alloc_dma(&self, len: usize) -> io::Result<DmaRegion> {
        let mut mem = AnonMemory::new(len, true)?;
        let (base, len, huge) = (mem.base(), mem.len(), mem.huge);
        let align = if huge { 2 << 20 } else { 4096 };
        let iova = {
            let mut next = self.next_iova.lock().unwrap_or_else(|e| e.into_inner());
            let iova = next.div_ceil(align) * align;
            *next = iova + len as u64;
            iova
        };
        // SAFETY: `base..base + len` is a fresh anonymous mapping owned by
        // `mem`, which outlives the IOMMU mapping (`from_anon` drops the
        // `IommuMapping` before the memory). No Rust reference into it exists
        // or will: `DmaRegion` reaches it only with volatile/atomic accesses,
        // as `vfio_dma_map`'s contract requires.
        unsafe { self.container.vfio_dma_map(iova, len, base.as_ptr()) }
            .map_err(io::Error::other)?;
        let keep = Arc::new(IommuMapping {
            container: self.container.clone(),
            iova,
            len,
        });
        Ok(DmaRegion::from_anon(mem, iova, Some(keep)))
    }

    fn describe(&self) -> String {
        format!("vfio {}", self.pci)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs and /dev/vfio: each missing piece gives its own error.
    #[test]
    fn preflight_names_the_missing_step() {
        let root = std::env::temp_dir().join(format!("streamon-vfio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let sys = root.join("sys");
        let dev = root.join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        let pci = "0000:01:00.0";
        let e = preflight_in(&sys, &dev, pci).unwrap_err();
        assert!(matches!(e, VfioSetupError::NoSuchDevice { .. }), "{e}");
        assert!(e.to_string().contains("step 1"));
        let d = sys.join(pci);
        std::fs::create_dir_all(&d).unwrap();
        let e = preflight_in(&sys, &dev, pci).unwrap_err();
        assert!(matches!(e, VfioSetupError::NoIommuGroup { .. }), "{e}");
        assert!(e.to_string().contains("intel_iommu=on"));
        std::os::unix::fs::symlink("../../kernel/iommu_groups/42", d.join("iommu_group")).unwrap();
        let e = preflight_in(&sys, &dev, pci).unwrap_err();
        assert!(matches!(e, VfioSetupError::VfioModuleMissing), "{e}");
        std::fs::write(dev.join("vfio"), b"").unwrap();
        std::os::unix::fs::symlink("../../drivers/ixgbe", d.join("driver")).unwrap();
        let e = preflight_in(&sys, &dev, pci).unwrap_err();
        assert!(
            e.to_string().contains("bound to ixgbe, not vfio-pci"),
            "{e}"
        );
        std::fs::remove_file(d.join("driver")).unwrap();
        std::os::unix::fs::symlink("../../drivers/vfio-pci", d.join("driver")).unwrap();
        let e = preflight_in(&sys, &dev, pci).unwrap_err();
        assert!(
            matches!(e, VfioSetupError::Permission { ref path, .. } if path.ends_with("42")),
            "{e}"
        );
        std::fs::write(dev.join("42"), b"").unwrap();
        assert_eq!(preflight_in(&sys, &dev, pci).unwrap(), d);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_device_is_a_clear_error_here() {
        let e = VfioProvider::open("0000:ff:1f.7").unwrap_err();
        assert!(matches!(e, VfioSetupError::NoSuchDevice { .. }), "{e}");
    }
}
