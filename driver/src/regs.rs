//! The BAR0 register map of the streamon SmartNIC: every register offset
//! and bit field, written down once (`docs/device.md` is the prose).
//!
//! Named like ixy.rs's `constants.rs`: plain `pub const` offsets for the
//! single registers, `const fn`s of an index for the indexed ones
//! ([`metric_kind`], [`sq_tail`], [`counter_lo`], …). All registers are 32
//! bits wide, little-endian, at 4-byte aligned offsets; 64-bit values are a
//! `_LO`/`_HI` pair, written low first (the high write latches the pair).
//!
//! Bit-level registers (capabilities, status, control) are decoded with
//! `bitvec` views ([`Capabilities`], [`DeviceStatus`]) instead of masks, so
//! each field is named once with its bit range.

use bitvec::prelude::*;
use streamon_contract::MetricKind;

/// Size of BAR0 in bytes (16 KiB: four 4 KiB pages).
pub const BAR0_LEN: usize = 0x4000;

/// The identification magic, "STMN" read as a little-endian `u32`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"STMN");
/// Major version of this register map and ring format. A device with another
/// major version is refused; minor versions only add registers.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version of this register map.
pub const VERSION_MINOR: u16 = 0;

#[rustfmt::skip]
mod offsets {
    // --- Identification (page 0) ------------------------------------------
    /// RO: [`super::MAGIC`].
    pub const ID_MAGIC: usize           = 0x0000;
    /// RO: `major << 16 | minor`.
    pub const ID_VERSION: usize         = 0x0004;
    /// RO: capability bits, see [`super::Capabilities`].
    pub const CAPS: usize               = 0x0008;
    /// RO: bit `k` set = [`streamon_contract::MetricKind`] `k` is hosted.
    pub const CAPS_METRIC_KINDS: usize  = 0x000C;
    /// RO: largest ring, in entries (a power of two).
    pub const CAPS_MAX_RING: usize      = 0x0010;
    /// RO: number of queue pairs.
    pub const CAPS_QUEUES: usize        = 0x0014;

    // --- Control and status -------------------------------------------------
    /// RW: bit 0 `ENABLE`, bit 1 `RESET` (self-clearing).
    pub const DEVICE_CTRL: usize        = 0x0040;
    /// RO: see [`super::DeviceStatus`].
    pub const DEVICE_STATUS: usize      = 0x0044;
    /// RW1C: interrupt cause bits (same layout as the low status bits).
    pub const IRQ_STATUS: usize         = 0x0048;
    /// RW: interrupt mask (1 = enabled).
    pub const IRQ_MASK: usize           = 0x004C;

    // --- Metric configuration window ---------------------------------------
    /// RO: number of installed metrics.
    pub const CFG_METRIC_COUNT: usize   = 0x0100;
    /// Base of the per-metric kind array, see [`super::metric_kind`].
    pub const CFG_METRIC_KIND_BASE: usize = 0x0400;
    /// Maximum number of metrics the window describes.
    pub const CFG_METRICS_MAX: usize    = 256;

    // --- Queue pairs (page 1) ------------------------------------------------
    /// Base of queue pair 0; queue pair `q` is at `QUEUE_BASE + q * QUEUE_STRIDE`.
    pub const QUEUE_BASE: usize         = 0x1000;
    /// Bytes per queue pair register block.
    pub const QUEUE_STRIDE: usize       = 0x40;
    /// Queue pairs the map has room for.
    pub const QUEUES_MAX: usize         = 16;
    /// Queue block: submission ring IOVA, low half.
    pub const Q_SQ_BASE_LO: usize       = 0x00;
    /// Queue block: submission ring IOVA, high half.
    pub const Q_SQ_BASE_HI: usize       = 0x04;
    /// Queue block: submission ring entries.
    pub const Q_SQ_SIZE: usize          = 0x08;
    /// Queue block: submission tail doorbell.
    pub const Q_SQ_TAIL: usize          = 0x0C;
    /// Queue block: device submission head (RO).
    pub const Q_SQ_HEAD: usize          = 0x10;
    /// Queue block: completion ring IOVA, low half.
    pub const Q_CQ_BASE_LO: usize       = 0x14;
    /// Queue block: completion ring IOVA, high half.
    pub const Q_CQ_BASE_HI: usize       = 0x18;
    /// Queue block: completion ring entries.
    pub const Q_CQ_SIZE: usize          = 0x1C;
    /// Queue block: completion head doorbell.
    pub const Q_CQ_HEAD: usize          = 0x20;
    /// Queue block: device completion tail (RO).
    pub const Q_CQ_TAIL: usize          = 0x24;
    /// Queue block: control (bit 0 enable).
    pub const Q_CTRL: usize             = 0x28;

