//! [`DeviceEngine`]: a [`MetricEngine`] whose metric layer is a device
//! behind a [`RegionProvider`], so the probe can run the full path trace →
//! driver → device → results.
//!
//! A batch of ops is written into the submission ring in doorbell batches
//! (one release fence and one doorbell per batch), and results are collected
//! from the completion ring in order. Everything the device says is checked,
//! and every wait is bounded by [`DriverConfig::timeout`]: a wrong
//! completion, an index out of range, a fatal device or a silent one become
//! a typed [`DeviceError`] and a counter, never a hang or a panic.

use std::cell::Cell;
use std::sync::atomic::{fence, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use streamon_contract::{MetricEngine, MetricId, MetricKind, MetricPlan, Op, OpResult};

use crate::dma::DmaRegion;
use crate::provider::RegionProvider;
use crate::regs::{self, Capabilities, DeviceStatus, MetricKinds};
use crate::ring::{
    BadRingSize, CompletionRing, RingCursor, SubmissionRing, CQ_DESC_LEN, SQ_DESC_LEN,
};

/// The result status byte written for ops the device never answered when
/// the engine is used through [`MetricEngine::apply`] (which cannot return
/// an error): the contract's `Status::DeviceError`, which no engine writes.
pub const STATUS_DEVICE_ERROR: u8 = streamon_contract::Status::DeviceError as u8;

/// Empty completion polls between two `yield_now`s while waiting.
const SPINS_PER_YIELD: u32 = 64;

/// Driver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Entries per ring (a power of two, ≤ the device's `CAPS_MAX_RING`).
    /// Default 1024.
    pub ring_entries: u32,
    /// Most descriptors per doorbell. Default 256.
    pub batch: u32,
    /// How long to wait without any progress before giving up on the
    /// device. Default 1 s.
    pub timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            ring_entries: 1024,
            batch: 256,
            timeout: Duration::from_secs(1),
        }
    }
}

/// A device that misbehaved while ops were in flight. Small and `Copy`: it
/// is returned on the per-batch path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A completion carried a sequence number other than the next one
    /// expected: a completion for an op never submitted (or out of order).
    #[error("completion for op {got}, expected op {expected}")]
    UnexpectedCompletion {
        /// The sequence expected.
        expected: u32,
        /// The sequence found.
        got: u32,
    },
    /// A completion arrived while no op was in flight: a completion for an
    /// op never submitted (checked before each batch, so a stray completion
    /// is never taken for the answer to the next op).
    #[error("completion for op {seq} while no op was in flight")]
    CompletionWithoutOp {
        /// The sequence the stray completion carried.
        seq: u32,
    },
    /// A ring index from the device is outside the ring or the window of
    /// submitted slots.
    #[error(
        "device reported {which} index {index}, outside the valid window of a {size}-entry ring"
    )]
    RingIndexOutOfRange {
        /// Which index ("sq_head").
        which: &'static str,
        /// The value.
        index: u32,
        /// Ring size.
        size: u32,
    },
    /// No completion arrived within the timeout.
    #[error("no completion within {waited_ms} ms with {in_flight} ops in flight")]
    Timeout {
        /// How long the driver waited without progress.
        waited_ms: u64,
        /// Ops submitted and not completed.
        in_flight: u32,
    },
    /// The device set `STATUS.FATAL`.
    #[error("device stopped with status {status:#x}")]
    DeviceFatal {
        /// `DEVICE_STATUS`.
        status: u32,
    },
    /// An earlier error left the queue in an unknown state; call
    /// [`DeviceEngine::reset`].
    #[error("the device failed earlier and has not been reset")]
    Failed,
}

