//! Trace files: classic pcap (either byte order, micro- or nanosecond
//! timestamps) and pcapng, told apart by their magic number, never by the
//! file name.
//!
//! [`PcapSource`] reads a file or any [`Read`] and hands out one
//! [`CapturedFrame`] at a time: the frame's bytes (borrowed from the
//! reader's buffer, which is reused), its [`FrameMeta`] with the timestamp
//! converted to nanoseconds, and its [`LinkType`] (per interface in
//! pcapng). The `pcap-file` crate parses the file header, the pcapng blocks
//! and the interface descriptions; this module frames records itself so it
//! knows the byte offset of each, bounds every length before buffering it,
//! and applies each pcapng interface's timestamp resolution and offset
//! (`if_tsresol`, `if_tsoffset`), which `pcap-file` 2 leaves to the caller.
//!
//! Guarantees: a truncated or corrupt file yields a [`CaptureError`] that
//! carries the number of packets read before it and the byte offset of the
//! bad record, never a panic; no record longer than [`MAX_RECORD_LEN`] is
//! buffered; frames are not copied, and the buffer only grows to the
//! largest record seen.
//!
//! Live capture is not here: this is the offline source.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::PcapNgParser;
use pcap_file::{Endianness, PcapError, TsResolution};

use crate::parsed::{FrameMeta, LinkType};

/// Largest record (pcap packet record or pcapng block) accepted, in bytes.
/// Larger lengths are taken as corruption rather than buffered.
pub const MAX_RECORD_LEN: usize = 16 << 20;

/// Initial size of the read buffer; it grows to the largest record.
const INITIAL_BUFFER: usize = 256 << 10;

/// Length of a classic pcap file header.
const PCAP_HEADER_LEN: usize = 24;
/// Length of a classic pcap record header.
const PCAP_RECORD_HEADER_LEN: usize = 16;

/// pcapng block types (draft-ietf-opsawg-pcapng §11.1).
mod block {
    pub const SECTION_HEADER: u32 = 0x0a0d_0d0a;
    pub const INTERFACE_DESCRIPTION: u32 = 1;
    /// Obsolete Packet Block.
    pub const PACKET: u32 = 2;
    pub const SIMPLE_PACKET: u32 = 3;
    pub const ENHANCED_PACKET: u32 = 6;
    /// Byte-order magic of a section header, read big-endian.
    pub const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
}

/// A trace file could not be (fully) read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened.
    #[error("cannot open capture {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The first four bytes are no pcap or pcapng magic.
    #[error("not a pcap or pcapng file (magic {magic:#010x})")]
    UnknownFormat {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// Reading the underlying file or stream failed.
    #[error("read failed at byte {offset}, after {packets} packets")]
    Io {
        /// Packets read before the failure.
        packets: u64,
        /// Byte offset of the record being read.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The data ends inside a header or a record.
    #[error("capture truncated at byte {offset}, after {packets} packets")]
    Truncated {
        /// Packets read before the cut record.
        packets: u64,
        /// Byte offset where the cut record (or header) starts.
        offset: u64,
    },
    /// A header or record is inconsistent.
    #[error("corrupt capture at byte {offset}, after {packets} packets: {reason}")]
    Corrupt {
        /// Packets read before the bad record.
        packets: u64,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl CaptureError {
    /// Packets read successfully before the error.
    pub fn packets(&self) -> u64 {
        match self {
            CaptureError::Io { packets, .. }
            | CaptureError::Truncated { packets, .. }
            | CaptureError::Corrupt { packets, .. } => *packets,
            CaptureError::Open { .. } | CaptureError::UnknownFormat { .. } => 0,
        }
    }

    /// Byte offset in the file of the record that failed (0 for errors
    /// about the file as a whole).
    pub fn offset(&self) -> u64 {
        match self {
            CaptureError::Io { offset, .. }
            | CaptureError::Truncated { offset, .. }
            | CaptureError::Corrupt { offset, .. } => *offset,
            CaptureError::Open { .. } | CaptureError::UnknownFormat { .. } => 0,
        }
    }
}

/// The container format of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap {
        /// Nanosecond timestamps (magic `a1b23c4d`) rather than microseconds.
        nanosecond: bool,
        /// Written big-endian.
        big_endian: bool,
    },
    /// pcapng.
    PcapNg,
}

/// One frame read from a trace.
#[derive(Debug, Clone, Copy)]
pub struct CapturedFrame<'a> {
    /// Time (ns since the epoch), wire length and sequence number (from 1).
    pub meta: FrameMeta,
    /// The link type of the frame's interface.
    pub linktype: LinkType,
    /// The captured bytes, borrowed from the source's buffer.
    pub data: &'a [u8],
    /// The pcapng interface id (0 for classic pcap).
    pub interface: u32,
}

