//! The simulated SmartNIC: a device living in shared memory, so the driver
//! runs end to end without a card.
//!
//! * The register file is a 16 KiB shared-memory window
//!   ([`Mmio::shared_anonymous`]) laid out exactly as `docs/device.md`'s BAR0.
//! * DMA memory is anonymous shared memory registered in a simulated IOMMU
//!   (a table IOVA → region). The device side reaches host memory only
//!   through IOVAs the driver programmed; an unmapped IOVA is a `DMA_FAULT`.
//! * The device side is one thread that polls `DEVICE_CTRL`, the doorbells
//!   and `ADMIN_CMD`, reads submission descriptors with the phase check,
//!   runs them in batches through a [`MetricEngine`] (the software engine by
//!   default; the Verilated RTL with the `sim` feature) and writes
//!   completions, `SQ_HEAD`/`CQ_TAIL` and the counters back, as the hardware
//!   does.
//! * A seeded [`FaultPlan`] makes it misbehave on purpose.
//!
//! No `unsafe` here: memory is reached through [`Mmio`] and [`DmaRegion`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use streamon_contract::{MetricEngine, MetricKind, MetricPlan, Op, OpResult};

use crate::dma::DmaRegion;
use crate::mmio::Mmio;
use crate::provider::RegionProvider;
use crate::regs::{self, Capabilities, Counter, DeviceStatus, MetricKinds};
use crate::ring::{
    CompletionDescriptor, CompletionWriter, RingCursor, SqReadError, SubmissionReader, CQ_DESC_LEN,
    SQ_DESC_LEN,
};

/// First IOVA the simulated IOMMU hands out (far from host addresses, so a
/// driver that confused the two would fault).
pub const SIM_IOVA_BASE: u64 = 0x10_0000_0000;

/// Deliberate misbehaviour of the simulated device (smoltcp's
/// `FaultInjector`, seeded). Op indices count descriptors the device has
/// read since the last reset, from 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Seed of the xorshift that picks corrupting values.
    pub seed: u64,
    /// Write the completion of this op with a wrong (random) sequence number.
    pub corrupt_seq_at: Option<u64>,
    /// Write the completion of this op with an out-of-range `sq_head`.
    pub corrupt_sq_head_at: Option<u64>,
    /// Stop completing ops after this many (the device "hangs").
    pub stall_after: Option<u64>,
    /// After completing this op, write one more completion that answers no
    /// op (it carries the next sequence number, the one most likely to be
    /// taken for a real answer).
    pub spurious_completion_after: Option<u64>,
    /// Never finish a `CTRL_RESET` (the device does not come up).
    pub ignore_reset: bool,
    /// Present this `ID_MAGIC` instead of the real one.
    pub magic: Option<u32>,
    /// Present this `ID_VERSION` instead of the real one.
    pub version: Option<u32>,
}

impl FaultPlan {
    /// One fault, drawn from `seed`: a corrupt sequence, a corrupt submission
    /// head or a stall, at an op index below `ops`.
    pub fn seeded(seed: u64, ops: u64) -> FaultPlan {
        let mut rng = XorShift::new(seed);
        let at = rng.next() % ops.max(1);
        let mut plan = FaultPlan {
            seed,
            ..FaultPlan::default()
        };
        match (rng.next() >> 33) % 3 {
            0 => plan.corrupt_seq_at = Some(at),
            1 => plan.corrupt_sq_head_at = Some(at),
            _ => plan.stall_after = Some(at),
        }
        plan
    }
}

/// xorshift64*: the fault plan's deterministic random source.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// How the simulated card is built.
#[derive(Debug, Clone)]
pub struct SimNicConfig {
    /// `CAPS_MAX_RING`: largest ring, entries. Default 4096.
    pub max_ring: u32,
    /// `CAPS.MAX_BATCH_LOG2`: ops the device takes per pipeline batch.
    /// Default 8 (256).
    pub max_batch_log2: u32,
    /// Deliberate faults. Default none.
    pub faults: FaultPlan,
}

impl Default for SimNicConfig {
    fn default() -> Self {
        SimNicConfig {
            max_ring: 4096,
            max_batch_log2: 8,
            faults: FaultPlan::default(),
        }
    }
}

