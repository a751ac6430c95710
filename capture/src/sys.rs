//! The crate's only `unsafe`: AF_PACKET socket calls (`socket`,
//! `setsockopt`, `getsockopt`, `bind`, `poll`, `if_nametoindex`) and the
//! two accesses to the memory-mapped ring that plain Rust cannot express:
//! the block status word shared with the kernel (atomic, acquire/release)
//! and the bytes of a block while user space owns it.
//!
//! Constants and structures are those of `<linux/if_packet.h>`, spelled out
//! here (with layout checks) so the crate does not depend on which libc
//! version exports them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use libc::{c_int, c_void, socklen_t};

pub(crate) const SOL_PACKET: c_int = 263;
pub(crate) const PACKET_RX_RING: c_int = 5;
pub(crate) const PACKET_STATISTICS: c_int = 6;
pub(crate) const PACKET_VERSION: c_int = 10;
pub(crate) const PACKET_RESERVE: c_int = 12;
pub(crate) const PACKET_FANOUT: c_int = 18;
pub(crate) const TPACKET_V3: c_int = 2;
pub(crate) const PACKET_FANOUT_HASH: u32 = 0;
/// Reassemble IP fragments before hashing, so every fragment of a datagram
/// goes to the same member.
pub(crate) const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
pub(crate) const ETH_P_ALL: u16 = 0x0003;

/// Block status: owned by the kernel.
pub(crate) const TP_STATUS_KERNEL: u32 = 0;
/// Block status: handed to user space.
pub(crate) const TP_STATUS_USER: u32 = 1;

/// Byte offset of `hdr.bh1.block_status` in `struct tpacket_block_desc`.
const BLOCK_STATUS_OFFSET: usize = 8;

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketReq3 {
    pub tp_block_size: u32,
    pub tp_block_nr: u32,
    pub tp_frame_size: u32,
    pub tp_frame_nr: u32,
    pub tp_retire_blk_tov: u32,
    pub tp_sizeof_priv: u32,
    pub tp_feature_req_word: u32,
}
const _: () = assert!(std::mem::size_of::<TpacketReq3>() == 28);

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketStatsV3 {
    /// Packets the socket saw, *including* those dropped (the kernel adds
    /// `tp_drops` to it when it answers `PACKET_STATISTICS`).
    pub tp_packets: u32,
    pub tp_drops: u32,
    pub tp_freeze_q_cnt: u32,
}
const _: () = assert!(std::mem::size_of::<TpacketStatsV3>() == 12);

/// `struct sock_filter`: one classic-BPF instruction.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}
const _: () = assert!(std::mem::size_of::<SockFilter>() == 8);

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// An `AF_PACKET` raw socket.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

