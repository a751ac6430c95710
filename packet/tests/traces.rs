//! Every capture in `shared/traces`, read and parsed, with facts about each
//! checked against what the capture is known to hold (SOURCES.md, and
//! tshark where SOURCES.md says nothing).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use streamon_packet::pcap::{CaptureFormat, PcapSource};
use streamon_packet::{parse, Anomalies, Field, FieldValue, FrameMeta, KeyBuf, LinkType, Skip};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces");

/// An owned field value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum V {
    A(IpAddr),
    U(u64),
    S(String),
}

/// One frame of a trace, parsed, with everything copied out.
#[derive(Debug)]
struct Pkt {
    meta: FrameMeta,
    linktype: LinkType,
    fields: Result<BTreeMap<Field, V>, Skip>,
    anomalies: Anomalies,
}

impl Pkt {
    fn get(&self, f: Field) -> Option<&V> {
        self.fields.as_ref().ok()?.get(&f)
    }

    fn u(&self, f: Field) -> Option<u64> {
        match self.get(f)? {
            V::U(n) => Some(*n),
            v => panic!("{f} is {v:?}"),
        }
    }

    fn s(&self, f: Field) -> Option<&str> {
        match self.get(f)? {
            V::S(s) => Some(s),
            v => panic!("{f} is {v:?}"),
        }
    }

    fn a(&self, f: Field) -> Option<IpAddr> {
        match self.get(f)? {
            V::A(a) => Some(*a),
            v => panic!("{f} is {v:?}"),
        }
    }

    fn skip(&self) -> Option<Skip> {
        self.fields.as_ref().err().copied()
    }

    fn is_syn(&self) -> bool {
        self.u(Field::TcpFlags) == Some(0x02)
    }
}

struct Trace {
    format: CaptureFormat,
    pkts: Vec<Pkt>,
}

/// Reads and parses a whole trace; any read error fails the test.
fn load(name: &str) -> Trace {
    let path = format!("{DIR}/{name}");
    let mut src = PcapSource::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let format = src.format();
    let mut pkts = Vec::new();
    let mut key = KeyBuf::new();
    while let Some(frame) = src.next_frame().unwrap_or_else(|e| panic!("{name}: {e}")) {
        let parsed = parse(frame.data, frame.linktype, frame.meta);
        let anomalies = parsed.as_ref().map(|p| p.anomalies()).unwrap_or_default();
        let fields = parsed.map(|p| {
            Field::ALL
                .iter()
                .filter_map(|&f| {
                    let v = p.get(f)?;
                    key.clear();
                    v.write_key(f, &mut key).unwrap();
                    Some((
                        f,
                        match v {
                            FieldValue::Addr(a) => V::A(a),
                            FieldValue::UInt(n) => V::U(n),
                            FieldValue::Str(s) => V::S(String::from_utf8_lossy(s).into_owned()),
                        },
                    ))
                })
                .collect()
        });
        pkts.push(Pkt {
            meta: frame.meta,
            linktype: frame.linktype,
            fields,
            anomalies,
        });
    }
    Trace { format, pkts }
}

/// `(file, packets)` rows of the table in SOURCES.md.
fn sources_table() -> Vec<(String, usize)> {
    let md = std::fs::read_to_string(format!("{DIR}/SOURCES.md")).unwrap();
    md.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = cols.get(2)?.parse().ok()?;
            Some((cols[1].to_string(), n))
        })
        .collect()
}

#[test]
fn every_trace_reads_with_the_frame_count_of_sources_md() {
    let table = sources_table();
    assert!(table.len() >= 19, "SOURCES.md table: {table:?}");
    let listed: BTreeSet<&str> = table.iter().map(|(f, _)| f.as_str()).collect();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "SOURCES.md" {
            assert!(
                listed.contains(name.as_str()),
                "{name} is not in SOURCES.md"
            );
        }
    }
    for (name, count) in &table {
        let t = load(name);
        assert_eq!(t.pkts.len(), *count, "{name}");
        for (i, p) in t.pkts.iter().enumerate() {
            assert_eq!(p.meta.packet_no, i as u64 + 1, "{name}");
            assert!(p.meta.orig_len as usize >= 1, "{name} #{}", i + 1);
        }
        // Time never runs backwards by more than a second in these
        // captures, so a unit mistake (µs read as ns) would show.
        let ts: Vec<u64> = t.pkts.iter().map(|p| p.meta.ts_ns).collect();
        assert!(
            ts.windows(2).all(|w| w[1] + 1_000_000_000 >= w[0]),
            "{name}"
        );
        assert!(
            t.pkts.iter().any(|p| p.fields.is_ok()),
            "{name}: nothing parsed"
        );
    }
}

