//! Live capture on commodity hosts, for a probe without a SmartNIC.
//!
//! One job: get frames from a Linux network interface into user space
//! fast and say exactly how many were lost. An `AF_PACKET` socket with a
//! `TPACKET_V3` receive ring: the kernel writes frames into blocks of a
//! memory-mapped ring and hands whole blocks over; user space walks a
//! block's frames in place (no copy, no syscall per frame) and hands the
//! block back. Every frame the kernel could not place (ring full) is in
//! [`CaptureStats::kernel_drops`], read from `PACKET_STATISTICS`.
//!
//! * [`Capture::open`]: one socket, one ring, bound to one interface;
//! * [`Capture::open_fanout`]: `n` sockets in one `PACKET_FANOUT` group by
//!   flow hash (with IP defragmentation), for `n` reader threads: every
//!   packet of a flow goes to the same member;
//! * [`BpfProgram`]: an optional classic-BPF pre-filter run by the kernel
//!   (the text `tcpdump -ddd EXPR` prints; no libpcap needed).
//!
//! Needs `CAP_NET_RAW`. `unsafe` lives only in the private `sys` module
//! (socket calls, the shared block status word, the bytes of a user-owned
//! block), each block with a `// SAFETY:` comment; `memmap2` maps the ring.
//! Nothing here parses protocols: frames go to `streamon-packet`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod block;
pub mod bpf;
#[allow(unsafe_code)]
mod sys;
pub mod testbed;

use std::io;
use std::time::Duration;

pub use block::Frame;
use block::{BlockWalker, WalkCounts, VLAN_TAG_LEN};
pub use bpf::{BpfParseError, BpfParseErrorKind, BpfProgram};
pub use sys::SockFilter;
use sys::{PacketSocket, RingMap, TpacketReq3};

/// What the frames of an interface start with, from its ARP hardware
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLayer {
    /// An Ethernet header (`ARPHRD_ETHER` 1, and loopback 772, whose
    /// frames carry a zeroed Ethernet header).
    Ethernet,
    /// The IP header (`ARPHRD_NONE` 65534: tun devices, WireGuard).
    RawIp,
    /// Another hardware type, by number.
    Other(u16),
}

impl LinkLayer {
    fn from_hardware_type(t: u16) -> LinkLayer {
        match t {
            1 | 772 => LinkLayer::Ethernet,
            65534 => LinkLayer::RawIp,
            other => LinkLayer::Other(other),
        }
    }
}

/// Ring and socket settings.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Bytes per ring block; a power of two, a multiple of the page size.
    /// Default 1 MiB. A frame longer than a block is cut to fit.
    pub block_size: usize,
    /// Blocks in the ring. Default 64 (a 64 MiB ring): at 1 Mpps of
    /// 100-byte frames that is about 0.5 s of slack before the kernel drops.
    pub block_count: usize,
    /// How long the kernel keeps a partly filled block before it hands it
    /// over anyway, in ms. Default 10: bounds latency at low rates.
    pub block_timeout_ms: u32,
    /// Classic-BPF pre-filter run by the kernel. Default none (every frame).
    pub filter: Option<BpfProgram>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            block_size: 1 << 20,
            block_count: 64,
            block_timeout_ms: 10,
            filter: None,
        }
    }
}

/// Counters of one socket (see `docs/counters.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames read from the ring.
    pub frames: u64,
    /// Bytes of those frames as captured.
    pub bytes: u64,
    /// Blocks handed over by the kernel.
    pub blocks: u64,
    /// Frames the kernel saw for this socket after the filter
    /// (`tp_packets`, which the kernel reports including the drops).
    pub kernel_packets: u64,
    /// Frames the kernel dropped because the ring was full (`tp_drops`).
    pub kernel_drops: u64,
    /// Times the ring was frozen (`tp_freeze_q_cnt`).
    pub kernel_freezes: u64,
    /// Records or blocks whose offsets did not fit the block (skipped,
    /// never trusted; should stay 0).
    pub ring_errors: u64,
    /// Frames whose offloaded VLAN tag was put back.
    pub vlan_restored: u64,
    /// Frames with an offloaded VLAN tag and no headroom to put it back
    /// (delivered without the tag).
    pub vlan_not_restored: u64,
}

impl CaptureStats {
    /// Adds another socket's counters (fanout members).
    pub fn add(&mut self, o: &CaptureStats) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.blocks += o.blocks;
        self.kernel_packets += o.kernel_packets;
        self.kernel_drops += o.kernel_drops;
        self.kernel_freezes += o.kernel_freezes;
        self.ring_errors += o.ring_errors;
        self.vlan_restored += o.vlan_restored;
        self.vlan_not_restored += o.vlan_not_restored;
    }
}

