//! DNS messages (RFC 1035): the header, the first question and the first
//! A/AAAA answer, read from a UDP payload or one length-prefixed TCP message.
//!
//! Only what the event layer selects on is read: rcode, QR, opcode, the
//! first question's name and type, and (in responses) the first address
//! answer. Other sections are walked only as far as needed to reach the
//! answers, and nothing past the first address record is validated.
//!
//! Guarantees:
//! * never panics on any input and never allocates: the query name is
//!   decoded into the fixed 255-byte [`DomainName`] buffer;
//! * compression pointers are followed at most [`MAX_POINTERS`] times per
//!   name and a name may hold at most 255 wire bytes, so pointer loops end;
//! * a message whose header is complete always yields a [`Dns`]; trouble
//!   further in (a bad name, a cut answer) sets [`Dns::malformed`] and
//!   leaves the affected values absent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Byte ranges of the fixed DNS header (RFC 1035 §4.1.1).
mod field {
    use std::ops::Range;
    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
}

/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = field::ARCOUNT.end;

/// Most compression pointers followed while decoding one name. Real
/// encoders use at most one per name; anything far beyond is an attack.
pub const MAX_POINTERS: usize = 64;

/// Longest name in wire form, length bytes and the root label included
/// (RFC 1035 §2.3.4). Its text form is at most 253 bytes.
pub const MAX_NAME_WIRE_LEN: usize = 255;

/// Record type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type AAAA (IPv6 address, RFC 3596).
pub const TYPE_AAAA: u16 = 28;
/// Class IN.
const CLASS_IN: u16 = 1;

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// A decoded domain name: lower-case ASCII labels joined by dots, no
/// trailing dot (the root is the empty name), kept inline.
#[derive(Clone, Copy)]
pub struct DomainName {
    buf: [u8; MAX_NAME_WIRE_LEN],
    len: u8,
    /// Start of the last two labels in `buf`.
    second_level_start: u8,
}

impl DomainName {
    const fn empty() -> Self {
        DomainName {
            buf: [0; MAX_NAME_WIRE_LEN],
            len: 0,
            second_level_start: 0,
        }
    }

    /// The name, e.g. `www.example.com`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The last two labels (`example.com` for `www.example.com`); the
    /// whole name when it has fewer than three labels.
    pub fn second_level(&self) -> &[u8] {
        &self.buf[usize::from(self.second_level_start)..usize::from(self.len)]
    }
}

impl std::fmt::Debug for DomainName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl PartialEq for DomainName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for DomainName {}

/// Why a name could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameError {
    /// The name runs past the end of the message.
    Truncated,
    /// Label type 0x40/0x80, too many pointers, or longer than 255 bytes.
    Invalid,
}

/// Decodes the name at `start` of `msg` into `name`, following
/// compression pointers. (Written in place: a name is 258 bytes, and
/// copying it around costs more than decoding it.)
///
/// Returns the offset just past the name at its original place (past the
/// first pointer, if any). On error `name` holds a partial name.
fn read_name(msg: &[u8], start: usize, name: &mut DomainName) -> Result<usize, NameError> {
    name.len = 0;
    name.second_level_start = 0;
    let mut pos = start;
    let mut resume: Option<usize> = None;
    let mut pointers = 0;
    let mut wire_len = 0usize;
    // Starts of the last two labels written to `name.buf`.
    let (mut prev_label, mut last_label) = (0usize, 0usize);
    let mut labels = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(NameError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                wire_len += 1;
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(NameError::Invalid);
                }
                let end = resume.unwrap_or(pos + 1);
                name.second_level_start = if labels >= 2 { prev_label } else { 0 } as u8;
                return Ok(end);
            }
            0x00 => {
                let len = usize::from(len);
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(NameError::Truncated)?;
                wire_len += 1 + len;
                // The final root byte must still fit.
                if wire_len + 1 > MAX_NAME_WIRE_LEN {
                    return Err(NameError::Invalid);
                }
                let mut at = usize::from(name.len);
                if at > 0 {
                    name.buf[at] = b'.';
                    at += 1;
                }
                // Text is never longer than wire form (the dot replaces a
                // length byte), so this stays inside the 255-byte buffer.
                for (dst, src) in name.buf[at..at + len].iter_mut().zip(label) {
                    *dst = src.to_ascii_lowercase();
                }
                prev_label = last_label;
                last_label = at;
                labels += 1;
                name.len = (at + len) as u8;
                pos += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(NameError::Truncated)?;
                if resume.is_none() {
                    resume = Some(pos + 2);
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(NameError::Invalid);
                }
                pos = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            }
            // 0x40 (extended label types, RFC 6891) and 0x80 (reserved).
            _ => return Err(NameError::Invalid),
        }
    }
}

