//! Per-operation costs of the RESP server side: request parsing, glob
//! matching, and `KEYS`/`SCAN`/`GET` over a 10 000-key state.
//!
//! `cargo bench -p streamon-microcloud --bench resp`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::{IpAddr, Ipv4Addr};
use streamon_microcloud::names::{self, glob_match};
use streamon_microcloud::resp::{parse_request, Limits};
use streamon_microcloud::server::execute;
use streamon_microcloud::MemoryState;

fn state() -> MemoryState {
    let s = MemoryState::new();
    for i in 0..10_000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(0xc000_0000 + i));
        s.set(
            names::host_metric("edge-1", a, "bytes").into_string(),
            i.to_string(),
        );
    }
    s
}

fn args(cmd: &str) -> Vec<Vec<u8>> {
    cmd.split(' ').map(|a| a.as_bytes().to_vec()).collect()
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let get = b"*2\r\n$3\r\nGET\r\n$38\r\nstreamon:edge-1:ip:192.0.2.7:dns.query\r\n";
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse GET", |b| {
        b.iter(|| parse_request(black_box(get), &limits).unwrap())
    });
    let key = b"streamon:edge-1:ip:192.0.2.7:dns.queries";
    g.bench_function("glob streamon:*:ip:192.0.2.*", |b| {
        b.iter(|| glob_match(black_box(b"streamon:*:ip:192.0.2.*"), black_box(key)))
    });
    let s = state();
    let get = args("GET streamon:edge-1:ip:192.0.2.7:bytes");
    g.bench_function("GET (10k keys)", |b| {
        b.iter(|| execute(&s, black_box(&get)))
    });
    g.throughput(Throughput::Elements(10_000));
    let keys = args("KEYS streamon:*:ip:192.0.2.*");
    g.bench_function("KEYS over 10k keys", |b| {
        b.iter(|| execute(&s, black_box(&keys)))
    });
    let scan = args("SCAN 0 MATCH streamon:*:ip:192.0.2.* COUNT 100");
    g.bench_function("SCAN COUNT 100 over 10k keys", |b| {
        b.iter(|| execute(&s, black_box(&scan)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