/// Why a capture could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No interface by that name in this network namespace.
    #[error("no network interface named {name:?} (list them with `ip link`)")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
    },
    /// The process lacks `CAP_NET_RAW`.
    #[error(
        "capturing on {iface} needs CAP_NET_RAW: run as root, or grant it with \
         `setcap cap_net_raw+ep PATH-TO-streamon`"
    )]
    Permission {
        /// The interface.
        iface: String,
    },
    /// A ring setting the kernel cannot take.
    #[error("bad capture ring setting: {0}")]
    Config(String),
    /// The kernel refused the BPF program.
    #[error("the kernel refused the BPF filter ({insns} instructions) on {iface}: {source}")]
    Filter {
        /// The interface.
        iface: String,
        /// Program length.
        insns: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A socket step failed.
    #[error("{step} on {iface}: {source}")]
    Sys {
        /// The interface.
        iface: String,
        /// Which step (`socket`, `PACKET_RX_RING`, `mmap`, `bind`, …).
        step: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
}

impl CaptureError {
    fn sys(iface: &str, step: &'static str, source: io::Error) -> CaptureError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::Permission {
                iface: iface.to_string(),
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => CaptureError::NoSuchInterface {
                name: iface.to_string(),
            },
            _ => CaptureError::Sys {
                iface: iface.to_string(),
                step,
                source,
            },
        }
    }
}

/// A live capture: one `AF_PACKET` socket and its mapped `TPACKET_V3` ring.
#[derive(Debug)]
pub struct Capture {
    iface: String,
    // Field order matters: the ring is unmapped before the socket closes.
    ring: RingMap,
    sock: PacketSocket,
    next_block: usize,
    stats: CaptureStats,
}

/// A block of frames owned by user space; handed back to the kernel when
/// dropped. Read its frames with [`Block::next_frame`].
pub struct Block<'c> {
    cap: &'c mut Capture,
    index: usize,
    walker: Option<BlockWalker>,
    counts: WalkCounts,
}

impl Block<'_> {
    /// The next frame of the block, `None` at its end. A record whose
    /// offsets do not fit the block ends the block and is counted in
    /// [`CaptureStats::ring_errors`].
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let walker = self.walker.as_mut()?;
        let bytes = self.cap.ring.user_block(self.index);
        match walker.next(bytes, &mut self.counts)? {
            Ok(f) => {
                self.cap.stats.frames += 1;
                self.cap.stats.bytes += f.data.len() as u64;
                Some(f)
            }
            Err(_) => {
                self.cap.stats.ring_errors += 1;
                self.walker = None;
                None
            }
        }
    }
}

