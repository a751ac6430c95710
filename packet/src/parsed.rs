//! One captured frame, parsed: link layer, VLAN tags, MPLS labels or a
//! PPPoE session, IPv4/IPv6, TCP/UDP/ICMP, and the DNS, HTTP or Modbus
//! message on top.
//!
//! [`parse`] is the event layer's per-packet entry point. It either returns
//! a [`Parsed`] view of the frame, from which [`Parsed::get`] reads any
//! [`Field`], or a [`Skip`] saying why the frame carries nothing the event
//! layer can use (not IP, a non-first fragment, a cut header, …). A `Skip`
//! is a small `Copy` value with a stable counter name.
//!
//! Layering: L2–L4 headers are sliced with `etherparse`'s checked header
//! slices (`Ethernet2HeaderSlice`, `SingleVlanHeaderSlice`,
//! `Ipv4HeaderSlice`, `Ipv6HeaderSlice`, the IPv6 extension header slices,
//! `TcpHeaderSlice`, `UdpHeaderSlice`); the order of the layers is ours,
//! because etherparse's whole-packet slicers stop at three VLAN tags and do
//! not read the transport header of a first fragment. The link types
//! without an etherparse slice (null/loopback, Linux SLL/SLL2, raw IP) and
//! MPLS, PPPoE and the applications ([`crate::dns`], [`crate::http`],
//! [`crate::modbus`]) are read by hand.
//!
//! Guarantees:
//! * never panics on any bytes, any link type, any metadata;
//! * allocates nothing: a `Parsed` borrows the frame, and the only copy is
//!   the decoded DNS query name, kept inline;
//! * a bad application payload is not a skip: the packet still parses, the
//!   application fields are absent, and [`Parsed::anomalies`] says what
//!   went wrong so it can be counted.

use std::fmt;
use std::net::IpAddr;

use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

use crate::dns::Dns;
use crate::field::Field;
use crate::http::HttpRequest;
use crate::modbus::{self, Modbus};
use crate::value::{FieldValue, KeyBuf, KeyOverflow};

/// EtherType values the parser follows.
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_OLD: u16 = 0x9100;
    /// MPLS unicast (RFC 3032).
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast (RFC 5332).
    pub const MPLS_MULTICAST: u16 = 0x8848;
    /// PPPoE session stage (RFC 2516).
    pub const PPPOE_SESSION: u16 = 0x8864;
}

/// PPP protocol numbers (RFC 1661 §2) carried in PPPoE sessions.
mod ppp {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// IP protocol numbers the parser follows.
mod ip_proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// Most VLAN tags read before a frame is skipped.
pub const MAX_VLAN_TAGS: usize = 4;

/// Most MPLS labels read before a frame is skipped.
pub const MAX_MPLS_LABELS: usize = 8;

/// Most IPv6 extension headers walked before a packet is skipped.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// PPPoE session header (6) plus the PPP protocol field (2).
const PPPOE_LEN: usize = 8;
/// One MPLS label stack entry.
const MPLS_LABEL_LEN: usize = 4;
/// Linux cooked capture v1 header length.
const SLL_LEN: usize = 16;
/// Linux cooked capture v2 header length.
const SLL2_LEN: usize = 20;
/// Length of the ICMP/ICMPv6 header (type, code, checksum, 4 more bytes).
const ICMP_HEADER_LEN: usize = 8;
/// DNS ports: DNS (53) and multicast DNS (5353, RFC 6762).
const DNS_PORTS: [u16; 2] = [53, 5353];
/// DNS-over-TCP port.
const DNS_TCP_PORT: u16 = 53;

/// A capture's link-layer header type (tcpdump.org LINKTYPE_ values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback (0): a 4-byte address family in the capturing host's
    /// byte order.
    Null,
    /// Ethernet II (1), with any 802.1Q/802.1ad tags.
    Ethernet,
    /// Raw IP (101): the version nibble tells IPv4 from IPv6.
    Raw,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Linux cooked capture v1 (113), e.g. `tcpdump -i any`.
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// OpenBSD loopback (108): like [`LinkType::Null`], family in network
    /// byte order.
    Loop,
    /// Any other type; frames of it are skipped.
    Unknown(u32),
}

impl LinkType {
    /// The type for a LINKTYPE_ number.
    pub const fn from_u32(n: u32) -> LinkType {
        match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            108 => LinkType::Loop,
            n => LinkType::Unknown(n),
        }
    }

    /// The LINKTYPE_ number.
    pub const fn to_u32(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Loop => 108,
            LinkType::Unknown(n) => n,
        }
    }
}

impl From<u32> for LinkType {
    fn from(n: u32) -> Self {
        LinkType::from_u32(n)
    }
}

/// What the capture says about a frame besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameMeta {
    /// Capture time, nanoseconds since the Unix epoch (trace time, never
    /// the wall clock of the probe).
    pub ts_ns: u64,
    /// Length of the frame on the wire; may exceed the captured bytes when
    /// the capture cut it (snap length). 0 means "same as captured".
    pub orig_len: u32,
    /// Sequence number of the frame in its source, from 1.
    pub packet_no: u64,
}

/// A protocol layer, as named by [`Skip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The link-layer header (Ethernet, SLL, loopback family).
    Link,
    /// An 802.1Q/802.1ad tag.
    Vlan,
    /// An MPLS label stack entry.
    Mpls,
    /// The PPPoE session header and PPP protocol field.
    Pppoe,
    /// The IPv4 header, options included.
    Ipv4,
    /// The fixed IPv6 header.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Ext,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Link => "link-layer",
            Layer::Vlan => "VLAN",
            Layer::Mpls => "MPLS",
            Layer::Pppoe => "PPPoE",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Ext => "IPv6 extension",
        })
    }
}

/// Why a frame yields no [`Parsed`]. Each is counted, under [`Skip::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Skip {
    /// The capture's link type is not one [`LinkType`] parses.
    #[error("unsupported link type {0}")]
    UnsupportedLinkType(u32),
    /// The EtherType (after any VLAN tags) is not IPv4, IPv6, MPLS or a
    /// PPPoE session: ARP, LLDP, an 802.3 length field, …
    #[error("unsupported ethertype {0:#06x}")]
    UnsupportedEtherType(u16),
    /// A raw, loopback, MPLS or PPPoE frame that does not carry IPv4 or
    /// IPv6 (a PPP control protocol, an MPLS pseudowire, …).
    #[error("not an IP packet")]
    NotIp,
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    #[error("more than {MAX_VLAN_TAGS} VLAN tags")]
    TooManyVlanTags,
    /// The frame ends inside a header of this layer.
    #[error("truncated {0} header")]
    Truncated(Layer),
    /// A header of this layer is inconsistent (IPv4 IHL below 5, total
    /// length below the header length, a version that does not match the
    /// EtherType, more than [`MAX_MPLS_LABELS`] labels or
    /// [`MAX_IPV6_EXT_HEADERS`] extension headers, …).
    #[error("malformed {0} header")]
    Malformed(Layer),
    /// A non-first IP fragment: no transport header to read.
    #[error("non-first IP fragment")]
    Fragment,
}

impl Skip {
    /// Counter names, indexed by [`Skip::index`].
    pub const NAMES: [&'static str; 19] = [
        "unsupported_linktype",
        "unsupported_ethertype",
        "not_ip",
        "too_many_vlan_tags",
        "truncated_link",
        "truncated_vlan",
        "truncated_mpls",
        "truncated_pppoe",
        "truncated_ipv4",
        "truncated_ipv6",
        "truncated_ipv6_ext",
        "malformed_link",
        "malformed_vlan",
        "malformed_mpls",
        "malformed_pppoe",
        "malformed_ipv4",
        "malformed_ipv6",
        "malformed_ipv6_ext",
        "fragment",
    ];

    /// A dense index (below `Skip::NAMES.len()`) for per-reason counter
    /// arrays; the carried link type or EtherType does not count.
    pub const fn index(self) -> usize {
        const fn layer(l: Layer) -> usize {
            match l {
                Layer::Link => 0,
                Layer::Vlan => 1,
                Layer::Mpls => 2,
                Layer::Pppoe => 3,
                Layer::Ipv4 => 4,
                Layer::Ipv6 => 5,
                Layer::Ipv6Ext => 6,
            }
        }
        match self {
            Skip::UnsupportedLinkType(_) => 0,
            Skip::UnsupportedEtherType(_) => 1,
            Skip::NotIp => 2,
            Skip::TooManyVlanTags => 3,
            Skip::Truncated(l) => 4 + layer(l),
            Skip::Malformed(l) => 11 + layer(l),
            Skip::Fragment => 18,
        }
    }

