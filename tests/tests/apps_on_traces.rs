//! Each shipped application (`apps/*.xml`) on the attack it is written
//! for and on benign captures.
//!
//! For every detection the test names the key, the state it reaches and
//! when (packet number or trace time). Expected values are computed from
//! the packets with plain loops (distinct ports per pair, NXDOMAIN answers
//! per client, decayed SYN counts, ...), not copied from the application's
//! output. Captures are from `shared/traces` (see its `SOURCES.md`); where
//! no capture holds the attack at the size the thresholds need, the trace
//! is generated with a seeded generator of `streamon_host_ctl::tracegen`
//! and the test says so.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use common::*;
use streamon_host_ctl::tracegen;

const S: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

// ---------------------------------------------------------------- portscan

/// Packet number of the SYN that brings the (src, dst) pair to its `n`th
/// distinct destination port.
fn nth_distinct_port(pkts: &[Pkt], src: IpAddr, dst: IpAddr, n: usize) -> Option<&Pkt> {
    let mut seen = BTreeSet::new();
    pkts.iter()
        .filter(|p| p.is_syn() && p.src == src && p.dst == dst)
        .find(|p| {
            seen.insert(p.dport);
            seen.len() == n
        })
}

#[test]
fn portscan_detects_nmap_syn_scan() {
    // ndpi_synscan.pcap: nmap -sS, 1,994 SYNs from 172.16.0.8 to 1,000
    // ports of 64.13.134.52.
    let pkts = load_trace("ndpi_synscan.pcap");
    let (src, dst) = (ip("172.16.0.8"), ip("64.13.134.52"));
    let run = run_trace("portscan", "ndpi_synscan.pcap");
    let key = "172.16.0.8-64.13.134.52";

    // default → suspicious at the SYN that makes 6 distinct ports (> 5).
    let sixth = nth_distinct_port(&pkts, src, dst, 6).expect("the scan reaches 6 ports");
    let sus = run.must_reach(key, "suspicious");
    assert_eq!(
        (sus.packet_no, sus.ts),
        (sixth.no, sixth.ts),
        "{}",
        run.dump()
    );
    assert_eq!(sus.topic, "log");

    // suspicious → detected at the first 1 s tick, if more than 5 ports
    // not seen before arrived in that second (the count is reset, the
    // detector of (src, dst, port) is not).
    let first_six: BTreeSet<u16> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.src == src && p.dst == dst && p.no <= sixth.no)
        .map(|p| p.dport)
        .collect();
    let new_in_second: BTreeSet<u16> = pkts
        .iter()
        .filter(|p| {
            p.is_syn() && p.src == src && p.dst == dst && p.no > sixth.no && p.ts < sixth.ts + S
        })
        .map(|p| p.dport)
        .filter(|d| !first_six.contains(d))
        .collect();
    assert!(
        new_in_second.len() > 5,
        "only {} new ports in the second",
        new_in_second.len()
    );
    let det = run.must_reach(key, "detected");
    assert_eq!(
        det.ts,
        sixth.ts + S,
        "detected at the first watchports tick"
    );
    assert_eq!(det.event, "timeout:watchports");
    assert_eq!(det.topic, "alert");
    assert!(
        det.text
            .contains("host 172.16.0.8 contacted more than 5 ports/s on 64.13.134.52"),
        "{}",
        det.text
    );

    // Nothing about any other pair, and one alert only.
    assert_eq!(run.keys(), BTreeSet::from([key.to_string()]));
    assert_eq!(run.topic("alert").count(), 1);
}

#[test]
fn portscan_minimal_scan_is_suspected_but_too_short_to_confirm() {
    // bss_port_scan.pcap: 10 SYNs to 10 ports within 0.2 ms. The sixth
    // port makes the pair suspicious; the confirming tick is 1 s later,
    // after the end of the capture, and timeouts do not fire past the
    // last packet, so `detected` cannot be reached on this trace.
    let pkts = load_trace("bss_port_scan.pcap");
    let (src, dst) = (ip("192.168.2.154"), ip("192.168.2.22"));
    let run = run_trace("portscan", "bss_port_scan.pcap");
    let sixth = nth_distinct_port(&pkts, src, dst, 6).expect("6 ports");
    let sus = run.must_reach("192.168.2.154-192.168.2.22", "suspicious");
    assert_eq!(sus.packet_no, sixth.no);
    assert_eq!(sus.packet_no, 6);
    let last = pkts.last().expect("packets").ts;
    assert!(last < sixth.ts + S, "the capture ends before the 1 s tick");
    assert!(
        run.reached("192.168.2.154-192.168.2.22", "detected")
            .is_none(),
        "{}",
        run.dump()
    );
    assert_eq!(run.events.len(), 1);
}

