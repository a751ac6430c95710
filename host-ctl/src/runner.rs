//! One probe on one thread or on several (`streamon run --threads N`),
//! behind one type, so the trace replay, the live capture and the
//! subscriptions of a chained probe feed either the same way.

use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{EventSink, Message, ParallelProbe, Probe, WorkerLost};

/// Where frames and messages go: anything that takes them one by one.
pub trait FrameTarget {
    /// Processes (or queues) one frame; events go to `sink`.
    fn frame(&mut self, data: &[u8], linktype: LinkType, meta: FrameMeta, sink: &mut dyn EventSink);

    /// Processes (or queues) one message from another probe, after the
    /// frames handed over so far (probe chaining).
    fn message(&mut self, m: Message, sink: &mut dyn EventSink);

    /// The input paused: queued work is started and the events that are
    /// ready are emitted, without waiting (worker threads). Does nothing
    /// when everything runs on the caller's thread.
    fn flush(&mut self, _sink: &mut dyn EventSink) {}

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

    fn message(&mut self, m: Message, sink: &mut dyn EventSink) {
        Probe::message(self, &m, sink)
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

    fn message(&mut self, m: Message, sink: &mut dyn EventSink) {
        match self {
            Runner::Single(p) => p.message(&m, sink),
            Runner::Parallel(p) => p.message(m, sink),
        }
    }

    fn flush(&mut self, sink: &mut dyn EventSink) {
        if let Runner::Parallel(p) = self {
            p.flush(sink);
        }
    }
}

/// Messages received meanwhile, for a loop that waits on something else
/// (the live capture's ring): a chained probe's subscriptions.
pub trait MessageFeed {
    /// Hands the messages received so far (a bounded number) to `target`,
    /// without waiting; returns how many.
    fn feed(&mut self, target: &mut dyn FrameTarget, sink: &mut dyn EventSink) -> usize;
}
