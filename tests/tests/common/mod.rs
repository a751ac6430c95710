//! Shared helpers: run a shipped application over a capture or generated
//! frames, and read captures into plain packet records so that tests can
//! compute what to expect with ordinary loops, independently of the
//! application's metrics.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use streamon_host_ctl::replay::replay_file;
use streamon_host_ctl::tracegen::Frame;
use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, FrameMeta, LinkType};
use streamon_probe::{sw_engine, AppStats, OutputEvent, Probe, RuntimeOptions, VecSink};

/// Every capture of `shared/traces`.
pub const ALL_TRACES: &[&str] = &[
    "bss_backscatter.trace",
    "bss_port_scan.pcap",
    "dstreamon_device_scan.pcap",
    "dstreamon_dos.pcap",
    "dstreamon_port_scan.pcap",
    "ndpi_bad-dns-traffic.pcap",
    "ndpi_bittorrent.pcap",
    "ndpi_bittorrent_utp.pcap",
    "ndpi_dns.pcap",
    "ndpi_gnutella.pcap",
    "ndpi_synscan.pcap",
    "ndpi_tcp_scan.pcapng",
    "sddos_synflood_spoofed.pcap",
    "sv_dns_rcode.pcap",
    "sv_nxdomain_soa.pcap",
    "sv_synflood_fw.pcap",
    "tcpreplay_test.pcap",
    "zeek_nmap_vsn.pcap",
    "zeek_wikipedia.pcap",
];

/// The shipped applications.
pub const ALL_APPS: &[&str] = &[
    "conficker",
    "ddos",
    "dns_nxdomain",
    "modbus_scan",
    "p2p",
    "portscan",
];

/// Path of a capture in `shared/traces`.
pub fn trace(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces")).join(name)
}

