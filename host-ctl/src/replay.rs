//! Replaying a trace file through a probe.

use std::path::Path;

use streamon_packet::pcap::{CaptureError, PcapSource};
use streamon_probe::{EventSink, Probe};

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
    let mut src = PcapSource::open(path)?;
    let mut summary = ReplaySummary::default();
    loop {
        match src.next_frame() {
            Ok(Some(f)) => {
                probe.frame(f.data, f.linktype, f.meta, sink);
                summary.frames += 1;
                if summary.frames & 0xfff == 0 {
                    progress(summary.frames, src.byte_offset());
                }
            }
            Ok(None) => break,
            Err(e) => {
                probe.finish();
                return Err(e);
            }
        }
    }
    summary.bytes = src.byte_offset();
    summary.pending_timeouts = probe.finish();
    Ok(summary)
}