/// Skips the name at `pos` without decoding it: returns the offset just
/// past it (a pointer ends a name, so none are followed).
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, NameError> {
    let start = pos;
    loop {
        let len = *msg.get(pos).ok_or(NameError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => {
                pos += 1 + usize::from(len);
                if pos - start > MAX_NAME_WIRE_LEN {
                    return Err(NameError::Invalid);
                }
            }
            0xc0 => {
                return if pos + 2 <= msg.len() {
                    Ok(pos + 2)
                } else {
                    Err(NameError::Truncated)
                }
            }
            _ => return Err(NameError::Invalid),
        }
    }
}

/// What the event layer reads from one DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dns {
    id: u16,
    flags: u16,
    qdcount: u16,
    ancount: u16,
    nscount: u16,
    arcount: u16,
    /// The first question's name; meaningful when `qtype` is set.
    name: DomainName,
    /// The first question's type, set once its name decoded.
    qtype: Option<u16>,
    answer: Option<IpAddr>,
    malformed: bool,
}

impl Dns {
    /// Reads a DNS message. Returns `None` when `msg` is shorter than the
    /// 12-byte header; the caller counts that as a malformed message.
    pub fn parse(msg: &[u8]) -> Option<Dns> {
        if msg.len() < HEADER_LEN {
            return None;
        }
        let mut dns = Dns {
            id: be16(msg, field::ID),
            flags: be16(msg, field::FLAGS),
            qdcount: be16(msg, field::QDCOUNT),
            ancount: be16(msg, field::ANCOUNT),
            nscount: be16(msg, field::NSCOUNT),
            arcount: be16(msg, field::ARCOUNT),
            name: DomainName::empty(),
            qtype: None,
            answer: None,
            malformed: false,
        };
        if dns.walk(msg).is_err() {
            dns.malformed = true;
            if dns.qtype.is_none() {
                // Drop a partly decoded name (equality looks at it).
                dns.name.len = 0;
                dns.name.second_level_start = 0;
            }
        }
        Some(dns)
    }

    /// Reads the first question and, in a response, the first A/AAAA
    /// answer. Stops at the first inconsistency.
    fn walk(&mut self, msg: &[u8]) -> Result<(), NameError> {
        let mut pos = HEADER_LEN;
        for i in 0..self.qdcount {
            if i == 0 {
                let end = read_name(msg, pos, &mut self.name)?;
                let qtype = msg.get(end..end + 2).ok_or(NameError::Truncated)?;
                self.qtype = Some(u16::from_be_bytes([qtype[0], qtype[1]]));
                pos = end;
            } else if !self.qr() {
                // Only responses carry answers we read; a query needs
                // no more than its first question.
                return Ok(());
            } else {
                pos = skip_name(msg, pos)?;
            }
            pos += 4; // QTYPE, QCLASS
            if pos > msg.len() {
                return Err(NameError::Truncated);
            }
        }
        if !self.qr() {
            return Ok(());
        }
        for _ in 0..self.ancount {
            pos = skip_name(msg, pos)?;
            // TYPE(2) CLASS(2) TTL(4) RDLENGTH(2)
            let fixed = msg.get(pos..pos + 10).ok_or(NameError::Truncated)?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            // The top bit of the class is mDNS's cache-flush bit.
            let class = u16::from_be_bytes([fixed[2], fixed[3]]) & 0x7fff;
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            pos += 10;
            let rdata = msg.get(pos..pos + rdlen).ok_or(NameError::Truncated)?;
            pos += rdlen;
            if class != CLASS_IN {
                continue;
            }
            match (rtype, rdata.len()) {
                (TYPE_A, 4) => {
                    let a: [u8; 4] = rdata.try_into().map_err(|_| NameError::Invalid)?;
                    self.answer = Some(IpAddr::V4(Ipv4Addr::from(a)));
                    return Ok(());
                }
                (TYPE_AAAA, 16) => {
                    let a: [u8; 16] = rdata.try_into().map_err(|_| NameError::Invalid)?;
                    self.answer = Some(IpAddr::V6(Ipv6Addr::from(a)));
                    return Ok(());
                }
                (TYPE_A | TYPE_AAAA, _) => return Err(NameError::Invalid),
                _ => {}
            }
        }
        Ok(())
    }

