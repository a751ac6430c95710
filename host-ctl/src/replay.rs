//! Replaying a trace file through a probe.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use streamon_packet::pcap::{CaptureError, PcapSource};
use streamon_probe::{EventSink, Probe};

use crate::runner::FrameTarget;

/// What a replay saw.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Frames read from the file.
    pub frames: u64,
    /// Bytes of the file consumed.
    pub bytes: u64,
    /// Timeouts still armed at the end (they would fire after the trace).
    pub pending_timeouts: usize,
    /// [`ReplayOptions::stop`] was raised before the end of the file.
    pub stopped: bool,
}

/// Progress callback: `(frames so far, bytes so far)`, called every 4096
/// frames.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Replays every frame of `path` into `probe`. On a truncated or corrupt
/// file the frames before the damage have been processed and the error
/// says how far the file was read.
pub fn replay_file(
    probe: &mut Probe,
    path: &Path,
    sink: &mut dyn EventSink,
    progress: Progress<'_>,
) -> Result<ReplaySummary, CaptureError> {
    let result = replay_frames(probe, path, sink, progress);
    let pending = probe.finish();
    result.map(|mut s| {
        s.pending_timeouts = pending;
        s
    })
}

/// Feeds every frame of `path` to `target` without finishing it (the
/// caller does: `Runner::finish`). `pending_timeouts` is left 0. On a
/// truncated or corrupt file the frames before the damage have been fed.
pub fn replay_frames(
    target: &mut dyn FrameTarget,
    path: &Path,
    sink: &mut dyn EventSink,
    progress: Progress<'_>,
) -> Result<ReplaySummary, CaptureError> {
    let mut src = PcapSource::open(path)?;
    let mut summary = ReplaySummary::default();
    while let Some(f) = src.next_frame()? {
        target.frame(f.data, f.linktype, f.meta, sink);
        summary.frames += 1;
        if summary.frames & 0xfff == 0 {
            progress(summary.frames, src.byte_offset());
        }
    }
    summary.bytes = src.byte_offset();
    Ok(summary)
}

/// The [`ReplayOptions::between`] callback.
pub type Between<'a, T> = &'a mut dyn FnMut(&mut T, &mut dyn EventSink);

/// How [`replay_frames_with`] replays.
pub struct ReplayOptions<'a, T: ?Sized> {
    /// Shift every timestamp so the first frame is at this time (ns since
    /// the epoch), as if the capture were replayed then: probes replaying
    /// different captures share one clock this way. The shift is the same
    /// for every frame, so intervals are kept.
    pub start_time_ns: Option<u64>,
    /// Called every [`BETWEEN_EVERY`] frames and once after the last, with
    /// the target and the sink (a chained probe hands it the messages
    /// received meanwhile).
    pub between: Option<Between<'a, T>>,
    /// Checked every [`BETWEEN_EVERY`] frames: once raised (Ctrl-C of a
    /// probe that also listens to subscriptions), the replay ends there.
    pub stop: Option<&'a AtomicBool>,
}

impl<T: ?Sized> Default for ReplayOptions<'_, T> {
    fn default() -> Self {
        ReplayOptions {
            start_time_ns: None,
            between: None,
            stop: None,
        }
    }
}

/// Frames between two calls of [`ReplayOptions::between`].
pub const BETWEEN_EVERY: u64 = 64;

/// [`replay_frames`] with options; like it, leaves `target` unfinished.
pub fn replay_frames_with<T: FrameTarget + ?Sized>(
    target: &mut T,
    path: &Path,
    sink: &mut dyn EventSink,
    progress: Progress<'_>,
    mut opts: ReplayOptions<'_, T>,
) -> Result<ReplaySummary, CaptureError> {
    let mut src = PcapSource::open(path)?;
    let mut summary = ReplaySummary::default();
    // (first frame's time, shift target)
    let mut shift: Option<(u64, u64)> = None;
    while let Some(f) = src.next_frame()? {
        let mut meta = f.meta;
        if let Some(start) = opts.start_time_ns {
            let (first, start) = *shift.get_or_insert((meta.ts_ns, start));
            let rel = i128::from(meta.ts_ns) - i128::from(first);
            meta.ts_ns = (i128::from(start) + rel).clamp(0, i128::from(u64::MAX)) as u64;
        }
        target.frame(f.data, f.linktype, meta, sink);
        summary.frames += 1;
        if summary.frames & 0xfff == 0 {
            progress(summary.frames, src.byte_offset());
        }
        if summary.frames % BETWEEN_EVERY == 0 {
            if let Some(b) = opts.between.as_mut() {
                b(target, sink);
            }
            if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                summary.stopped = true;
                break;
            }
        }
    }
    if let Some(b) = opts.between.as_mut() {
        b(target, sink);
    }
    summary.bytes = src.byte_offset();
    Ok(summary)
}
