//! The packet fields an application can name: in selectors, keys,
//! expressions and `%field` substitutions.
//!
//! This is the one list of field names. The language checks names against
//! it, the event layer fills values for it ([`crate::Parsed::get`]), and
//! composite keys are built from the encodings of
//! [`FieldValue::write_key`](crate::FieldValue::write_key), so a key means
//! the same bytes everywhere (software engine, hardware, Redis names).

/// What kind of value a field holds; decides which comparisons and
/// literals the language accepts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// An IPv4 or IPv6 address (keys: 4 or 16 bytes, network order).
    Addr,
    /// An unsigned integer of `key_width` bytes (keys: big-endian).
    UInt {
        /// Width of the big-endian key encoding, in bytes (1, 2, 4 or 8).
        key_width: u8,
    },
    /// A byte string (DNS names, HTTP tokens); keys are one length byte
    /// and the bytes, cut at 255.
    Str,
}

macro_rules! fields {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal : $ty:expr ),* $(,)?) => {
        /// A packet field, by the name applications use.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Field {
            $( $(#[$doc])* $variant, )*
        }

        impl Field {
            /// Every field, in declaration order.
            pub const ALL: &'static [Field] = &[ $( Field::$variant, )* ];

            /// The name used in application programs.
            pub const fn name(self) -> &'static str {
                match self { $( Field::$variant => $name, )* }
            }

            /// The value type of the field.
            pub const fn field_type(self) -> FieldType {
                match self { $( Field::$variant => $ty, )* }
            }
        }
    };
}

const U8: FieldType = FieldType::UInt { key_width: 1 };
const U16: FieldType = FieldType::UInt { key_width: 2 };
const U32: FieldType = FieldType::UInt { key_width: 4 };
const U64: FieldType = FieldType::UInt { key_width: 8 };

fields! {
    /// Source address (IPv4 or IPv6).
    IpSrc = "ip_src": FieldType::Addr,
    /// Destination address (IPv4 or IPv6).
    IpDst = "ip_dst": FieldType::Addr,
    /// TCP/UDP source port; absent for other protocols.
    SrcPort = "src_port": U16,
    /// TCP/UDP destination port; absent for other protocols.
    DstPort = "dst_port": U16,
    /// IP protocol number (IPv6: the upper-layer protocol after extension headers).
    Proto = "proto": U8,
    /// StreaMon's overloaded field: TCP flags on TCP, the DNS rcode on DNS over UDP.
    Flags = "flags": U8,
    /// TCP flags (always the TCP header byte 13; absent on non-TCP).
    TcpFlags = "tcp_flags": U8,
    /// DNS response code (low 4 bits of the header flags).
    DnsRcode = "dns_rcode": U8,
    /// DNS QR bit: 0 query, 1 response.
    DnsQr = "dns_qr": U8,
    /// DNS query type of the first question.
    DnsQtype = "dns_qtype": U16,
    /// DNS query name of the first question, lower-case, dot-separated, no trailing dot.
    DomainName = "domain_name": FieldType::Str,
    /// First A or AAAA answer of a DNS response.
    DomainAddr = "domain_addr": FieldType::Addr,
    /// The last two labels of the query name ("example.com").
    DomainSecondLevel = "domain_second_level": FieldType::Str,
    /// HTTP request target (the URL as sent).
    HttpUrl = "http_url": FieldType::Str,
    /// HTTP request method ("GET").
    HttpMethod = "http_method": FieldType::Str,
    /// HTTP Host header value.
    HttpHost = "http_host": FieldType::Str,
    /// Modbus/TCP function code.
    ModbusFc = "modbus_fc": U8,
    /// Modbus/TCP transaction identifier.
    ModbusTi = "modbus_ti": U16,
    /// IP datagram length (IPv4 total length; IPv6 payload length + 40).
    IpLen = "ip_len": U32,
    /// Length of the frame on the wire (pcap original length).
    FrameLen = "frame_len": U32,
    /// Sequence number of the packet in its source, from 1.
    PacketNo = "packet_no": U64,
    /// IP version (4 or 6).
    IpVersion = "ip_version": U8,
    /// IPv4 TTL or IPv6 hop limit.
    Ttl = "ttl": U8,
    /// ICMP / ICMPv6 type.
    IcmpType = "icmp_type": U8,
    /// ICMP / ICMPv6 code.
    IcmpCode = "icmp_code": U8,
    /// Innermost VLAN id, when the frame is tagged.
    Vlan = "vlan": U16,
    /// Message events only: the publishing probe's id. Packets lack it,
    /// as they lack every `msg_*` field.
    MsgProbe = "msg_probe": FieldType::Str,
    /// Message events only: the publishing application.
    MsgApp = "msg_app": FieldType::Str,
    /// Message events only: the message's topic.
    MsgTopic = "msg_topic": FieldType::Str,
    /// Message events only: the publisher's event key, rendered
    /// (`10.0.0.1-192.0.2.7`).
    MsgKey = "msg_key": FieldType::Str,
    /// Message events only: the state code (`%state.code` at the publisher).
    MsgCode = "msg_code": FieldType::Str,
    /// Message events only: the state level (`LOW`).
    MsgLevel = "msg_level": FieldType::Str,
    /// Message events only: the publisher key's state after its pass.
    MsgState = "msg_state": FieldType::Str,
    /// Message events only: the message's text (the description of a
    /// D-StreaMon text line).
    MsgText = "msg_text": FieldType::Str,
    /// Message events only: the message's time, ns since the epoch (the
    /// publisher's packet time).
    MsgTs = "msg_ts": U64,
}

impl Field {
    /// Looks a field up by its application-language name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(Field::from_name(f.name()), Some(*f));
            assert_eq!(*f as usize, i);
            assert!(Field::ALL[..i].iter().all(|g| g.name() != f.name()));
        }
        assert_eq!(Field::from_name("no_such_field"), None);
    }

    #[test]
    fn streamon_field_set_is_present() {
        for name in [
            "ip_src",
            "ip_dst",
            "src_port",
            "dst_port",
            "proto",
            "flags",
            "domain_name",
            "domain_addr",
            "domain_second_level",
            "http_url",
            "http_method",
            "http_host",
            "modbus_fc",
            "modbus_ti",
            "ip_len",
            "packet_no",
        ] {
            assert!(Field::from_name(name).is_some(), "{name}");
        }
    }
}