#[test]
fn portscan_quiet_on_benign_and_non_vertical_traffic() {
    // Each of these has at most 5 distinct SYN ports per (source,
    // destination), checked here, so no pair may even become suspicious:
    // * bss_backscatter.trace: SYN-ACK/RST backscatter, no SYN at all;
    // * ndpi_gnutella.pcap: the P2P client sends 291 SYNs to many ports,
    //   but each to a different peer (at most a few ports per peer): that
    //   is P2P fan-out, not a vertical scan, and must stay quiet;
    // * dstreamon_port_scan.pcap: despite its name it holds only Modbus/TCP
    //   data segments (PSH) to port 502, no SYN, so there is no TCP port
    //   scan to see (the Modbus app is tested on it below);
    // * ndpi_tcp_scan.pcapng: 4 SYN probes (80, 443, 445, 3389) and
    //   FIN/NULL/Xmas probes: below the threshold;
    // * sddos/sv_synflood: floods of SYNs to one port.
    for name in [
        "bss_backscatter.trace",
        "ndpi_gnutella.pcap",
        "dstreamon_port_scan.pcap",
        "ndpi_tcp_scan.pcapng",
        "zeek_wikipedia.pcap",
        "ndpi_dns.pcap",
        "tcpreplay_test.pcap",
        "ndpi_bittorrent.pcap",
        "sv_synflood_fw.pcap",
        "sddos_synflood_spoofed.pcap",
        "dstreamon_dos.pcap",
    ] {
        let pkts = load_trace(name);
        let worst = syn_ports_per_pair(&pkts)
            .values()
            .map(|s| s.len())
            .max()
            .unwrap_or(0);
        assert!(
            worst <= 5,
            "{name}: a pair has {worst} SYN ports; it would be a scan"
        );
        run_trace("portscan", name).assert_quiet(&format!("portscan on {name}"));
    }
    let pkts = load_trace("bss_backscatter.trace");
    assert_eq!(
        pkts.iter().filter(|p| p.is_syn()).count(),
        0,
        "backscatter has no SYN"
    );
    let gnutella = syn_ports_per_pair(&load_trace("ndpi_gnutella.pcap"));
    let ports: BTreeSet<u16> = gnutella.values().flatten().copied().collect();
    assert!(
        gnutella.len() > 50 && ports.len() > 50,
        "gnutella fans out to many peers and ports"
    );
}

// ------------------------------------------------------------ modbus_scan

#[test]
fn modbus_scan_detects_device_scan() {
    // dstreamon_device_scan.pcap: 127.0.0.30 sends Diagnostics (function
    // code 8) to 15 devices; 127.0.0.20 and .21 only read registers (3).
    let pkts = load_trace("dstreamon_device_scan.pcap");
    let run = run_trace("modbus_scan", "dstreamon_device_scan.pcap");
    let probes: Vec<&Pkt> = pkts.iter().filter(|p| p.modbus_fc() == Some(8)).collect();
    assert!(probes.iter().all(|p| p.src == ip("127.0.0.30")));
    // The packet at which the scanner has probed n distinct devices.
    let nth_device = |n: usize| {
        let mut seen = BTreeSet::new();
        probes
            .iter()
            .find(|p| {
                seen.insert(p.dst);
                seen.len() == n
            })
            .map(|p| p.no)
            .expect("enough devices")
    };
    let key = "127.0.0.30";
    assert_eq!(run.must_reach(key, "suspect").packet_no, nth_device(1));
    assert_eq!(run.must_reach(key, "scanning").packet_no, nth_device(3));
    let scanner = run.must_reach(key, "scanner");
    assert_eq!(scanner.packet_no, nth_device(4));
    assert_eq!(scanner.topic, "alert");
    // Every later probe of a new device is reported, with the count.
    let devices: BTreeSet<IpAddr> = probes.iter().map(|p| p.dst).collect();
    let alerts: Vec<_> = run.topic("alert").collect();
    assert_eq!(alerts.len(), devices.len() - 3, "{}", run.dump());
    assert!(alerts
        .last()
        .expect("alerts")
        .text
        .contains(&format!("devices={}", devices.len())));
    assert_eq!(
        run.keys(),
        BTreeSet::from([key.to_string()]),
        "the register readers stay normal"
    );
    assert_eq!(
        run.stats.exec_disabled, 1,
        "the exec action is refused by default"
    );
}