    /// Stable counter name, e.g. `truncated_ipv4`.
    pub const fn name(self) -> &'static str {
        Skip::NAMES[self.index()]
    }
}

/// Conditions worth counting in a packet that did parse. A bad payload is
/// never a [`Skip`]: the packet keeps its IP and transport fields and only
/// the fields of the broken part are absent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Anomalies(u16);

impl Anomalies {
    /// The frame ends before the IP length does (a snap length cut it).
    pub const IP_TRUNCATED: Anomalies = Anomalies(1 << 0);
    /// A first fragment: the transport header is there, its payload is
    /// only the first part.
    pub const FIRST_FRAGMENT: Anomalies = Anomalies(1 << 1);
    /// The transport header (TCP, UDP, ICMP) is cut: no ports or flags.
    pub const L4_TRUNCATED: Anomalies = Anomalies(1 << 2);
    /// The transport header is inconsistent: TCP data offset below 5, or a
    /// UDP length below 8 or beyond the IP payload.
    pub const L4_MALFORMED: Anomalies = Anomalies(1 << 3);
    /// A DNS-port payload that is not a well-formed DNS message (see
    /// [`Dns::malformed`]).
    pub const DNS_MALFORMED: Anomalies = Anomalies(1 << 4);
    /// A DNS-over-TCP segment that does not hold one whole message.
    pub const DNS_TCP_PARTIAL: Anomalies = Anomalies(1 << 5);
    /// An HTTP request whose request line or headers are broken.
    pub const HTTP_MALFORMED: Anomalies = Anomalies(1 << 6);
    /// A payload to or from port 502 that is not a Modbus/TCP ADU.
    pub const MODBUS_MALFORMED: Anomalies = Anomalies(1 << 7);

    /// Counter names, one per bit, lowest bit first.
    pub const NAMES: [&'static str; 8] = [
        "ip_truncated",
        "first_fragment",
        "l4_truncated",
        "l4_malformed",
        "dns_malformed",
        "dns_tcp_partial",
        "http_malformed",
        "modbus_malformed",
    ];

    /// No anomaly.
    pub const fn empty() -> Anomalies {
        Anomalies(0)
    }

    /// True when no anomaly is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every anomaly in `other` is set.
    pub const fn contains(self, other: Anomalies) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits; bit `i` is named `NAMES[i]`.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Bit indexes of the set anomalies, for counter arrays.
    pub fn indexes(self) -> impl Iterator<Item = usize> {
        (0..Self::NAMES.len()).filter(move |i| self.0 & (1 << i) != 0)
    }

    /// Names of the set anomalies.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.indexes().map(|i| Self::NAMES[i])
    }

    fn insert(&mut self, other: Anomalies) {
        self.0 |= other.0;
    }
}

impl std::ops::BitOr for Anomalies {
    type Output = Anomalies;
    fn bitor(self, rhs: Anomalies) -> Anomalies {
        Anomalies(self.0 | rhs.0)
    }
}

impl fmt::Debug for Anomalies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Anomalies(")?;
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
        }
        write!(f, ")")
    }
}

/// The network-layer header.
#[derive(Debug, Clone)]
enum Net<'a> {
    V4(Ipv4HeaderSlice<'a>),
    V6(Ipv6HeaderSlice<'a>),
}

/// The transport-layer header, when it was read.
#[derive(Debug, Clone)]
enum Transport<'a> {
    None,
    Tcp(TcpHeaderSlice<'a>),
    Udp(UdpHeaderSlice<'a>),
    /// ICMP or ICMPv6: only type and code are read.
    Icmp {
        ty: u8,
        code: u8,
    },
}

/// The application message, when one was recognised and read.
// The DNS variant holds the inline 255-byte name: boxing it would
// allocate per packet, which the parse path must not.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum App<'a> {
    None,
    Dns { dns: Dns, over_tcp: bool },
    Http(HttpRequest<'a>),
    Modbus(Modbus),
}

/// One parsed frame: a view over its bytes plus the few values that had
/// to be decoded (the DNS query name).
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    frame: &'a [u8],
    meta: FrameMeta,
    linktype: LinkType,
    vlan: Option<u16>,
    vlan_tags: u8,
    net: Net<'a>,
    /// Upper-layer protocol (IPv6: after the extension headers).
    proto: u8,
    /// The bytes after the IP header (and IPv6 extension headers), cut to
    /// the IP length.
    ip_payload: &'a [u8],
    transport: Transport<'a>,
    l4_payload: &'a [u8],
    app: App<'a>,
    anomalies: Anomalies,
}

/// Parses one captured frame of the given link type.
///
/// See the [module docs](self) for what is read. Never panics and never
/// allocates.
pub fn parse(frame: &[u8], linktype: LinkType, meta: FrameMeta) -> Result<Parsed<'_>, Skip> {
    let mut tags = VlanTags::default();
    let (et, l3) = match linktype {
        LinkType::Ethernet => {
            let eth = Ethernet2HeaderSlice::from_slice(frame)
                .map_err(|_| Skip::Truncated(Layer::Link))?;
            let rest = &frame[eth.slice().len()..];
            down_to_ip(eth.ether_type().0, rest, &mut tags, true)?
        }
        LinkType::LinuxSll => {
            let hdr = frame.get(..SLL_LEN).ok_or(Skip::Truncated(Layer::Link))?;
            let et = u16::from_be_bytes([hdr[14], hdr[15]]);
            down_to_ip(et, &frame[SLL_LEN..], &mut tags, true)?
        }
        LinkType::LinuxSll2 => {
            let hdr = frame.get(..SLL2_LEN).ok_or(Skip::Truncated(Layer::Link))?;
            let et = u16::from_be_bytes([hdr[0], hdr[1]]);
            down_to_ip(et, &frame[SLL2_LEN..], &mut tags, true)?
        }
        LinkType::Null | LinkType::Loop => {
            let hdr: [u8; 4] = frame
                .get(..4)
                .and_then(|h| h.try_into().ok())
                .ok_or(Skip::Truncated(Layer::Link))?;
            // The family is in the capturing host's byte order (Null) or in
            // network order (Loop); the values are small, so try both.
            let family = match u32::from_le_bytes(hdr) {
                f if f > 0xffff => f.swap_bytes(),
                f => f,
            };
            let et = match family {
                2 => ethertype::IPV4,
                // AF_INET6 differs by OS: Linux, Windows, *BSD, FreeBSD, Darwin.
                10 | 23 | 24 | 28 | 30 => ethertype::IPV6,
                _ => return Err(Skip::NotIp),
            };
            (et, &frame[4..])
        }
        LinkType::Raw => (
            ip_by_version(frame).ok_or(Skip::Truncated(Layer::Link))??,
            frame,
        ),
        LinkType::Ipv4 => (ethertype::IPV4, frame),
        LinkType::Ipv6 => (ethertype::IPV6, frame),
        LinkType::Unknown(n) => return Err(Skip::UnsupportedLinkType(n)),
    };

    let mut anomalies = Anomalies::empty();
    let (net, proto, ip_payload) = match et {
        ethertype::IPV4 => parse_ipv4(l3, &mut anomalies)?,
        ethertype::IPV6 => parse_ipv6(l3, &mut anomalies)?,
        other => return Err(Skip::UnsupportedEtherType(other)),
    };

    let (transport, l4_payload) = parse_transport(proto, ip_payload, &mut anomalies);
    let app = parse_app(&transport, l4_payload, &mut anomalies);
    // Built in place as the return value: a `Parsed` is a few hundred
    // bytes (the inline DNS name), and copying it is most of the cost of
    // a simple packet.
    Ok(Parsed {
        frame,
        meta,
        linktype,
        vlan: tags.innermost,
        vlan_tags: tags.count,
        net,
        proto,
        ip_payload,
        transport,
        l4_payload,
        app,
        anomalies,
    })
}

/// The EtherType matching the IP version nibble of `l3`; `None` when
/// `l3` is empty.
fn ip_by_version(l3: &[u8]) -> Option<Result<u16, Skip>> {
    l3.first().map(|b| match b >> 4 {
        4 => Ok(ethertype::IPV4),
        6 => Ok(ethertype::IPV6),
        _ => Err(Skip::NotIp),
    })
}

/// Reads the PPPoE session header and PPP protocol field (RFC 2516 §4,
/// RFC 1661 §2); returns the matching EtherType and the PPP payload.
fn strip_pppoe(rest: &[u8]) -> Result<(u16, &[u8]), Skip> {
    let hdr = rest.get(..PPPOE_LEN).ok_or(Skip::Truncated(Layer::Pppoe))?;
    // Version 1, type 1, code 0 (session data).
    if hdr[0] != 0x11 || hdr[1] != 0 {
        return Err(Skip::Malformed(Layer::Pppoe));
    }
    let et = match u16::from_be_bytes([hdr[6], hdr[7]]) {
        ppp::IPV4 => ethertype::IPV4,
        ppp::IPV6 => ethertype::IPV6,
        _ => return Err(Skip::NotIp),
    };
    Ok((et, &rest[PPPOE_LEN..]))
}