/// Builds the device side's engine inside the device thread (engines need
/// not be `Send`: the Verilated model is not). Called again on every
/// `CTRL_RESET`, which returns the metrics to their installed state.
pub type EngineFactory = Box<dyn Fn() -> Box<dyn MetricEngine> + Send>;

/// The simulated IOMMU: every DMA region the driver allocated, by IOVA.
#[derive(Debug, Default)]
struct SimIommu {
    regions: Vec<DmaRegion>,
    next_iova: u64,
}

impl SimIommu {
    /// The mapped region `iova..iova + len`, if it lies inside one mapping
    /// and is 64-byte aligned.
    fn translate(&self, iova: u64, len: usize) -> Option<DmaRegion> {
        self.regions.iter().find_map(|r| {
            let off = iova.checked_sub(r.iova())?;
            let end = off.checked_add(len as u64)?;
            (end <= r.len() as u64 && off % 64 == 0).then(|| r.slice(off as usize, len))
        })
    }
}

/// A simulated streamon SmartNIC. It is a [`RegionProvider`]: give it to
/// [`crate::DeviceEngine::open`]. Dropping it stops the device thread.
pub struct SimNic {
    regs: Mmio,
    iommu: Arc<Mutex<SimIommu>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    what: &'static str,
}

impl std::fmt::Debug for SimNic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNic")
            .field("engine", &self.what)
            .finish()
    }
}

impl SimNic {
    /// A card whose device side runs the software engine
    /// (`streamon_sw::SwEngine`) installed with `plans`, hosting every
    /// metric kind.
    pub fn software(plans: &[MetricPlan], config: SimNicConfig) -> std::io::Result<SimNic> {
        let owned = plans.to_vec();
        let all = [
            MetricKind::VariationDetector,
            MetricKind::DecayingFilter,
            MetricKind::CountMin,
            MetricKind::HyperLogLog,
            MetricKind::Global,
            MetricKind::ExactCounter,
            MetricKind::ExactEwma,
            MetricKind::SlidingWindow,
        ];
        SimNic::with_engine(
            plans,
            MetricKinds::of(&all),
            config,
            Box::new(move || Box::new(streamon_sw::SwEngine::new(&owned))),
            "software engine",
        )
    }

    /// A card whose device side is the Verilated RTL
    /// (`streamon_sim::SimEngine`), hosting the kinds the hardware builds.
    #[cfg(feature = "sim")]
    pub fn rtl(plans: &[MetricPlan], config: SimNicConfig) -> std::io::Result<SimNic> {
        use streamon_sim::SimEngine;
        SimEngine::hostable(plans).map_err(std::io::Error::other)?;
        let kinds: Vec<MetricKind> = (1..=8u8)
            .filter_map(MetricKind::from_u8)
            .filter(|&k| SimEngine::kind_in_hardware(k))
            .collect();
        let owned = plans.to_vec();
        SimNic::with_engine(
            plans,
            MetricKinds::of(&kinds),
            config,
            Box::new(move || {
                Box::new(SimEngine::new(&owned).expect("plans were checked hostable"))
            }),
            "Verilated RTL",
        )
    }

