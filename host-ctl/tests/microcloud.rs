//! The MicroCloud at probe level, with `streamon run` processes and a real
//! `redis-server` and `redis-cli`:
//!
//! * a probe's live state answered over RESP while the probe is up
//!   (`--resp-port`, `--hold`), checked with `redis-cli` and the `redis`
//!   crate;
//! * correlation across probes: a real capture split by direction, one
//!   probe per direction; the probe that sees the answers learns DNS names
//!   (`apps/dns_learn.xml`), the probe that sees the connections labels
//!   them with what the first one wrote (`tests/apps/flow_label.xml`).

#[path = "../../microcloud/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::RedisProc;
use redis::Commands;
use streamon_host_ctl::tracegen::{write_pcap, Frame};
use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, Field, FieldValue};

const BIN: &str = env!("CARGO_BIN_EXE_streamon");

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn trace(name: &str) -> PathBuf {
    root().join("../shared/traces").join(name)
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli not found: install the Debian package redis-tools");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redis_cli_reads_a_running_probes_live_state() {
    let mut child = Proc(
        Command::new(BIN)
            .args(["run", "--probe-id", "edge-1", "--events", "/dev/null"])
            .arg("--app")
            .arg(root().join("apps/ddos.xml"))
            .arg("--pcap")
            .arg(trace("zeek_wikipedia.pcap"))
            .args(["--resp-port", "0", "--hold", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The probe prints where it serves, then replays, then holds.
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(addr) = line.trim().strip_prefix("resp: serving the live state on ") {
            port = Some(addr.rsplit(':').next().unwrap().parse::<u16>().unwrap());
        }
        if line.starts_with("--- summary ---") {
            break;
        }
        line.clear();
    }
    let port = port.expect("the probe printed its RESP address");
    // Drain the rest of stderr so the probe never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    let keys = redis_cli(port, &["KEYS", "streamon:*:ip:208.80.152.*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort();
    assert!(
        keys.contains(&"streamon:edge-1:ip:208.80.152.3:ddos.state"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"streamon:edge-1:ip:208.80.152.3:ddos.syn_rate"),
        "{keys:?}"
    );
    assert!(keys
        .iter()
        .all(|k| k.starts_with("streamon:edge-1:ip:208.80.152.")));
    assert_eq!(
        redis_cli(port, &["GET", "streamon:edge-1:ip:208.80.152.3:ddos.state"]).trim(),
        "normal"
    );
    // The same through the redis crate: the probe's counters and one key's
    // hash (state, packet time, metrics and features).
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let packets: u64 = c.get("streamon:edge-1:probe:packets").unwrap();
    assert_eq!(packets, 136);
    let h: HashMap<String, String> = c
        .hgetall("streamon:edge-1:app:ddos:state:208.80.152.3")
        .unwrap();
    assert_eq!(h["state"], "normal");
    for field in ["ts", "syn_rate", "syn_per_min", "known_src"] {
        assert!(h.contains_key(field), "{h:?}");
    }
    let syn_rate: f64 = h["syn_rate"].parse().unwrap();
    assert!(syn_rate > 0.0, "{h:?}");
    let ttl: i64 = c.ttl("streamon:edge-1:ip:208.80.152.3:ddos.state").unwrap();
    assert_eq!(ttl, -1);
    // Read only.
    let refused = redis_cli(port, &["SET", "streamon:edge-1:probe:packets", "0"]);
    assert!(refused.contains("READONLY"), "{refused}");
    let packets: u64 = c.get("streamon:edge-1:probe:packets").unwrap();
    assert_eq!(packets, 136);
}

/// Writes the frames of `src` for which `keep` holds to `dst`.
fn split(src: &Path, dst: &Path, keep: impl Fn(IpAddr, IpAddr) -> bool) -> usize {
    let mut s = PcapSource::open(src).unwrap();
    let mut out = Vec::new();
    while let Some(f) = s.next_frame().unwrap() {
        let Ok(p) = parse(f.data, f.linktype, f.meta) else {
            continue;
        };
        let (Some(FieldValue::Addr(a)), Some(FieldValue::Addr(b))) =
            (p.get(Field::IpSrc), p.get(Field::IpDst))
        else {
            continue;
        };
        if keep(a, b) {
            out.push(Frame {
                ts_ns: f.meta.ts_ns,
                data: f.data.to_vec(),
            });
        }
    }
    write_pcap(dst, &out).unwrap();
    out.len()
}

fn run_probe(redis: &RedisProc, id: &str, app: &Path, pcap: &Path, events: &Path) -> String {
    let out = Command::new(BIN)
        .args(["run", "--probe-id", id, "--redis", &redis.url()])
        .arg("--app")
        .arg(app)
        .arg("--pcap")
        .arg(pcap)
        .arg("--events")
        .arg(events)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn a_probe_labels_flows_with_dns_names_another_probe_learnt() {
    let redis = RedisProc::start();
    let dir = std::env::temp_dir().join(format!("streamon-mc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let full = trace("zeek_wikipedia.pcap");
    let client: IpAddr = "141.142.220.118".parse().unwrap();
    let inbound = dir.join("to_client.pcap");
    let outbound = dir.join("from_client.pcap");
    let n_in = split(&full, &inbound, |_, dst| dst == client);
    let n_out = split(&full, &outbound, |src, _| src == client);
    assert!(n_in > 20 && n_out > 20, "{n_in} {n_out}");

    // What the application should say, computed from the capture with
    // plain loops: the names DNS answers give the addresses, and the SYNs
    // the client sends.
    let mut names: HashMap<IpAddr, String> = HashMap::new();
    let mut syns = Vec::new();
    let mut s = PcapSource::open(&full).unwrap();
    while let Some(f) = s.next_frame().unwrap() {
        let Ok(p) = parse(f.data, f.linktype, f.meta) else {
            continue;
        };
        let dst = p.get(Field::IpDst).and_then(|v| v.as_addr());
        let src = p.get(Field::IpSrc).and_then(|v| v.as_addr());
        if dst == Some(client) && p.get(Field::SrcPort).and_then(|v| v.as_u64()) == Some(53) {
            if let (Some(FieldValue::Addr(a)), Some(n)) =
                (p.get(Field::DomainAddr), p.get(Field::DomainName))
            {
                names.insert(a, n.to_string());
            }
        }
        if src == Some(client) && p.get(Field::TcpFlags).and_then(|v| v.as_u64()) == Some(0x02) {
            let d = dst.unwrap();
            let sport = p.get(Field::SrcPort).unwrap();
            let dport = p.get(Field::DstPort).unwrap();
            syns.push(match names.get(&d) {
                Some(n) => format!("{client}:{sport} -> {d}:{dport} named {n}"),
                None => format!("{client}:{sport} -> {d}:{dport} unknown"),
            });
        }
    }
    assert!(
        syns.iter().any(|s| s.contains(" named ")) && syns.iter().any(|s| s.contains(" unknown")),
        "{syns:?}"
    );

    // Probe "dns-in" sees only the answers and learns; it exits once its
    // writes are in Redis. Probe "edge-out" sees only the connections.
    let learn = run_probe(
        &redis,
        "dns-in",
        &root().join("apps/dns_learn.xml"),
        &inbound,
        &dir.join("in.jsonl"),
    );
    assert!(learn.contains("dropped full     0"), "{learn}");
    let label_events = dir.join("out.jsonl");
    let label = run_probe(
        &redis,
        "edge-out",
        &root().join("tests/apps/flow_label.xml"),
        &outbound,
        &label_events,
    );
    assert!(!label.contains("kv read errors"), "{label}");
    let got: Vec<String> = std::fs::read_to_string(&label_events)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got, syns);

    // What the second probe wrote back sits next to what the first one
    // learnt, under one pattern for the host.
    let mut c = redis.conn();
    let mut keys: Vec<String> = c.keys("streamon:*:ip:208.80.152.3:*").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "streamon:dns-in:ip:208.80.152.3:dns.name",
            "streamon:edge-out:ip:208.80.152.3:flows.named",
        ]
    );
    let named: i64 = c
        .get("streamon:edge-out:ip:208.80.152.3:flows.named")
        .unwrap();
    let expect = syns
        .iter()
        .filter(|s| s.contains("-> 208.80.152.3:") && s.contains(" named "))
        .count() as i64;
    assert_eq!(named, expect);
    let _ = std::fs::remove_dir_all(&dir);
}