/// Walks `block` as a TPACKET_V3 block the way [`Block::next_frame`]
/// does, calling `each` with every frame, and returns whether a corrupt
/// record ended it. Only for the `capture_block` fuzz target (the kernel
/// writes the blocks, but a corrupt one must be counted, never trusted).
#[doc(hidden)]
pub fn walk_block_for_fuzzing(block: &mut [u8], mut each: impl FnMut(Frame<'_>)) -> bool {
    let Ok(mut walker) = BlockWalker::new(block) else {
        return true;
    };
    let mut counts = WalkCounts::default();
    loop {
        match walker.next(block, &mut counts) {
            None => return false,
            Some(Ok(f)) => each(f),
            Some(Err(_)) => return true,
        }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.cap.stats.vlan_restored += self.counts.vlan_restored;
        self.cap.stats.vlan_not_restored += self.counts.vlan_no_room;
        self.cap.ring.release(self.index);
        self.cap.next_block = (self.index + 1) % self.cap.ring.block_nr();
    }
}

impl Capture {
    /// Opens a capture of every frame on `iface` (both directions).
    pub fn open(iface: &str, config: &CaptureConfig) -> Result<Capture, CaptureError> {
        Capture::open_member(iface, config, None)
    }

    /// Opens `members` sockets on `iface` in one `PACKET_FANOUT` group by
    /// flow hash (IP fragments reassembled before hashing), each with its
    /// own ring: give each to its own thread. `group` must be unique among
    /// the fanout groups of this network namespace (e.g. derived from the
    /// process id).
    pub fn open_fanout(
        iface: &str,
        config: &CaptureConfig,
        members: usize,
        group: u16,
    ) -> Result<Vec<Capture>, CaptureError> {
        if members == 0 {
            return Err(CaptureError::Config("a fanout group needs a member".into()));
        }
        (0..members)
            .map(|_| Capture::open_member(iface, config, Some(group)))
            .collect()
    }

    fn open_member(
        iface: &str,
        config: &CaptureConfig,
        fanout: Option<u16>,
    ) -> Result<Capture, CaptureError> {
        let page = 4096;
        if config.block_size < page
            || !config.block_size.is_power_of_two()
            || config.block_count == 0
            || config.block_size > u32::MAX as usize
            || config.block_count > u32::MAX as usize
        {
            return Err(CaptureError::Config(format!(
                "block size {} must be a power of two of at least {page} bytes, and at least one block ({})",
                config.block_size, config.block_count
            )));
        }
        let ifindex = sys::ifindex(iface).ok_or_else(|| CaptureError::NoSuchInterface {
            name: iface.to_string(),
        })?;
        let err = |step| move |e| CaptureError::sys(iface, step, e);
        let sock = PacketSocket::new().map_err(err("socket(AF_PACKET)"))?;
        sock.set_version_v3().map_err(err("PACKET_VERSION"))?;
        sock.set_reserve(VLAN_TAG_LEN as u32)
            .map_err(err("PACKET_RESERVE"))?;
        // tp_frame_size / tp_frame_nr are not used by V3 beyond a sanity
        // check (frames per block must be whole); 2048 is what libpcap uses.
        let frame_size = 2048u32;
        let req = TpacketReq3 {
            tp_block_size: config.block_size as u32,
            tp_block_nr: config.block_count as u32,
            tp_frame_size: frame_size,
            tp_frame_nr: (config.block_size as u32 / frame_size) * config.block_count as u32,
            tp_retire_blk_tov: config.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        sock.set_rx_ring(&req).map_err(err("PACKET_RX_RING"))?;
        let ring = RingMap::new(&sock, config.block_size, config.block_count)
            .map_err(err("mmap of the ring"))?;
        if let Some(prog) = &config.filter {
            sock.attach_filter(prog.instructions())
                .map_err(|source| CaptureError::Filter {
                    iface: iface.to_string(),
                    insns: prog.len(),
                    source,
                })?;
        }
        sock.bind(ifindex).map_err(err("bind"))?;
        if let Some(group) = fanout {
            sock.join_fanout(
                group,
                sys::PACKET_FANOUT_HASH | sys::PACKET_FANOUT_FLAG_DEFRAG,
            )
            .map_err(err("PACKET_FANOUT"))?;
        }
        Ok(Capture {
            iface: iface.to_string(),
            ring,
            sock,
            next_block: 0,
            stats: CaptureStats::default(),
        })
    }

    /// The interface captured.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// What the interface's frames start with.
    pub fn link_layer(&self) -> Result<LinkLayer, CaptureError> {
        self.sock
            .hardware_type()
            .map(LinkLayer::from_hardware_type)
            .map_err(|e| CaptureError::sys(&self.iface, "getsockname", e))
    }

    /// The next block the kernel handed over, waiting up to `timeout` for
    /// one. `Ok(None)` on timeout or when a signal interrupted the wait
    /// (check your stop flag and call again).
    pub fn next_block(&mut self, timeout: Duration) -> Result<Option<Block<'_>>, CaptureError> {
        if self.ring.status(self.next_block) & sys::TP_STATUS_USER == 0 {
            let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            let ready = self
                .sock
                .poll_in(ms)
                .map_err(|e| CaptureError::sys(&self.iface, "poll", e))?;
            if !ready || self.ring.status(self.next_block) & sys::TP_STATUS_USER == 0 {
                return Ok(None);
            }
        }
        let index = self.next_block;
        self.stats.blocks += 1;
        let walker = match BlockWalker::new(self.ring.user_block(index)) {
            Ok(w) => Some(w),
            Err(_) => {
                self.stats.ring_errors += 1;
                None
            }
        };
        Ok(Some(Block {
            cap: self,
            index,
            walker,
            counts: WalkCounts::default(),
        }))
    }

    /// Counters so far; reads (and so resets) the kernel's counters and
    /// adds them to the running totals.
    pub fn stats(&mut self) -> Result<CaptureStats, CaptureError> {
        let k = self
            .sock
            .take_stats()
            .map_err(|e| CaptureError::sys(&self.iface, "PACKET_STATISTICS", e))?;
        self.stats.kernel_packets += u64::from(k.tp_packets);
        self.stats.kernel_drops += u64::from(k.tp_drops);
        self.stats.kernel_freezes += u64::from(k.tp_freeze_q_cnt);
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_types_map_to_link_layers() {
        assert_eq!(LinkLayer::from_hardware_type(1), LinkLayer::Ethernet);
        assert_eq!(LinkLayer::from_hardware_type(772), LinkLayer::Ethernet);
        assert_eq!(LinkLayer::from_hardware_type(65534), LinkLayer::RawIp);
        assert_eq!(LinkLayer::from_hardware_type(32), LinkLayer::Other(32));
    }

    #[test]
    fn unknown_interface_is_named() {
        let e = Capture::open("no-such-if0", &CaptureConfig::default()).unwrap_err();
        assert!(
            matches!(&e, CaptureError::NoSuchInterface { name } if name == "no-such-if0"),
            "{e}"
        );
        assert!(e.to_string().contains("ip link"));
    }

    #[test]
    fn permission_errors_say_what_to_do() {
        let e = CaptureError::sys(
            "eth0",
            "socket(AF_PACKET)",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(e.to_string().contains("CAP_NET_RAW"), "{e}");
        let e = CaptureError::sys("eth0", "bind", io::Error::from_raw_os_error(libc::ENODEV));
        assert!(matches!(e, CaptureError::NoSuchInterface { .. }));
    }

    #[test]
    fn bad_ring_settings_are_refused_before_any_syscall() {
        let cfg = CaptureConfig {
            block_size: 5000,
            ..CaptureConfig::default()
        };
        assert!(matches!(
            Capture::open("lo", &cfg),
            Err(CaptureError::Config(_))
        ));
    }
}
