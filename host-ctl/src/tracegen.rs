//! Deterministic synthetic traces.
//!
//! Public captures rarely hold an attack at the size an application's
//! thresholds need (a SYN flood that ramps up over minutes, an NXDOMAIN
//! storm). These generators make one from a seed: the same seed gives the
//! same bytes, so tests and the demo are reproducible. Frames are Ethernet
//! II / IPv4 built with `etherparse`.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::TsResolution;

/// One generated frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture time, ns since the epoch.
    pub ts_ns: u64,
    /// The Ethernet frame.
    pub data: Vec<u8>,
}

/// A small seeded generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An exponential inter-arrival time with this mean, in ns.
    pub fn exp_ns(&mut self, mean_ns: f64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (-(1.0 - u).ln() * mean_ns) as u64
    }
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// A TCP segment with the given flags (`syn`, `ack`).
pub fn tcp_frame(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    syn: bool,
    ack: bool,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src.octets(), dst.octets(), 64)
        .tcp(sport, dport, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut out = Vec::with_capacity(64);
    b.write(&mut out, &[])
        .expect("writing to a Vec cannot fail");
    out
}

/// A UDP datagram.
pub fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(64 + payload.len());
    b.write(&mut out, payload)
        .expect("writing to a Vec cannot fail");
    out
}

/// A DNS message with one question (`name`, type A). `response` sets QR
/// and the `rcode`.
pub fn dns_message(id: u16, name: &str, response: bool, rcode: u8) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = if response {
        0x8180 | rcode as u16
    } else {
        0x0100
    };
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len().min(63) as u8);
        m.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// Trace start: 2026-01-01T00:00:00Z.
pub const EPOCH_NS: u64 = 1_767_225_600_000_000_000;

/// The demo's SYN flood, about 25,000 frames over 6 minutes:
/// * background: 40 clients open connections to 5 servers
///   (10.0.0.1–10.0.0.5) at about one SYN per second in total, all trace
///   long; 8 of them are regular clients of the victim 10.0.0.100;
/// * from t = 60 s, spoofed sources (random addresses in 100.64.0.0/10)
///   send SYNs to the victim at a rate growing ×1.5 every 10 s from 2/s to
///   at most 400/s, until t = 180 s; then only background traffic.
pub fn syn_flood(seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    let mut frames = Vec::new();
    let victim = Ipv4Addr::new(10, 0, 0, 100);
    let end_ns = 360 * 1_000_000_000u64;
    // Background.
    let mut t = 0u64;
    while t < end_ns {
        t += rng.exp_ns(1e9);
        let client = rng.below(40) as u32;
        let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 1, 10)) + client);
        let dst = if client < 8 && rng.below(2) == 0 {
            victim
        } else {
            Ipv4Addr::new(10, 0, 0, 1 + rng.below(5) as u8)
        };
        let sport = 32768 + rng.below(28000) as u16;
        frames.push(Frame {
            ts_ns: EPOCH_NS + t,
            data: tcp_frame(src, dst, sport, 443, true, false),
        });
        frames.push(Frame {
            ts_ns: EPOCH_NS + t + 200_000,
            data: tcp_frame(dst, src, 443, sport, true, true),
        });
    }
    // The flood.
    let (start, stop) = (60e9, 180e9);
    let mut t = start;
    while t < stop {
        let rate = (2.0 * 1.5f64.powf((t - start) / 10e9)).min(400.0);
        t += rng.exp_ns(1e9 / rate) as f64;
        let src = Ipv4Addr::from(0x6440_0000 | (rng.next_u64() as u32 & 0x003F_FFFF));
        let sport = 1024 + rng.below(60000) as u16;
        frames.push(Frame {
            ts_ns: EPOCH_NS + t as u64,
            data: tcp_frame(src, victim, sport, 80, true, false),
        });
    }
    frames.sort_by_key(|f| f.ts_ns);
    frames
}

/// Writes frames as a classic pcap file (nanosecond timestamps, Ethernet).
pub fn write_pcap(path: &Path, frames: &[Frame]) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let header = PcapHeader {
        ts_resolution: TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut w =
        PcapWriter::with_header(io::BufWriter::new(file), header).map_err(io::Error::other)?;
    for f in frames {
        let ts = std::time::Duration::from_nanos(f.ts_ns);
        w.write_packet(&PcapPacket::new(ts, f.data.len() as u32, &f.data))
            .map_err(io::Error::other)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_ordered() {
        let a = syn_flood(1);
        assert_eq!(a, syn_flood(1));
        assert_ne!(a, syn_flood(2));
        assert!(a.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        assert!(a.len() > 5_000, "{}", a.len());
    }
}