#[test]
fn modbus_scan_quiet_on_benign_traffic() {
    // dstreamon_port_scan.pcap is ordinary Modbus traffic: reads and
    // writes from three masters, with no Diagnostics request (checked).
    for name in [
        "dstreamon_port_scan.pcap",
        "tcpreplay_test.pcap",
        "zeek_wikipedia.pcap",
        "ndpi_synscan.pcap",
    ] {
        let pkts = load_trace(name);
        assert!(
            pkts.iter().all(|p| p.modbus_fc() != Some(8)),
            "{name} has a diagnostics probe"
        );
        run_trace("modbus_scan", name).assert_quiet(&format!("modbus_scan on {name}"));
    }
}

// ----------------------------------------------------------- dns_nxdomain

/// NXDOMAIN answers to `client`, in order.
fn nxdomains_to(pkts: &[Pkt], client: IpAddr) -> Vec<&Pkt> {
    pkts.iter()
        .filter(|p| p.is_nxdomain() && p.dst == client)
        .collect()
}

#[test]
fn dns_nxdomain_suspects_nmap_client() {
    // zeek_nmap_vsn.pcap: nmap's reverse lookups give 192.168.1.71 five
    // NXDOMAIN answers within a minute: suspicious (more than 4) at the
    // fifth, not detected (never more than 16).
    let pkts = load_trace("zeek_nmap_vsn.pcap");
    let client = ip("192.168.1.71");
    let nx = nxdomains_to(&pkts, client);
    assert!(
        nx.len() >= 5 && nx[4].ts - nx[0].ts < 60 * S,
        "{} answers",
        nx.len()
    );
    let run = run_trace("dns_nxdomain", "zeek_nmap_vsn.pcap");
    let sus = run.must_reach("192.168.1.71", "suspicious");
    assert_eq!(sus.packet_no, nx[4].no);
    assert!(
        sus.text
            .contains("A1 LOW \"DNS Hijacking Suspected\" ip_src=192.168.1.71 nxd_count=5"),
        "{}",
        sus.text
    );
    let (worst, _) = max_nxdomain_per_minute(&pkts);
    assert!(worst <= 16);
    assert!(run.reached("192.168.1.71", "detected").is_none());
    assert_eq!(run.topic("alert").count(), 0);
}

#[test]
fn dns_nxdomain_detects_generated_storm() {
    // Generated: no capture has a client with more than 16 NXDOMAIN
    // answers in a minute. The bot 10.2.0.66 gets about 120 in one minute;
    // 20 background clients get an occasional typo.
    let frames = tracegen::nxdomain_storm(3);
    let pkts = load_frames(&frames);
    let bot = ip("10.2.0.66");
    let nx = nxdomains_to(&pkts, bot);
    assert!(nx.len() > 40 && nx[32].ts - nx[0].ts < 60 * S);
    let run = run_frames("dns_nxdomain", &frames);
    let key = "10.2.0.66";
    assert_eq!(
        run.must_reach(key, "suspicious").packet_no,
        nx[4].no,
        "the 5th answer"
    );
    let det = run.must_reach(key, "detected");
    assert_eq!(det.packet_no, nx[16].no, "the 17th answer");
    // More than 32: each answer is reported with its raw bytes, the first
    // at the 33rd answer.
    let raw: Vec<_> = run.topic("raw").collect();
    assert_eq!(raw.first().expect("raw events").packet_no, nx[32].no);
    assert!(raw.iter().all(|e| e.raw.is_some() && e.key == key));
    let alert = run
        .topic("alert")
        .find(|e| e.packet_no == nx[32].no)
        .expect("alert at the 33rd");
    assert!(alert.text.contains(".biz"), "{}", alert.text);
    // The background clients stay below 5 per minute (checked) and silent.
    let others: Vec<Pkt> = pkts.iter().filter(|p| p.dst != bot).cloned().collect();
    assert!(max_nxdomain_per_minute(&others).0 <= 4);
    assert!(
        others.iter().any(|p| p.is_nxdomain()),
        "background typos exist"
    );
    assert_eq!(run.keys(), BTreeSet::from([key.to_string()]));
    // `detected` lasts 5 min after the last condition that fired (the
    // last answer of the storm); the trace goes on long enough, so the
    // bot is moved back to `default` once, silently.
    let last = raw.last().expect("raw").ts;
    assert!(pkts.last().expect("packets").ts > last + 300 * S);
    assert_eq!(
        raw.last().expect("raw").packet_no,
        nx.last().expect("nx").no
    );
    assert_eq!(run.stats.state_expiries, 1);
}