/// VLAN tags seen on the way down to IP.
#[derive(Debug, Default)]
struct VlanTags {
    innermost: Option<u16>,
    count: u8,
}

/// Follows the EtherType-identified layers (VLAN tags, a PPPoE session,
/// MPLS labels, and an Ethernet pseudowire under MPLS when `pseudowire`
/// allows it) down to IP; returns the IP EtherType and the IP packet.
fn down_to_ip<'a>(
    et: u16,
    rest: &'a [u8],
    tags: &mut VlanTags,
    pseudowire: bool,
) -> Result<(u16, &'a [u8]), Skip> {
    let (et, rest) = strip_vlans(et, rest, tags)?;
    match et {
        ethertype::IPV4 | ethertype::IPV6 => Ok((et, rest)),
        ethertype::PPPOE_SESSION => strip_pppoe(rest),
        ethertype::MPLS | ethertype::MPLS_MULTICAST => {
            let rest = strip_mpls(rest)?;
            match rest.first().map(|b| b >> 4) {
                Some(4) => Ok((ethertype::IPV4, rest)),
                Some(6) => Ok((ethertype::IPV6, rest)),
                // An RFC 4385 control word, then an Ethernet frame (RFC
                // 4448). Followed once: no pseudowire inside a pseudowire.
                Some(0) if pseudowire => {
                    let inner = rest.get(4..).ok_or(Skip::Truncated(Layer::Mpls))?;
                    let eth = Ethernet2HeaderSlice::from_slice(inner)
                        .map_err(|_| Skip::Truncated(Layer::Link))?;
                    down_to_ip(eth.ether_type().0, &inner[eth.slice().len()..], tags, false)
                }
                Some(_) => Err(Skip::NotIp),
                None => Err(Skip::Truncated(Layer::Mpls)),
            }
        }
        other => Err(Skip::UnsupportedEtherType(other)),
    }
}

/// Reads an MPLS label stack (RFC 3032 §2.1) up to the bottom-of-stack
/// entry; returns what follows it. MPLS does not say what it carries.
fn strip_mpls(mut rest: &[u8]) -> Result<&[u8], Skip> {
    for _ in 0..MAX_MPLS_LABELS {
        let entry = rest
            .get(..MPLS_LABEL_LEN)
            .ok_or(Skip::Truncated(Layer::Mpls))?;
        rest = &rest[MPLS_LABEL_LEN..];
        if entry[2] & 0x01 != 0 {
            return Ok(rest);
        }
    }
    Err(Skip::Malformed(Layer::Mpls))
}

/// Reads 802.1Q/802.1ad tags, at most [`MAX_VLAN_TAGS`] in all; returns
/// the inner EtherType and what follows the last tag.
fn strip_vlans<'a>(
    mut et: u16,
    mut rest: &'a [u8],
    tags: &mut VlanTags,
) -> Result<(u16, &'a [u8]), Skip> {
    while matches!(et, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD) {
        if usize::from(tags.count) == MAX_VLAN_TAGS {
            return Err(Skip::TooManyVlanTags);
        }
        let tag =
            SingleVlanHeaderSlice::from_slice(rest).map_err(|_| Skip::Truncated(Layer::Vlan))?;
        tags.innermost = Some(tag.vlan_identifier().value());
        tags.count += 1;
        et = tag.ether_type().0;
        rest = &rest[tag.slice().len()..];
    }
    Ok((et, rest))
}

/// Reads the IPv4 header; returns it, the protocol and the payload cut to
/// the total length.
fn parse_ipv4<'a>(
    l3: &'a [u8],
    anomalies: &mut Anomalies,
) -> Result<(Net<'a>, u8, &'a [u8]), Skip> {
    use etherparse::err::ipv4::HeaderSliceError;
    let hdr = Ipv4HeaderSlice::from_slice(l3).map_err(|e| match e {
        HeaderSliceError::Len(_) => Skip::Truncated(Layer::Ipv4),
        HeaderSliceError::Content(_) => Skip::Malformed(Layer::Ipv4),
    })?;
    let header_len = hdr.slice().len();
    let total_len = usize::from(hdr.total_len());
    if total_len < header_len {
        return Err(Skip::Malformed(Layer::Ipv4));
    }
    if hdr.fragments_offset().value() != 0 {
        return Err(Skip::Fragment);
    }
    if hdr.more_fragments() {
        anomalies.insert(Anomalies::FIRST_FRAGMENT);
    }
    let end = if total_len > l3.len() {
        anomalies.insert(Anomalies::IP_TRUNCATED);
        l3.len()
    } else {
        total_len
    };
    let proto = hdr.protocol().0;
    Ok((Net::V4(hdr), proto, &l3[header_len..end]))
}

/// Reads the IPv6 header and walks the extension headers; returns the
/// header, the upper-layer protocol and what follows the extensions.
fn parse_ipv6<'a>(
    l3: &'a [u8],
    anomalies: &mut Anomalies,
) -> Result<(Net<'a>, u8, &'a [u8]), Skip> {
    use etherparse::err::ipv6::HeaderSliceError;
    let hdr = Ipv6HeaderSlice::from_slice(l3).map_err(|e| match e {
        HeaderSliceError::Len(_) => Skip::Truncated(Layer::Ipv6),
        HeaderSliceError::Content(_) => Skip::Malformed(Layer::Ipv6),
    })?;
    let header_len = hdr.slice().len();
    let payload_len = usize::from(hdr.payload_length());
    let mut next = hdr.next_header().0;
    let end = if payload_len == 0 && next == ip_proto::HOP_BY_HOP {
        // A jumbogram (RFC 2675): the length is in a hop-by-hop option;
        // use what was captured.
        l3.len()
    } else if header_len + payload_len > l3.len() {
        anomalies.insert(Anomalies::IP_TRUNCATED);
        l3.len()
    } else {
        header_len + payload_len
    };
    let mut rest = &l3[header_len..end];

    let mut walked = 0;
    loop {
        let ext_len = match next {
            ip_proto::HOP_BY_HOP
            | ip_proto::ROUTING
            | ip_proto::DEST_OPTS
            | ip_proto::MOBILITY
            | ip_proto::HIP
            | ip_proto::SHIM6 => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest)
                    .map_err(|_| Skip::Truncated(Layer::Ipv6Ext))?;
                next = ext.next_header().0;
                ext.slice().len()
            }
            ip_proto::FRAGMENT => {
                let frag = Ipv6FragmentHeaderSlice::from_slice(rest)
                    .map_err(|_| Skip::Truncated(Layer::Ipv6Ext))?;
                if frag.fragment_offset().value() != 0 {
                    return Err(Skip::Fragment);
                }
                if frag.more_fragments() {
                    anomalies.insert(Anomalies::FIRST_FRAGMENT);
                }
                next = frag.next_header().0;
                frag.slice().len()
            }
            ip_proto::AH => {
                use etherparse::err::ip_auth::HeaderSliceError;
                let ah = IpAuthHeaderSlice::from_slice(rest).map_err(|e| match e {
                    HeaderSliceError::Len(_) => Skip::Truncated(Layer::Ipv6Ext),
                    HeaderSliceError::Content(_) => Skip::Malformed(Layer::Ipv6Ext),
                })?;
                next = ah.next_header().0;
                ah.slice().len()
            }
            _ => break,
        };
        rest = &rest[ext_len..];
        walked += 1;
        if walked > MAX_IPV6_EXT_HEADERS {
            return Err(Skip::Malformed(Layer::Ipv6Ext));
        }
    }
    Ok((Net::V6(hdr), next, rest))
}