    // --- Counters (page 2) -----------------------------------------------------
    /// Base of the 64-bit counters (LO/HI pairs), see [`super::Counter`].
    pub const COUNTER_BASE: usize       = 0x2000;

    // --- Admin (page 3): state dumps -----------------------------------------
    /// RW: admin command (`ADMIN_CMD_*`); the device writes 0 when done.
    pub const ADMIN_CMD: usize          = 0x3000;
    /// RW: admin argument (the metric id for a dump).
    pub const ADMIN_ARG: usize          = 0x3004;
    /// RW: admin buffer IOVA, low half.
    pub const ADMIN_BUF_LO: usize       = 0x3008;
    /// RW: admin buffer IOVA, high half.
    pub const ADMIN_BUF_HI: usize       = 0x300C;
    /// RW: admin buffer length in bytes.
    pub const ADMIN_BUF_LEN: usize      = 0x3010;
    /// RW: admin status (`ADMIN_STATUS_*`).
    pub const ADMIN_STATUS: usize       = 0x3014;
    /// RO: `u64` words written (or needed) by the last command.
    pub const ADMIN_RESULT_WORDS: usize = 0x3018;
}

pub use offsets::*;

/// `DEVICE_CTRL` bit 0: the device processes queues.
pub const CTRL_ENABLE: u32 = 1 << 0;
/// `DEVICE_CTRL` bit 1: reset all queues, counters and error bits; the
/// device clears it when done and sets `STATUS.READY`.
pub const CTRL_RESET: u32 = 1 << 1;
/// `Q_CTRL` bit 0: the queue pair is enabled (base and size registers are
/// latched on the 0→1 edge).
pub const QCTRL_ENABLE: u32 = 1 << 0;

/// `ADMIN_CMD`: no command / the device finished the last one.
pub const ADMIN_CMD_IDLE: u32 = 0;
/// `ADMIN_CMD`: dump metric `ADMIN_ARG` as `u64` words into the buffer.
pub const ADMIN_CMD_DUMP: u32 = 1;
/// `ADMIN_STATUS`: command running (written by the driver before `ADMIN_CMD`).
pub const ADMIN_STATUS_BUSY: u32 = 0;
/// `ADMIN_STATUS`: done; `ADMIN_RESULT_WORDS` words were written.
pub const ADMIN_STATUS_OK: u32 = 1;
/// `ADMIN_STATUS`: the metric is not installed.
pub const ADMIN_STATUS_NO_METRIC: u32 = 2;
/// `ADMIN_STATUS`: the buffer is too small; `ADMIN_RESULT_WORDS` is the need.
pub const ADMIN_STATUS_TOO_SMALL: u32 = 3;
/// `ADMIN_STATUS`: the buffer address is not DMA-mapped (IOMMU fault).
pub const ADMIN_STATUS_BAD_ADDRESS: u32 = 4;
/// `ADMIN_STATUS`: unknown command.
pub const ADMIN_STATUS_BAD_COMMAND: u32 = 5;

/// `CFG_METRIC_KIND(i)`: the [`MetricKind`] byte of metric `i` (0 = none).
pub const fn metric_kind(i: usize) -> usize {
    CFG_METRIC_KIND_BASE + 4 * i
}

const fn queue_reg(q: usize, reg: usize) -> usize {
    QUEUE_BASE + q * QUEUE_STRIDE + reg
}