/// Bringing a device up failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// `ID_MAGIC` is not "STMN": not a streamon card, or the BAR is wrong.
    #[error("{device}: identification magic {found:#010x} is not a streamon SmartNIC")]
    BadMagic {
        /// The provider.
        device: String,
        /// The value read.
        found: u32,
    },
    /// `ID_VERSION`'s major is not [`regs::VERSION_MAJOR`].
    #[error(
        "{device}: register map version {major}.{minor} is not supported (need {}.x)",
        regs::VERSION_MAJOR
    )]
    UnsupportedVersion {
        /// The provider.
        device: String,
        /// Major version read.
        major: u16,
        /// Minor version read.
        minor: u16,
    },
    /// The card reports no queue pair.
    #[error("device reports no queue pairs")]
    NoQueues,
    /// A plan's metric kind is not hosted by the hardware.
    #[error("{device}: metric {metric} is a {kind:?}, which this device does not host (it hosts {})", hosted_list(*hosted))]
    MetricKindNotHosted {
        /// The provider.
        device: String,
        /// The metric.
        metric: usize,
        /// Its kind.
        kind: MetricKind,
        /// `CAPS_METRIC_KINDS`: what the device hosts.
        hosted: MetricKinds,
    },
    /// The configuration window does not describe the plans given.
    #[error("device has {device_count} metrics installed ({device_kinds:?}), the plans have {plans_count} ({plan_kinds:?})")]
    PlanMismatch {
        /// `CFG_METRIC_COUNT`.
        device_count: u32,
        /// `CFG_METRIC_KIND(i)` bytes.
        device_kinds: Vec<u32>,
        /// Plans given.
        plans_count: usize,
        /// Their kind bytes.
        plan_kinds: Vec<u32>,
    },
    /// The requested ring is not a power of two or larger than the device's.
    #[error("ring of {requested} entries: must be a power of two in 2..={max}")]
    BadRing {
        /// Requested.
        requested: u32,
        /// `CAPS_MAX_RING`.
        max: u32,
    },
    /// The device did not finish a reset in time.
    #[error("device did not become ready within {0:?} after reset")]
    ResetTimeout(Duration),
    /// DMA memory could not be allocated or mapped.
    #[error("cannot allocate {len} bytes of DMA memory")]
    Dma {
        /// Bytes asked for.
        len: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `VariationDetector, Global` (or `no metric kind`).
fn hosted_list(kinds: MetricKinds) -> String {
    let v: Vec<String> = (1..=31u8)
        .filter_map(MetricKind::from_u8)
        .filter(|&k| kinds.hosts(k))
        .map(|k| format!("{k:?}"))
        .collect();
    if v.is_empty() {
        "no metric kind".into()
    } else {
        v.join(", ")
    }
}

impl From<BadRingSize> for DriverError {
    fn from(e: BadRingSize) -> Self {
        DriverError::BadRing {
            requested: e.0,
            max: crate::ring::RING_MAX,
        }
    }
}

/// What the driver counted (the device's own counters are
/// [`DeviceEngine::device_counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverCounters {
    /// Descriptors written to the submission ring.
    pub ops_submitted: u64,
    /// Completions consumed.
    pub ops_completed: u64,
    /// Submission doorbells rung.
    pub sq_doorbells: u64,
    /// Completion-head doorbells rung.
    pub cq_doorbells: u64,
    /// [`DeviceError::Timeout`]s.
    pub timeouts: u64,
    /// [`DeviceError::UnexpectedCompletion`]s and
    /// [`DeviceError::CompletionWithoutOp`]s.
    pub unexpected_completions: u64,
    /// [`DeviceError::RingIndexOutOfRange`]s.
    pub ring_index_errors: u64,
    /// [`DeviceError::DeviceFatal`]s.
    pub device_fatal: u64,
    /// Ops answered with [`STATUS_DEVICE_ERROR`] by [`MetricEngine::apply`].
    pub ops_failed: u64,
    /// Device resets by the driver.
    pub resets: u64,
    /// Admin dump commands that failed (timeout, device error, no memory).
    pub admin_failures: u64,
}

/// The metric layer on a device, as a [`MetricEngine`].
pub struct DeviceEngine<P: RegionProvider> {
    provider: P,
    plans: Vec<MetricPlan>,
    config: DriverConfig,
    caps: Capabilities,
    sq: SubmissionRing,
    cq: CompletionRing,
    /// Sequence of the next op to submit (== the next to complete between
    /// calls: nothing is in flight then).
    next_seq: u32,
    failed: Cell<bool>,
    /// The error that failed the engine (until `reset`).
    last_error: Option<DeviceError>,
    counters: DriverCounters,
    /// Admin (dump) failures; a `Cell` because dumps take `&self`.
    admin_failures: Cell<u64>,
    admin_buf: Mutex<Option<DmaRegion>>,
}