#[test]
fn dns_nxdomain_quiet_on_benign_dns() {
    // sv_nxdomain_soa: one NXDOMAIN; zeek_wikipedia: "a few"; ndpi_dns,
    // sv_dns_rcode: queries and errors; ndpi_bad-dns-traffic: malformed
    // DNS, SERVFAIL but no NXDOMAIN. None gives a client more than 4
    // NXDOMAIN answers in a minute (checked).
    for name in [
        "sv_nxdomain_soa.pcap",
        "zeek_wikipedia.pcap",
        "ndpi_dns.pcap",
        "sv_dns_rcode.pcap",
        "ndpi_bad-dns-traffic.pcap",
        "tcpreplay_test.pcap",
    ] {
        let (worst, client) = max_nxdomain_per_minute(&load_trace(name));
        assert!(
            worst <= 4,
            "{name}: {client:?} gets {worst} NXDOMAIN in a minute"
        );
        run_trace("dns_nxdomain", name).assert_quiet(&format!("dns_nxdomain on {name}"));
    }
    assert_eq!(
        max_nxdomain_per_minute(&load_trace("sv_nxdomain_soa.pcap")).0,
        1
    );
}

// ------------------------------------------------------------------- ddos

/// Packet of the first SYN to `dst` at which the SYNs to `dst`, decayed
/// with τ = 60 s, exceed `threshold` (what `syn_per_min` reads).
fn syn_rate_crossing(pkts: &[Pkt], dst: IpAddr, threshold: f64) -> Option<&Pkt> {
    let mut times = Vec::new();
    pkts.iter()
        .filter(|p| p.is_syn() && p.dst == dst)
        .find(|p| {
            times.push(p.ts);
            decayed_count(&times, p.ts, 60.0) > threshold
        })
}

/// Packet numbers the block list drops: packets of a (source,
/// destination) pair named by a `block` event (text `block <src>-<dst>
/// for 60 s`), later than the block and within its 60 s.
fn dropped_by_blocks(pkts: &[Pkt], blocks: &[&streamon_probe::OutputEvent]) -> BTreeSet<u64> {
    let mut until: BTreeMap<(IpAddr, IpAddr), u64> = BTreeMap::new();
    let mut dropped = BTreeSet::new();
    let mut bi = blocks.iter().peekable();
    for p in pkts {
        if until.get(&(p.src, p.dst)).is_some_and(|&u| p.ts < u) {
            dropped.insert(p.no);
            continue;
        }
        while let Some(b) = bi.next_if(|b| b.packet_no <= p.no) {
            let pair = b.text.split_whitespace().nth(1).expect("pair");
            let (s, d) = pair.split_once('-').expect("src-dst");
            until.insert((ip(s), ip(d)), b.ts + 60 * S);
        }
    }
    dropped
}

/// The ddos XFSM replayed on decayed SYN counts recomputed at each 10 s
/// tick after `mon_ts` (when the key entered `monitored`): the state
/// entered at each tick that changes it, until the key is back to normal.
fn ddos_ticks(syns: &[u64], mon_ts: u64) -> Vec<(u64, &'static str)> {
    let mut out = Vec::new();
    let mut state = "monitored";
    let mut prev = decayed_count(syns, mon_ts, 60.0);
    for k in 1..200 {
        let tick = mon_ts + k * 10 * S;
        let v = decayed_count(syns, tick, 60.0);
        let next = match state {
            "monitored" if v > 10_000.0 => "attack",
            "monitored" if v > 1.2 * prev => "rising",
            "monitored" if v < 100.0 => "normal",
            "rising" if v > 1.2 * prev || v > 10_000.0 => "attack",
            "rising" => "monitored",
            "attack" if v < 100.0 => "normal",
            s => s,
        };
        prev = v;
        if next != state {
            out.push((tick, next));
            state = next;
        }
        if state == "normal" {
            break;
        }
    }
    out
}