/// Reads the TCP, UDP or ICMP header from the IP payload; returns it and
/// the transport payload (the whole IP payload when there is no header).
fn parse_transport<'a>(
    proto: u8,
    payload: &'a [u8],
    anomalies: &mut Anomalies,
) -> (Transport<'a>, &'a [u8]) {
    match proto {
        ip_proto::TCP => {
            use etherparse::err::tcp::HeaderSliceError;
            match TcpHeaderSlice::from_slice(payload) {
                Ok(tcp) => {
                    let rest = &payload[tcp.slice().len()..];
                    return (Transport::Tcp(tcp), rest);
                }
                Err(HeaderSliceError::Len(_)) => anomalies.insert(Anomalies::L4_TRUNCATED),
                Err(HeaderSliceError::Content(_)) => anomalies.insert(Anomalies::L4_MALFORMED),
            }
        }
        ip_proto::UDP => match UdpHeaderSlice::from_slice(payload) {
            Ok(udp) => {
                let udp_len = usize::from(udp.length());
                let header_len = udp.slice().len();
                let rest = if (header_len..=payload.len()).contains(&udp_len) {
                    &payload[header_len..udp_len]
                } else {
                    // Beyond the payload is expected when the capture or
                    // the fragmentation cut it; anything else is wrong.
                    let cut = anomalies.contains(Anomalies::IP_TRUNCATED)
                        || anomalies.contains(Anomalies::FIRST_FRAGMENT);
                    if udp_len < header_len || !cut {
                        anomalies.insert(Anomalies::L4_MALFORMED);
                    }
                    &payload[header_len..]
                };
                return (Transport::Udp(udp), rest);
            }
            Err(_) => anomalies.insert(Anomalies::L4_TRUNCATED),
        },
        ip_proto::ICMP | ip_proto::ICMPV6 => match payload {
            [ty, code, ..] if payload.len() >= ICMP_HEADER_LEN => {
                let icmp = Transport::Icmp {
                    ty: *ty,
                    code: *code,
                };
                return (icmp, &payload[ICMP_HEADER_LEN..]);
            }
            _ => anomalies.insert(Anomalies::L4_TRUNCATED),
        },
        _ => {}
    }
    (Transport::None, payload)
}

/// Recognises and reads the DNS, HTTP or Modbus message in the transport
/// payload.
fn parse_app<'a>(
    transport: &Transport<'a>,
    payload: &'a [u8],
    anomalies: &mut Anomalies,
) -> App<'a> {
    match transport {
        Transport::Udp(udp) => {
            let (sp, dp) = (udp.source_port(), udp.destination_port());
            if DNS_PORTS.contains(&sp) || DNS_PORTS.contains(&dp) {
                return dns_app(payload, false, anomalies);
            }
        }
        Transport::Tcp(tcp) if !payload.is_empty() => {
            let (sp, dp) = (tcp.source_port(), tcp.destination_port());
            if let Some(req) = HttpRequest::parse(payload) {
                if req.malformed() {
                    anomalies.insert(Anomalies::HTTP_MALFORMED);
                }
                return App::Http(req);
            } else if sp == DNS_TCP_PORT || dp == DNS_TCP_PORT {
                // RFC 1035 §4.2.2: a two-byte length, then the message.
                let msg_len = match payload {
                    [hi, lo, ..] => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
                    _ => None,
                };
                match msg_len.and_then(|n| payload.get(2..2 + n)) {
                    Some(msg) => return dns_app(msg, true, anomalies),
                    None => anomalies.insert(Anomalies::DNS_TCP_PARTIAL),
                }
            } else if sp == modbus::PORT || dp == modbus::PORT {
                match Modbus::parse(payload) {
                    Ok(m) => return App::Modbus(m),
                    Err(_) => anomalies.insert(Anomalies::MODBUS_MALFORMED),
                }
            }
        }
        _ => {}
    }
    App::None
}

fn dns_app<'a>(msg: &[u8], over_tcp: bool, anomalies: &mut Anomalies) -> App<'a> {
    match Dns::parse(msg) {
        Some(dns) => {
            if dns.malformed() {
                anomalies.insert(Anomalies::DNS_MALFORMED);
            }
            App::Dns { dns, over_tcp }
        }
        None => {
            anomalies.insert(Anomalies::DNS_MALFORMED);
            App::None
        }
    }
}

