//! Replaying a trace file through a probe.

use std::path::Path;

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