#[test]
fn formats_are_sniffed_not_taken_from_the_name() {
    assert_eq!(load("ndpi_dns.pcap").format, CaptureFormat::PcapNg);
    assert_eq!(
        load("dstreamon_device_scan.pcap").format,
        CaptureFormat::PcapNg
    );
    let classic = CaptureFormat::Pcap {
        nanosecond: false,
        big_endian: false,
    };
    assert_eq!(load("ndpi_tcp_scan.pcapng").format, classic);
    assert_eq!(load("bss_backscatter.trace").format, classic);
}

#[test]
fn timestamps_are_nanoseconds() {
    // Checked against the raw record headers (seconds, microseconds).
    assert_eq!(
        load("sv_nxdomain_soa.pcap").pkts[0].meta.ts_ns,
        1_485_532_998_623_093_000
    );
    // pcapng, default resolution (µs).
    assert_eq!(
        load("ndpi_dns.pcap").pkts[0].meta.ts_ns,
        1_112_172_654_366_527_000
    );
}

#[test]
fn ndpi_dns_questions_answers_qinq_and_pppoe() {
    let t = load("ndpi_dns.pcap");
    assert!(t.pkts.iter().all(|p| p.fields.is_ok()));
    // AAAA questions (SOURCES.md's "IPv4 and IPv6" is about the record
    // types: every packet of this file is IPv4).
    let aaaa: Vec<&str> = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::DnsQtype) == Some(28))
        .filter_map(|p| p.s(Field::DomainName))
        .collect();
    assert_eq!(
        aaaa,
        ["www.l.google.com", "www.example.com", "www.example.com"]
    );
    // Packets 4 and 5: QinQ (421, 785) + PPPoE + IPv4, an A query and its
    // answer.
    let (q, r) = (&t.pkts[3], &t.pkts[4]);
    for p in [q, r] {
        assert_eq!(p.u(Field::Vlan), Some(785));
        assert_eq!(p.s(Field::DomainName), Some("e7.whatsapp.net"));
        assert_eq!(p.s(Field::DomainSecondLevel), Some("whatsapp.net"));
        assert_eq!(p.u(Field::DnsQtype), Some(1));
    }
    assert_eq!(q.u(Field::DnsQr), Some(0));
    assert_eq!(q.a(Field::DomainAddr), None);
    assert_eq!(r.u(Field::DnsQr), Some(1));
    assert_eq!(
        r.a(Field::DomainAddr),
        Some("169.45.219.235".parse().unwrap())
    );
}

#[test]
fn ipv6_dns_with_aaaa_answers() {
    // mDNS over IPv6 in the Gnutella capture, answering with AAAA.
    let t = load("ndpi_gnutella.pcap");
    let v6_dns: Vec<&Pkt> = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::IpVersion) == Some(6) && p.get(Field::DnsRcode).is_some())
        .collect();
    assert!(v6_dns.len() >= 5, "{}", v6_dns.len());
    let fe80: IpAddr = "fe80::c50d:519f:96a4:e108".parse().unwrap();
    assert!(v6_dns.iter().any(|p| p.a(Field::DomainAddr) == Some(fe80)));
    assert!(v6_dns.iter().any(
        |p| p.s(Field::DomainName) == Some("puppet.local") && p.u(Field::DnsQtype) == Some(28)
    ));
    // An mDNS response over IPv6 in the Wikipedia capture: answers only,
    // no question, so no name.
    let t = load("zeek_wikipedia.pcap");
    let v6: Vec<&Pkt> = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::IpVersion) == Some(6) && p.get(Field::DnsRcode).is_some())
        .collect();
    assert_eq!(v6.len(), 1);
    assert_eq!(v6[0].u(Field::DnsQr), Some(1));
    assert_eq!(v6[0].get(Field::DomainName), None);
}