fn check(rc: c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The index of interface `name`, or `None` when there is none.
pub(crate) fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // `if_nametoindex` only reads it.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

impl PacketSocket {
    /// A raw packet socket bound to no protocol yet: it receives nothing
    /// until [`PacketSocket::bind`], so no packet of another interface
    /// slips into the ring while it is set up.
    pub(crate) fn new() -> io::Result<PacketSocket> {
        // SAFETY: plain syscall with constant arguments; the result is
        // checked before it is used as a descriptor.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(fd)?;
        // SAFETY: `fd` is a freshly created descriptor that nothing else
        // owns; `OwnedFd` closes it exactly once.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd })
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    fn setsockopt<T>(&self, level: c_int, name: c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` points to a live `T` of exactly the length passed;
        // the kernel copies it and keeps no pointer.
        let rc = unsafe {
            libc::setsockopt(
                self.raw_fd(),
                level,
                name,
                (value as *const T).cast::<c_void>(),
                std::mem::size_of::<T>() as socklen_t,
            )
        };
        check(rc)
    }

    pub(crate) fn set_version_v3(&self) -> io::Result<()> {
        self.setsockopt(SOL_PACKET, PACKET_VERSION, &TPACKET_V3)
    }

    /// Headroom before each frame's MAC header (room to put back a VLAN
    /// tag the kernel took off).
    pub(crate) fn set_reserve(&self, bytes: u32) -> io::Result<()> {
        self.setsockopt(SOL_PACKET, PACKET_RESERVE, &bytes)
    }

    pub(crate) fn set_rx_ring(&self, req: &TpacketReq3) -> io::Result<()> {
        self.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
    }

    pub(crate) fn attach_filter(&self, insns: &[SockFilter]) -> io::Result<()> {
        let len =
            u16::try_from(insns.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let prog = SockFprog {
            len,
            filter: insns.as_ptr(),
        };
        // `setsockopt` copies the program (SO_ATTACH_FILTER runs
        // `copy_from_user` on `len` instructions), so `insns` need only live
        // for the call.
        self.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
    }

    pub(crate) fn bind(&self, ifindex: u32) -> io::Result<()> {
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = ifindex as c_int;
        // SAFETY: `addr` is a valid `sockaddr_ll` and the length passed is
        // its size.
        let rc = unsafe {
            libc::bind(
                self.raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as socklen_t,
            )
        };
        check(rc)
    }

    /// The ARP hardware type of the interface the socket is bound to
    /// (`sll_hatype` of `getsockname`): right in any network namespace,
    /// unlike `/sys/class/net`, which shows the namespace `/sys` was
    /// mounted in.
    pub(crate) fn hardware_type(&self) -> io::Result<u16> {
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as socklen_t;
        // SAFETY: `addr` is writable for `len` bytes and `len` is a valid
        // in/out length.
        let rc = unsafe {
            libc::getsockname(
                self.raw_fd(),
                (&mut addr as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
                &mut len,
            )
        };
        check(rc)?;
        Ok(addr.sll_hatype)
    }

    pub(crate) fn join_fanout(&self, group: u16, mode_and_flags: u32) -> io::Result<()> {
        let arg: u32 = u32::from(group) | (mode_and_flags << 16);
        self.setsockopt(SOL_PACKET, PACKET_FANOUT, &arg)
    }

    /// Reads and resets the kernel's counters for this socket.
    pub(crate) fn take_stats(&self) -> io::Result<TpacketStatsV3> {
        let mut st = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as socklen_t;
        // SAFETY: `st` is writable for `len` bytes and `len` is a valid
        // in/out length; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                (&mut st as *mut TpacketStatsV3).cast::<c_void>(),
                &mut len,
            )
        };
        check(rc)?;
        Ok(st)
    }

    /// Waits up to `timeout_ms` for the socket to be readable (a block
    /// handed to user space). `Ok(false)` on timeout or on a signal.
    pub(crate) fn poll_in(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid `pollfd`, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(rc > 0)
    }
}

/// The ring mapped from the socket: `block_nr` blocks of `block_size`
/// bytes, shared with the kernel.
///
/// `memmap2::MmapRaw` does the mapping (`MAP_SHARED`, read/write, offset 0,
/// as `PACKET_RX_RING` requires) and the unmapping; it hands out only a
/// pointer, because the kernel writes this memory concurrently and no
/// `&`/`&mut` may cover a block the kernel owns.
#[derive(Debug)]
pub(crate) struct RingMap {
    map: memmap2::MmapRaw,
    block_size: usize,
    block_nr: usize,
}

impl RingMap {
    pub(crate) fn new(
        sock: &PacketSocket,
        block_size: usize,
        block_nr: usize,
    ) -> io::Result<RingMap> {
        let len = block_size
            .checked_mul(block_nr)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(sock.raw_fd())?;
        Ok(RingMap {
            map,
            block_size,
            block_nr,
        })
    }

    pub(crate) fn block_nr(&self) -> usize {
        self.block_nr
    }

    fn status_word(&self, block: usize) -> &AtomicU32 {
        assert!(block < self.block_nr, "block index in range");
        // SAFETY: the block lies inside the mapping (checked above; the
        // mapping is `block_size * block_nr` bytes), blocks start on page
        // boundaries so the word at offset 8 is 4-byte aligned, and the
        // mapping lives as long as `self`. The word is shared with the
        // kernel, which is why it is only ever reached atomically.
        unsafe {
            AtomicU32::from_ptr(
                self.map
                    .as_mut_ptr()
                    .add(block * self.block_size + BLOCK_STATUS_OFFSET)
                    .cast::<u32>(),
            )
        }
    }

    /// The block's status. Acquire: the packet bytes the kernel wrote
    /// before it set `TP_STATUS_USER` are visible after this load.
    pub(crate) fn status(&self, block: usize) -> u32 {
        self.status_word(block).load(Ordering::Acquire)
    }

    /// Hands a block back to the kernel. Release: every read of the block
    /// happens before the kernel may reuse it.
    pub(crate) fn release(&self, block: usize) {
        self.status_word(block)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The bytes of a block user space owns.
    ///
    /// Call only after [`RingMap::status`] returned a value with
    /// `TP_STATUS_USER` for this block and before [`RingMap::release`]:
    /// in between, the kernel does not write the block (it moves on to
    /// the next one and, when it finds that one owned by user space too,
    /// drops packets and counts them). The `&mut self` borrow ends before
    /// `release` can be called.
    pub(crate) fn user_block(&mut self, block: usize) -> &mut [u8] {
        assert!(block < self.block_nr, "block index in range");
        // SAFETY: the range is inside the mapping (checked above), the
        // mapping outlives the returned borrow (tied to `&mut self`), and
        // the caller holds the block in user ownership (see above), so the
        // kernel does not write it while the slice lives; `&mut self` makes
        // the slice the only Rust access to it.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.map.as_mut_ptr().add(block * self.block_size),
                self.block_size,
            )
        }
    }
}

/// Moves the calling thread into the network namespace at `path` (e.g.
/// `/var/run/netns/NAME`). Only this thread changes namespace; sockets it
/// opens afterwards live there.
pub(crate) fn enter_netns(path: &std::path::Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: `f` is an open namespace file for the duration of the call;
    // `setns` changes the namespace of the calling thread only and touches
    // no memory of ours.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    check(rc)
}
