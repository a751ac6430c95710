//! `streamon run` on the ZeroMQ bus, as a process: `--publish` sends what
//! `--events` writes, to a real libzmq subscriber. Without the `bus`
//! feature the bus options are refused with a message saying how to build
//! them in (the workspace's tests turn the feature on through
//! `streamon-tests`; `cargo test -p streamon-host-ctl` alone runs the
//! refusal test).

use std::path::PathBuf;
#[cfg(not(feature = "bus"))]
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_streamon");

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn trace(name: &str) -> PathBuf {
    root().join("../shared/traces").join(name)
}

#[cfg(not(feature = "bus"))]
#[test]
fn bus_options_need_the_feature() {
    let out = Command::new(BIN)
        .args(["run", "--app"])
        .arg(root().join("apps/portscan.xml"))
        .arg("--pcap")
        .arg(trace("bss_port_scan.pcap"))
        .args(["--publish", "tcp://127.0.0.1:*"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features bus"), "{err}");
    assert!(err.contains("libzmq3-dev"), "{err}");
}

#[cfg(feature = "bus")]
mod with_bus {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use streamon_bus::curve::{self, KeyPair};
    use streamon_bus::{Payload, Subscriber, SubscriberConfig};

    use super::{root, trace, BIN};

    /// A TCP port nobody listens on right now.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn scratch(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("streamon-bus-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn spawn_publisher(app: &str, pcap: &str, extra: &[&str], events: &Path) -> Child {
        Command::new(BIN)
            .args(["run", "--probe-id", "p1", "--app"])
            .arg(root().join("apps").join(app))
            .arg("--pcap")
            .arg(trace(pcap))
            .arg("--events")
            .arg(events)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Everything the subscriber gets until nothing comes for a second
    /// after the process ended.
    fn drain(s: &mut Subscriber, child: &mut Child) -> Vec<streamon_bus::Delivered> {
        let mut got = Vec::new();
        loop {
            match s.recv_timeout(Duration::from_millis(200)).unwrap() {
                Some(d) => got.push(d),
                None => {
                    if child.try_wait().unwrap().is_some() {
                        while let Some(d) = s.recv_timeout(Duration::from_secs(1)).unwrap() {
                            got.push(d);
                        }
                        return got;
                    }
                }
            }
        }
    }

    #[test]
    fn published_events_are_the_written_events() {
        let dir = scratch("same");
        let events = dir.join("events.jsonl");
        let ep = format!("tcp://127.0.0.1:{}", free_port());
        let mut s = Subscriber::connect(&SubscriberConfig {
            endpoints: vec![ep.clone()],
            ..Default::default()
        })
        .unwrap();
        let mut child = spawn_publisher(
            "portscan.xml",
            "ndpi_synscan.pcap",
            &[
                "--publish",
                &ep,
                "--publish-format",
                "json",
                "--wait-subscribers",
                "1",
            ],
            &events,
        );
        let got = drain(&mut s, &mut child);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let written: Vec<serde_json::Value> = std::fs::read_to_string(&events)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(written.len() >= 2, "{written:?}");
        assert_eq!(got.len(), written.len(), "{err}");
        for (d, w) in got.iter().zip(&written) {
            let Payload::Record(r) = &d.payload else {
                panic!("{d:?}")
            };
            assert_eq!(r.probe, "p1");
            assert_eq!(d.topic, w["topic"].as_str().unwrap());
            assert_eq!(r.key, w["key"].as_str().unwrap());
            assert_eq!(r.text, w["text"].as_str().unwrap());
            assert_eq!(r.ts, w["ts"].as_u64().unwrap());
        }
        assert_eq!(s.stats().lost, 0);
        assert!(
            err.contains(&format!("sent             {}", written.len())),
            "{err}"
        );
        assert!(err.contains("dropped (hwm)    0"), "{err}");
    }

    #[test]
    fn text_format_and_topic_prefixes() {
        let dir = scratch("text");
        let ep = format!("tcp://127.0.0.1:{}", free_port());
        let mut s = Subscriber::connect(&SubscriberConfig {
            endpoints: vec![ep.clone()],
            topics: vec!["alert".into()],
            ..Default::default()
        })
        .unwrap();
        let mut child = spawn_publisher(
            "portscan.xml",
            "ndpi_synscan.pcap",
            &["--publish", &ep, "--wait-subscribers", "1"],
            &dir.join("events.jsonl"),
        );
        let got = drain(&mut s, &mut child);
        assert!(child.wait().unwrap().success());
        assert!(!got.is_empty());
        for d in &got {
            assert_eq!(d.topic, "alert");
            let Payload::Line(l) = &d.payload else {
                panic!("{d:?}")
            };
            assert_eq!(l.probe, "p1");
            assert_eq!(l.code, "D0");
        }
    }

    #[test]
    fn curve_serves_only_allowed_subscribers() {
        let dir = scratch("curve");
        let server = curve::keygen(&dir, "probe").unwrap();
        let allowed = curve::keygen(&dir, "allowed").unwrap();
        let stranger = KeyPair::generate().unwrap();
        let ep = format!("tcp://127.0.0.1:{}", free_port());
        let sub = |me: &KeyPair| {
            Subscriber::connect(&SubscriberConfig {
                endpoints: vec![ep.clone()],
                curve: Some((me.clone(), server.public)),
                ..Default::default()
            })
            .unwrap()
        };
        let mut good = sub(&allowed);
        let mut bad = sub(&stranger);
        let stats = dir.join("stats.json");
        let mut child = spawn_publisher(
            "portscan.xml",
            "ndpi_synscan.pcap",
            &[
                "--publish",
                &ep,
                "--wait-subscribers",
                "1",
                "--curve-key",
                dir.join("probe.key").to_str().unwrap(),
                "--curve-allow",
                dir.join("allowed.pub").to_str().unwrap(),
                "--stats-json",
                stats.to_str().unwrap(),
            ],
            &dir.join("events.jsonl"),
        );
        let got = drain(&mut good, &mut child);
        assert!(child.wait().unwrap().success());
        assert!(!got.is_empty());
        assert_eq!(bad.recv_timeout(Duration::from_millis(300)).unwrap(), None);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        let p = &v["bus"]["publisher"];
        assert!(p["curve_accepted"].as_u64().unwrap() >= 1, "{v}");
        assert!(p["curve_refused"].as_u64().unwrap() >= 1, "{v}");
        assert_eq!(p["sent"].as_u64().unwrap(), got.len() as u64);
    }

    #[test]
    fn bad_key_file_is_a_clear_error() {
        let dir = scratch("badkey");
        std::fs::write(dir.join("x.key"), "not a key\n").unwrap();
        let out = Command::new(BIN)
            .args(["run", "--app"])
            .arg(root().join("apps/portscan.xml"))
            .arg("--pcap")
            .arg(trace("bss_port_scan.pcap"))
            .args(["--publish", "tcp://127.0.0.1:*", "--curve-key"])
            .arg(dir.join("x.key"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a Z85 CURVE key"), "{err}");
    }
}