#[test]
fn nxdomain_with_soa() {
    let t = load("sv_nxdomain_soa.pcap");
    let (q, r) = (&t.pkts[0], &t.pkts[1]);
    assert_eq!(q.u(Field::DnsQr), Some(0));
    assert_eq!(q.u(Field::DnsRcode), Some(0));
    assert_eq!(r.u(Field::DnsQr), Some(1));
    assert_eq!(r.u(Field::DnsRcode), Some(3));
    assert_eq!(r.u(Field::Flags), Some(3), "flags = rcode on DNS/UDP");
    for p in [q, r] {
        assert_eq!(p.s(Field::DomainName), Some("dne.oisf.net"));
        assert_eq!(p.s(Field::DomainSecondLevel), Some("oisf.net"));
        assert_eq!(p.u(Field::DnsQtype), Some(1));
        assert!(p.anomalies.is_empty());
    }
    assert_eq!(r.a(Field::DomainAddr), None, "an SOA is no address");
    assert_eq!(r.a(Field::IpSrc), Some("8.8.4.4".parse().unwrap()));

    let t = load("sv_dns_rcode.pcap");
    assert_eq!(t.pkts[1].u(Field::DnsRcode), Some(3));
    assert_eq!(t.pkts[1].u(Field::DnsQr), Some(1));
}

#[test]
fn modbus_device_scan() {
    let t = load("dstreamon_device_scan.pcap");
    let mut fcs = BTreeMap::new();
    for p in &t.pkts {
        assert_eq!(p.linktype, LinkType::Ethernet);
        let ports = (p.u(Field::SrcPort).unwrap(), p.u(Field::DstPort).unwrap());
        assert!(ports.0 == 502 || ports.1 == 502, "{ports:?}");
        *fcs.entry(p.u(Field::ModbusFc).expect("every frame is Modbus"))
            .or_insert(0) += 1;
        assert!(p.get(Field::ModbusTi).is_some());
    }
    assert_eq!(fcs, BTreeMap::from([(3, 8), (8, 15)]));
}

#[test]
fn wikipedia_http_hosts_and_nxdomain() {
    let t = load("zeek_wikipedia.pcap");
    let reqs: Vec<&Pkt> = t
        .pkts
        .iter()
        .filter(|p| p.get(Field::HttpMethod).is_some())
        .collect();
    assert_eq!(reqs.len(), 15);
    let hosts: BTreeSet<&str> = reqs.iter().filter_map(|p| p.s(Field::HttpHost)).collect();
    assert_eq!(
        hosts,
        BTreeSet::from([
            "bits.wikimedia.org",
            "meta.wikimedia.org",
            "upload.wikimedia.org",
            "www.wikipedia.org"
        ])
    );
    for p in &reqs {
        assert_eq!(p.s(Field::HttpMethod), Some("GET"));
        assert!(p.s(Field::HttpUrl).unwrap().starts_with('/'));
        assert_eq!(p.u(Field::Proto), Some(6));
    }
    let nx = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::DnsRcode) == Some(3))
        .count();
    assert_eq!(nx, 4);
}

#[test]
fn spoofed_syn_flood_is_all_syn() {
    let t = load("sddos_synflood_spoofed.pcap");
    assert_eq!(t.pkts.len(), 37841);
    let mut sources = HashSet::new();
    for p in &t.pkts {
        assert!(p.is_syn(), "#{}", p.meta.packet_no);
        assert_eq!(p.u(Field::Flags), Some(0x02));
        assert_eq!(p.u(Field::DstPort), Some(25565));
        sources.insert(p.a(Field::IpSrc).unwrap());
    }
    assert_eq!(sources.len(), 37623);
}

