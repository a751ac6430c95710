//! The event layer's packet parser, and the pcap/pcapng reader that feeds
//! it from trace files.
//!
//! It turns one captured frame into the typed [`Field`] values applications
//! select on and key by, without copying the frame:
//!
//! ```text
//!  capture ──► pcap::PcapSource ──(FrameMeta, &[u8], LinkType)──► parse()
//!                                                                  │
//!        Skip (counted by name) ◄── not IP / fragment / cut ───────┤
//!                                                                  ▼
//!                     Parsed ── get(Field) ──► FieldValue ── write_key ──► KeyBuf
//! ```
//!
//! Layers, each a module:
//! * [`parsed`]: link layer (Ethernet + VLAN/QinQ, Linux SLL, raw IP,
//!   loopback), MPLS, PPPoE sessions, IPv4/IPv6 with extension headers, TCP/UDP/ICMP, and the
//!   dispatch to the applications; [`parse`] and [`Parsed`] live here;
//! * [`dns`], [`http`], [`modbus`]: checked views of the application
//!   messages StreaMon selects on;
//! * [`field`]: the list of field names applications use;
//! * [`value`]: field values, their display and their canonical key bytes;
//! * [`pcap`]: trace files (classic pcap in both byte orders and both
//!   time resolutions, and pcapng), sniffed by magic, not by extension.
//!
//! Invariants: no `unsafe`; the per-packet path ([`parse`], [`Parsed::get`],
//! [`FieldValue::write_key`]) never allocates and never panics, whatever the
//! bytes; time comes from the capture ([`FrameMeta::ts_ns`]), never from
//! the clock.
//!
//! Not supported: IP reassembly (non-first fragments are skipped), TCP
//! stream reassembly (DNS over TCP and HTTP are read from one segment),
//! 802.11, tunnels (GRE, VXLAN, IP-in-IP: the outer header is what is
//! reported), ESP-protected payloads, MPLS pseudowires.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dns;
pub mod field;
pub mod http;
pub mod modbus;
pub mod parsed;
pub mod pcap;
pub mod value;

pub use field::{Field, FieldType};
pub use parsed::{parse, Anomalies, FrameMeta, Layer, LinkType, Parsed, Skip};
pub use value::{FieldValue, KeyBuf, KeyOverflow};