#[test]
fn ddos_detects_real_spoofed_flood_and_blocks_new_sources() {
    // sddos_synflood_spoofed.pcap: 37,841 spoofed SYNs to 10.10.10.10:80,
    // 24,000 of them in the first 2 s. normal → monitored when the decayed
    // SYN count passes 100; at the first 10 s tick the rate is far above
    // 10,000/min → attack; from then on SYNs from sources not seen before
    // the attack are blocked.
    let pkts = load_trace("sddos_synflood_spoofed.pcap");
    let victim = ip("10.10.10.10");
    let run = run_trace("ddos", "sddos_synflood_spoofed.pcap");
    let key = "10.10.10.10";
    let cross = syn_rate_crossing(&pkts, victim, 100.0).expect("crosses 100/min");
    let mon = run.must_reach(key, "monitored");
    assert_eq!(mon.packet_no, cross.no, "{}", run.dump());
    let att = run.must_reach(key, "attack");
    assert_eq!(att.ts, mon.ts + 10 * S, "attack at the first tick");
    assert_eq!(att.topic, "alert");
    let syns: Vec<u64> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.dst == victim)
        .map(|p| p.ts)
        .collect();
    assert!(decayed_count(&syns, att.ts, 60.0) > 10_000.0);
    // Blocks: only sources that never sent a SYN to the victim before the
    // attack started, all after it.
    let known: BTreeSet<IpAddr> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.dst == victim && p.no <= cross.no)
        .map(|p| p.src)
        .collect();
    let blocks: Vec<_> = run.topic("block").collect();
    assert!(blocks.len() > 100, "{} blocks", blocks.len());
    for b in &blocks {
        assert!(b.ts >= att.ts);
        let src: IpAddr = b
            .text
            .split_whitespace()
            .nth(1)
            .and_then(|k| k.split('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("block text {}", b.text));
        assert!(!known.contains(&src), "known source {src} blocked");
    }
    // Packets dropped by the block list: those of a blocked pair within
    // 60 s of its block (spoofed sources rarely send twice).
    let dropped = dropped_by_blocks(&pkts, &blocks).len() as u64;
    assert_eq!(run.stats.blocked, dropped);
}

#[test]
fn ddos_detects_generated_ramp_without_blocking_regular_clients() {
    // Generated (the demo's trace, `tracegen::syn_flood`): the paper's
    // use case is a flood whose rate ramps up (×1.5 every 10 s), which no
    // capture holds. 8 regular clients (192.168.1.10–17) talk to the
    // victim 10.0.0.100, most of them before the attack.
    let frames = tracegen::syn_flood(1);
    let pkts = load_frames(&frames);
    let victim = ip("10.0.0.100");
    let run = run_frames("ddos", &frames);
    let key = "10.0.0.100";
    let cross = syn_rate_crossing(&pkts, victim, 100.0).expect("crosses 100/min");
    let mon = run.must_reach(key, "monitored");
    assert_eq!(mon.packet_no, cross.no);
    let syns: Vec<u64> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.dst == victim)
        .map(|p| p.ts)
        .collect();
    let expect_tick = ddos_ticks(&syns, mon.ts)
        .into_iter()
        .find(|t| t.1 == "attack")
        .map(|t| t.0);
    let att = run.must_reach(key, "attack");
    assert_eq!(Some(att.ts), expect_tick, "{}", run.dump());
    assert_eq!(att.topic, "alert");
    assert!(att.ts > tracegen::EPOCH_NS + 60 * S && att.ts < tracegen::EPOCH_NS + 180 * S);
    // Blocks never hit a source that sent a SYN to the victim while it was
    // `normal` (before `monitored`: only then are sources learned). Almost
    // all blocks hit spoofed sources (100.64.0.0/10); a regular client
    // whose first SYN to the victim comes after that point is unknown to
    // the app and may be blocked too: that is the paper's "second host
    // starting right in the middle of the attack".
    let known: BTreeSet<IpAddr> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.dst == victim && p.no < mon.packet_no)
        .map(|p| p.src)
        .collect();
    let known_regular = known
        .iter()
        .filter(|a| a.to_string().starts_with("192.168.1."))
        .count();
    assert!(known_regular >= 4, "regular clients learned: {known:?}");
    let blocks: Vec<_> = run.topic("block").collect();
    assert!(blocks.len() > 1000);
    let mut regular_blocked = BTreeSet::new();
    for b in &blocks {
        let src = b
            .text
            .split_whitespace()
            .nth(1)
            .and_then(|k| k.split('-').next())
            .unwrap_or("");
        let a: Ipv4Addr = src
            .parse()
            .unwrap_or_else(|_| panic!("block text {}", b.text));
        assert!(!known.contains(&IpAddr::V4(a)), "known client {a} blocked");
        if u32::from(a) & 0xFFC0_0000 != 0x6440_0000 {
            regular_blocked.insert(a);
        }
    }
    assert!(
        regular_blocked.len() + known_regular <= 8,
        "{regular_blocked:?}"
    );
    assert_eq!(run.keys(), BTreeSet::from([key.to_string()]));
}

#[test]
fn ddos_short_burst_is_monitored_only() {
    // sv_synflood_fw.pcap: 200 SYNs in one flow within 0.2 s. The rate
    // passes 100/min at the 101st SYN (monitored), but the trace ends
    // before the first tick: no alert.
    let pkts = load_trace("sv_synflood_fw.pcap");
    let run = run_trace("ddos", "sv_synflood_fw.pcap");
    let cross = syn_rate_crossing(&pkts, ip("198.51.100.5"), 100.0).expect("crosses");
    assert_eq!(cross.no, 101);
    assert_eq!(run.must_reach("198.51.100.5", "monitored").packet_no, 101);
    assert_eq!(run.events.len(), 1, "{}", run.dump());
}

