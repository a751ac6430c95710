//! The whole software path on real captures: parse → event → metric ops →
//! software engine → features → XFSM → events, in packets per second on
//! one core. Frames are loaded into memory first, so file I/O is not
//! measured.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamon_packet::pcap::PcapSource;
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{sw_engine, EventSink, OutputEvent, Probe, RuntimeOptions};

struct Count(u64);

impl EventSink for Count {
    fn emit(&mut self, _: &OutputEvent) {
        self.0 += 1;
    }
}

fn load(name: &str) -> Vec<(Vec<u8>, LinkType, FrameMeta)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces")
        .join(name);
    let mut src = PcapSource::open(&path).expect("trace");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("readable trace") {
        out.push((f.data.to_vec(), f.linktype, f.meta));
    }
    out
}

fn app(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../apps")
        .join(name);
    std::fs::read_to_string(path).expect("shipped app")
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    for (trace, apps) in [
        (
            "sddos_synflood_spoofed.pcap",
            &["ddos.xml", "portscan.xml"][..],
        ),
        (
            "ndpi_gnutella.pcap",
            &["portscan.xml", "p2p.xml", "dns_nxdomain.xml"][..],
        ),
    ] {
        let frames = load(trace);
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(format!("{trace} × {}", apps.join("+")), |b| {
            b.iter_batched(
                || {
                    let mut probe = Probe::new();
                    for a in apps {
                        probe
                            .install(a, &app(a), a, &sw_engine, RuntimeOptions::default())
                            .expect("shipped apps install");
                    }
                    probe
                },
                |mut probe| {
                    let mut sink = Count(0);
                    for (data, lt, meta) in &frames {
                        probe.frame(data, *lt, *meta, &mut sink);
                    }
                    probe.finish();
                    sink.0
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
