//! Live capture into a probe (`streamon run --iface NAME`): frames from a
//! `streamon-capture` ring, stamped by the kernel, numbered from 1, fed to
//! a [`FrameTarget`] until Ctrl-C, `--duration` or `--count`.
//!
//! Time is still the packet's: the kernel's receive timestamp is the
//! packet time the applications see. The wall clock only decides when to
//! stop (`--duration`), checked once per ring block, never per packet.
//!
//! A chained probe (`--subscribe`) also takes other probes' events: a
//! [`MessageFeed`] (the subscriptions, received on their own thread) is
//! drained after every ring block and every empty poll, so the messages
//! enter the applications' input between the frames of two blocks, in
//! arrival order; each runs at its own time (the publisher's packet
//! time), never moving an application's clock back (`docs/capture.md`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};
use streamon_capture::{Capture, CaptureConfig, CaptureError, CaptureStats, LinkLayer};
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::EventSink;

use crate::runner::{FrameTarget, MessageFeed};

/// What to capture and when to stop.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// The interface.
    pub iface: String,
    /// Ring settings and BPF pre-filter.
    pub config: CaptureConfig,
    /// Stop after this long (wall clock).
    pub duration: Option<Duration>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop once neither a frame nor a message has come for this long,
    /// after the first of either (`--idle-exit` of a chained probe).
    pub idle: Option<Duration>,
    /// Also write every frame fed to the probe to this pcap file
    /// (nanosecond kernel timestamps), e.g. to replay the same input later.
    pub write_pcap: Option<PathBuf>,
}

/// Why the capture stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The stop flag was raised (Ctrl-C, SIGTERM).
    Signal,
    /// `--duration` elapsed.
    Duration,
    /// `--count` frames were fed.
    Count,
    /// Nothing came for `--idle-exit`.
    Idle,
}

impl StopReason {
    /// Lowercase name for the summary.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Signal => "signal",
            StopReason::Duration => "duration",
            StopReason::Count => "count",
            StopReason::Idle => "idle",
        }
    }
}

/// What a live capture did.
#[derive(Debug, Clone)]
pub struct LiveSummary {
    /// Frames fed to the probe.
    pub frames: u64,
    /// The ring's and the kernel's counters at the stop.
    pub capture: CaptureStats,
    /// Why it stopped.
    pub stopped_by: StopReason,
    /// Wall-clock time from the first poll to the stop.
    pub elapsed: Duration,
}

impl LiveSummary {
    /// Frames the kernel put in the ring that were still unread at the
    /// stop: `kernel_packets − kernel_drops − frames read`.
    pub fn left_in_ring(&self) -> u64 {
        self.capture
            .kernel_packets
            .saturating_sub(self.capture.kernel_drops)
            .saturating_sub(self.capture.frames)
    }
}

/// Why a live capture failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Opening or reading the capture.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The interface's frames are neither Ethernet nor raw IP.
    #[error("interface {iface} has ARP hardware type {hw}: only Ethernet and raw-IP interfaces are supported")]
    LinkType {
        /// The interface.
        iface: String,
        /// The ARP hardware type.
        hw: u16,
    },
    /// Writing `--write-pcap`.
    #[error("writing {path}: {source}")]
    WritePcap {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// Poll timeout of the ring: the longest a stop flag waits to be seen.
const POLL: Duration = Duration::from_millis(100);
/// Poll timeout with a [`MessageFeed`]: also the longest a message waits
/// on a link without traffic.
const POLL_WITH_MESSAGES: Duration = Duration::from_millis(5);

/// Opens the capture (so permission and interface errors come before any
/// output), calls `ready`, then feeds frames (and the messages of `feed`,
/// between ring blocks) to `target` until a stop. The messages still
/// queued in `feed` at the stop are the caller's to hand over.
pub fn run_live(
    target: &mut dyn FrameTarget,
    opts: &LiveOptions,
    stop: &AtomicBool,
    sink: &mut dyn EventSink,
    ready: &mut dyn FnMut(&str),
    mut feed: Option<&mut dyn MessageFeed>,
) -> Result<LiveSummary, LiveError> {
    let mut cap = Capture::open(&opts.iface, &opts.config)?;
    let linktype = match cap.link_layer()? {
        LinkLayer::Ethernet => LinkType::Ethernet,
        LinkLayer::RawIp => LinkType::Raw,
        LinkLayer::Other(hw) => {
            return Err(LiveError::LinkType {
                iface: opts.iface.clone(),
                hw,
            })
        }
    };
    let write_err = |source: std::io::Error| LiveError::WritePcap {
        path: opts
            .write_pcap
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        source,
    };
    let mut writer = match &opts.write_pcap {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(write_err)?;
            let header = PcapHeader {
                ts_resolution: TsResolution::NanoSecond,
                datalink: if linktype == LinkType::Raw {
                    DataLink::RAW
                } else {
                    DataLink::ETHERNET
                },
                snaplen: 65535,
                ..PcapHeader::default()
            };
            Some(
                PcapWriter::with_header(std::io::BufWriter::new(file), header)
                    .map_err(|e| write_err(std::io::Error::other(e)))?,
            )
        }
        None => None,
    };
    ready(&opts.iface);
    let started = Instant::now();
    let poll = if feed.is_some() {
        POLL_WITH_MESSAGES
    } else {
        POLL
    };
    let mut frames = 0u64;
    // Last frame or message (for `idle`); none before the first.
    let mut last_input: Option<Instant> = None;
    let stopped_by = 'capture: loop {
        if stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break StopReason::Duration;
        }
        if opts.count.is_some_and(|c| frames >= c) {
            break StopReason::Count;
        }
        if let (Some(idle), Some(l)) = (opts.idle, last_input) {
            if l.elapsed() >= idle {
                break StopReason::Idle;
            }
        }
        // A signal interrupts the wait; the flag is checked on the next turn.
        let Some(mut block) = cap.next_block(poll)? else {
            if let Some(f) = feed.as_mut() {
                if f.feed(target, sink) > 0 {
                    last_input = Some(Instant::now());
                }
            }
            // Worker threads: emit what is ready rather than wait for a
            // full batch.
            target.flush(sink);
            target.idle();
            continue;
        };
        let before = frames;
        while let Some(f) = block.next_frame() {
            frames += 1;
            let meta = FrameMeta {
                ts_ns: f.ts_ns,
                orig_len: f.orig_len,
                packet_no: frames,
            };
            if let Some(w) = &mut writer {
                let ts = Duration::from_nanos(f.ts_ns);
                w.write_packet(&PcapPacket::new(ts, f.orig_len, f.data))
                    .map_err(|e| write_err(std::io::Error::other(e)))?;
            }
            target.frame(f.data, linktype, meta, sink);
            if opts.count.is_some_and(|c| frames >= c) {
                // The rest of the block stays unread (`left_in_ring`).
                break 'capture StopReason::Count;
            }
        }
        drop(block);
        let mut got = frames > before;
        if let Some(f) = feed.as_mut() {
            got |= f.feed(target, sink) > 0;
        }
        if got {
            last_input = Some(Instant::now());
        }
        // Worker threads: a block's events come out with the block (a
        // block is handed over at least every `block_timeout_ms`), not when
        // a batch fills.
        target.flush(sink);
    };
    if let Some(w) = writer {
        use std::io::Write;
        w.into_writer().flush().map_err(write_err)?;
    }
    Ok(LiveSummary {
        frames,
        capture: cap.stats()?,
        stopped_by,
        elapsed: started.elapsed(),
    })
}