/// RW: low 32 bits of queue `q`'s submission ring IOVA.
pub const fn sq_base_lo(q: usize) -> usize {
    queue_reg(q, Q_SQ_BASE_LO)
}
/// RW: high 32 bits of queue `q`'s submission ring IOVA.
pub const fn sq_base_hi(q: usize) -> usize {
    queue_reg(q, Q_SQ_BASE_HI)
}
/// RW: entries in queue `q`'s submission ring (a power of two).
pub const fn sq_size(q: usize) -> usize {
    queue_reg(q, Q_SQ_SIZE)
}
/// WO doorbell: the driver's submission tail (index of the next free slot,
/// `0..size`). Written after a release fence.
pub const fn sq_tail(q: usize) -> usize {
    queue_reg(q, Q_SQ_TAIL)
}
/// RO: the device's submission head (next slot it will read), for
/// diagnostics; the driver learns it from completions (`sq_head` field).
pub const fn sq_head(q: usize) -> usize {
    queue_reg(q, Q_SQ_HEAD)
}
/// RW: low 32 bits of queue `q`'s completion ring IOVA.
pub const fn cq_base_lo(q: usize) -> usize {
    queue_reg(q, Q_CQ_BASE_LO)
}
/// RW: high 32 bits of queue `q`'s completion ring IOVA.
pub const fn cq_base_hi(q: usize) -> usize {
    queue_reg(q, Q_CQ_BASE_HI)
}
/// RW: entries in queue `q`'s completion ring (a power of two).
pub const fn cq_size(q: usize) -> usize {
    queue_reg(q, Q_CQ_SIZE)
}
/// WO doorbell: the driver's completion head (next slot it will read): the
/// slots before it are free for the device again.
pub const fn cq_head(q: usize) -> usize {
    queue_reg(q, Q_CQ_HEAD)
}
/// RO: the device's completion tail, for diagnostics.
pub const fn cq_tail(q: usize) -> usize {
    queue_reg(q, Q_CQ_TAIL)
}
/// RW: queue `q` control, bit 0 [`QCTRL_ENABLE`].
pub const fn queue_ctrl(q: usize) -> usize {
    queue_reg(q, Q_CTRL)
}

/// The device's 64-bit counters, in register order. Counter `c` is at
/// [`counter_lo`]`(c as usize)` / [`counter_hi`]. Counters reset only with
/// `CTRL_RESET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Descriptors read from submission rings.
    OpsSubmitted = 0,
    /// Completions written.
    OpsCompleted = 1,
    /// Doorbell writes seen (submission tail changes).
    Doorbells = 2,
    /// Batches handed to the metric pipeline.
    Batches = 3,
    /// Descriptors dropped: read with the wrong phase bit, or left in the
    /// ring when the queue entered the error state.
    SqDrops = 4,
    /// Times the device waited because the completion ring was full.
    CqFullStalls = 5,
    /// Doorbell values out of range (≥ ring size).
    BadDoorbells = 6,
    /// DMA addresses that were not mapped (IOMMU faults).
    DmaFaults = 7,
}

impl Counter {
    /// Every counter, in register order.
    pub const ALL: [Counter; 8] = [
        Counter::OpsSubmitted,
        Counter::OpsCompleted,
        Counter::Doorbells,
        Counter::Batches,
        Counter::SqDrops,
        Counter::CqFullStalls,
        Counter::BadDoorbells,
        Counter::DmaFaults,
    ];
}

/// RO: low half of counter `c`.
pub const fn counter_lo(c: usize) -> usize {
    COUNTER_BASE + 8 * c
}
/// RO: high half of counter `c`.
pub const fn counter_hi(c: usize) -> usize {
    COUNTER_BASE + 8 * c + 4
}

/// Bit positions of the `CAPS` register.
#[rustfmt::skip]
mod caps_bits {
    /// The device writes the `sq_head` field of completions.
    pub const SQ_HEAD_IN_COMPLETION: usize = 0;
    /// The device honours the `IF_NEW` gate across batches.
    pub const GATE_ACROSS_BATCHES: usize   = 1;
    /// The admin dump command is implemented.
    pub const ADMIN_DUMP: usize            = 2;
    /// The device can raise MSI-X interrupts on completions.
    pub const MSIX: usize                  = 3;
    /// Bits 8..16: log2 of the largest batch the pipeline takes at once.
    pub const MAX_BATCH_LOG2: core::ops::Range<usize> = 8..16;
}

/// The decoded `CAPS` register (a `bitvec` view over its 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(pub u32);

impl Capabilities {
    fn bits(&self) -> &BitSlice<u32, Lsb0> {
        self.0.view_bits::<Lsb0>()
    }
    fn set(&mut self, bit: usize, on: bool) {
        self.0.view_bits_mut::<Lsb0>().set(bit, on);
    }
    /// Completions carry the device's submission head.
    pub fn sq_head_in_completion(&self) -> bool {
        self.bits()[caps_bits::SQ_HEAD_IN_COMPLETION]
    }
    /// The `IF_NEW` gate crosses batch boundaries (the contract requires it).
    pub fn gate_across_batches(&self) -> bool {
        self.bits()[caps_bits::GATE_ACROSS_BATCHES]
    }
    /// The admin dump command exists.
    pub fn admin_dump(&self) -> bool {
        self.bits()[caps_bits::ADMIN_DUMP]
    }
    /// MSI-X interrupts are available.
    pub fn msix(&self) -> bool {
        self.bits()[caps_bits::MSIX]
    }
    /// log2 of the largest batch the pipeline takes at once.
    pub fn max_batch_log2(&self) -> u32 {
        self.bits()[caps_bits::MAX_BATCH_LOG2].load_le::<u32>()
    }
    /// Builds a register value (the device side and tests use it).
    pub fn encode(
        sq_head_in_completion: bool,
        gate_across_batches: bool,
        admin_dump: bool,
        msix: bool,
        max_batch_log2: u32,
    ) -> Capabilities {
        let mut c = Capabilities(0);
        c.set(caps_bits::SQ_HEAD_IN_COMPLETION, sq_head_in_completion);
        c.set(caps_bits::GATE_ACROSS_BATCHES, gate_across_batches);
        c.set(caps_bits::ADMIN_DUMP, admin_dump);
        c.set(caps_bits::MSIX, msix);
        c.0.view_bits_mut::<Lsb0>()[caps_bits::MAX_BATCH_LOG2].store_le(max_batch_log2 & 0xff);
        c
    }
}