#[test]
fn ddos_quiet_on_benign_traffic() {
    // Backscatter is SYN-ACK/RST only; the others never reach 100 SYNs a
    // minute towards one destination (checked).
    for name in [
        "bss_backscatter.trace",
        "zeek_wikipedia.pcap",
        "ndpi_dns.pcap",
        "tcpreplay_test.pcap",
        "ndpi_gnutella.pcap",
        "ndpi_bittorrent.pcap",
        "dstreamon_port_scan.pcap",
    ] {
        let pkts = load_trace(name);
        let dsts: BTreeSet<IpAddr> = pkts.iter().filter(|p| p.is_syn()).map(|p| p.dst).collect();
        for d in dsts {
            assert!(
                syn_rate_crossing(&pkts, d, 100.0).is_none(),
                "{name}: {d} passes 100 SYN/min"
            );
        }
        run_trace("ddos", name).assert_quiet(&format!("ddos on {name}"));
    }
}

#[test]
fn ddos_port_scan_is_not_an_attack() {
    // ndpi_synscan.pcap: 1,994 SYNs to one host in a few seconds. The rate
    // passes 100/min and rises once, then falls: the destination is
    // watched (monitored, rising) but no alert is raised.
    let run = run_trace("ddos", "ndpi_synscan.pcap");
    run.must_reach("64.13.134.52", "monitored");
    assert!(
        run.reached("64.13.134.52", "attack").is_none(),
        "{}",
        run.dump()
    );
    assert_eq!(run.topic("alert").count(), 0);
}

#[test]
fn ddos_paper_scenario_blocks_new_client_only_during_attack() {
    // Generated (`tracegen::ddos_ramp`): Fig. 6 of the paper. Client A
    // talks to the server 10.4.0.80 from the start; a spoofed flood ramps
    // up from t = 100 s to 220 s; client B starts at t = 180 s, in the
    // middle of the attack. A is never blocked; B is blocked while the
    // server is under attack and accepted once it is back to normal.
    let frames = tracegen::ddos_ramp(11);
    let pkts = load_frames(&frames);
    let server = ip("10.4.0.80");
    let run = run_frames("ddos", &frames);
    let key = "10.4.0.80";
    let cross = syn_rate_crossing(&pkts, server, 100.0).expect("crosses 100/min");
    let mon = run.must_reach(key, "monitored");
    assert_eq!(mon.packet_no, cross.no);
    // The SYN rate counts the SYNs the application sees: those the block
    // list drops (client B's, while blocked) are not counted.
    let blocks: Vec<_> = run.topic("block").collect();
    let dropped = dropped_by_blocks(&pkts, &blocks);
    assert_eq!(run.stats.blocked, dropped.len() as u64);
    let syns: Vec<u64> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.dst == server && !dropped.contains(&p.no))
        .map(|p| p.ts)
        .collect();
    let ticks = ddos_ticks(&syns, mon.ts);
    let attack = ticks
        .iter()
        .find(|t| t.1 == "attack")
        .expect("an attack tick")
        .0;
    let over = ticks
        .iter()
        .find(|t| t.1 == "normal")
        .expect("the attack ends")
        .0;
    assert_eq!(
        run.must_reach(key, "attack").ts,
        attack,
        "{ticks:?}\n{}",
        run.dump()
    );
    let end = run
        .topic("alert")
        .find(|e| e.text.ends_with("attack over"))
        .expect("an `attack over` alert");
    assert_eq!((end.ts, end.state_to.as_str()), (over, "normal"));

    let blocked_src = |e: &&streamon_probe::OutputEvent| {
        e.text
            .split_whitespace()
            .nth(1)
            .and_then(|k| k.split('-').next())
            .map(str::to_string)
    };
    assert!(blocks.iter().all(|b| b.ts >= attack && b.ts < over));
    assert!(
        !blocks
            .iter()
            .any(|b| blocked_src(b).as_deref() == Some("10.4.1.1")),
        "A blocked"
    );
    let b_blocks: Vec<_> = blocks
        .iter()
        .filter(|b| blocked_src(b).as_deref() == Some("10.4.1.2"))
        .collect();
    let b_first = pkts
        .iter()
        .find(|p| p.is_syn() && p.src == ip("10.4.1.2"))
        .expect("B");
    assert!(
        b_first.ts > attack && b_first.ts < over,
        "B starts during the attack"
    );
    assert_eq!(b_blocks.first().expect("B blocked").packet_no, b_first.no);
    // After the attack B's SYNs reach the application again (counted as
    // matched, not dropped): every SYN of B after the last block expired.
    let last_b_block = b_blocks.last().expect("B blocked").ts;
    let b_after = pkts
        .iter()
        .filter(|p| p.is_syn() && p.src == ip("10.4.1.2") && p.ts >= last_b_block + 60 * S)
        .count();
    assert!(b_after > 50, "{b_after}");
    assert!(blocks.iter().all(|b| {
        let s = blocked_src(b).unwrap_or_default();
        s == "10.4.1.2" || s.starts_with("198.18.") || s.starts_with("198.19.")
    }));
}

