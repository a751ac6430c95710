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

/// The demo's SYN flood, about 7,000 frames over 6 minutes:
/// * background: 40 clients open connections to 5 servers
///   (10.0.0.1–10.0.0.5) at about one SYN per second in total, all trace
///   long; 8 of them are regular clients of the victim 10.0.0.100;
/// * from t = 60 s, spoofed sources (random addresses in 100.64.0.0/10)
///   send SYNs to the victim at a rate growing ×1.5 every 10 s from 2/s
///   (about 260/s by t = 180 s, capped at 400/s), until t = 180 s; then
///   only background traffic.
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

/// A DNS answer frame from `resolver` to `client` (UDP 53 → `port`).
fn dns_answer(
    resolver: Ipv4Addr,
    client: Ipv4Addr,
    port: u16,
    id: u16,
    name: &str,
    rcode: u8,
) -> Vec<u8> {
    udp_frame(
        resolver,
        client,
        53,
        port,
        &dns_message(id, name, true, rcode),
    )
}

/// A random DGA-like label of 8–15 lowercase letters.
fn random_label(rng: &mut Rng) -> String {
    let n = 8 + rng.below(8) as usize;
    (0..n)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

/// A DNS query and its answer (200 µs later) as two frames at `t_ns`
/// after [`EPOCH_NS`].
fn dns_exchange(
    rng: &mut Rng,
    out: &mut Vec<Frame>,
    t_ns: u64,
    client: Ipv4Addr,
    resolver: Ipv4Addr,
    name: &str,
    rcode: u8,
) {
    let id = rng.below(65536) as u16;
    let port = 1024 + rng.below(60000) as u16;
    out.push(Frame {
        ts_ns: EPOCH_NS + t_ns,
        data: udp_frame(client, resolver, port, 53, &dns_message(id, name, false, 0)),
    });
    out.push(Frame {
        ts_ns: EPOCH_NS + t_ns + 200_000,
        data: dns_answer(resolver, client, port, id, name, rcode),
    });
}

/// An NXDOMAIN storm, about 600 frames over 10 minutes, resolver
/// 10.2.0.1:
/// * background: 20 clients (10.2.1.1–10.2.1.20) resolve ordinary names
///   at about one query per 3 s in total, all trace long; one query in 50
///   gets NXDOMAIN (a typo), so no client gets more than a few per minute;
/// * from t = 120 s to t = 180 s, the bot 10.2.0.66 resolves random
///   `<label>.biz` names at 2 per second, and every answer is NXDOMAIN
///   (about 120 NXDOMAIN answers in one minute).
pub fn nxdomain_storm(seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    let mut frames = Vec::new();
    let resolver = Ipv4Addr::new(10, 2, 0, 1);
    let bot = Ipv4Addr::new(10, 2, 0, 66);
    let names = [
        "example.com",
        "wikipedia.org",
        "rust-lang.org",
        "ietf.org",
        "kernel.org",
    ];
    let end_ns = 600 * 1_000_000_000u64;
    let mut t = 0u64;
    while t < end_ns {
        t += rng.exp_ns(3e9);
        let client = Ipv4Addr::new(10, 2, 1, 1 + rng.below(20) as u8);
        let (name, rcode) = if rng.below(50) == 0 {
            ("exmaple.com".to_string(), 3)
        } else {
            (names[rng.below(names.len() as u64) as usize].to_string(), 0)
        };
        dns_exchange(&mut rng, &mut frames, t, client, resolver, &name, rcode);
    }
    let mut t = 120e9;
    while t < 180e9 {
        t += rng.exp_ns(0.5e9) as f64;
        let name = format!("{}.biz", random_label(&mut rng));
        dns_exchange(&mut rng, &mut frames, t as u64, bot, resolver, &name, 3);
    }
    frames.sort_by_key(|f| f.ts_ns);
    frames
}

/// A Conficker-like infection next to a clean host, about 2,100 frames
/// over 5 minutes (resolver 10.1.0.1):
/// * the bot 10.1.0.66 resolves random names at 1 per second from t = 0
///   (70 % NXDOMAIN, the generated C&C domains) and, from t = 10 s, sends
///   TCP SYNs to port 445 of random addresses in 172.16.0.0/12 at 4 per
///   second; one in 20 answers with a SYN-ACK;
/// * the clean host 10.1.0.10 does reverse lookups (`in-addr.arpa`) at one
///   per 4 s, 30 % NXDOMAIN (the paper's host B), and opens SMB sessions to
///   its file server 10.1.0.5 at one every 5 s, each answered by a SYN-ACK;
/// * the quiet host 10.1.0.20 resolves ordinary names (never NXDOMAIN).
pub fn conficker(seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    let mut frames = Vec::new();
    let resolver = Ipv4Addr::new(10, 1, 0, 1);
    let bot = Ipv4Addr::new(10, 1, 0, 66);
    let clean = Ipv4Addr::new(10, 1, 0, 10);
    let quiet = Ipv4Addr::new(10, 1, 0, 20);
    let server = Ipv4Addr::new(10, 1, 0, 5);
    let end_ns = 300 * 1_000_000_000u64;
    // The bot's C&C lookups.
    let mut t = 0u64;
    while t < end_ns {
        let nx = rng.below(10) < 7;
        let name = format!(
            "{}.{}",
            random_label(&mut rng),
            if nx { "info" } else { "com" }
        );
        dns_exchange(
            &mut rng,
            &mut frames,
            t,
            bot,
            resolver,
            &name,
            if nx { 3 } else { 0 },
        );
        t += rng.exp_ns(1e9);
    }
    // The bot's SMB scan.
    let mut t = 10_000_000_000u64;
    while t < end_ns {
        let dst = Ipv4Addr::from(0xAC10_0000 | (rng.next_u64() as u32 & 0x000F_FFFF));
        let sport = 1024 + rng.below(60000) as u16;
        frames.push(Frame {
            ts_ns: EPOCH_NS + t,
            data: tcp_frame(bot, dst, sport, 445, true, false),
        });
        if rng.below(20) == 0 {
            frames.push(Frame {
                ts_ns: EPOCH_NS + t + 300_000,
                data: tcp_frame(dst, bot, 445, sport, true, true),
            });
        }
        t += rng.exp_ns(0.25e9);
    }
    // The clean host: reverse lookups and its file server.
    let mut t = 0u64;
    while t < end_ns {
        let nx = rng.below(10) < 3;
        let name = format!("{}.{}.168.192.in-addr.arpa", rng.below(256), rng.below(256));
        dns_exchange(
            &mut rng,
            &mut frames,
            t,
            clean,
            resolver,
            &name,
            if nx { 3 } else { 0 },
        );
        t += rng.exp_ns(4e9);
    }
    let mut t = 1_000_000_000u64;
    while t < end_ns {
        let sport = 1024 + rng.below(60000) as u16;
        frames.push(Frame {
            ts_ns: EPOCH_NS + t,
            data: tcp_frame(clean, server, sport, 445, true, false),
        });
        frames.push(Frame {
            ts_ns: EPOCH_NS + t + 150_000,
            data: tcp_frame(server, clean, 445, sport, true, true),
        });
        t += rng.exp_ns(5e9);
    }
    // The quiet host.
    let mut t = 500_000_000u64;
    while t < end_ns {
        dns_exchange(
            &mut rng,
            &mut frames,
            t,
            quiet,
            resolver,
            "intranet.example.com",
            0,
        );
        t += rng.exp_ns(6e9);
    }
    frames.sort_by_key(|f| f.ts_ns);
    frames
}

/// A SYN flood that ramps up, with two regular clients: the scenario of
/// Fig. 6 of the StreaMon paper (ITC 2014, IV-C). About 8,000 frames over
/// 10 minutes; the server is 10.4.0.80:80:
/// * client A (10.4.1.1) opens a connection every 2 s all trace long;
/// * from t = 100 s to t = 220 s, spoofed sources (random addresses in
///   198.18.0.0/15) send SYNs at a rate growing ×1.5 every 10 s from 1/s;
/// * client B (10.4.1.2) starts in the middle of the attack, at t = 180 s,
///   and opens a connection every 2 s until the end;
/// * every SYN from A or B is answered by a SYN-ACK.
pub fn ddos_ramp(seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    let mut frames = Vec::new();
    let server = Ipv4Addr::new(10, 4, 0, 80);
    let end_ns = 600 * 1_000_000_000u64;
    for (client, start_s) in [
        (Ipv4Addr::new(10, 4, 1, 1), 0u64),
        (Ipv4Addr::new(10, 4, 1, 2), 180),
    ] {
        let mut t = start_s * 1_000_000_000 + rng.below(1_000_000_000);
        while t < end_ns {
            let sport = 32768 + rng.below(28000) as u16;
            frames.push(Frame {
                ts_ns: EPOCH_NS + t,
                data: tcp_frame(client, server, sport, 80, true, false),
            });
            frames.push(Frame {
                ts_ns: EPOCH_NS + t + 100_000,
                data: tcp_frame(server, client, 80, sport, true, true),
            });
            t += 1_500_000_000 + rng.below(1_000_000_000);
        }
    }
    let (start, stop) = (100e9, 220e9);
    let mut t = start;
    while t < stop {
        let rate = 1.5f64.powf((t - start) / 10e9);
        t += rng.exp_ns(1e9 / rate) as f64;
        let src = Ipv4Addr::from(0xC612_0000 | (rng.next_u64() as u32 & 0x0001_FFFF));
        let sport = 1024 + rng.below(60000) as u16;
        frames.push(Frame {
            ts_ns: EPOCH_NS + t as u64,
            data: tcp_frame(src, server, sport, 80, true, false),
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

    #[test]
    fn attack_generators_are_deterministic_and_ordered() {
        for gen in [
            nxdomain_storm as fn(u64) -> Vec<Frame>,
            conficker,
            ddos_ramp,
        ] {
            let a = gen(7);
            assert_eq!(a, gen(7));
            assert_ne!(a, gen(8));
            assert!(a.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
            assert!(a.len() > 500, "{}", a.len());
        }
    }
}
