//! Accuracy against exact counts on real traffic (../shared/traces), within
//! the bounds the sketches promise.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use streamon_contract::plan::TableSpec;
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind};
use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, Field};
use streamon_sw::SwEngine;

fn trace(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces")
        .join(name)
}

/// (ts, src, dst) of every IPv4/IPv6 packet of a trace.
fn flows(name: &str) -> Vec<(u64, IpAddr, IpAddr)> {
    let mut src = PcapSource::open(trace(name)).expect("trace opens");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        if let Ok(p) = parse(f.data, f.linktype, f.meta) {
            let (Some(s), Some(d)) = (p.get(Field::IpSrc), p.get(Field::IpDst)) else {
                continue;
            };
            out.push((p.ts_ns(), s.as_addr().unwrap(), d.as_addr().unwrap()));
        }
    }
    out
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// Distinct sources per destination on a real spoofed SYN flood (37,623
/// sources), counted the StreaMon way: a variation detector on
/// `src‖dst` gating an exact counter on `dst`. Bloom false positives can
/// only make the count lower; with m = 2^20, k = 8 and under 2^16 keys per
/// generation the false-positive rate is far below 1 %.
#[test]
fn distinct_sources_per_destination_on_a_syn_flood() {
    let packets = flows("sddos_synflood_spoofed.pcap");
    assert!(packets.len() > 37_000);
    let plans = [
        MetricPlan::install(MetricSpec::VariationDetector {
            log2_bits: 20,
            hashes: 8,
        })
        .unwrap(),
        MetricPlan::install(MetricSpec::ExactCounter {
            table: TableSpec::default(),
        })
        .unwrap(),
        MetricPlan::install(MetricSpec::HyperLogLog { log2_registers: 12 }).unwrap(),
    ];
    let mut e = SwEngine::new(&plans);
    let mut exact: HashMap<IpAddr, HashSet<IpAddr>> = HashMap::new();
    let mut last = HashMap::new();
    let mut all_sources = HashSet::new();
    for &(ts, s, d) in &packets {
        let mut pair = addr_bytes(s);
        pair.extend(addr_bytes(d));
        let ops = [
            Op::new(0, OpKind::VdGetSet, &pair, 0, ts).unwrap(),
            Op::new(1, OpKind::AddGet, &addr_bytes(d), 1, ts)
                .unwrap()
                .if_new(),
            Op::new(2, OpKind::Add, &addr_bytes(s), 1, ts).unwrap(),
        ];
        let mut r = [Default::default(); 3];
        e.apply(&ops, &mut r);
        last.insert(d, r[1].value);
        exact.entry(d).or_default().insert(s);
        all_sources.insert(s);
    }
    let (victim, sources) = exact.iter().max_by_key(|(_, s)| s.len()).unwrap();
    let truth = sources.len() as f64;
    let counted = last[victim] as f64;
    assert!(counted <= truth, "a detector can only under-count");
    assert!(
        (truth - counted) / truth < 0.01,
        "counted {counted} of {truth}"
    );
    // HyperLogLog with 2^12 registers: standard error 1.04/√4096 = 1.6 %;
    // allow 4 standard errors.
    let hll = plans[2].decode(
        e.apply_one(&Op::new(2, OpKind::Get, &[], 0, 0).unwrap())
            .value,
    );
    let n = all_sources.len() as f64;
    assert!((hll - n).abs() / n < 0.065, "hll {hll} vs {n}");
}

/// Per-source packet counts on mixed traffic: count-min with w = 2^10, d = 4
/// over-estimates by at most ε·N with ε = e/w for all but a 1 − e^−4 fraction.
#[test]
fn countmin_error_is_within_its_bound_on_real_traffic() {
    let mut packets = Vec::new();
    for t in [
        "ndpi_gnutella.pcap",
        "zeek_wikipedia.pcap",
        "tcpreplay_test.pcap",
        "ndpi_synscan.pcap",
    ] {
        packets.extend(flows(t));
    }
    let plan = MetricPlan::install(MetricSpec::CountMin {
        log2_cells: 10,
        rows: 4,
        conservative: false,
    })
    .unwrap();
    let mut e = SwEngine::new(&[plan]);
    let mut exact: HashMap<IpAddr, u64> = HashMap::new();
    for &(ts, s, _) in &packets {
        e.apply_one(&Op::new(0, OpKind::Add, &addr_bytes(s), 1, ts).unwrap());
        *exact.entry(s).or_default() += 1;
    }
    let n = packets.len() as f64;
    let bound = std::f64::consts::E / 1024.0 * n;
    let mut over = 0;
    for (&s, &c) in &exact {
        let est = e
            .apply_one(&Op::new(0, OpKind::Get, &addr_bytes(s), 0, 0).unwrap())
            .value;
        assert!(est >= c);
        if (est - c) as f64 > bound {
            over += 1;
        }
    }
    assert!(
        over as f64 <= 0.02 * exact.len() as f64 + 1.0,
        "{over} keys over the bound"
    );
}

/// The decaying filter against the exact per-key decaying count on a real
/// trace: conservative update only over-estimates, and for the heaviest
/// destinations the filter (2^14 cells × 4 rows) is within 1 %.
#[test]
fn decaying_filter_tracks_the_exact_rate() {
    let packets = flows("ndpi_gnutella.pcap");
    let tau = streamon_contract::TimeConstant::from_window_secs(10.0);
    let plans = [
        MetricPlan::install(MetricSpec::DecayingFilter {
            log2_cells: 14,
            rows: 4,
            tau,
        })
        .unwrap(),
        MetricPlan::install(MetricSpec::ExactEwma {
            table: TableSpec::default(),
            tau,
        })
        .unwrap(),
    ];
    let mut e = SwEngine::new(&plans);
    let mut heavy: HashMap<IpAddr, u64> = HashMap::new();
    let mut ts_end = 0;
    for &(ts, _, d) in &packets {
        let k = addr_bytes(d);
        e.apply_one(&Op::new(0, OpKind::Add, &k, 1, ts).unwrap());
        e.apply_one(&Op::new(1, OpKind::Add, &k, 1, ts).unwrap());
        *heavy.entry(d).or_default() += 1;
        ts_end = ts;
    }
    let mut by_count: Vec<_> = heavy.into_iter().collect();
    by_count.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
    for &(d, _) in by_count.iter().take(10) {
        let k = addr_bytes(d);
        let approx = e
            .apply_one(&Op::new(0, OpKind::Get, &k, 0, ts_end).unwrap())
            .value as f64;
        let exact = e
            .apply_one(&Op::new(1, OpKind::Get, &k, 0, ts_end).unwrap())
            .value as f64;
        // Decay rounding differs per cell (floors), so allow a tiny slack.
        assert!(approx >= exact * 0.999, "{d}: {approx} < {exact}");
        if exact > 1000.0 * (1u64 << 24) as f64 / 1e3 {
            assert!((approx - exact) / exact < 0.01, "{d}: {approx} vs {exact}");
        }
    }
}