/// Source of a shipped application.
pub fn app_source(app: &str) -> String {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../apps")).join(format!("{app}.xml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// What one application did over one input.
pub struct Run {
    /// Every event, in emission order.
    pub events: Vec<OutputEvent>,
    /// The application's counters.
    pub stats: AppStats,
}

impl Run {
    /// The first event of `key` that moved it into `state`.
    pub fn reached(&self, key: &str, state: &str) -> Option<&OutputEvent> {
        self.events
            .iter()
            .find(|e| e.key == key && e.state_to == state && e.state_from != state)
    }

    /// Like [`Run::reached`], but panics with every event when absent.
    pub fn must_reach(&self, key: &str, state: &str) -> &OutputEvent {
        self.reached(key, state)
            .unwrap_or_else(|| panic!("{key} never reached `{state}`; events:\n{}", self.dump()))
    }

    /// Events on a topic.
    pub fn topic<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a OutputEvent> + 'a {
        self.events.iter().filter(move |e| e.topic == topic)
    }

    /// Every distinct key that appears in an event.
    pub fn keys(&self) -> BTreeSet<String> {
        self.events.iter().map(|e| e.key.clone()).collect()
    }

    /// The events, one per line, for failure messages.
    pub fn dump(&self) -> String {
        self.events
            .iter()
            .take(40)
            .map(|e| {
                format!(
                    "  ts={} pkt={} {} {} {}->{} key={} {}",
                    e.ts, e.packet_no, e.event, e.topic, e.state_from, e.state_to, e.key, e.text
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Asserts that nothing was published.
    pub fn assert_quiet(&self, what: &str) {
        assert!(
            self.events.is_empty(),
            "{what}: expected no event, got:\n{}",
            self.dump()
        );
    }
}

fn new_probe(app: &str) -> Probe {
    let mut probe = Probe::new();
    let file = format!("apps/{app}.xml");
    probe
        .install(
            app,
            &app_source(app),
            &file,
            &sw_engine,
            RuntimeOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{file} does not install: {e}"));
    probe
}

fn finish(probe: &Probe, sink: VecSink) -> Run {
    let stats = probe.app_stats().into_iter().next().expect("one app").1;
    Run {
        events: sink.0,
        stats,
    }
}

/// Runs a shipped application over a capture of `shared/traces`.
pub fn run_trace(app: &str, name: &str) -> Run {
    let mut probe = new_probe(app);
    let mut sink = VecSink::default();
    replay_file(&mut probe, &trace(name), &mut sink, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("replaying {name}: {e}"));
    finish(&probe, sink)
}

/// Runs a shipped application over generated frames (Ethernet), numbered
/// from 1.
pub fn run_frames(app: &str, frames: &[Frame]) -> Run {
    let mut probe = new_probe(app);
    let mut sink = VecSink::default();
    for (i, f) in frames.iter().enumerate() {
        let meta = FrameMeta {
            ts_ns: f.ts_ns,
            orig_len: f.data.len() as u32,
            packet_no: i as u64 + 1,
        };
        probe.frame(&f.data, LinkType::Ethernet, meta, &mut sink);
    }
    probe.finish();
    finish(&probe, sink)
}

/// One packet, as plain values.
#[derive(Debug, Clone)]
pub struct Pkt {
    /// Packet number in the capture (from 1).
    pub no: u64,
    /// Capture time, ns.
    pub ts: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags (0 for other protocols).
    pub flags: u8,
    /// Transport payload.
    pub payload: Vec<u8>,
}

impl Pkt {
    /// A TCP segment with exactly SYN set.
    pub fn is_syn(&self) -> bool {
        self.proto == 6 && self.flags == 0x02
    }

    /// A DNS answer over UDP port 53 with rcode 3 (read from the raw
    /// header bytes: QR is bit 7 of byte 2, rcode the low nibble of
    /// byte 3).
    pub fn is_nxdomain(&self) -> bool {
        self.proto == 17
            && self.sport == 53
            && self.payload.len() >= 12
            && self.payload[2] & 0x80 != 0
            && self.payload[3] & 0x0f == 3
    }

    /// A DNS query over UDP port 53.
    pub fn is_dns_query(&self) -> bool {
        self.proto == 17
            && self.dport == 53
            && self.payload.len() >= 12
            && self.payload[2] & 0x80 == 0
    }

    /// The Modbus/TCP function code of a request to port 502 (byte 7 of
    /// the ADU, after the 7-byte MBAP header).
    pub fn modbus_fc(&self) -> Option<u8> {
        (self.proto == 6 && self.dport == 502 && self.payload.len() >= 8).then(|| self.payload[7])
    }
}

fn to_pkt(data: &[u8], linktype: LinkType, meta: FrameMeta) -> Option<Pkt> {
    let p = parse(data, linktype, meta).ok()?;
    let (sport, dport) = p.ports().unwrap_or((0, 0));
    Some(Pkt {
        no: meta.packet_no,
        ts: meta.ts_ns,
        src: p.src_addr(),
        dst: p.dst_addr(),
        proto: p.proto(),
        sport,
        dport,
        flags: p.tcp_flags().unwrap_or(0),
        payload: p.l4_payload().to_vec(),
    })
}

/// The IP packets of a capture (frames that do not parse are left out).
pub fn load_trace(name: &str) -> Vec<Pkt> {
    let mut src = PcapSource::open(trace(name)).unwrap_or_else(|e| panic!("opening {name}: {e}"));
    let mut out = Vec::new();
    while let Some(f) = src
        .next_frame()
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
    {
        if let Some(p) = to_pkt(f.data, f.linktype, f.meta) {
            out.push(p);
        }
    }
    out
}

/// The packets of generated frames, numbered from 1 as [`run_frames`] does.
pub fn load_frames(frames: &[Frame]) -> Vec<Pkt> {
    frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let meta = FrameMeta {
                ts_ns: f.ts_ns,
                orig_len: f.data.len() as u32,
                packet_no: i as u64 + 1,
            };
            to_pkt(&f.data, LinkType::Ethernet, meta)
        })
        .collect()
}

/// Distinct destination ports of SYN-only segments per (source,
/// destination), over the whole trace.
pub fn syn_ports_per_pair(pkts: &[Pkt]) -> BTreeMap<(IpAddr, IpAddr), BTreeSet<u16>> {
    let mut m: BTreeMap<(IpAddr, IpAddr), BTreeSet<u16>> = BTreeMap::new();
    for p in pkts.iter().filter(|p| p.is_syn()) {
        m.entry((p.src, p.dst)).or_default().insert(p.dport);
    }
    m
}

/// The largest number of NXDOMAIN answers any one client got within a
/// 60 s window.
pub fn max_nxdomain_per_minute(pkts: &[Pkt]) -> (usize, Option<IpAddr>) {
    let mut per: BTreeMap<IpAddr, Vec<u64>> = BTreeMap::new();
    for p in pkts.iter().filter(|p| p.is_nxdomain()) {
        per.entry(p.dst).or_default().push(p.ts);
    }
    let mut best = (0, None);
    for (client, ts) in per {
        for (i, &t) in ts.iter().enumerate() {
            let n = ts[i..]
                .iter()
                .take_while(|&&u| u < t + 60_000_000_000)
                .count();
            if n > best.0 {
                best = (n, Some(client));
            }
        }
    }
    best
}

/// `e^(-age/τ)`-weighted count of `times` at time `now` (τ in seconds):
/// what a tewma of time constant τ reads, times τ. As the metric contract
/// specifies (`contract/src/plan.rs`, `decay_table`), ages are measured in
/// whole ticks of `2^shift` ns, with the largest shift that still gives at
/// least 64 ticks per τ; so a count read between ticks is up to one tick
/// (< 1.6 %) less decayed than the exact exponential.
pub fn decayed_count(times: &[u64], now: u64, tau_s: f64) -> f64 {
    let tau_ns = tau_s * 1e9;
    let shift = (tau_ns / 64.0).log2().floor() as u32;
    let tick_ns = (1u64 << shift) as f64;
    times
        .iter()
        .filter(|&&t| t <= now)
        .map(|&t| (-(((now >> shift) - (t >> shift)) as f64) * tick_ns / tau_ns).exp())
        .sum()
}