/// A pcapng interface, as far as frames need it.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: LinkType,
    snaplen: u32,
    /// `if_tsresol`: bit 7 clear, 10^-n s; set, 2^-n s. Default 6 (µs).
    tsresol: u8,
    /// `if_tsoffset`, seconds added to every timestamp.
    tsoffset_s: u64,
}

enum Format {
    Pcap {
        parser: PcapParser,
        linktype: LinkType,
        max_caplen: usize,
    },
    PcapNg {
        parser: PcapNgParser,
        interfaces: Vec<Interface>,
        /// Timestamp of the last frame, for Simple Packet Blocks (which
        /// carry none).
        last_ts_ns: u64,
    },
}

/// A pcap or pcapng trace, read frame by frame into a reused buffer.
pub struct PcapSource<R> {
    input: Input<R>,
    format: Format,
    kind: CaptureFormat,
    /// Set after an error: the source then yields nothing more.
    failed: bool,
}

/// The byte stream under a source: a reader, a reused buffer, and where
/// in the file the unconsumed bytes start.
struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
    /// Frames handed out so far.
    packets: u64,
}

impl PcapSource<File> {
    /// Opens a trace file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_owned(),
            source,
        })?;
        PcapSource::new(file)
    }
}

fn rd16(b: &[u8], at: usize, big: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn rd32(b: &[u8], at: usize, big: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// Converts a pcapng timestamp in `if_tsresol` units to nanoseconds.
fn pcapng_ts_ns(units: u64, iface: &Interface) -> u64 {
    let units = u128::from(units);
    let ns = if iface.tsresol & 0x80 == 0 {
        let exp = u32::from(iface.tsresol);
        if exp <= 9 {
            units * 10u128.pow(9 - exp)
        } else {
            units / 10u128.pow((exp - 9).min(38))
        }
    } else {
        (units * 1_000_000_000) >> (iface.tsresol & 0x7f)
    };
    let ns = ns + u128::from(iface.tsoffset_s) * 1_000_000_000;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl<R: Read> PcapSource<R> {
    /// Reads the file header from `reader` and sniffs the format.
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        let mut input = Input {
            reader,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            packets: 0,
        };
        if !input.fill(4)? {
            return Err(input.truncated());
        }
        let magic = rd32(input.unconsumed(), 0, true);
        let (format, kind) = match magic {
            block::SECTION_HEADER => {
                let len = input.pcapng_block_len(Endianness::Big)?;
                if !input.fill(len)? {
                    return Err(input.truncated());
                }
                let parser = match PcapNgParser::new(input.unconsumed()) {
                    Ok((_, parser)) => parser,
                    Err(e) => return Err(input.pcap_file_error(e)),
                };
                input.consume(len);
                let format = Format::PcapNg {
                    parser,
                    interfaces: Vec::new(),
                    last_ts_ns: 0,
                };
                (format, CaptureFormat::PcapNg)
            }
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                if !input.fill(PCAP_HEADER_LEN)? {
                    return Err(input.truncated());
                }
                let parser = match PcapParser::new(input.unconsumed()) {
                    Ok((_, parser)) => parser,
                    Err(e) => return Err(input.pcap_file_error(e)),
                };
                input.consume(PCAP_HEADER_LEN);
                let header = parser.header();
                let kind = CaptureFormat::Pcap {
                    nanosecond: header.ts_resolution == TsResolution::NanoSecond,
                    big_endian: header.endianness == Endianness::Big,
                };
                // libpcap accepts records up to 256 KiB whatever the snap
                // length says; so do we.
                let max_caplen = (header.snaplen as usize).clamp(256 << 10, MAX_RECORD_LEN);
                let format = Format::Pcap {
                    linktype: LinkType::from_u32(u32::from(header.datalink)),
                    parser,
                    max_caplen,
                };
                (format, kind)
            }
            magic => return Err(CaptureError::UnknownFormat { magic }),
        };
        Ok(PcapSource {
            input,
            format,
            kind,
            failed: false,
        })
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        self.kind
    }

    /// The file's link type (classic pcap), or that of the first interface
    /// described so far (pcapng).
    pub fn linktype(&self) -> Option<LinkType> {
        match &self.format {
            Format::Pcap { linktype, .. } => Some(*linktype),
            Format::PcapNg { interfaces, .. } => interfaces.first().map(|i| i.linktype),
        }
    }

    /// Frames read so far.
    pub fn packets_read(&self) -> u64 {
        self.input.packets
    }

    /// Byte offset of the next record in the file.
    pub fn byte_offset(&self) -> u64 {
        self.input.offset
    }

    /// The next frame; `Ok(None)` at a clean end of file. After an error
    /// the source yields `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<CapturedFrame<'_>>, CaptureError> {
        if self.failed {
            return Ok(None);
        }
        let input = &mut self.input;
        let result = match &mut self.format {
            Format::Pcap {
                parser,
                linktype,
                max_caplen,
            } => input.next_pcap(parser, *linktype, *max_caplen),
            Format::PcapNg {
                parser,
                interfaces,
                last_ts_ns,
            } => input.next_pcapng(parser, interfaces, last_ts_ns),
        };
        match result {
            Ok(Some((meta, linktype, range, interface))) => Ok(Some(CapturedFrame {
                meta,
                linktype,
                data: &self.input.buf[range],
                interface,
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Where a frame was found: metadata, link type, its bytes in the buffer,
/// its interface.
type FrameFound = (FrameMeta, LinkType, Range<usize>, u32);

impl<R: Read> Input<R> {
    /// Reads one classic pcap record.
    fn next_pcap(
        &mut self,
        parser: &PcapParser,
        linktype: LinkType,
        max_caplen: usize,
    ) -> Result<Option<FrameFound>, CaptureError> {
        let header = parser.header();
        let big = header.endianness == Endianness::Big;
        if !self.fill(PCAP_RECORD_HEADER_LEN)? {
            return self.clean_end();
        }
        let incl_len = rd32(self.unconsumed(), 8, big) as usize;
        if incl_len > max_caplen {
            return Err(self.corrupt("record length exceeds the snap length"));
        }
        let record_len = PCAP_RECORD_HEADER_LEN + incl_len;
        if !self.fill(record_len)? {
            return Err(self.truncated());
        }
        let raw = match parser.next_raw_packet(self.unconsumed()) {
            Ok((_, raw)) => raw,
            Err(e) => return Err(self.pcap_file_error(e)),
        };
        let frac_ns = match header.ts_resolution {
            TsResolution::MicroSecond => u64::from(raw.ts_frac) * 1_000,
            TsResolution::NanoSecond => u64::from(raw.ts_frac),
        };
        let ts_ns = u64::from(raw.ts_sec) * 1_000_000_000 + frac_ns;
        let orig_len = raw.orig_len.max(raw.incl_len);
        let data_start = self.start + PCAP_RECORD_HEADER_LEN;
        self.consume(record_len);
        self.packets += 1;
        let meta = FrameMeta {
            ts_ns,
            orig_len,
            packet_no: self.packets,
        };
        Ok(Some((meta, linktype, data_start..data_start + incl_len, 0)))
    }

    /// Reads pcapng blocks up to and including the next packet block.
    fn next_pcapng(
        &mut self,
        parser: &mut PcapNgParser,
        interfaces: &mut Vec<Interface>,
        last_ts_ns: &mut u64,
    ) -> Result<Option<FrameFound>, CaptureError> {
        loop {
            let endianness = parser.section().endianness;
            if !self.fill(8)? {
                return self.clean_end();
            }
            let len = self.pcapng_block_len(endianness)?;
            if !self.fill(len)? {
                return Err(self.truncated());
            }
            let block_type = match parser.next_raw_block(self.unconsumed()) {
                Ok((_, raw)) => raw.type_,
                Err(e) => return Err(self.pcap_file_error(e)),
            };
            // A section header may have switched the byte order.
            let big = parser.section().endianness == Endianness::Big;
            // The body, without type, length and trailing length.
            let body = self.start + 8..self.start + len - 4;
            let found = match block_type {
                block::SECTION_HEADER => {
                    interfaces.clear();
                    None
                }
                block::INTERFACE_DESCRIPTION => {
                    if let Some(idb) = parser.interfaces().last() {
                        let mut iface = Interface {
                            linktype: LinkType::from_u32(u32::from(idb.linktype)),
                            snaplen: idb.snaplen,
                            tsresol: 6,
                            tsoffset_s: 0,
                        };
                        for opt in &idb.options {
                            match opt {
                                InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
                                InterfaceDescriptionOption::IfTsOffset(o) => iface.tsoffset_s = *o,
                                _ => {}
                            }
                        }
                        interfaces.push(iface);
                    }
                    None
                }
                block::ENHANCED_PACKET | block::PACKET => {
                    let b = &self.buf[body.clone()];
                    if b.len() < 20 {
                        return Err(self.corrupt("packet block shorter than its header"));
                    }
                    // EPB: interface u32; obsolete PB: interface u16, drops u16.
                    let iface_id = if block_type == block::ENHANCED_PACKET {
                        rd32(b, 0, big)
                    } else {
                        u32::from(rd16(b, 0, big))
                    };
                    let units = (u64::from(rd32(b, 4, big)) << 32) | u64::from(rd32(b, 8, big));
                    let caplen = rd32(b, 12, big) as usize;
                    let orig_len = rd32(b, 16, big);
                    if caplen > b.len() - 20 {
                        return Err(self.corrupt("captured length exceeds the block"));
                    }
                    let Some(iface) = interfaces.get(iface_id as usize) else {
                        return Err(self.corrupt("packet names an undescribed interface"));
                    };
                    let ts_ns = pcapng_ts_ns(units, iface);
                    *last_ts_ns = ts_ns;
                    let data = body.start + 20..body.start + 20 + caplen;
                    let orig_len = orig_len.max(caplen as u32);
                    Some((ts_ns, orig_len, iface.linktype, data, iface_id))
                }
                block::SIMPLE_PACKET => {
                    let b = &self.buf[body.clone()];
                    if b.len() < 4 {
                        return Err(self.corrupt("simple packet block shorter than its header"));
                    }
                    let Some(iface) = interfaces.first() else {
                        return Err(self.corrupt("packet names an undescribed interface"));
                    };
                    let orig_len = rd32(b, 0, big);
                    let mut caplen = (orig_len as usize).min(b.len() - 4);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    let data = body.start + 4..body.start + 4 + caplen;
                    // A simple packet carries no timestamp: keep the last.
                    Some((*last_ts_ns, orig_len, iface.linktype, data, 0))
                }
                _ => None,
            };
            self.consume(len);
            if let Some((ts_ns, orig_len, linktype, data, iface_id)) = found {
                self.packets += 1;
                let meta = FrameMeta {
                    ts_ns,
                    orig_len,
                    packet_no: self.packets,
                };
                return Ok(Some((meta, linktype, data, iface_id)));
            }
        }
    }

    /// Length of the pcapng block at the read position, checked for
    /// sanity. Needs its first 8 bytes buffered.
    fn pcapng_block_len(&mut self, endianness: Endianness) -> Result<usize, CaptureError> {
        let mut big = endianness == Endianness::Big;
        if rd32(self.unconsumed(), 0, true) == block::SECTION_HEADER {
            // A section header states its own byte order.
            if !self.fill(12)? {
                return Err(self.truncated());
            }
            big = match rd32(self.unconsumed(), 8, true) {
                block::BYTE_ORDER_MAGIC => true,
                m if m.swap_bytes() == block::BYTE_ORDER_MAGIC => false,
                _ => return Err(self.corrupt("bad section header byte-order magic")),
            };
        }
        let len = rd32(self.unconsumed(), 4, big) as usize;
        if len < 12 || len & 3 != 0 {
            return Err(self.corrupt("block length not a multiple of 4 of at least 12"));
        }
        if len > MAX_RECORD_LEN {
            return Err(self.corrupt("block longer than the record limit"));
        }
        Ok(len)
    }

    /// The buffered, unconsumed bytes.
    fn unconsumed(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Buffers at least `need` unconsumed bytes; false at EOF before that.
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if need > self.buf.len() {
                self.buf.resize(need.max(self.buf.len() * 2), 0);
            }
        }
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        packets: self.packets,
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
        Ok(true)
    }

    /// End of data where a record would start: clean if nothing is left.
    fn clean_end(&self) -> Result<Option<FrameFound>, CaptureError> {
        if self.start == self.end {
            Ok(None)
        } else {
            Err(self.truncated())
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn truncated(&self) -> CaptureError {
        CaptureError::Truncated {
            packets: self.packets,
            offset: self.offset,
        }
    }

    fn corrupt(&self, reason: &'static str) -> CaptureError {
        CaptureError::Corrupt {
            packets: self.packets,
            offset: self.offset,
            reason,
        }
    }

    fn pcap_file_error(&self, e: PcapError) -> CaptureError {
        match e {
            PcapError::IncompleteBuffer => self.truncated(),
            PcapError::IoError(source) => CaptureError::Io {
                packets: self.packets,
                offset: self.offset,
                source,
            },
            PcapError::InvalidField(reason) => self.corrupt(reason),
            PcapError::Utf8Error(_) | PcapError::FromUtf8Error(_) => {
                self.corrupt("invalid UTF-8 in a block option")
            }
            PcapError::InvalidInterfaceId(_) => {
                self.corrupt("packet names an undescribed interface")
            }
        }
    }
}