// -------------------------------------------------------------- conficker

#[test]
fn conficker_detects_generated_bot_but_not_clean_host() {
    // Generated: the two-step behaviour (C&C lookups with many NXDOMAIN,
    // then an SMB scan with few SYN-ACKs) is in no capture. The bot
    // 10.1.0.66 does both; the clean host 10.1.0.10 has failing reverse
    // lookups (30 % NXDOMAIN: it becomes suspect, like the paper's host B)
    // but its SMB connections are answered; 10.1.0.20 resolves normally.
    let frames = tracegen::conficker(5);
    let pkts = load_frames(&frames);
    let run = run_frames("conficker", &frames);
    let bot = ip("10.1.0.66");

    // suspect at the first NXDOMAIN answer at which the decayed NXDOMAIN /
    // query ratio exceeds 0.2 (τ = 60 s).
    let queries: Vec<u64> = pkts
        .iter()
        .filter(|p| p.is_dns_query() && p.src == bot)
        .map(|p| p.ts)
        .collect();
    let mut nx = Vec::new();
    let first = pkts
        .iter()
        .filter(|p| p.is_nxdomain() && p.dst == bot)
        .find(|p| {
            nx.push(p.ts);
            decayed_count(&nx, p.ts, 60.0) / decayed_count(&queries, p.ts, 60.0) > 0.2
        })
        .expect("the bot gets NXDOMAIN");
    let sus = run.must_reach("10.1.0.66", "suspect");
    assert_eq!(sus.packet_no, first.no);

    // infected at the first 30 s tick: SMB SYNs seen while suspect, at
    // least 5 a minute, and SYN-ACK / SYN below 0.5.
    let tick = sus.ts + 30 * S;
    let syn: Vec<u64> = pkts
        .iter()
        .filter(|p| p.is_syn() && p.src == bot && p.dport == 445 && p.ts > sus.ts)
        .map(|p| p.ts)
        .collect();
    let synack: Vec<u64> = pkts
        .iter()
        .filter(|p| {
            p.proto == 6 && p.flags == 0x12 && p.dst == bot && p.sport == 445 && p.ts > sus.ts
        })
        .map(|p| p.ts)
        .collect();
    let (s, a) = (
        decayed_count(&syn, tick, 60.0),
        decayed_count(&synack, tick, 60.0),
    );
    assert!(s >= 5.0 && a / s < 0.5, "syn {s} synack {a}");
    let inf = run.must_reach("10.1.0.66", "infected");
    assert_eq!(inf.ts, tick);
    assert_eq!(inf.event, "timeout:conficker");
    assert_eq!(inf.topic, "alert");

    // The clean host may be suspected, never infected; the quiet host is
    // never mentioned.
    let clean = run.must_reach("10.1.0.10", "suspect");
    assert_eq!(clean.topic, "log");
    assert!(
        run.reached("10.1.0.10", "infected").is_none(),
        "{}",
        run.dump()
    );
    assert!(run.topic("alert").all(|e| e.key == "10.1.0.66"));
    assert!(!run.keys().contains("10.1.0.20"));
}

#[test]
fn conficker_quiet_on_real_captures() {
    // zeek_nmap_vsn / zeek_wikipedia have hosts with NXDOMAIN answers (they
    // may be suspected, topic `log`), but no SMB scan: no alert.
    for name in ALL_TRACES {
        let run = run_trace("conficker", name);
        assert_eq!(
            run.topic("alert").count(),
            0,
            "conficker on {name}:\n{}",
            run.dump()
        );
        assert!(run.events.iter().all(|e| e.state_to != "infected"));
    }
}

// -------------------------------------------------------------------- p2p

