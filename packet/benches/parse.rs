//! Parse throughput on real traces, in packets per second.
//!
//! Each trace is read into memory once; an iteration parses every frame
//! and writes the fields a typical app keys and selects on into a key
//! (`parse`), or only parses (`parse_only`). `read_pcap` measures the
//! trace reader on its own, from an in-memory file.
//!
//! Run: `cargo bench -p streamon-packet --bench parse`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, Field, FrameMeta, KeyBuf, LinkType};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces");

/// Traces measured: a SYN flood (plain TCP), a browsing mix (HTTP, DNS,
/// IPv6), and DNS tunnelling (long names, every packet decoded).
const TRACES: &[&str] = &[
    "sddos_synflood_spoofed.pcap",
    "zeek_wikipedia.pcap",
    "ndpi_bad-dns-traffic.pcap",
];

fn load(name: &str) -> Vec<(FrameMeta, LinkType, Vec<u8>)> {
    let mut src = PcapSource::open(format!("{DIR}/{name}")).expect("trace");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        out.push((f.meta, f.linktype, f.data.to_vec()));
    }
    out
}

/// The fields read per packet: a 5-tuple key plus the DNS/HTTP fields.
const FIELDS: &[Field] = &[
    Field::IpSrc,
    Field::IpDst,
    Field::SrcPort,
    Field::DstPort,
    Field::Proto,
    Field::Flags,
    Field::DomainName,
    Field::HttpHost,
];

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(30);
    for name in TRACES {
        let frames = load(name);
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(*name, |b| {
            let mut key = KeyBuf::new();
            b.iter(|| {
                let mut parsed = 0u64;
                for (meta, lt, data) in &frames {
                    if let Ok(p) = parse(data, *lt, *meta) {
                        key.clear();
                        for &f in FIELDS {
                            let _ = p.write_key(f, &mut key);
                        }
                        black_box(key.as_bytes());
                        parsed += 1;
                    }
                }
                parsed
            })
        });
    }
    group.finish();

    // The parse alone, no field read: what a frame that matches no
    // selector costs.
    let mut group = c.benchmark_group("parse_only");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(30);
    let name = TRACES[0];
    let frames = load(name);
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut parsed = 0u64;
            for (meta, lt, data) in &frames {
                parsed += u64::from(black_box(parse(data, *lt, *meta)).is_ok());
            }
            parsed
        })
    });
    group.finish();

    let mut group = c.benchmark_group("read_pcap");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(30);
    let name = TRACES[0];
    let file = std::fs::read(format!("{DIR}/{name}")).expect("trace");
    let count = load(name).len() as u64;
    group.throughput(Throughput::Elements(count));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut src = PcapSource::new(&file[..]).expect("header");
            let mut bytes = 0usize;
            while let Some(f) = src.next_frame().expect("reads") {
                bytes += f.data.len();
            }
            black_box(bytes)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
