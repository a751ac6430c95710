//! `streamon run --threads N` writes the same events, byte for byte, and
//! the same counters as `--threads 1`: every shipped application on real
//! captures and on a generated SYN flood, at 2, 4 and 8 threads.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_streamon");

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Events (bytes) and counters (`--stats-json`, parsed) of one run.
fn run(pcap: &Path, threads: u16, dir: &Path) -> (Vec<u8>, serde_json::Value) {
    let events = dir.join(format!("events-{threads}.jsonl"));
    let stats = dir.join(format!("stats-{threads}.json"));
    let mut cmd = Command::new(BIN);
    cmd.arg("run");
    for app in [
        "conficker",
        "ddos",
        "dns_nxdomain",
        "modbus_scan",
        "p2p",
        "portscan",
    ] {
        cmd.arg("--app")
            .arg(root().join("apps").join(format!("{app}.xml")));
    }
    let out = cmd
        .arg("--pcap")
        .arg(pcap)
        .args(["--threads", &threads.to_string()])
        .arg("--events")
        .arg(&events)
        .arg("--stats-json")
        .arg(&stats)
        .output()
        .expect("streamon runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = serde_json::from_slice(&std::fs::read(&stats).expect("stats")).expect("json");
    (std::fs::read(&events).expect("events"), stats)
}

#[test]
fn any_thread_count_writes_the_same_events_and_counters() {
    let dir = std::env::temp_dir().join(format!("streamon-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let flood = dir.join("syn_flood.pcap");
    streamon_host_ctl::tracegen::write_pcap(&flood, &streamon_host_ctl::tracegen::syn_flood(1))
        .expect("pcap written");
    let traces = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces"));
    let mut total = 0;
    for pcap in [
        flood.clone(),
        traces.join("ndpi_synscan.pcap"),
        traces.join("zeek_nmap_vsn.pcap"),
        traces.join("ndpi_tcp_scan.pcapng"),
    ] {
        let (events, stats) = run(&pcap, 1, &dir);
        total += events.len();
        for threads in [2, 4, 8] {
            let (e, s) = run(&pcap, threads, &dir);
            assert!(
                e == events,
                "{}: events differ at {threads} threads",
                pcap.display()
            );
            assert_eq!(
                s,
                stats,
                "{}: counters at {threads} threads",
                pcap.display()
            );
        }
    }
    assert!(
        total > 10_000,
        "the runs said something ({total} bytes of events)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
