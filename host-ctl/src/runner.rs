//! One probe on one thread or on several (`streamon run --threads N`),
//! behind one type, so the trace replay and the live capture feed either
//! the same way.

use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{EventSink, ParallelProbe, Probe, WorkerLost};

/// Where frames go: anything that takes frames one by one.
pub trait FrameTarget {
    /// Processes (or queues) one frame; events go to `sink`.
    fn frame(&mut self, data: &[u8], linktype: LinkType, meta: FrameMeta, sink: &mut dyn EventSink);

    /// Called when no frame came for a while (a live capture's poll
    /// timed out): a chance to do periodic work, such as answering the
    /// live view. Does nothing by default.
    fn idle(&mut self) {}
}

impl FrameTarget for Probe {
    fn frame(
        &mut self,
        data: &[u8],
        linktype: LinkType,
        meta: FrameMeta,
        sink: &mut dyn EventSink,
    ) {
        Probe::frame(self, data, linktype, meta, sink)
    }
}

/// A probe run on the caller's thread or on worker threads.
pub enum Runner {
    /// `--threads 1`: the applications run on the caller's thread.
    Single(Probe),
    /// `--threads N > 1`: the applications run on worker threads, the
    /// events come back in single-thread order (`docs/probe.md`).
    Parallel(ParallelProbe),
}

impl Runner {
    /// Runs `probe` on `threads` threads (1 or 0: the caller's).
    pub fn new(probe: Probe, threads: usize) -> Runner {
        if threads <= 1 {
            Runner::Single(probe)
        } else {
            Runner::Parallel(ParallelProbe::start(probe, threads))
        }
    }

    /// Worker threads (0 when the caller's thread runs the applications).
    pub fn worker_threads(&self) -> usize {
        match self {
            Runner::Single(_) => 0,
            Runner::Parallel(p) => p.threads(),
        }
    }

    /// End of input: the probe back (for the summary) and the timeouts
    /// still armed.
    pub fn finish(self, sink: &mut dyn EventSink) -> Result<(Probe, usize), WorkerLost> {
        match self {
            Runner::Single(mut p) => {
                let pending = p.finish();
                Ok((p, pending))
            }
            Runner::Parallel(p) => p.finish(sink),
        }
    }
}

impl FrameTarget for Runner {
    fn frame(
        &mut self,
        data: &[u8],
        linktype: LinkType,
        meta: FrameMeta,
        sink: &mut dyn EventSink,
    ) {
        match self {
            Runner::Single(p) => p.frame(data, linktype, meta, sink),
            Runner::Parallel(p) => p.frame(data, linktype, meta, sink),
        }
    }
}