#[test]
fn p2p_classifies_gnutella_client() {
    // ndpi_gnutella.pcap: the Gnutella client 10.0.2.15 (behind NAT: it
    // only connects out) exchanges UDP with peers and opens TCP
    // connections to them, each peer on its own port.
    let pkts = load_trace("ndpi_gnutella.pcap");
    let host = ip("10.0.2.15");
    let run = run_trace("p2p", "ndpi_gnutella.pcap");
    let high = |p: &&Pkt| p.src == host && p.sport > 1023 && p.dport > 1023;
    let mine: Vec<&Pkt> = pkts
        .iter()
        .filter(high)
        .filter(|p| p.proto == 17 || p.is_syn())
        .collect();

    // normal → suspect at the first packet that completes a (host, peer)
    // pair seen over both UDP and TCP.
    let (mut udp, mut tcp) = (BTreeSet::new(), BTreeSet::new());
    let both = mine
        .iter()
        .find(|p| {
            let (this, other) = if p.proto == 17 {
                (&mut udp, &tcp)
            } else {
                (&mut tcp, &udp)
            };
            this.insert(p.dst);
            other.contains(&p.dst)
        })
        .expect("a peer over UDP and TCP");
    let sus = run.must_reach("10.0.2.15", "suspect");
    assert_eq!(sus.packet_no, both.no, "{}", run.dump());
    assert!(
        sus.text
            .ends_with(&format!("host=10.0.2.15 peer={}", both.dst)),
        "{}",
        sus.text
    );

    // suspect → p2p at the next SYN, if by then the decayed (τ = 600 s)
    // numbers of distinct destination ports and hosts are ≥ 3 and within
    // 10 of each other.
    let syn = mine
        .iter()
        .find(|p| p.is_syn() && p.no > both.no)
        .expect("a later SYN");
    let (mut port_seen, mut host_seen) = (BTreeMap::new(), BTreeMap::new());
    for p in mine.iter().filter(|p| p.is_syn() && p.no <= syn.no) {
        port_seen.entry(p.dport).or_insert(p.ts);
        host_seen.entry(p.dst).or_insert(p.ts);
    }
    let ports = decayed_count(
        &port_seen.values().copied().collect::<Vec<_>>(),
        syn.ts,
        600.0,
    );
    let hosts = decayed_count(
        &host_seen.values().copied().collect::<Vec<_>>(),
        syn.ts,
        600.0,
    );
    assert!(
        hosts >= 3.0 && (ports - hosts).abs() < 10.0,
        "ports {ports} hosts {hosts}"
    );
    let p2p = run.must_reach("10.0.2.15", "p2p");
    assert_eq!(p2p.packet_no, syn.no);
    assert_eq!(p2p.topic, "alert");
    let feature = |n: &str| {
        p2p.features
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| *v)
            .expect(n)
    };
    assert!(
        (feature("ports_10m") - ports).abs() <= 0.02 * ports,
        "{} vs {ports}",
        feature("ports_10m")
    );
    assert!(
        (feature("hosts_10m") - hosts).abs() <= 0.02 * hosts,
        "{} vs {hosts}",
        feature("hosts_10m")
    );
    // Only the client is classified; its peers, which receive its
    // connections, are not.
    assert_eq!(run.keys(), BTreeSet::from(["10.0.2.15".to_string()]));
    assert_eq!(run.events.len(), 2);
}

#[test]
fn p2p_quiet_on_non_p2p_captures() {
    // The two BitTorrent captures cannot show the pattern: bittorrent.pcap
    // is one TCP transfer caught mid-flow (no SYN) and bittorrent_utp.pcap
    // is UDP only; checked here, and they must stay quiet.
    assert!(load_trace("ndpi_bittorrent.pcap")
        .iter()
        .all(|p| !p.is_syn() && p.proto != 17));
    assert!(load_trace("ndpi_bittorrent_utp.pcap")
        .iter()
        .all(|p| p.proto != 6));
    for name in [
        "ndpi_bittorrent.pcap",
        "ndpi_bittorrent_utp.pcap",
        "zeek_wikipedia.pcap",
        "ndpi_dns.pcap",
        "tcpreplay_test.pcap",
        "bss_backscatter.trace",
        "ndpi_synscan.pcap",
        "sddos_synflood_spoofed.pcap",
    ] {
        run_trace("p2p", name).assert_quiet(&format!("p2p on {name}"));
    }
}

// ------------------------------------------------------- every app, every trace

#[test]
fn every_app_runs_on_every_capture() {
    let mut alerts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for app in ALL_APPS {
        for name in ALL_TRACES {
            let run = run_trace(app, name);
            let n = run.topic("alert").count();
            if n > 0 {
                alerts.insert((app, name), n);
            }
        }
    }
    // Alerts only where a test above expects them.
    let expected: BTreeSet<(&str, &str)> = BTreeSet::from([
        ("portscan", "ndpi_synscan.pcap"),
        ("modbus_scan", "dstreamon_device_scan.pcap"),
        ("ddos", "sddos_synflood_spoofed.pcap"),
        ("p2p", "ndpi_gnutella.pcap"),
    ]);
    let got: BTreeSet<(&str, &str)> = alerts.keys().copied().collect();
    assert_eq!(got, expected, "alerts per (app, capture): {alerts:?}");
}