impl<P: RegionProvider> std::fmt::Debug for DeviceEngine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceEngine")
            .field("device", &self.provider.describe())
            .field("config", &self.config)
            .field("failed", &self.failed.get())
            .field("counters", &self.counters)
            .finish()
    }
}

impl<P: RegionProvider> DeviceEngine<P> {
    /// Identifies the device, checks it hosts `plans`, resets it and arms
    /// one queue pair (`docs/device.md`, "Bring-up sequence").
    pub fn open(
        provider: P,
        plans: &[MetricPlan],
        config: DriverConfig,
    ) -> Result<DeviceEngine<P>, DriverError> {
        let r = provider.registers().clone();
        let device = provider.describe();
        // 1. Identification.
        let magic = r.read32(regs::ID_MAGIC);
        if magic != regs::MAGIC {
            return Err(DriverError::BadMagic {
                device,
                found: magic,
            });
        }
        let version = r.read32(regs::ID_VERSION);
        let (major, minor) = ((version >> 16) as u16, version as u16);
        if major != regs::VERSION_MAJOR {
            return Err(DriverError::UnsupportedVersion {
                device,
                major,
                minor,
            });
        }
        // 2. Capabilities.
        let caps = Capabilities(r.read32(regs::CAPS));
        let kinds = MetricKinds(r.read32(regs::CAPS_METRIC_KINDS));
        let max_ring = r.read32(regs::CAPS_MAX_RING);
        if r.read32(regs::CAPS_QUEUES) == 0 {
            return Err(DriverError::NoQueues);
        }
        if let Some((metric, p)) = plans.iter().enumerate().find(|(_, p)| !kinds.hosts(p.kind)) {
            return Err(DriverError::MetricKindNotHosted {
                device,
                metric,
                kind: p.kind,
                hosted: kinds,
            });
        }
        let size = config.ring_entries;
        if RingCursor::new(size).is_err() || size > max_ring {
            return Err(DriverError::BadRing {
                requested: size,
                max: max_ring,
            });
        }
        // 3. Reset.
        reset_device(&provider, config.timeout)?;
        // 4. Configuration window.
        let device_count = r.read32(regs::CFG_METRIC_COUNT);
        let device_kinds: Vec<u32> = (0..(device_count as usize).min(regs::CFG_METRICS_MAX))
            .map(|i| r.read32(regs::metric_kind(i)))
            .collect();
        let plan_kinds: Vec<u32> = plans.iter().map(|p| p.kind as u32).collect();
        if device_count as usize != plans.len() || device_kinds != plan_kinds {
            return Err(DriverError::PlanMismatch {
                device_count,
                device_kinds,
                plans_count: plans.len(),
                plan_kinds,
            });
        }
        // 5. Rings.
        let (sq, cq) = arm_queue(&provider, size)?;
        Ok(DeviceEngine {
            provider,
            plans: plans.to_vec(),
            config,
            caps,
            sq,
            cq,
            next_seq: 0,
            failed: Cell::new(false),
            last_error: None,
            counters: DriverCounters::default(),
            admin_failures: Cell::new(0),
            admin_buf: Mutex::new(None),
        })
    }

    /// The provider (for its description, or to reach a simulated NIC).
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The device's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// The driver's counters.
    pub fn counters(&self) -> DriverCounters {
        DriverCounters {
            admin_failures: self.admin_failures.get(),
            ..self.counters
        }
    }

    /// True after a [`DeviceError`], until [`DeviceEngine::reset`].
    pub fn is_failed(&self) -> bool {
        self.failed.get()
    }

    /// The error that failed the engine during a batch, until
    /// [`DeviceEngine::reset`] (for callers of [`MetricEngine::apply`],
    /// which cannot return it).
    pub fn last_error(&self) -> Option<DeviceError> {
        self.last_error
    }