impl<'a> Parsed<'a> {
    /// The value of `field` in this packet, or `None` when the packet does
    /// not carry it (no ports on ICMP, no domain name outside DNS, …).
    ///
    /// `flags` is StreaMon's overloaded field: the TCP flags byte on TCP,
    /// the DNS rcode on DNS over UDP, absent otherwise.
    #[inline]
    pub fn get(&self, field: Field) -> Option<FieldValue<'_>> {
        use FieldValue::{Addr, Str, UInt};
        let v = match field {
            Field::IpSrc => Addr(self.src_addr()),
            Field::IpDst => Addr(self.dst_addr()),
            Field::SrcPort => UInt(self.ports()?.0.into()),
            Field::DstPort => UInt(self.ports()?.1.into()),
            Field::Proto => UInt(self.proto.into()),
            Field::Flags => match (&self.transport, &self.app) {
                (Transport::Tcp(_), _) => UInt(self.tcp_flags()?.into()),
                (Transport::Udp(_), App::Dns { dns, .. }) => UInt(dns.rcode().into()),
                _ => return None,
            },
            Field::TcpFlags => UInt(self.tcp_flags()?.into()),
            Field::DnsRcode => UInt(self.dns()?.rcode().into()),
            Field::DnsQr => UInt(u64::from(self.dns()?.qr())),
            Field::DnsQtype => UInt(self.dns()?.qtype()?.into()),
            Field::DomainName => Str(self.dns()?.name()?.as_bytes()),
            Field::DomainAddr => Addr(self.dns()?.answer_addr()?),
            Field::DomainSecondLevel => Str(self.dns()?.name()?.second_level()),
            Field::HttpUrl => Str(self.http()?.url()?),
            Field::HttpMethod => Str(self.http()?.method()),
            Field::HttpHost => Str(self.http()?.host()?),
            Field::ModbusFc => UInt(self.modbus()?.function_code().into()),
            Field::ModbusTi => UInt(self.modbus()?.transaction_id().into()),
            Field::IpLen => UInt(self.ip_len().into()),
            Field::FrameLen => UInt(self.frame_len().into()),
            Field::PacketNo => UInt(self.meta.packet_no),
            Field::IpVersion => UInt(self.ip_version().into()),
            Field::Ttl => UInt(
                match &self.net {
                    Net::V4(h) => h.ttl(),
                    Net::V6(h) => h.hop_limit(),
                }
                .into(),
            ),
            Field::IcmpType => match self.transport {
                Transport::Icmp { ty, .. } => UInt(ty.into()),
                _ => return None,
            },
            Field::IcmpCode => match self.transport {
                Transport::Icmp { code, .. } => UInt(code.into()),
                _ => return None,
            },
            Field::Vlan => UInt(self.vlan?.into()),
            // Fields of message events (probe chaining): never in a packet.
            Field::MsgProbe
            | Field::MsgApp
            | Field::MsgTopic
            | Field::MsgKey
            | Field::MsgCode
            | Field::MsgLevel
            | Field::MsgState
            | Field::MsgText
            | Field::MsgTs => return None,
        };
        Some(v)
    }

    /// Appends the key encoding of `field` (see [`FieldValue::write_key`])
    /// to `out`. Returns `Ok(false)`, writing nothing, when the packet does
    /// not carry the field.
    #[inline]
    pub fn write_key(&self, field: Field, out: &mut KeyBuf) -> Result<bool, KeyOverflow> {
        match self.get(field) {
            Some(v) => v.write_key(field, out).map(|()| true),
            None => Ok(false),
        }
    }

    /// The frame's capture metadata.
    #[inline]
    pub fn meta(&self) -> FrameMeta {
        self.meta
    }

    /// Capture time in nanoseconds since the Unix epoch.
    #[inline]
    pub fn ts_ns(&self) -> u64 {
        self.meta.ts_ns
    }

    /// The link type the frame was parsed as.
    #[inline]
    pub fn linktype(&self) -> LinkType {
        self.linktype
    }

    /// The whole captured frame, link-layer header included.
    #[inline]
    pub fn frame(&self) -> &'a [u8] {
        self.frame
    }

    /// Length on the wire: the capture's original length, or the captured
    /// length when the metadata gives 0.
    #[inline]
    pub fn frame_len(&self) -> u32 {
        match self.meta.orig_len {
            0 => u32::try_from(self.frame.len()).unwrap_or(u32::MAX),
            n => n,
        }
    }

    /// 4 or 6.
    #[inline]
    pub fn ip_version(&self) -> u8 {
        match self.net {
            Net::V4(_) => 4,
            Net::V6(_) => 6,
        }
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> IpAddr {
        match &self.net {
            Net::V4(h) => IpAddr::V4(h.source_addr()),
            Net::V6(h) => IpAddr::V6(h.source_addr()),
        }
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> IpAddr {
        match &self.net {
            Net::V4(h) => IpAddr::V4(h.destination_addr()),
            Net::V6(h) => IpAddr::V6(h.destination_addr()),
        }
    }

    /// IP datagram length as the header states it: IPv4 total length,
    /// IPv6 payload length + 40.
    #[inline]
    pub fn ip_len(&self) -> u32 {
        match &self.net {
            Net::V4(h) => h.total_len().into(),
            Net::V6(h) => u32::from(h.payload_length()) + 40,
        }
    }

    /// The upper-layer protocol number (IPv6: after extension headers).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// `(source, destination)` ports, on TCP and UDP.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.transport {
            Transport::Tcp(t) => Some((t.source_port(), t.destination_port())),
            Transport::Udp(u) => Some((u.source_port(), u.destination_port())),
            _ => None,
        }
    }

    /// The TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN), on TCP.
    #[inline]
    pub fn tcp_flags(&self) -> Option<u8> {
        match &self.transport {
            Transport::Tcp(t) => Some(t.slice()[13]),
            _ => None,
        }
    }

    /// The innermost VLAN id, when the frame is tagged.
    #[inline]
    pub fn vlan(&self) -> Option<u16> {
        self.vlan
    }

    /// How many VLAN tags the frame carries (0 to [`MAX_VLAN_TAGS`]).
    #[inline]
    pub fn vlan_tags(&self) -> u8 {
        self.vlan_tags
    }

    /// The bytes after the IP header and any IPv6 extension headers, cut to
    /// the IP length.
    #[inline]
    pub fn ip_payload(&self) -> &'a [u8] {
        self.ip_payload
    }

    /// The transport payload: after the TCP header, within the UDP length,
    /// after the 8-byte ICMP header; for other protocols (or a transport
    /// header that did not parse), the whole [`Parsed::ip_payload`].
    #[inline]
    pub fn l4_payload(&self) -> &'a [u8] {
        self.l4_payload
    }

    /// The DNS message, on DNS ports, when its header was complete.
    #[inline]
    pub fn dns(&self) -> Option<&Dns> {
        match &self.app {
            App::Dns { dns, .. } => Some(dns),
            _ => None,
        }
    }

    /// True when the DNS message came over TCP.
    #[inline]
    pub fn dns_over_tcp(&self) -> bool {
        matches!(self.app, App::Dns { over_tcp: true, .. })
    }

    /// The HTTP request starting the TCP payload.
    #[inline]
    pub fn http(&self) -> Option<&HttpRequest<'a>> {
        match &self.app {
            App::Http(h) => Some(h),
            _ => None,
        }
    }

    /// The Modbus/TCP header, on port 502.
    #[inline]
    pub fn modbus(&self) -> Option<&Modbus> {
        match &self.app {
            App::Modbus(m) => Some(m),
            _ => None,
        }
    }

    /// What was odd about this packet; see [`Anomalies`].
    #[inline]
    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    /// Shorthand for `anomalies().contains(Anomalies::DNS_MALFORMED)`.
    #[inline]
    pub fn dns_malformed(&self) -> bool {
        self.anomalies.contains(Anomalies::DNS_MALFORMED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::FieldValue::{Addr, Str, UInt};
    use proptest::prelude::*;

    // --- frame builders (checksums left zero: the parser does not check) ---

    const MAC_DST: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    const MAC_SRC: [u8; 6] = [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb];

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = [MAC_DST, MAC_SRC].concat();
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn vlan_tag(tpid: u16, vid: u16) -> [u8; 4] {
        let mut t = [0; 4];
        t[..2].copy_from_slice(&tpid.to_be_bytes());
        t[2..].copy_from_slice(&(0x2000 | vid).to_be_bytes()); // PCP 1
        t
    }

    /// An IPv4 header (+ `options`) and payload; `frag` is the raw flags +
    /// offset word.
    fn ipv4_frag(proto: u8, options: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let hl = 20 + options.len();
        let total = (hl + payload.len()) as u16;
        let mut p = vec![0x40 | (hl / 4) as u8, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xef]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7]);
        p.extend_from_slice(options);
        p.extend_from_slice(payload);
        p
    }

    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        ipv4_frag(proto, &[], 0x4000, payload) // DF
    }

    const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_DST: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
    ];

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 57]);
        p.extend_from_slice(&V6_SRC);
        p.extend_from_slice(&V6_DST);
        p.extend_from_slice(payload);
        p
    }

    fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = sp.to_be_bytes().to_vec();
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn tcp(sp: u16, dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = sp.to_be_bytes().to_vec();
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn meta() -> FrameMeta {
        FrameMeta {
            ts_ns: 1_700_000_000_123_456_789,
            orig_len: 0,
            packet_no: 7,
        }
    }

    fn ok(frame: &[u8], lt: LinkType) -> Parsed<'_> {
        parse(frame, lt, meta()).unwrap_or_else(|s| panic!("skipped: {s} ({})", s.name()))
    }

    fn uint(p: &Parsed<'_>, f: Field) -> Option<u64> {
        p.get(f).and_then(|v| v.as_u64())
    }

    fn text(p: &Parsed<'_>, f: Field) -> Option<String> {
        p.get(f).map(|v| v.to_string())
    }

    /// Parses every prefix of `frame`: none may panic; every field of each
    /// result is read and key-encoded.
    fn all_prefixes(frame: &[u8], lt: LinkType) {
        for n in 0..=frame.len() {
            touch_all(parse(&frame[..n], lt, meta()));
        }
    }

    fn touch_all(r: Result<Parsed<'_>, Skip>) {
        match r {
            Ok(p) => {
                let mut key = KeyBuf::new();
                for &f in Field::ALL {
                    if let Some(v) = p.get(f) {
                        let _ = v.to_string();
                        v.write_key(f, &mut key).unwrap();
                    }
                }
                let _ = (p.l4_payload(), p.anomalies().names().count());
            }
            Err(s) => assert_eq!(Skip::NAMES[s.index()], s.name()),
        }
    }

    // --- golden frames ---

    /// Ethernet / IPv4 / TCP SYN 192.0.2.1:40000 -> 198.51.100.7:445,
    /// with an MSS option, written out byte by byte.
    const TCP_SYN: [u8; 58] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08,
        0x00, // eth
        0x45, 0x00, 0x00, 0x2c, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 0, 2, 1, 198,
        51, 100, 7, // ipv4, total length 44
        0x9c, 0x40, 0x01, 0xbd, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0,
        0, // tcp
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    #[test]
    fn golden_tcp_syn() {
        let p = ok(&TCP_SYN, LinkType::Ethernet);
        assert_eq!(text(&p, Field::IpSrc).unwrap(), "192.0.2.1");
        assert_eq!(text(&p, Field::IpDst).unwrap(), "198.51.100.7");
        assert_eq!(uint(&p, Field::SrcPort), Some(40000));
        assert_eq!(uint(&p, Field::DstPort), Some(445));
        assert_eq!(uint(&p, Field::Proto), Some(6));
        assert_eq!(uint(&p, Field::Flags), Some(0x02));
        assert_eq!(uint(&p, Field::TcpFlags), Some(0x02));
        assert_eq!(uint(&p, Field::IpLen), Some(44));
        assert_eq!(uint(&p, Field::FrameLen), Some(58));
        assert_eq!(uint(&p, Field::PacketNo), Some(7));
        assert_eq!(uint(&p, Field::IpVersion), Some(4));
        assert_eq!(uint(&p, Field::Ttl), Some(64));
        assert_eq!(p.get(Field::Vlan), None);
        assert_eq!(p.get(Field::IcmpType), None);
        assert_eq!(p.get(Field::DomainName), None);
        assert_eq!(p.ts_ns(), 1_700_000_000_123_456_789);
        assert_eq!(p.frame(), &TCP_SYN[..]);
        assert!(p.l4_payload().is_empty());
        assert!(p.anomalies().is_empty());
        let mut k = KeyBuf::new();
        assert_eq!(p.write_key(Field::IpDst, &mut k), Ok(true));
        assert_eq!(p.write_key(Field::DstPort, &mut k), Ok(true));
        assert_eq!(p.write_key(Field::HttpHost, &mut k), Ok(false));
        assert_eq!(k.as_bytes(), [198, 51, 100, 7, 0x01, 0xbd]);
        all_prefixes(&TCP_SYN, LinkType::Ethernet);
    }

    #[test]
    fn frame_len_is_the_wire_length() {
        let m = FrameMeta {
            orig_len: 1514,
            ..meta()
        };
        let p = parse(&TCP_SYN, LinkType::Ethernet, m).unwrap();
        assert_eq!(uint(&p, Field::FrameLen), Some(1514));
    }

    #[test]
    fn dns_over_udp_response() {
        let frame = eth(
            0x0800,
            &ipv4(17, &udp(53, 33000, &crate::dns::tests::RESPONSE)),
        );
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Flags), Some(0), "flags = rcode on DNS/UDP");
        assert_eq!(uint(&p, Field::DnsRcode), Some(0));
        assert_eq!(uint(&p, Field::DnsQr), Some(1));
        assert_eq!(uint(&p, Field::DnsQtype), Some(1));
        assert_eq!(text(&p, Field::DomainName).unwrap(), "www.example.com");
        assert_eq!(text(&p, Field::DomainSecondLevel).unwrap(), "example.com");
        assert_eq!(text(&p, Field::DomainAddr).unwrap(), "93.184.216.34");
        assert_eq!(p.get(Field::TcpFlags), None);
        assert!(!p.dns_malformed());
        assert!(!p.dns_over_tcp());
        all_prefixes(&frame, LinkType::Ethernet);
    }

    #[test]
    fn dns_nxdomain_sets_flags_to_rcode() {
        let mut msg = crate::dns::tests::RESPONSE;
        msg[3] = 0x83; // rcode 3
        let frame = eth(0x0800, &ipv4(17, &udp(33000, 5353, &msg)));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Flags), Some(3));
        assert_eq!(uint(&p, Field::DnsRcode), Some(3));
    }

    #[test]
    fn ethernet_padding_is_not_dns_payload() {
        // A short DNS query padded to 60 bytes: the padding must not reach
        // the DNS parser (it would be read as trailing garbage).
        let q = [0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];
        let mut frame = eth(0x0800, &ipv4(17, &udp(1024, 53, &q)));
        frame.resize(frame.len() + 13, 0xee);
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(p.l4_payload(), &q[..]);
        assert_eq!(text(&p, Field::DomainName).unwrap(), "a");
        assert_eq!(uint(&p, Field::IpLen), Some(20 + 8 + 19));
    }

    #[test]
    fn bad_dns_is_an_anomaly_not_a_skip() {
        let frame = eth(0x0800, &ipv4(17, &udp(1024, 53, b"junk")));
        let p = ok(&frame, LinkType::Ethernet);
        assert!(p.dns_malformed());
        assert_eq!(p.get(Field::DnsRcode), None);
        assert_eq!(p.get(Field::Flags), None);
        assert_eq!(uint(&p, Field::DstPort), Some(53));
    }

    #[test]
    fn dns_over_tcp() {
        let msg = crate::dns::tests::RESPONSE;
        let mut payload = (msg.len() as u16).to_be_bytes().to_vec();
        payload.extend_from_slice(&msg);
        let frame = eth(0x0800, &ipv4(6, &tcp(53, 40000, 0x18, &payload)));
        let p = ok(&frame, LinkType::Ethernet);
        assert!(p.dns_over_tcp());
        assert_eq!(text(&p, Field::DomainName).unwrap(), "www.example.com");
        assert_eq!(text(&p, Field::DomainAddr).unwrap(), "93.184.216.34");
        assert_eq!(
            uint(&p, Field::Flags),
            Some(0x18),
            "flags = TCP flags on TCP"
        );
        // Half a message: no DNS fields, counted as partial.
        let frame = eth(0x0800, &ipv4(6, &tcp(53, 40000, 0x18, &payload[..30])));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(p.dns(), None);
        assert!(p.anomalies().contains(Anomalies::DNS_TCP_PARTIAL));
        all_prefixes(&frame, LinkType::Ethernet);
    }

    #[test]
    fn http_on_any_port() {
        let frame = eth(
            0x0800,
            &ipv4(6, &tcp(51000, 8080, 0x18, crate::http::tests::REQUEST)),
        );
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(text(&p, Field::HttpMethod).unwrap(), "GET");
        assert_eq!(text(&p, Field::HttpUrl).unwrap(), "/wiki/Main_Page");
        assert_eq!(text(&p, Field::HttpHost).unwrap(), "en.wikipedia.org");
        assert_eq!(
            p.get(Field::HttpMethod).unwrap().as_bytes(),
            Some(&b"GET"[..])
        );
        all_prefixes(&frame, LinkType::Ethernet);
        // A response is not a request.
        let frame = eth(
            0x0800,
            &ipv4(6, &tcp(80, 51000, 0x18, b"HTTP/1.1 200 OK\r\n\r\n")),
        );
        assert_eq!(ok(&frame, LinkType::Ethernet).get(Field::HttpMethod), None);
    }

    #[test]
    fn modbus_tcp() {
        let frame = eth(
            0x0800,
            &ipv4(
                6,
                &tcp(49152, 502, 0x18, &crate::modbus::tests::DIAGNOSTICS),
            ),
        );
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::ModbusFc), Some(8));
        assert_eq!(uint(&p, Field::ModbusTi), Some(42));
        let mut k = KeyBuf::new();
        p.write_key(Field::ModbusTi, &mut k).unwrap();
        assert_eq!(k.as_bytes(), [0, 42]);
        all_prefixes(&frame, LinkType::Ethernet);
        let frame = eth(
            0x0800,
            &ipv4(6, &tcp(502, 49152, 0x18, b"\x00\x01\x00\x07\x00")),
        );
        let p = ok(&frame, LinkType::Ethernet);
        assert!(p.anomalies().contains(Anomalies::MODBUS_MALFORMED));
        assert_eq!(p.get(Field::ModbusFc), None);
    }

    #[test]
    fn icmp_and_icmpv6() {
        let frame = eth(0x0800, &ipv4(1, &[3, 3, 0, 0, 0, 0, 0, 0, 0x45]));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::IcmpType), Some(3));
        assert_eq!(uint(&p, Field::IcmpCode), Some(3));
        assert_eq!(p.get(Field::SrcPort), None);
        assert_eq!(p.get(Field::Flags), None);
        assert_eq!(p.l4_payload(), &[0x45]);
        let frame = eth(0x86dd, &ipv6(58, &[128, 0, 0, 0, 0, 1, 0, 1]));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::IcmpType), Some(128));
        assert_eq!(uint(&p, Field::Proto), Some(58));
        assert_eq!(uint(&p, Field::Ttl), Some(57));
        // A cut ICMP header keeps the IP fields.
        let frame = eth(0x0800, &ipv4(1, &[8, 0, 0]));
        let p = ok(&frame, LinkType::Ethernet);
        assert!(p.anomalies().contains(Anomalies::L4_TRUNCATED));
        assert_eq!(p.get(Field::IcmpType), None);
        assert_eq!(uint(&p, Field::Proto), Some(1));
    }

    #[test]
    fn ipv6_udp() {
        let frame = eth(
            0x86dd,
            &ipv6(17, &udp(5353, 5353, &crate::dns::tests::RESPONSE)),
        );
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(text(&p, Field::IpSrc).unwrap(), "2001:db8::1");
        assert_eq!(text(&p, Field::IpDst).unwrap(), "2001:db8::53");
        assert_eq!(uint(&p, Field::IpVersion), Some(6));
        assert_eq!(uint(&p, Field::IpLen), Some(40 + 8 + 49));
        assert_eq!(text(&p, Field::DomainName).unwrap(), "www.example.com");
        let mut k = KeyBuf::new();
        p.write_key(Field::IpSrc, &mut k).unwrap();
        assert_eq!(k.as_bytes(), V6_SRC);
        all_prefixes(&frame, LinkType::Ethernet);
    }

    /// Generic IPv6 extension header: next, length in 8-octet units - 1.
    fn ext(next: u8, len8: u8) -> Vec<u8> {
        let mut e = vec![next, len8];
        e.resize(8 * (usize::from(len8) + 1), 0);
        e
    }

    fn frag6(next: u8, offset8: u16, more: bool) -> Vec<u8> {
        let w = (offset8 << 3) | u16::from(more);
        let mut f = vec![next, 0];
        f.extend_from_slice(&w.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 42]);
        f
    }

    #[test]
    fn ipv6_extension_headers() {
        // hop-by-hop -> routing -> fragment (first) -> AH -> dest opts -> TCP
        let mut chain = ext(43, 0);
        chain.extend(ext(44, 1));
        chain.extend(frag6(51, 0, true));
        chain.extend_from_slice(&[60, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]); // AH: (4+2)*4 = 24 bytes
        chain.extend_from_slice(&[0; 12]);
        chain.extend(ext(6, 0));
        chain.extend(tcp(1234, 80, 0x02, &[]));
        let frame = eth(0x86dd, &ipv6(0, &chain));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Proto), Some(6));
        assert_eq!(uint(&p, Field::DstPort), Some(80));
        assert_eq!(uint(&p, Field::Flags), Some(2));
        assert!(p.anomalies().contains(Anomalies::FIRST_FRAGMENT));
        all_prefixes(&frame, LinkType::Ethernet);

        // A non-first fragment is skipped.
        let mut chain = frag6(6, 185, false);
        chain.extend_from_slice(&[0; 16]);
        let frame = eth(0x86dd, &ipv6(44, &chain));
        assert_eq!(
            parse(&frame, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Fragment
        );

        // A cut extension header.
        let frame = eth(0x86dd, &ipv6(60, &[17, 1, 0, 0]));
        assert_eq!(
            parse(&frame, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Truncated(Layer::Ipv6Ext)
        );

        // AH with a zero length is malformed.
        let frame = eth(0x86dd, &ipv6(51, &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            parse(&frame, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Malformed(Layer::Ipv6Ext)
        );

        // Too many extension headers.
        let mut chain = Vec::new();
        for _ in 0..MAX_IPV6_EXT_HEADERS {
            chain.extend(ext(60, 0));
        }
        chain.extend(ext(59, 0));
        let frame = eth(0x86dd, &ipv6(60, &chain));
        assert_eq!(
            parse(&frame, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Malformed(Layer::Ipv6Ext)
        );
        // …but exactly the limit passes, ending in "no next header".
        let mut chain = Vec::new();
        for _ in 0..MAX_IPV6_EXT_HEADERS - 1 {
            chain.extend(ext(60, 0));
        }
        chain.extend(ext(59, 0));
        let frame = eth(0x86dd, &ipv6(60, &chain));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Proto), Some(59));
        assert!(p.l4_payload().is_empty());
    }

    #[test]
    fn ipv4_fragments_and_options() {
        // First fragment (MF, offset 0): UDP header read, payload partial.
        let mut dgram = udp(1024, 53, &crate::dns::tests::RESPONSE);
        dgram.truncate(24);
        let frame = eth(0x0800, &ipv4_frag(17, &[], 0x2000, &dgram));
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::DstPort), Some(53));
        assert!(p.anomalies().contains(Anomalies::FIRST_FRAGMENT));
        assert!(!p.anomalies().contains(Anomalies::L4_MALFORMED));
        // Non-first fragment.
        let frame = eth(0x0800, &ipv4_frag(17, &[], 0x0003, &[0; 16]));
        assert_eq!(
            parse(&frame, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Fragment
        );
        assert_eq!(Skip::Fragment.name(), "fragment");
        // Options (router alert + padding) move the TCP header.
        let frame = eth(
            0x0800,
            &ipv4_frag(
                6,
                &[0x94, 0x04, 0, 0, 1, 0, 0, 0],
                0,
                &tcp(1, 2, 0x11, b"x"),
            ),
        );
        let p = ok(&frame, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::SrcPort), Some(1));
        assert_eq!(uint(&p, Field::TcpFlags), Some(0x11));
        assert_eq!(p.l4_payload(), b"x");
        assert_eq!(uint(&p, Field::IpLen), Some(28 + 20 + 1));
    }

    #[test]
    fn vlan_and_qinq() {
        let inner = ipv4(6, &tcp(1, 2, 0x02, &[]));
        let mut one = vlan_tag(0x8100, 100).to_vec();
        one.extend_from_slice(&0x0800u16.to_be_bytes());
        one.extend_from_slice(&inner);
        // vlan_tag() writes the TPID; a tagged frame is MACs + tags + type.
        let tagged = |tags: &[(u16, u16)]| {
            let mut f = [MAC_DST, MAC_SRC].concat();
            for &(tpid, vid) in tags {
                f.extend_from_slice(&vlan_tag(tpid, vid)[..]);
            }
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            f.extend_from_slice(&inner);
            f
        };
        let f = tagged(&[(0x8100, 100)]);
        let p = ok(&f, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Vlan), Some(100));
        assert_eq!(p.vlan_tags(), 1);
        assert_eq!(uint(&p, Field::DstPort), Some(2));

        let f = tagged(&[(0x88a8, 10), (0x8100, 20)]);
        let p = ok(&f, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Vlan), Some(20), "innermost tag");
        assert_eq!(p.vlan_tags(), 2);
        all_prefixes(&f, LinkType::Ethernet);

        let f = tagged(&[(0x9100, 1), (0x88a8, 2), (0x8100, 3), (0x8100, 4)]);
        let p = ok(&f, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Vlan), Some(4));
        assert_eq!(p.vlan_tags(), 4);

        let f = tagged(&[
            (0x8100, 1),
            (0x8100, 2),
            (0x8100, 3),
            (0x8100, 4),
            (0x8100, 5),
        ]);
        assert_eq!(
            parse(&f, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::TooManyVlanTags
        );

        let f = &tagged(&[(0x8100, 1), (0x8100, 2)])[..16];
        assert_eq!(
            parse(f, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Truncated(Layer::Vlan)
        );
    }

    #[test]
    fn pppoe_mpls_and_pseudowire() {
        let ip = ipv4(17, &udp(1, 53, &crate::dns::tests::RESPONSE));
        // QinQ + PPPoE session + IPv4, as in ndpi_dns.pcap.
        let mut f = [MAC_DST, MAC_SRC].concat();
        f.extend_from_slice(&vlan_tag(0x8100, 421));
        f.extend_from_slice(&vlan_tag(0x8100, 785));
        f.extend_from_slice(&[0x88, 0x64, 0x11, 0x00, 0x55, 0x6a]);
        f.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        f.extend_from_slice(&[0x00, 0x21]);
        f.extend_from_slice(&ip);
        let p = ok(&f, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::Vlan), Some(785));
        assert_eq!(text(&p, Field::DomainName).unwrap(), "www.example.com");
        all_prefixes(&f, LinkType::Ethernet);
        // PPP control traffic (LCP) is not IP.
        let lcp = eth(0x8864, &[0x11, 0, 0, 1, 0, 4, 0xc0, 0x21, 1, 1]);
        assert_eq!(
            parse(&lcp, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::NotIp
        );

        // Two MPLS labels, then IPv6.
        let ip6 = ipv6(6, &tcp(1, 2, 0x12, &[]));
        let mut mpls = vec![0x00, 0x01, 0x20, 0xff, 0x00, 0x01, 0x31, 0xff];
        mpls.extend_from_slice(&ip6);
        let f = eth(0x8847, &mpls);
        let p = ok(&f, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::IpVersion), Some(6));
        assert_eq!(uint(&p, Field::Flags), Some(0x12));
        all_prefixes(&f, LinkType::Ethernet);
        // No bottom of stack within the limit.
        let f = eth(0x8847, &[0u8; 4 * MAX_MPLS_LABELS + 20]);
        assert_eq!(
            parse(&f, LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Malformed(Layer::Mpls)
        );

        // Ethernet pseudowire: label, control word, Ethernet + VLAN, IPv4
        // (as in tcpreplay_test.pcap).
        let mut pw = vec![0x00, 0x01, 0x31, 0xfe, 0, 0, 0, 0];
        let mut inner = [MAC_DST, MAC_SRC].concat();
        inner.extend_from_slice(&vlan_tag(0x8100, 1));
        inner.extend_from_slice(&[0x08, 0x00]);
        inner.extend_from_slice(&ipv4(1, &[0, 0, 0, 0, 0, 5, 0, 1]));
        pw.extend_from_slice(&inner);
        let f = eth(0x8847, &pw);
        let p = ok(&f, LinkType::Ethernet);
        assert_eq!(uint(&p, Field::IcmpType), Some(0));
        assert_eq!(uint(&p, Field::Vlan), Some(1));
        all_prefixes(&f, LinkType::Ethernet);
        // …but not a pseudowire inside a pseudowire.
        let mut pw2 = vec![0x00, 0x01, 0x31, 0xfe, 0, 0, 0, 0];
        pw2.extend_from_slice(&eth(0x8847, &pw));
        assert_eq!(
            parse(&eth(0x8847, &pw2), LinkType::Ethernet, meta()).unwrap_err(),
            Skip::NotIp
        );
    }

    #[test]
    fn link_types() {
        let ip = ipv4(17, &udp(1, 2, b"hi"));
        let ip6 = ipv6(17, &udp(1, 2, b"hi"));
        for (lt, frame) in [
            (LinkType::Raw, ip.clone()),
            (LinkType::Raw, ip6.clone()),
            (LinkType::Ipv4, ip.clone()),
            (LinkType::Ipv6, ip6.clone()),
            (LinkType::Null, [&2u32.to_le_bytes()[..], &ip].concat()),
            (LinkType::Null, [&2u32.to_be_bytes()[..], &ip].concat()),
            (LinkType::Null, [&30u32.to_le_bytes()[..], &ip6].concat()),
            (LinkType::Loop, [&24u32.to_be_bytes()[..], &ip6].concat()),
            (
                LinkType::LinuxSll,
                [
                    &[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00][..],
                    &ip,
                ]
                .concat(),
            ),
            (
                LinkType::LinuxSll2,
                [
                    &[
                        0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
                    ][..],
                    &ip6,
                ]
                .concat(),
            ),
        ] {
            let p = ok(&frame, lt);
            assert_eq!(uint(&p, Field::SrcPort), Some(1), "{lt:?}");
            assert_eq!(p.l4_payload(), b"hi", "{lt:?}");
            assert_eq!(p.linktype(), lt);
            assert_eq!(LinkType::from_u32(lt.to_u32()), lt);
            all_prefixes(&frame, lt);
        }
        assert_eq!(
            parse(&ip, LinkType::from_u32(147), meta()).unwrap_err(),
            Skip::UnsupportedLinkType(147)
        );
        assert_eq!(
            parse(&[0x20; 30], LinkType::Raw, meta()).unwrap_err(),
            Skip::NotIp
        );
        let null7 = [&7u32.to_le_bytes()[..], &ip].concat();
        assert_eq!(
            parse(&null7, LinkType::Null, meta()).unwrap_err(),
            Skip::NotIp
        );
        // An IPv6 packet behind an IPv4 EtherType.
        assert_eq!(
            parse(&eth(0x0800, &ip6), LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Malformed(Layer::Ipv4)
        );
    }

    #[test]
    fn non_ip_is_skipped_with_its_ethertype() {
        let arp = eth(0x0806, &[0; 28]);
        let s = parse(&arp, LinkType::Ethernet, meta()).unwrap_err();
        assert_eq!(s, Skip::UnsupportedEtherType(0x0806));
        assert_eq!(s.name(), "unsupported_ethertype");
        assert_eq!(s.to_string(), "unsupported ethertype 0x0806");
    }

    #[test]
    fn bad_ipv4_headers() {
        let mut ip = ipv4(6, &tcp(1, 2, 2, &[]));
        ip[0] = 0x44; // IHL 4
        assert_eq!(
            parse(&ip, LinkType::Ipv4, meta()).unwrap_err(),
            Skip::Malformed(Layer::Ipv4)
        );
        let mut ip = ipv4(6, &tcp(1, 2, 2, &[]));
        ip[2..4].copy_from_slice(&10u16.to_be_bytes()); // total < header
        assert_eq!(
            parse(&ip, LinkType::Ipv4, meta()).unwrap_err(),
            Skip::Malformed(Layer::Ipv4)
        );
        // A snap length cut: IP fields kept, flagged.
        let ip = ipv4(6, &tcp(1, 2, 2, &[0; 100]));
        let p = ok(&ip[..50], LinkType::Ipv4);
        assert!(p.anomalies().contains(Anomalies::IP_TRUNCATED));
        assert_eq!(uint(&p, Field::IpLen), Some(140));
        assert_eq!(uint(&p, Field::DstPort), Some(2));
        // The TCP header itself cut.
        let p = ok(&ip[..30], LinkType::Ipv4);
        assert!(p.anomalies().contains(Anomalies::L4_TRUNCATED));
        assert_eq!(p.get(Field::DstPort), None);
        assert_eq!(p.get(Field::Flags), None);
        // TCP data offset below 5.
        let mut ip = ipv4(6, &tcp(1, 2, 2, &[]));
        ip[20 + 12] = 0x40;
        let p = ok(&ip, LinkType::Ipv4);
        assert!(p.anomalies().contains(Anomalies::L4_MALFORMED));
        // UDP length beyond the datagram without a cut.
        let mut ip = ipv4(17, &udp(1, 2, b"abc"));
        ip[20 + 4..20 + 6].copy_from_slice(&500u16.to_be_bytes());
        let p = ok(&ip, LinkType::Ipv4);
        assert!(p.anomalies().contains(Anomalies::L4_MALFORMED));
        assert_eq!(p.l4_payload(), b"abc");
    }

    #[test]
    fn skip_and_anomaly_names_are_stable_and_dense() {
        let all = [
            Skip::UnsupportedLinkType(9),
            Skip::UnsupportedEtherType(0x0806),
            Skip::NotIp,
            Skip::TooManyVlanTags,
            Skip::Truncated(Layer::Link),
            Skip::Truncated(Layer::Vlan),
            Skip::Truncated(Layer::Mpls),
            Skip::Truncated(Layer::Pppoe),
            Skip::Truncated(Layer::Ipv4),
            Skip::Truncated(Layer::Ipv6),
            Skip::Truncated(Layer::Ipv6Ext),
            Skip::Malformed(Layer::Link),
            Skip::Malformed(Layer::Vlan),
            Skip::Malformed(Layer::Mpls),
            Skip::Malformed(Layer::Pppoe),
            Skip::Malformed(Layer::Ipv4),
            Skip::Malformed(Layer::Ipv6),
            Skip::Malformed(Layer::Ipv6Ext),
            Skip::Fragment,
        ];
        for (i, s) in all.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        assert_eq!(Skip::Truncated(Layer::Ipv4).name(), "truncated_ipv4");
        assert_eq!(std::mem::size_of::<Skip>(), 8);
        let a = Anomalies::DNS_MALFORMED | Anomalies::IP_TRUNCATED;
        assert_eq!(
            a.names().collect::<Vec<_>>(),
            ["ip_truncated", "dns_malformed"]
        );
        assert_eq!(format!("{a:?}"), "Anomalies(ip_truncated | dns_malformed)");
        assert_eq!(Anomalies::MODBUS_MALFORMED.bits(), 1 << 7);
    }

    #[test]
    fn truncated_link_headers() {
        assert_eq!(
            parse(&TCP_SYN[..13], LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Truncated(Layer::Link)
        );
        assert_eq!(
            parse(&TCP_SYN[..20], LinkType::Ethernet, meta()).unwrap_err(),
            Skip::Truncated(Layer::Ipv4)
        );
        assert_eq!(
            parse(&[], LinkType::Raw, meta()).unwrap_err(),
            Skip::Truncated(Layer::Link)
        );
        assert_eq!(
            parse(&[0; 10], LinkType::LinuxSll, meta()).unwrap_err(),
            Skip::Truncated(Layer::Link)
        );
    }

    #[test]
    fn value_kinds_match_field_types() {
        let frames = [
            (
                eth(0x0800, &ipv4(17, &udp(53, 1, &crate::dns::tests::RESPONSE))),
                LinkType::Ethernet,
            ),
            (
                eth(
                    0x0800,
                    &ipv4(6, &tcp(1, 80, 0x18, crate::http::tests::REQUEST)),
                ),
                LinkType::Ethernet,
            ),
            (
                eth(
                    0x0800,
                    &ipv4(6, &tcp(1, 502, 0x18, &crate::modbus::tests::DIAGNOSTICS)),
                ),
                LinkType::Ethernet,
            ),
            (
                eth(0x86dd, &ipv6(58, &[1, 4, 0, 0, 0, 0, 0, 0])),
                LinkType::Ethernet,
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (f, lt) in &frames {
            let p = ok(f, *lt);
            for &field in Field::ALL {
                let Some(v) = p.get(field) else { continue };
                seen.insert(field);
                let kind_ok = match (field.field_type(), v) {
                    (crate::FieldType::Addr, Addr(_)) | (crate::FieldType::Str, Str(_)) => true,
                    (crate::FieldType::UInt { key_width }, UInt(n)) => {
                        key_width == 8 || n < 1u64 << (8 * u32::from(key_width))
                    }
                    _ => false,
                };
                assert!(kind_ok, "{field} = {v:?}");
            }
        }
        // Every packet field except the VLAN id appears in one of these
        // frames; the message fields (`msg_*`) never do.
        let msg_fields = Field::ALL
            .iter()
            .filter(|f| f.name().starts_with("msg_"))
            .count();
        assert_eq!(msg_fields, 9);
        assert!(seen.iter().all(|f| !f.name().starts_with("msg_")));
        assert_eq!(seen.len(), Field::ALL.len() - 1 - msg_fields);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            for lt in [0u32, 1, 101, 228, 229, 113, 276, 108, 147] {
                touch_all(parse(&bytes, LinkType::from_u32(lt), meta()));
            }
        }

        #[test]
        fn mutated_good_frames_never_panic(
            which in 0usize..4,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let base = [
                TCP_SYN.to_vec(),
                eth(0x0800, &ipv4(17, &udp(53, 1, &crate::dns::tests::RESPONSE))),
                eth(0x0800, &ipv4(6, &tcp(1, 80, 0x18, crate::http::tests::REQUEST))),
                eth(0x86dd, &ipv6(0, &[ext(17, 0), udp(5353, 5353, &crate::dns::tests::RESPONSE)].concat())),
            ];
            let mut f = base[which].clone();
            for (i, b) in flips {
                let i = i.index(f.len());
                f[i] = b;
            }
            touch_all(parse(&f, LinkType::Ethernet, meta()));
        }
    }
}