#[test]
fn syn_scans_and_backscatter() {
    let t = load("ndpi_synscan.pcap");
    let syns: Vec<&Pkt> = t.pkts.iter().filter(|p| p.is_syn()).collect();
    assert_eq!(syns.len(), 1994);
    let scanner: IpAddr = "172.16.0.8".parse().unwrap();
    assert!(syns.iter().all(|p| p.a(Field::IpSrc) == Some(scanner)));
    let ports: HashSet<u64> = syns.iter().map(|p| p.u(Field::DstPort).unwrap()).collect();
    assert_eq!(ports.len(), 1000);

    let t = load("bss_port_scan.pcap");
    assert!(t.pkts.iter().all(Pkt::is_syn));
    let ports: HashSet<u64> = t
        .pkts
        .iter()
        .map(|p| p.u(Field::DstPort).unwrap())
        .collect();
    assert_eq!(ports.len(), 10);

    let t = load("sv_synflood_fw.pcap");
    assert!(t.pkts.iter().all(Pkt::is_syn));
    let pairs: HashSet<_> = t
        .pkts
        .iter()
        .map(|p| (p.a(Field::IpSrc), p.a(Field::IpDst), p.u(Field::DstPort)))
        .collect();
    assert_eq!(pairs.len(), 1);

    // Backscatter: replies only, a SYN detector must see no SYN.
    let t = load("bss_backscatter.trace");
    assert_eq!(t.pkts.iter().filter(|p| p.is_syn()).count(), 0);
    let synacks = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::TcpFlags) == Some(0x12))
        .count();
    let rsts = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::TcpFlags) == Some(0x04))
        .count();
    assert_eq!((synacks, rsts), (3431, 1273));
}

#[test]
fn skips_are_counted_by_reason() {
    let count = |name: &str| {
        let mut m: BTreeMap<&'static str, usize> = BTreeMap::new();
        for p in load(name).pkts {
            if let Some(s) = p.skip() {
                *m.entry(s.name()).or_default() += 1;
            }
        }
        m
    };
    // nmap's ARP sweep.
    assert_eq!(
        count("zeek_nmap_vsn.pcap"),
        BTreeMap::from([("unsupported_ethertype", 503)])
    );
    // ARP, an 802.3 length field, Ethernet loopback (0x9000); the MPLS
    // frames (IP and Ethernet pseudowire) all parse.
    assert_eq!(
        count("tcpreplay_test.pcap"),
        BTreeMap::from([("unsupported_ethertype", 3)])
    );
    // A 4-byte frame and ARP.
    assert_eq!(
        count("ndpi_gnutella.pcap"),
        BTreeMap::from([("truncated_link", 1), ("unsupported_ethertype", 22)])
    );
    assert!(count("ndpi_dns.pcap").is_empty());
}

#[test]
fn tcpreplay_mixed_smoke() {
    let t = load("tcpreplay_test.pcap");
    let icmp = t
        .pkts
        .iter()
        .filter(|p| p.get(Field::IcmpType).is_some())
        .count();
    let v6 = t
        .pkts
        .iter()
        .filter(|p| p.u(Field::IpVersion) == Some(6))
        .count();
    let vlan = t
        .pkts
        .iter()
        .filter(|p| p.get(Field::Vlan).is_some())
        .count();
    let dns = t
        .pkts
        .iter()
        .filter(|p| p.get(Field::DnsRcode).is_some())
        .count();
    let http = t
        .pkts
        .iter()
        .filter(|p| p.get(Field::HttpMethod).is_some())
        .count();
    assert_eq!((icmp, v6, vlan), (28, 10, 10));
    assert!(dns > 0 && http > 0, "{dns} {http}");
    // One frame shorter than its IP length says.
    let cut = t
        .pkts
        .iter()
        .filter(|p| p.anomalies.contains(Anomalies::IP_TRUNCATED))
        .count();
    assert_eq!(cut, 1);
}

#[test]
fn dns_tunnel_traffic_parses_as_dns() {
    // dnscat-style tunnelling: long hex labels under skullseclabs.org.
    let t = load("ndpi_bad-dns-traffic.pcap");
    let tunnel = t
        .pkts
        .iter()
        .filter(|p| p.s(Field::DomainSecondLevel) == Some("skullseclabs.org"))
        .count();
    assert!(tunnel > 300, "{tunnel}");
    let longest = t
        .pkts
        .iter()
        .filter_map(|p| p.s(Field::DomainName).map(str::len))
        .max()
        .unwrap();
    assert!(longest > 200 && longest <= 253, "{longest}");
}