    /// The device's status register.
    pub fn device_status(&self) -> DeviceStatus {
        DeviceStatus(self.provider.registers().read32(regs::DEVICE_STATUS))
    }

    /// The device's counters, in [`regs::Counter`] order.
    pub fn device_counters(&self) -> [u64; regs::Counter::ALL.len()] {
        let r = self.provider.registers();
        regs::Counter::ALL
            .map(|c| r.read64(regs::counter_lo(c as usize), regs::counter_hi(c as usize)))
    }

    /// Resets the device and re-arms the rings after a failure. The metric
    /// state on the device is lost (it is back to its installed state).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        reset_device(&self.provider, self.config.timeout)?;
        let (sq, cq) = arm_queue(&self.provider, self.config.ring_entries)?;
        self.sq = sq;
        self.cq = cq;
        self.next_seq = 0;
        self.failed.set(false);
        self.last_error = None;
        self.counters.resets += 1;
        Ok(())
    }

    /// Runs `ops` through the device, writing one result per op, in order.
    ///
    /// # Panics
    /// If `results.len() != ops.len()` (a caller bug, as in
    /// [`MetricEngine::apply`]).
    pub fn try_apply(&mut self, ops: &[Op], results: &mut [OpResult]) -> Result<(), DeviceError> {
        let (_, r) = self.run(ops, results);
        r
    }

    fn fail(&mut self, e: DeviceError) -> DeviceError {
        self.failed.set(true);
        self.last_error = Some(e);
        match e {
            DeviceError::UnexpectedCompletion { .. } | DeviceError::CompletionWithoutOp { .. } => {
                self.counters.unexpected_completions += 1
            }
            DeviceError::RingIndexOutOfRange { .. } => self.counters.ring_index_errors += 1,
            DeviceError::Timeout { .. } => self.counters.timeouts += 1,
            DeviceError::DeviceFatal { .. } => self.counters.device_fatal += 1,
            DeviceError::Failed => {}
        }
        e
    }

    /// The submit/complete loop. Returns how many results were written.
    fn run(&mut self, ops: &[Op], results: &mut [OpResult]) -> (usize, Result<(), DeviceError>) {
        assert_eq!(ops.len(), results.len(), "one result per op");
        if self.failed.get() {
            return (0, Err(DeviceError::Failed));
        }
        // Nothing is in flight between calls: any completion now answers an
        // op never submitted.
        if let Some(c) = self.cq.poll() {
            return (
                0,
                Err(self.fail(DeviceError::CompletionWithoutOp { seq: c.seq })),
            );
        }
        let regs = self.provider.registers().clone();
        let n = ops.len();
        let size = self.sq.tail().size();
        let cap = (size - 1) as usize;
        let batch = self.config.batch.clamp(1, size - 1) as usize;
        let (mut submitted, mut completed) = (0usize, 0usize);
        let mut last_progress = Instant::now();
        let mut empty_polls = 0u32;
        while completed < n {
            // Submit what fits, one doorbell per batch.
            let in_flight = submitted - completed;
            if submitted < n && in_flight < cap {
                let k = (n - submitted).min(cap - in_flight).min(batch);
                for (j, op) in ops[submitted..submitted + k].iter().enumerate() {
                    self.sq.push(op, self.next_seq, k as u16, j + 1 == k);
                    self.next_seq = self.next_seq.wrapping_add(1);
                }
                // Rule 1: every descriptor store is visible before the doorbell.
                fence(Ordering::Release);
                regs.write32(regs::sq_tail(0), self.sq.tail().index());
                submitted += k;
                self.counters.ops_submitted += k as u64;
                self.counters.sq_doorbells += 1;
            }
            // Drain completions.
            let mut got = 0usize;
            while let Some(c) = self.cq.poll() {
                let in_flight = (submitted - completed) as u32;
                let expected = self.next_seq.wrapping_sub(in_flight);
                if c.seq != expected {
                    return (
                        completed,
                        Err(self.fail(DeviceError::UnexpectedCompletion {
                            expected,
                            got: c.seq,
                        })),
                    );
                }
                // The op completed sat at slot tail − in_flight; after
                // reading it the device's head is in (that slot, tail].
                let tail = self.sq.tail();
                let first = tail.index().wrapping_sub(in_flight - 1) & (size - 1);
                if c.sq_head >= size || tail.distance(first, c.sq_head) > in_flight - 1 {
                    return (
                        completed,
                        Err(self.fail(DeviceError::RingIndexOutOfRange {
                            which: "sq_head",
                            index: c.sq_head,
                            size,
                        })),
                    );
                }
                results[completed] = c.result;
                completed += 1;
                got += 1;
                if completed == submitted {
                    break;
                }
            }
            if got > 0 {
                regs.write32(regs::cq_head(0), self.cq.head().index());
                self.counters.ops_completed += got as u64;
                self.counters.cq_doorbells += 1;
                empty_polls = 0;
                last_progress = Instant::now();
                continue;
            }
            // Nothing yet: bounded polling. Spin briefly (a completion is
            // usually a few hundred ns away), then give the core up every
            // `SPINS_PER_YIELD` polls: on a machine with fewer free cores
            // than spinning threads the device thread may be waiting for
            // this very core. The clock and the status are read every 1024
            // polls only.
            empty_polls = empty_polls.wrapping_add(1);
            std::hint::spin_loop();
            if empty_polls % SPINS_PER_YIELD == 0 && empty_polls % 1024 != 0 {
                std::thread::yield_now();
            }
            if empty_polls % 1024 == 0 {
                let status = DeviceStatus(regs.read32(regs::DEVICE_STATUS));
                if status.fatal() {
                    return (
                        completed,
                        Err(self.fail(DeviceError::DeviceFatal { status: status.0 })),
                    );
                }
                let waited = last_progress.elapsed();
                if waited > self.config.timeout {
                    return (
                        completed,
                        Err(self.fail(DeviceError::Timeout {
                            waited_ms: waited.as_millis() as u64,
                            in_flight: (submitted - completed) as u32,
                        })),
                    );
                }
                std::thread::yield_now();
            }
        }
        (completed, Ok(()))
    }

    /// The canonical dump of one metric, read from the device by the admin
    /// dump command; `Ok(None)` if the metric is not installed. Call it
    /// between batches (nothing is in flight then).
    pub fn try_dump(&self, metric: MetricId) -> Result<Option<Vec<u64>>, DeviceError> {
        if self.failed.get() {
            return Err(DeviceError::Failed);
        }
        let admin_fail = |e: DeviceError| {
            self.failed.set(true);
            self.admin_failures.set(self.admin_failures.get() + 1);
            e
        };
        let mut slot = self.admin_buf.lock().unwrap_or_else(|e| e.into_inner());
        let mut want = 1usize << 20;
        for _ in 0..2 {
            if slot.as_ref().is_none_or(|b| b.len() < want) {
                let buf = self
                    .provider
                    .alloc_dma(want)
                    .map_err(|_| admin_fail(DeviceError::Failed))?;
                *slot = Some(buf);
            }
            let buf = slot.clone().expect("allocated above");
            let r = self.provider.registers();
            r.write64(regs::ADMIN_BUF_LO, regs::ADMIN_BUF_HI, buf.iova());
            r.write32(regs::ADMIN_BUF_LEN, buf.len().min(u32::MAX as usize) as u32);
            r.write32(regs::ADMIN_ARG, u32::from(metric));
            r.write32(regs::ADMIN_STATUS, regs::ADMIN_STATUS_BUSY);
            fence(Ordering::Release);
            r.write32(regs::ADMIN_CMD, regs::ADMIN_CMD_DUMP);
            let start = Instant::now();
            let mut polls = 0u32;
            while r.read32(regs::ADMIN_CMD) != regs::ADMIN_CMD_IDLE {
                polls = polls.wrapping_add(1);
                if polls % 64 == 0 {
                    if start.elapsed() > self.config.timeout {
                        return Err(admin_fail(DeviceError::Timeout {
                            waited_ms: start.elapsed().as_millis() as u64,
                            in_flight: 0,
                        }));
                    }
                    std::thread::yield_now();
                }
            }
            fence(Ordering::Acquire);
            let words = r.read32(regs::ADMIN_RESULT_WORDS) as usize;
            match r.read32(regs::ADMIN_STATUS) {
                regs::ADMIN_STATUS_OK if words * 8 <= buf.len() => {
                    return Ok(Some((0..words).map(|i| buf.read_u64(8 * i)).collect()));
                }
                regs::ADMIN_STATUS_NO_METRIC => return Ok(None),
                regs::ADMIN_STATUS_TOO_SMALL => want = words * 8,
                status => return Err(admin_fail(DeviceError::DeviceFatal { status })),
            }
        }
        Err(admin_fail(DeviceError::Failed))
    }
}