    /// A card with any engine behind it. `plans` describe what the factory's
    /// engine has installed (they fill the configuration window).
    pub fn with_engine(
        plans: &[MetricPlan],
        kinds: MetricKinds,
        config: SimNicConfig,
        engine: EngineFactory,
        what: &'static str,
    ) -> std::io::Result<SimNic> {
        let regs = Mmio::shared_anonymous(regs::BAR0_LEN)?;
        let iommu = Arc::new(Mutex::new(SimIommu {
            regions: Vec::new(),
            next_iova: SIM_IOVA_BASE,
        }));
        let f = config.faults;
        regs.write32(regs::ID_MAGIC, f.magic.unwrap_or(regs::MAGIC));
        regs.write32(
            regs::ID_VERSION,
            f.version
                .unwrap_or((u32::from(regs::VERSION_MAJOR) << 16) | u32::from(regs::VERSION_MINOR)),
        );
        regs.write32(
            regs::CAPS,
            Capabilities::encode(true, true, true, false, config.max_batch_log2).0,
        );
        regs.write32(regs::CAPS_METRIC_KINDS, kinds.0);
        regs.write32(regs::CAPS_MAX_RING, config.max_ring);
        regs.write32(regs::CAPS_QUEUES, 1);
        let n = plans.len().min(regs::CFG_METRICS_MAX);
        regs.write32(regs::CFG_METRIC_COUNT, n as u32);
        for (i, p) in plans.iter().take(n).enumerate() {
            regs.write32(regs::metric_kind(i), p.kind as u32);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let device_regs = regs.clone();
        let device_iommu = iommu.clone();
        let device_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sim-nic".into())
            .spawn(move || {
                Device::new(device_regs, device_iommu, engine, config).run(&device_stop)
            })?;
        Ok(SimNic {
            regs,
            iommu,
            stop,
            thread: Some(thread),
            what,
        })
    }
}

impl Drop for SimNic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // A panicking device thread has nothing left to report here.
            let _ = t.join();
        }
    }
}

impl RegionProvider for SimNic {
    fn registers(&self) -> &Mmio {
        &self.regs
    }

    fn alloc_dma(&self, len: usize) -> std::io::Result<DmaRegion> {
        let mut iommu = self.iommu.lock().unwrap_or_else(|e| e.into_inner());
        let iova = iommu.next_iova;
        let region = DmaRegion::anonymous(len, iova)?;
        // Leave an unmapped page between regions so an overrun faults.
        iommu.next_iova += (region.len() as u64).div_ceil(4096) * 4096 + 4096;
        iommu.regions.push(region.clone());
        Ok(region)
    }

    fn describe(&self) -> String {
        format!("simulated NIC ({})", self.what)
    }
}

/// The rings of the enabled queue pair, as the device latched them.
struct DeviceQueue {
    sq: SubmissionReader,
    cq: CompletionWriter,
    size: u32,
    last_tail: u32,
    stalled: bool,
}

/// The device side (runs on the `sim-nic` thread).
struct Device {
    regs: Mmio,
    iommu: Arc<Mutex<SimIommu>>,
    factory: EngineFactory,
    engine: Box<dyn MetricEngine>,
    config: SimNicConfig,
    rng: XorShift,
    queue: Option<DeviceQueue>,
    status: DeviceStatus,
    counters: [u64; Counter::ALL.len()],
    ops: Vec<Op>,
    seqs: Vec<u32>,
    results: Vec<OpResult>,
}