    /// Message id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The raw 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, rcode).
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// True for a response (QR bit set).
    pub fn qr(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// Operation code (0 = standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// Response code: the low 4 bits of the flags word (3 = NXDOMAIN).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }

    /// Number of questions the header announces.
    pub fn qdcount(&self) -> u16 {
        self.qdcount
    }

    /// Number of answers the header announces.
    pub fn ancount(&self) -> u16 {
        self.ancount
    }

    /// Number of authority records the header announces.
    pub fn nscount(&self) -> u16 {
        self.nscount
    }

    /// Number of additional records the header announces.
    pub fn arcount(&self) -> u16 {
        self.arcount
    }

    /// The first question's name, when it decoded.
    pub fn name(&self) -> Option<&DomainName> {
        self.qtype.map(|_| &self.name)
    }

    /// The first question's type (1 = A, 28 = AAAA, …).
    pub fn qtype(&self) -> Option<u16> {
        self.qtype
    }

    /// The first A or AAAA answer of a response.
    pub fn answer_addr(&self) -> Option<IpAddr> {
        self.answer
    }

    /// True when something past the header did not decode (a bad or
    /// cut name, a truncated record, an address record of the wrong
    /// length). Values read before the problem are still present.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response for www.Example.COM A, answer 93.184.216.34 with a
    /// compressed owner name, preceded by a CNAME-less NS-free layout.
    pub(crate) const RESPONSE: [u8; 49] = [
        0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // header
        3, b'w', b'w', b'w', 7, b'E', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'C', b'O', b'M',
        0, // qname
        0x00, 0x01, 0x00, 0x01, // A IN
        0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x04, 93, 184, 216,
        34, // answer
    ];

    #[test]
    fn response_fields() {
        let d = Dns::parse(&RESPONSE).unwrap();
        assert!(!d.malformed());
        assert_eq!(d.id(), 0x1234);
        assert!(d.qr());
        assert_eq!(d.rcode(), 0);
        assert_eq!(d.opcode(), 0);
        assert_eq!(d.name().unwrap().as_bytes(), b"www.example.com");
        assert_eq!(d.name().unwrap().second_level(), b"example.com");
        assert_eq!(d.qtype(), Some(TYPE_A));
        assert_eq!(d.answer_addr(), Some("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn query_has_no_answer_even_if_answer_bytes_follow() {
        let mut q = RESPONSE;
        q[2] = 0x01; // QR = 0
        let d = Dns::parse(&q).unwrap();
        assert!(!d.qr());
        assert_eq!(d.answer_addr(), None);
        assert_eq!(d.name().unwrap().as_bytes(), b"www.example.com");
    }

    #[test]
    fn aaaa_answer_after_cname() {
        let mut m = vec![0, 1, 0x81, 0x83, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x02bc\x00\x00\x1c\x00\x01");
        // CNAME answer with a compressed owner and target.
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 14]);
        m.extend_from_slice(&[0xc0, 14, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let d = Dns::parse(&m).unwrap();
        assert!(!d.malformed());
        assert_eq!(d.rcode(), 3);
        assert_eq!(d.qtype(), Some(TYPE_AAAA));
        assert_eq!(d.name().unwrap().as_bytes(), b"a.bc");
        assert_eq!(d.answer_addr(), Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn compression_loop_is_malformed_not_a_hang() {
        // The question name is a pointer to itself.
        let m = [
            0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ];
        let d = Dns::parse(&m).unwrap();
        assert!(d.malformed());
        assert_eq!(d.name(), None);
        assert_eq!(d.rcode(), 0);
        // A two-step loop through a label: a.<ptr to a>.
        let m = [
            0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0xc0, 12, 0, 1, 0, 1,
        ];
        let d = Dns::parse(&m).unwrap();
        assert!(d.malformed());
        assert_eq!(d.name(), None);
    }

    #[test]
    fn names_longer_than_255_are_rejected() {
        let mut m = vec![0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(Dns::parse(&m).unwrap().malformed());
        // 253 text bytes is the longest legal name: 3 × 63 + 61.
        let mut m = vec![0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for len in [63u8, 63, 63, 61] {
            m.push(len);
            m.extend(std::iter::repeat_n(b'y', usize::from(len)));
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        let d = Dns::parse(&m).unwrap();
        assert!(!d.malformed());
        assert_eq!(d.name().unwrap().as_bytes().len(), 253);
    }

    #[test]
    fn root_and_single_label_names() {
        let m = [0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        let d = Dns::parse(&m).unwrap();
        assert_eq!(d.name().unwrap().as_bytes(), b"");
        assert_eq!(d.name().unwrap().second_level(), b"");
        let m = [
            0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'L', b'a', b'N', 0, 0, 1, 0, 1,
        ];
        let d = Dns::parse(&m).unwrap();
        assert_eq!(d.name().unwrap().as_bytes(), b"lan");
        assert_eq!(d.name().unwrap().second_level(), b"lan");
    }

    #[test]
    fn every_truncation_is_safe() {
        for n in 0..RESPONSE.len() {
            let d = Dns::parse(&RESPONSE[..n]);
            if n < HEADER_LEN {
                assert!(d.is_none());
            } else {
                let d = d.unwrap();
                assert!(d.malformed(), "len {n}");
                assert_eq!(d.answer_addr(), None);
            }
        }
    }

    #[test]
    fn reserved_label_types_are_malformed() {
        let m = [
            0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1,
        ];
        assert!(Dns::parse(&m).unwrap().malformed());
        let m = [
            0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1, 0, 1,
        ];
        assert!(Dns::parse(&m).unwrap().malformed());
    }
}