/// `CTRL_RESET`, then wait (bounded) for the device to clear it and be ready.
fn reset_device<P: RegionProvider>(provider: &P, timeout: Duration) -> Result<(), DriverError> {
    let r = provider.registers();
    r.write32(regs::queue_ctrl(0), 0);
    r.write32(regs::DEVICE_CTRL, regs::CTRL_RESET);
    let start = Instant::now();
    loop {
        let ctrl = r.read32(regs::DEVICE_CTRL);
        if ctrl & regs::CTRL_RESET == 0 && DeviceStatus(r.read32(regs::DEVICE_STATUS)).ready() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(DriverError::ResetTimeout(timeout));
        }
        std::thread::yield_now();
    }
}

/// Allocates and programs queue pair 0 and enables the device.
fn arm_queue<P: RegionProvider>(
    provider: &P,
    size: u32,
) -> Result<(SubmissionRing, CompletionRing), DriverError> {
    let alloc = |p: &P, len: usize| {
        p.alloc_dma(len)
            .map_err(|source| DriverError::Dma { len, source })
    };
    let sq_mem = alloc(provider, size as usize * SQ_DESC_LEN)?;
    let cq_mem = alloc(provider, size as usize * CQ_DESC_LEN)?;
    let sq = SubmissionRing::new(sq_mem, size)?;
    let cq = CompletionRing::new(cq_mem, size)?;
    let r = provider.registers();
    r.write64(regs::sq_base_lo(0), regs::sq_base_hi(0), sq.memory().iova());
    r.write32(regs::sq_size(0), size);
    r.write64(regs::cq_base_lo(0), regs::cq_base_hi(0), cq.memory().iova());
    r.write32(regs::cq_size(0), size);
    r.write32(regs::sq_tail(0), 0);
    r.write32(regs::cq_head(0), 0);
    // The zeroed rings and the registers above are visible before enabling.
    fence(Ordering::Release);
    r.write32(regs::queue_ctrl(0), regs::QCTRL_ENABLE);
    r.write32(regs::DEVICE_CTRL, regs::CTRL_ENABLE);
    Ok((sq, cq))
}

impl<P: RegionProvider> MetricEngine for DeviceEngine<P> {
    /// Runs the ops through the device. On a [`DeviceError`] (kept in the
    /// counters; the engine is then failed until [`DeviceEngine::reset`]),
    /// the unanswered results get status [`STATUS_DEVICE_ERROR`].
    fn apply(&mut self, ops: &[Op], results: &mut [OpResult]) {
        let (done, r) = self.run(ops, results);
        if r.is_err() {
            for (res, op) in results[done..].iter_mut().zip(&ops[done..]) {
                *res = OpResult {
                    value: 0,
                    metric: op.metric,
                    status: STATUS_DEVICE_ERROR,
                    flags: 0,
                    reserved: 0,
                };
            }
            self.counters.ops_failed += (ops.len() - done) as u64;
        }
    }

    /// The device's dump (admin command); `None` also when the device
    /// failed (see [`DeviceEngine::try_dump`] for the error).
    fn dump(&self, metric: MetricId) -> Option<Vec<u64>> {
        self.try_dump(metric).ok().flatten()
    }

    fn plans(&self) -> &[MetricPlan] {
        &self.plans
    }
}
