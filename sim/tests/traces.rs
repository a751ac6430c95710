//! Real traces through both engines with a fixed op mapping: for each
//! Ethernet + IPv4 frame of a pcap in `/work/shared/traces` (or
//! `$STREAMON_TRACES`), key `src` = the IPv4 source (frame bytes 26..30),
//! key `pair` = source and destination (26..34), ts = the pcap timestamp:
//!
//! `VdGetSet(vd, pair)`, `AddGet(pairs_per_src, src) + IF_NEW`,
//! `AddGet(bytes_per_src, src, frame length)`, `Add(packets)`,
//! `AddGet(rate_per_src, src)` (a `tewma` with the shipped apps' τ = 60 s),
//! `AddGet(byte_rate_per_pair, pair, frame length)` (a `tewma`, τ = 1 s),
//! `AddGet(exact_rate_per_src, src)` (a `tewma-fast`, τ = 10 s).
//!
//! Results op by op and the final dumps must be identical.

use std::path::PathBuf;

use pcap_file::pcap::PcapReader;
use streamon_contract::plan::{TableSpec, TimeConstant};
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_sim::SimEngine;
use streamon_sw::SwEngine;

fn traces_dir() -> PathBuf {
    std::env::var_os("STREAMON_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"))
}

fn ops_of(path: &std::path::Path) -> Vec<Op> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = PcapReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ops = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let d = &pkt.data;
        if d.len() < 34 || d[12..14] != [0x08, 0x00] || d[14] >> 4 != 4 {
            continue;
        }
        let ts = pkt.timestamp.as_nanos() as u64;
        let (src, pair) = (&d[26..30], &d[26..34]);
        ops.push(Op::new(0, OpKind::VdGetSet, pair, 0, ts).unwrap());
        ops.push(Op::new(1, OpKind::AddGet, src, 1, ts).unwrap().if_new());
        ops.push(Op::new(4, OpKind::AddGet, src, pkt.orig_len, ts).unwrap());
        ops.push(Op::new(2, OpKind::Add, &[], 1, ts).unwrap());
        ops.push(Op::new(5, OpKind::AddGet, src, 1, ts).unwrap());
        ops.push(Op::new(6, OpKind::AddGet, pair, pkt.orig_len, ts).unwrap());
        ops.push(Op::new(7, OpKind::AddGet, src, 1, ts).unwrap());
    }
    ops
}

#[test]
fn real_traces_are_bit_identical() {
    let plans: Vec<MetricPlan> = [
        MetricSpec::VariationDetector {
            log2_bits: 12,
            hashes: 8,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 3,
                ways: 4,
            },
        },
        MetricSpec::Global,
        MetricSpec::VariationDetector {
            log2_bits: 9,
            hashes: 4,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 3,
                ways: 2,
            },
        },
        MetricSpec::DecayingFilter {
            log2_cells: 6,
            rows: 4,
            tau: TimeConstant::from_window_secs(60.0),
        },
        MetricSpec::DecayingFilter {
            log2_cells: 5,
            rows: 2,
            tau: TimeConstant::from_window_secs(1.0),
        },
        MetricSpec::ExactEwma {
            table: TableSpec {
                log2_buckets: 3,
                ways: 4,
            },
            tau: TimeConstant::from_window_secs(10.0),
        },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect();
    let names = [
        "dstreamon_dos.pcap",
        "ndpi_synscan.pcap",
        "ndpi_bittorrent.pcap",
        "ndpi_gnutella.pcap",
        "sv_synflood_fw.pcap",
    ];
    let mut total = 0;
    for name in names {
        let path = traces_dir().join(name);
        let ops = ops_of(&path);
        assert!(!ops.is_empty(), "{name}: no IPv4 frames");
        let mut sw = SwEngine::new(&plans);
        let mut sim = SimEngine::new(&plans).unwrap();
        let mut a = vec![OpResult::default(); ops.len()];
        let mut b = vec![OpResult::default(); ops.len()];
        sw.apply(&ops, &mut a);
        sim.apply(&ops, &mut b);
        if let Some(i) = (0..ops.len()).find(|&i| a[i] != b[i]) {
            panic!(
                "{name} op #{i} {:?}\n  software: {:?}\n  hardware: {:?}",
                ops[i], a[i], b[i]
            );
        }
        for m in 0..plans.len() as u16 {
            assert_eq!(sw.dump(m), sim.dump(m), "{name}: dump of metric {m}");
        }
        total += ops.len();
    }
    println!("{total} trace ops bit-identical");
}