impl Device {
    fn new(
        regs: Mmio,
        iommu: Arc<Mutex<SimIommu>>,
        factory: EngineFactory,
        config: SimNicConfig,
    ) -> Device {
        let engine = factory();
        let batch = 1usize << config.max_batch_log2.min(16);
        let mut d = Device {
            regs,
            iommu,
            factory,
            engine,
            rng: XorShift::new(config.faults.seed),
            config,
            queue: None,
            status: DeviceStatus::default(),
            counters: [0; Counter::ALL.len()],
            ops: Vec::with_capacity(batch),
            seqs: Vec::with_capacity(batch),
            results: Vec::with_capacity(batch),
        };
        d.publish_reset();
        d
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut idle = 0u32;
        while !stop.load(Ordering::Acquire) {
            if self.step() {
                idle = 0;
            } else {
                idle = idle.saturating_add(1);
                if idle < 64 {
                    std::hint::spin_loop();
                } else if idle < 4096 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }

    fn reset(&mut self) {
        self.engine = (self.factory)();
        self.publish_reset();
    }

    fn publish_reset(&mut self) {
        self.queue = None;
        self.counters = [0; Counter::ALL.len()];
        self.status = DeviceStatus::default().with_ready(true);
        self.rng = XorShift::new(self.config.faults.seed);
        self.publish();
        self.regs.write32(regs::sq_head(0), 0);
        self.regs.write32(regs::cq_tail(0), 0);
    }

    fn publish(&self) {
        self.regs.write32(regs::DEVICE_STATUS, self.status.0);
        for c in Counter::ALL {
            self.regs.write64(
                regs::counter_lo(c as usize),
                regs::counter_hi(c as usize),
                self.counters[c as usize],
            );
        }
    }

    fn count(&mut self, c: Counter, n: u64) {
        self.counters[c as usize] += n;
    }

    fn fatal(&mut self, why: fn(DeviceStatus) -> DeviceStatus) {
        self.status = why(self.status.with_fatal(true).with_running(false));
        self.publish();
    }

    /// One polling pass; true if anything happened.
    fn step(&mut self) -> bool {
        let ctrl = self.regs.read32(regs::DEVICE_CTRL);
        if ctrl & regs::CTRL_RESET != 0 {
            if self.config.faults.ignore_reset {
                return false;
            }
            self.reset();
            self.regs.write32(
                regs::DEVICE_CTRL,
                ctrl & !regs::CTRL_RESET & !regs::CTRL_ENABLE,
            );
            return true;
        }
        if self.regs.read32(regs::ADMIN_CMD) != regs::ADMIN_CMD_IDLE {
            self.admin();
            return true;
        }
        if self.status.fatal() || ctrl & regs::CTRL_ENABLE == 0 {
            return false;
        }
        if !self.status.running() {
            self.status = self.status.with_running(true);
            self.publish();
        }
        if self.queue.is_none() {
            if self.regs.read32(regs::queue_ctrl(0)) & regs::QCTRL_ENABLE == 0 {
                return false;
            }
            return self.latch_queue();
        }
        self.process()
    }

    fn latch_queue(&mut self) -> bool {
        let size = self.regs.read32(regs::sq_size(0));
        let cq_size = self.regs.read32(regs::cq_size(0));
        let sq_iova = self.regs.read64(regs::sq_base_lo(0), regs::sq_base_hi(0));
        let cq_iova = self.regs.read64(regs::cq_base_lo(0), regs::cq_base_hi(0));
        let ok_size =
            size == cq_size && RingCursor::new(size).is_ok() && size <= self.config.max_ring;
        let (sq_mem, cq_mem) = {
            let iommu = self.iommu.lock().unwrap_or_else(|e| e.into_inner());
            (
                iommu.translate(sq_iova, size as usize * SQ_DESC_LEN),
                iommu.translate(cq_iova, size as usize * CQ_DESC_LEN),
            )
        };
        match (ok_size, sq_mem, cq_mem) {
            (true, Some(sq), Some(cq)) => {
                self.queue = Some(DeviceQueue {
                    sq: SubmissionReader::new(sq, size).expect("size checked"),
                    cq: CompletionWriter::new(cq, size).expect("size checked"),
                    size,
                    last_tail: 0,
                    stalled: false,
                });
            }
            (false, _, _) => self.fatal(|s| s.with_bad_doorbell(true)),
            _ => {
                self.count(Counter::DmaFaults, 1);
                self.fatal(|s| s.with_dma_fault(true));
            }
        }
        true
    }

    fn process(&mut self) -> bool {
        let Some(q) = self.queue.as_mut() else {
            return false;
        };
        let size = q.size;
        let tail = self.regs.read32(regs::sq_tail(0));
        let cq_head = self.regs.read32(regs::cq_head(0));
        if tail >= size || cq_head >= size {
            self.count(Counter::BadDoorbells, 1);
            self.fatal(|s| s.with_bad_doorbell(true));
            return true;
        }
        let mut doorbell = false;
        if tail != q.last_tail {
            q.last_tail = tail;
            doorbell = true;
        }
        let head = q.sq.head();
        let avail = head.distance(head.index(), tail);
        if avail == 0 {
            if doorbell {
                self.count(Counter::Doorbells, 1);
            }
            return doorbell;
        }
        let cq_tail = q.cq.tail().index();
        let used = head.distance(cq_head, cq_tail);
        let free = size - 1 - used;
        if free == 0 {
            if !q.stalled {
                q.stalled = true;
                self.status = self.status.with_cq_stalled(true);
                self.count(Counter::CqFullStalls, 1);
                self.publish();
            }
            return doorbell;
        }
        q.stalled = false;
        let faults = self.config.faults;
        let done = self.counters[Counter::OpsSubmitted as usize];
        let mut n = avail.min(free).min(1 << self.config.max_batch_log2.min(16));
        if let Some(limit) = faults.stall_after {
            n = n.min(limit.saturating_sub(done) as u32);
            if n == 0 {
                return doorbell; // hung: the doorbell is never answered
            }
        }
        self.ops.clear();
        self.seqs.clear();
        let mut phase_error = false;
        for _ in 0..n {
            match q.sq.pop() {
                Ok(d) => {
                    self.ops.push(d.op);
                    self.seqs.push(d.seq);
                }
                Err(SqReadError::PhaseMismatch { .. }) => {
                    phase_error = true;
                    break;
                }
            }
        }
        let got = self.ops.len();
        self.results.clear();
        self.results.resize(got, OpResult::default());
        self.engine.apply(&self.ops, &mut self.results);
        let mut sq_head = head;
        for i in 0..got {
            sq_head.advance(1);
            let idx = done + i as u64;
            let mut seq = self.seqs[i];
            let mut sq_head_field = sq_head.index();
            if faults.corrupt_seq_at == Some(idx) {
                seq ^= (self.rng.next() as u32) | 1;
            }
            if faults.corrupt_sq_head_at == Some(idx) {
                sq_head_field = size + (self.rng.next() as u32 % 1000);
            }
            q.cq.push(&CompletionDescriptor {
                result: self.results[i],
                seq,
                sq_head: sq_head_field,
                ..CompletionDescriptor::default()
            });
        }
        if let Some(at) = faults.spurious_completion_after {
            if (done..done + got as u64).contains(&at) && (got as u32) < free {
                q.cq.push(&CompletionDescriptor {
                    seq: self.seqs[got - 1].wrapping_add(1),
                    sq_head: q.sq.head().index(),
                    ..CompletionDescriptor::default()
                });
            }
        }
        self.regs.write32(regs::sq_head(0), q.sq.head().index());
        self.regs.write32(regs::cq_tail(0), q.cq.tail().index());
        if doorbell {
            self.count(Counter::Doorbells, 1);
        }
        self.count(Counter::OpsSubmitted, got as u64);
        self.count(Counter::OpsCompleted, got as u64);
        self.count(Counter::Batches, 1);
        self.status = self.status.with_cq_stalled(false);
        if phase_error {
            let pending = u64::from(avail) - got as u64;
            self.count(Counter::SqDrops, pending);
            self.fatal(|s| s.with_sq_phase_error(true));
        } else {
            self.publish();
        }
        true
    }

    fn admin(&mut self) {
        let cmd = self.regs.read32(regs::ADMIN_CMD);
        let status = if cmd == regs::ADMIN_CMD_DUMP {
            let metric = self.regs.read32(regs::ADMIN_ARG);
            let iova = self.regs.read64(regs::ADMIN_BUF_LO, regs::ADMIN_BUF_HI);
            let len = self.regs.read32(regs::ADMIN_BUF_LEN) as usize;
            match u16::try_from(metric).ok().and_then(|m| self.engine.dump(m)) {
                None => regs::ADMIN_STATUS_NO_METRIC,
                Some(words) => {
                    self.regs
                        .write32(regs::ADMIN_RESULT_WORDS, words.len() as u32);
                    if words.len() * 8 > len {
                        regs::ADMIN_STATUS_TOO_SMALL
                    } else {
                        let buf = self
                            .iommu
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .translate(iova, words.len() * 8);
                        match buf {
                            None => {
                                self.count(Counter::DmaFaults, 1);
                                self.publish();
                                regs::ADMIN_STATUS_BAD_ADDRESS
                            }
                            Some(buf) => {
                                for (i, w) in words.iter().enumerate() {
                                    buf.write_u64(8 * i, *w);
                                }
                                regs::ADMIN_STATUS_OK
                            }
                        }
                    }
                }
            }
        } else {
            regs::ADMIN_STATUS_BAD_COMMAND
        };
        self.regs.write32(regs::ADMIN_STATUS, status);
        self.regs.write32(regs::ADMIN_CMD, regs::ADMIN_CMD_IDLE);
    }
}