/// The `CAPS_METRIC_KINDS` register: which [`MetricKind`]s the hardware
/// hosts (bit `k` for kind byte `k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricKinds(pub u32);

impl MetricKinds {
    /// True if `kind` is hosted.
    pub fn hosts(&self, kind: MetricKind) -> bool {
        self.0.view_bits::<Lsb0>()[kind as usize]
    }
    /// The register value for a set of kinds.
    pub fn of(kinds: &[MetricKind]) -> MetricKinds {
        let mut v = 0u32;
        for &k in kinds {
            v.view_bits_mut::<Lsb0>().set(k as usize, true);
        }
        MetricKinds(v)
    }
}

/// Bit positions of `DEVICE_STATUS` (and `IRQ_STATUS`).
#[rustfmt::skip]
mod status_bits {
    pub const READY: usize          = 0;
    pub const RUNNING: usize        = 1;
    pub const FATAL: usize          = 2;
    pub const SQ_PHASE_ERROR: usize = 3;
    pub const BAD_DOORBELL: usize   = 4;
    pub const DMA_FAULT: usize      = 5;
    pub const CQ_STALLED: usize     = 6;
}

/// The decoded `DEVICE_STATUS` register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceStatus(pub u32);

impl DeviceStatus {
    fn bit(&self, b: usize) -> bool {
        self.0.view_bits::<Lsb0>()[b]
    }
    fn with(mut self, b: usize, on: bool) -> Self {
        self.0.view_bits_mut::<Lsb0>().set(b, on);
        self
    }
    /// Reset finished; registers may be programmed.
    pub fn ready(&self) -> bool {
        self.bit(status_bits::READY)
    }
    /// Enabled and processing queues.
    pub fn running(&self) -> bool {
        self.bit(status_bits::RUNNING)
    }
    /// The device stopped processing until the next reset (one of the error
    /// bits below says why).
    pub fn fatal(&self) -> bool {
        self.bit(status_bits::FATAL)
    }
    /// A descriptor had the wrong phase bit (the doorbell ran ahead of the
    /// descriptors written).
    pub fn sq_phase_error(&self) -> bool {
        self.bit(status_bits::SQ_PHASE_ERROR)
    }
    /// A doorbell value was ≥ the ring size.
    pub fn bad_doorbell(&self) -> bool {
        self.bit(status_bits::BAD_DOORBELL)
    }
    /// A ring or buffer address was not DMA-mapped.
    pub fn dma_fault(&self) -> bool {
        self.bit(status_bits::DMA_FAULT)
    }
    /// The device is waiting for completion-ring space right now.
    pub fn cq_stalled(&self) -> bool {
        self.bit(status_bits::CQ_STALLED)
    }
    /// Sets `READY`.
    pub fn with_ready(self, on: bool) -> Self {
        self.with(status_bits::READY, on)
    }
    /// Sets `RUNNING`.
    pub fn with_running(self, on: bool) -> Self {
        self.with(status_bits::RUNNING, on)
    }
    /// Sets `FATAL`.
    pub fn with_fatal(self, on: bool) -> Self {
        self.with(status_bits::FATAL, on)
    }
    /// Sets `SQ_PHASE_ERROR`.
    pub fn with_sq_phase_error(self, on: bool) -> Self {
        self.with(status_bits::SQ_PHASE_ERROR, on)
    }
    /// Sets `BAD_DOORBELL`.
    pub fn with_bad_doorbell(self, on: bool) -> Self {
        self.with(status_bits::BAD_DOORBELL, on)
    }
    /// Sets `DMA_FAULT`.
    pub fn with_dma_fault(self, on: bool) -> Self {
        self.with(status_bits::DMA_FAULT, on)
    }
    /// Sets `CQ_STALLED`.
    pub fn with_cq_stalled(self, on: bool) -> Self {
        self.with(status_bits::CQ_STALLED, on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_reads_stmn() {
        assert_eq!(MAGIC, 0x4E4D_5453);
        assert_eq!(MAGIC.to_le_bytes(), *b"STMN");
    }

    /// Golden offsets: the map is part of the hardware contract.
    #[test]
    fn indexed_registers_are_where_the_doc_says() {
        assert_eq!(metric_kind(0), 0x0400);
        assert_eq!(metric_kind(255), 0x07FC);
        assert_eq!(sq_base_lo(0), 0x1000);
        assert_eq!(sq_tail(0), 0x100C);
        assert_eq!(cq_head(0), 0x1020);
        assert_eq!(queue_ctrl(0), 0x1028);
        assert_eq!(sq_tail(1), 0x104C);
        assert_eq!(queue_ctrl(QUEUES_MAX - 1), 0x13E8);
        assert_eq!(counter_lo(Counter::SqDrops as usize), 0x2020);
        assert_eq!(counter_hi(Counter::DmaFaults as usize), 0x203C);
    }

    #[test]
    fn register_blocks_do_not_overlap_and_fit_in_bar0() {
        let mut regs: Vec<usize> = vec![
            ID_MAGIC,
            ID_VERSION,
            CAPS,
            CAPS_METRIC_KINDS,
            CAPS_MAX_RING,
            CAPS_QUEUES,
            DEVICE_CTRL,
            DEVICE_STATUS,
            IRQ_STATUS,
            IRQ_MASK,
            CFG_METRIC_COUNT,
            ADMIN_CMD,
            ADMIN_ARG,
            ADMIN_BUF_LO,
            ADMIN_BUF_HI,
            ADMIN_BUF_LEN,
            ADMIN_STATUS,
            ADMIN_RESULT_WORDS,
        ];
        regs.extend((0..CFG_METRICS_MAX).map(metric_kind));
        for q in 0..QUEUES_MAX {
            regs.extend([
                sq_base_lo(q),
                sq_base_hi(q),
                sq_size(q),
                sq_tail(q),
                sq_head(q),
                cq_base_lo(q),
                cq_base_hi(q),
                cq_size(q),
                cq_head(q),
                cq_tail(q),
                queue_ctrl(q),
            ]);
        }
        for c in Counter::ALL {
            regs.extend([counter_lo(c as usize), counter_hi(c as usize)]);
        }
        let n = regs.len();
        regs.sort_unstable();
        regs.dedup();
        assert_eq!(regs.len(), n, "two registers share an offset");
        assert!(regs.iter().all(|&r| r % 4 == 0 && r + 4 <= BAR0_LEN));
        // Queue blocks stay inside their stride and page.
        const { assert!(Q_CTRL + 4 <= QUEUE_STRIDE) };
        const { assert!(QUEUE_BASE + QUEUES_MAX * QUEUE_STRIDE <= COUNTER_BASE) };
    }

    #[test]
    fn capability_bits_round_trip() {
        let c = Capabilities::encode(true, true, false, true, 9);
        assert_eq!(c.0, 0b1011 | (9 << 8));
        assert!(c.sq_head_in_completion() && c.gate_across_batches() && c.msix());
        assert!(!c.admin_dump());
        assert_eq!(c.max_batch_log2(), 9);
        assert_eq!(Capabilities(0x0000_0C04).max_batch_log2(), 12);
        assert!(Capabilities(0x0000_0C04).admin_dump());
    }

    #[test]
    fn metric_kind_bits() {
        let k = MetricKinds::of(&[MetricKind::VariationDetector, MetricKind::Global]);
        assert_eq!(k.0, (1 << 1) | (1 << 5));
        assert!(k.hosts(MetricKind::Global));
        assert!(!k.hosts(MetricKind::HyperLogLog));
    }

    #[test]
    fn status_bits_round_trip() {
        let s = DeviceStatus::default()
            .with_ready(true)
            .with_fatal(true)
            .with_dma_fault(true);
        assert_eq!(s.0, 0b10_0101);
        assert!(s.ready() && s.fatal() && s.dma_fault());
        assert!(!s.running() && !s.sq_phase_error() && !s.bad_doorbell() && !s.cq_stalled());
        assert!(DeviceStatus(1 << 6).cq_stalled());
        assert!(DeviceStatus(0b1_1000).bad_doorbell() && DeviceStatus(0b1000).sq_phase_error());
    }
}
