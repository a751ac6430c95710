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
                // The upper bits may carry the FCS length (pcap-linktype
                // draft §4); the link type is the low 16.
                let format = Format::Pcap {
                    linktype: LinkType::from_u32(u32::from(header.datalink) & 0xffff),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap file: header with `magic` written in the file's
    /// byte order, then `(sec, frac, data, orig_len)` records.
    fn pcap_file(
        big: bool,
        nanos: bool,
        snaplen: u32,
        linktype: u32,
        recs: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        f.extend_from_slice(&w16(2));
        f.extend_from_slice(&w16(4));
        f.extend_from_slice(&w32(0));
        f.extend_from_slice(&w32(0));
        f.extend_from_slice(&w32(snaplen));
        f.extend_from_slice(&w32(linktype));
        for &(sec, frac, data, orig) in recs {
            f.extend_from_slice(&w32(sec));
            f.extend_from_slice(&w32(frac));
            f.extend_from_slice(&w32(data.len() as u32));
            f.extend_from_slice(&w32(orig));
            f.extend_from_slice(data);
        }
        f
    }

    /// A little-endian pcapng block with body padded to 4 bytes.
    fn ng_block(ty: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() & 3 != 0 {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        let mut b = ty.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    fn ng_shb() -> Vec<u8> {
        let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        ng_block(block::SECTION_HEADER, &body)
    }

    /// An IDB with optional `if_tsresol` (9) and `if_tsoffset` (14).
    fn ng_idb(linktype: u16, tsresol: Option<u8>, tsoffset: Option<u64>) -> Vec<u8> {
        let mut body = linktype.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&65535u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend_from_slice(&9u16.to_le_bytes());
            body.extend_from_slice(&1u16.to_le_bytes());
            body.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            body.extend_from_slice(&14u16.to_le_bytes());
            body.extend_from_slice(&8u16.to_le_bytes());
            body.extend_from_slice(&o.to_le_bytes());
        }
        if tsresol.is_some() || tsoffset.is_some() {
            body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        }
        ng_block(block::INTERFACE_DESCRIPTION, &body)
    }

    fn ng_epb(iface: u32, units: u64, data: &[u8], orig: u32) -> Vec<u8> {
        let mut body = iface.to_le_bytes().to_vec();
        body.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(units as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&orig.to_le_bytes());
        body.extend_from_slice(data);
        ng_block(block::ENHANCED_PACKET, &body)
    }

    /// A frame copied out: (meta, linktype, data, interface).
    type Owned = (FrameMeta, LinkType, Vec<u8>, u32);

    /// Reads every frame.
    fn read_all<R: Read>(mut src: PcapSource<R>) -> Result<Vec<Owned>, CaptureError> {
        let mut out = Vec::new();
        while let Some(f) = src.next_frame()? {
            out.push((f.meta, f.linktype, f.data.to_vec(), f.interface));
        }
        Ok(out)
    }

    fn read_bytes(bytes: &[u8]) -> Result<Vec<Owned>, CaptureError> {
        read_all(PcapSource::new(bytes)?)
    }

    /// A reader that hands out at most `n` bytes per call.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn classic_pcap_all_byte_orders_and_resolutions() {
        for big in [false, true] {
            for nanos in [false, true] {
                let f = pcap_file(
                    big,
                    nanos,
                    65535,
                    1,
                    &[(10, 500, b"abc", 60), (11, 0, b"", 0)],
                );
                let mut src = PcapSource::new(&f[..]).unwrap();
                assert_eq!(
                    src.format(),
                    CaptureFormat::Pcap {
                        nanosecond: nanos,
                        big_endian: big
                    }
                );
                assert_eq!(src.linktype(), Some(LinkType::Ethernet));
                let fr = src.next_frame().unwrap().unwrap();
                let frac = if nanos { 500 } else { 500_000 };
                assert_eq!(fr.meta.ts_ns, 10_000_000_000 + frac);
                assert_eq!(fr.meta.orig_len, 60);
                assert_eq!(fr.meta.packet_no, 1);
                assert_eq!(fr.data, b"abc");
                let fr = src.next_frame().unwrap().unwrap();
                assert_eq!(fr.meta.packet_no, 2);
                assert_eq!(fr.meta.orig_len, 0);
                assert!(src.next_frame().unwrap().is_none());
                assert_eq!(src.packets_read(), 2);
                assert_eq!(src.byte_offset(), f.len() as u64);
            }
        }
    }

    #[test]
    fn orig_len_beyond_snaplen_is_accepted() {
        // pcap-file's validated reader rejects this; captures with a small
        // snap length are full of it.
        let f = pcap_file(false, false, 64, 101, &[(1, 2, &[0x45; 64], 1500)]);
        let all = read_bytes(&f).unwrap();
        assert_eq!(all[0].0.orig_len, 1500);
        assert_eq!(all[0].1, LinkType::Raw);
    }

    #[test]
    fn fcs_bits_of_the_link_type_are_ignored() {
        // FCS present, 4 bytes (bits 28 and 26..=27 set): still Ethernet.
        let f = pcap_file(false, false, 65535, 0x1400_0001, &[(1, 0, b"abcd", 4)]);
        let src = PcapSource::new(&f[..]).unwrap();
        assert_eq!(src.linktype(), Some(LinkType::Ethernet));
    }

    #[test]
    fn pcapng_interfaces_resolutions_and_offsets() {
        let mut f = ng_shb();
        f.extend(ng_idb(1, None, None)); // µs
        f.extend(ng_idb(101, Some(9), Some(100))); // ns, +100 s
        f.extend(ng_idb(113, Some(0x80 | 10), None)); // 2^-10 s
        f.extend(ng_epb(0, 1_500_000, b"eth", 3));
        f.extend(ng_epb(1, 7, b"raw!", 100));
        f.extend(ng_epb(2, 3 * 1024 + 512, b"sll", 3));
        f.extend(ng_block(4, &[0, 0, 0, 0])); // name resolution: skipped
        f.extend(ng_block(
            block::SIMPLE_PACKET,
            &[5, 0, 0, 0, b'h', b'e', b'l', b'l', b'o'],
        ));
        let mut src = PcapSource::new(&f[..]).unwrap();
        assert_eq!(src.format(), CaptureFormat::PcapNg);
        let all = {
            let mut v = Vec::new();
            while let Some(fr) = src.next_frame().unwrap() {
                v.push((fr.meta, fr.linktype, fr.data.to_vec(), fr.interface));
            }
            v
        };
        assert_eq!(src.linktype(), Some(LinkType::Ethernet));
        assert_eq!(all.len(), 4);
        assert_eq!(
            (all[0].0.ts_ns, all[0].1, &all[0].2[..]),
            (1_500_000_000, LinkType::Ethernet, &b"eth"[..])
        );
        assert_eq!(
            (all[1].0.ts_ns, all[1].1, all[1].3),
            (100_000_000_007, LinkType::Raw, 1)
        );
        assert_eq!(all[1].0.orig_len, 100);
        assert_eq!(
            (all[2].0.ts_ns, all[2].1),
            (3_500_000_000, LinkType::LinuxSll)
        );
        // The simple packet: interface 0, the previous timestamp.
        assert_eq!(
            (&all[3].2[..], all[3].0.ts_ns, all[3].3),
            (&b"hello"[..], 3_500_000_000, 0)
        );
        assert_eq!(
            all.iter().map(|a| a.0.packet_no).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn pcapng_new_section_resets_interfaces() {
        let mut f = ng_shb();
        f.extend(ng_idb(1, None, None));
        f.extend(ng_idb(1, None, None));
        f.extend(ng_epb(1, 0, b"a", 1));
        f.extend(ng_shb());
        let bad_at = f.len() as u64;
        f.extend(ng_epb(1, 0, b"b", 1));
        let e = read_bytes(&f).unwrap_err();
        assert!(matches!(e, CaptureError::Corrupt { packets: 1, .. }), "{e}");
        assert_eq!(e.offset(), bad_at);
    }

    #[test]
    fn big_endian_pcapng() {
        let be = |ty: u32, body: &[u8]| {
            let len = (12 + body.len()) as u32;
            [
                &ty.to_be_bytes()[..],
                &len.to_be_bytes(),
                body,
                &len.to_be_bytes(),
            ]
            .concat()
        };
        let mut f = be(
            block::SECTION_HEADER,
            &[
                0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        );
        f.extend(be(1, &[0, 228, 0, 0, 0, 0, 0xff, 0xff]));
        f.extend(be(
            6,
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4, 0x45, 0, 0, 20,
            ],
        ));
        let all = read_bytes(&f).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, LinkType::Ipv4);
        assert_eq!(all[0].0.ts_ns, 2_000);
        assert_eq!(all[0].2, [0x45, 0, 0, 20]);
    }

    #[test]
    fn every_truncation_is_an_error_with_position() {
        let recs: [(u32, u32, &[u8], u32); 3] = [
            (1, 0, b"first", 5),
            (2, 0, b"second", 6),
            (3, 0, b"third", 5),
        ];
        let f = pcap_file(false, false, 65535, 1, &recs);
        let mut ng = ng_shb();
        ng.extend(ng_idb(1, None, None));
        for (i, r) in recs.iter().enumerate() {
            ng.extend(ng_epb(0, i as u64, r.2, r.3));
        }
        // Where each file may end cleanly, and how many frames precede.
        let mut f_ends = vec![(24u64, 0u64)];
        for (i, r) in recs.iter().enumerate() {
            f_ends.push((f_ends[i].0 + 16 + r.2.len() as u64, i as u64 + 1));
        }
        let shb_end = ng_shb().len() as u64;
        let mut ng_ends = vec![
            (shb_end, 0),
            (shb_end + ng_idb(1, None, None).len() as u64, 0),
        ];
        for (i, r) in recs.iter().enumerate() {
            let last = ng_ends.last().unwrap().0;
            ng_ends.push((
                last + ng_epb(0, i as u64, r.2, r.3).len() as u64,
                i as u64 + 1,
            ));
        }
        for (file, ends) in [(&f, f_ends), (&ng, ng_ends)] {
            assert_eq!(ends.last().unwrap().0, file.len() as u64);
            for n in 0..file.len() {
                let cut = n as u64;
                match PcapSource::new(&file[..n]).and_then(read_all) {
                    Ok(frames) => {
                        let &(_, k) = ends
                            .iter()
                            .find(|e| e.0 == cut)
                            .unwrap_or_else(|| panic!("clean end at {n}, not a boundary"));
                        assert_eq!(frames.len() as u64, k);
                    }
                    Err(CaptureError::Truncated { packets, offset }) => {
                        // The cut record starts at the last boundary before
                        // the cut (the file header: offset 0).
                        let want = ends
                            .iter()
                            .rev()
                            .find(|e| e.0 <= cut)
                            .copied()
                            .unwrap_or((0, 0));
                        assert_eq!((offset, packets), want, "cut at {n}");
                    }
                    Err(e) => panic!("cut at {n}: {e}"),
                }
            }
        }
    }

    #[test]
    fn small_reads_and_records_bigger_than_the_buffer() {
        let big = vec![0xab; INITIAL_BUFFER + 12345];
        let recs: [(u32, u32, &[u8], u32); 3] = [
            (1, 0, b"x", 1),
            (2, 0, &big, big.len() as u32),
            (3, 0, b"yz", 2),
        ];
        let f = pcap_file(true, true, 1 << 20, 1, &recs);
        for chunk in [1, 7, 4096, usize::MAX] {
            let all = read_all(PcapSource::new(Trickle(&f, chunk)).unwrap()).unwrap();
            assert_eq!(all.len(), 3);
            assert_eq!(all[1].2, big);
            assert_eq!(all[2].2, b"yz");
        }
    }

    #[test]
    fn corrupt_files() {
        assert!(matches!(
            PcapSource::new(&b"GIF89a........................"[..]).err(),
            Some(CaptureError::UnknownFormat { magic: 0x4749_4638 })
        ));
        assert!(matches!(
            PcapSource::new(&b""[..]).err(),
            Some(CaptureError::Truncated {
                packets: 0,
                offset: 0
            })
        ));

        // A record length far beyond the snap length.
        let mut f = pcap_file(
            false,
            false,
            65535,
            1,
            &[(1, 0, b"ok", 2), (2, 0, b"zz", 2)],
        );
        let second = 24 + 16 + 2;
        f[second + 8..second + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let e = read_bytes(&f).unwrap_err();
        assert!(matches!(e, CaptureError::Corrupt { packets: 1, .. }), "{e}");
        assert_eq!(e.offset(), second as u64);
        assert_eq!(e.packets(), 1);
        assert!(e.to_string().contains("after 1 packets"), "{e}");

        // pcapng: a block length that is not a multiple of 4.
        let mut ng = ng_shb();
        ng.extend(ng_idb(1, None, None));
        let at = ng.len();
        ng.extend(ng_epb(0, 0, b"abcd", 4));
        ng[at + 4] = 0x29;
        let e = read_bytes(&ng).unwrap_err();
        assert!(matches!(e, CaptureError::Corrupt { packets: 0, .. }), "{e}");
        assert_eq!(e.offset(), at as u64);

        // pcapng: a packet of an interface never described.
        let mut ng = ng_shb();
        ng.extend(ng_epb(0, 0, b"abcd", 4));
        assert!(matches!(
            read_bytes(&ng).unwrap_err(),
            CaptureError::Corrupt { .. }
        ));

        // pcapng: trailing length differs from the leading one.
        let mut ng = ng_shb();
        ng.extend(ng_idb(1, None, None));
        let n = ng.len();
        ng[n - 4] ^= 0x04;
        assert!(matches!(
            read_bytes(&ng).unwrap_err(),
            CaptureError::Corrupt { .. }
        ));

        // After an error the source stays finished.
        let mut src = PcapSource::new(&f[..]).unwrap();
        assert!(src.next_frame().unwrap().is_some());
        assert!(src.next_frame().is_err());
        assert!(src.next_frame().unwrap().is_none());
    }

    #[test]
    fn open_reports_the_path() {
        let e = PcapSource::open("/nonexistent/trace.pcap").err().unwrap();
        assert_eq!(e.to_string(), "cannot open capture /nonexistent/trace.pcap");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn pcapng_timestamp_units() {
        let iface = |tsresol, tsoffset_s| Interface {
            linktype: LinkType::Ethernet,
            snaplen: 0,
            tsresol,
            tsoffset_s,
        };
        assert_eq!(pcapng_ts_ns(5, &iface(6, 0)), 5_000);
        assert_eq!(pcapng_ts_ns(5, &iface(9, 0)), 5);
        assert_eq!(pcapng_ts_ns(5_000, &iface(12, 0)), 5);
        assert_eq!(pcapng_ts_ns(u64::MAX, &iface(127, 0)), 0);
        assert_eq!(pcapng_ts_ns(1, &iface(0x80, 0)), 1_000_000_000);
        assert_eq!(pcapng_ts_ns(u64::MAX, &iface(0xff, 0)), 0);
        assert_eq!(pcapng_ts_ns(u64::MAX, &iface(0, u64::MAX)), u64::MAX);
    }
}
