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
        // Whether the stranger's handshake reached the authenticator before
        // this short replay ended is a race; the refusal itself is counted
        // deterministically in bus/tests/loopback.rs.
        assert!(p["curve_refused"].is_u64(), "{v}");
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

    /// T0 of the chain tests: every first-tier probe replays its capture
    /// as if it started at this instant (ns), so their symptoms share a
    /// clock, as probes at different sites would.
    const T0: &str = "1700000000000000000";

    /// Runs `outbreak.xml` subscribed to one first-tier probe per capture
    /// (`scan_symptom.xml`, JSON), all replaying from T0. Returns the
    /// second tier's events and its stderr.
    fn chain(test: &str, captures: &[&str]) -> (Vec<serde_json::Value>, String) {
        let dir = scratch(test);
        let ports: Vec<u16> = captures.iter().map(|_| free_port()).collect();
        let out2 = dir.join("outbreak.jsonl");
        let mut second = Command::new(BIN);
        second
            .args(["run", "--probe-id", "correlator", "--app"])
            .arg(root().join("apps/outbreak.xml"))
            .arg("--events")
            .arg(&out2)
            .args(["--idle-exit", "5", "--max-run", "120"]);
        for p in &ports {
            second.args(["--subscribe", &format!("tcp://127.0.0.1:{p}")]);
        }
        let second = second.stderr(Stdio::piped()).spawn().unwrap();
        let firsts: Vec<Child> = captures
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (cap, port))| {
                Command::new(BIN)
                    .args(["run", "--probe-id", &format!("site{i}"), "--app"])
                    .arg(root().join("apps/scan_symptom.xml"))
                    .arg("--pcap")
                    .arg(trace(cap))
                    .args(["--start-time", T0, "--events"])
                    .arg(dir.join(format!("site{i}.jsonl")))
                    .args(["--publish", &format!("tcp://127.0.0.1:{port}")])
                    .args(["--publish-format", "json", "--wait-subscribers", "1"])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in firsts {
            let o = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{err}");
            // Each first-tier probe saw its subscriber before replaying.
            assert!(err.contains("subscriptions    1"), "{err}");
        }
        let o = second.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let events = std::fs::read_to_string(&out2)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (events, err)
    }

    #[test]
    fn chained_probes_raise_an_outbreak_from_three_scanning_hosts() {
        let (events, err) = chain(
            "outbreak",
            &[
                "bss_port_scan.pcap",
                "zeek_wikipedia.pcap",
                "ndpi_synscan.pcap",
                "zeek_nmap_vsn.pcap",
            ],
        );
        assert!(err.contains("messages delivered 3"), "{err}");
        assert_eq!(events.len(), 1, "{events:?}\n{err}");
        let e = &events[0];
        assert_eq!(e["topic"], "alert");
        assert_eq!(e["key"], "SCAN");
        assert_eq!(e["state_to"], "outbreak");
        assert_eq!(e["event"], "message:0");
        let text = e["text"].as_str().unwrap();
        assert!(
            text.contains("outbreak of SCAN: 3.000000 hosts within 60 s"),
            "{text}"
        );
        assert!(text.contains("fanout 7.000000"), "{text}");
        // Message time: within the first seconds after T0, whatever the
        // wall clock did.
        let ts = e["ts"].as_u64().unwrap();
        let t0: u64 = T0.parse().unwrap();
        assert!((t0..t0 + 10_000_000_000).contains(&ts), "{ts}");
    }

    #[test]
    fn two_scanning_hosts_are_no_outbreak() {
        let (events, err) = chain(
            "no_outbreak",
            &[
                "bss_port_scan.pcap",
                "zeek_wikipedia.pcap",
                "tcpreplay_test.pcap",
                "zeek_nmap_vsn.pcap",
            ],
        );
        assert!(err.contains("messages delivered 2"), "{err}");
        assert!(events.is_empty(), "{events:?}");
        assert!(err.contains("event 0 matched  2"), "{err}");
    }

    #[test]
    fn a_probe_needs_packets_or_subscriptions() {
        let out = Command::new(BIN)
            .args(["run", "--app"])
            .arg(root().join("apps/outbreak.xml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--pcap"), "{err}");
    }

    #[test]
    fn malformed_and_refused_messages_are_counted() {
        let dir = scratch("refused");
        let mut p = streamon_bus::Publisher::bind(&{
            let mut c = streamon_bus::PublisherConfig::new("evil");
            c.endpoint = "tcp://127.0.0.1:*".into();
            c
        })
        .unwrap();
        let second = Command::new(BIN)
            .args(["run", "--app"])
            .arg(root().join("apps/outbreak.xml"))
            .arg("--events")
            .arg(dir.join("out.jsonl"))
            .args([
                "--subscribe",
                p.endpoint(),
                "--idle-exit",
                "2",
                "--max-run",
                "60",
            ])
            .args(["--stats-json", dir.join("stats.json").to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(p.wait_subscriptions(1, Duration::from_secs(30)).unwrap(), 1);
        p.send_frames(b"symptom", b"not an event");
        p.send_frames(b"symptom", &vec![b'x'; 200_000]);
        let bad_key = r#"{"v":1,"probe":"x","app":"a","topic":"symptom","key":"k","key_fields":{"ip_src":"not-an-address"},"state_from":"a","state_to":"b","code":"SCAN","level":"","text":"","features":{},"ts":1,"event":"packet:0","packet_no":1,"seq":0}"#;
        p.send_frames(b"symptom", bad_key.as_bytes());
        let o = second.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("malformed        1"), "{err}");
        assert!(err.contains("oversized        1"), "{err}");
        assert!(err.contains("messages refused (key field) 1"), "{err}");
        assert!(err.contains("messages delivered 0"), "{err}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap())
                .unwrap();
        assert_eq!(v["bus"]["inbox"]["refused"]["key field"], 1, "{v}");
        assert_eq!(v["bus"]["inbox"]["subscriptions"][0]["malformed"], 1, "{v}");
    }

    #[test]
    fn a_flood_of_messages_is_bounded_and_counted() {
        use streamon_host_ctl::net::{Inbox, SubscribeSpec};
        use streamon_probe::{sw_engine, EventSink, OutputEvent, Probe, RuntimeOptions, VecSink};

        let mut probe = Probe::new();
        let app = std::fs::read_to_string(root().join("apps/outbreak.xml")).unwrap();
        probe
            .install(
                "outbreak",
                &app,
                "outbreak.xml",
                &sw_engine,
                RuntimeOptions::default(),
            )
            .unwrap();
        let mut p = streamon_bus::Publisher::bind(&{
            let mut c = streamon_bus::PublisherConfig::new("flooder");
            c.endpoint = "tcp://127.0.0.1:*".into();
            c.format = streamon_bus::PayloadFormat::Json;
            c.sndhwm = 100;
            c
        })
        .unwrap();
        let mut inbox = Inbox::connect(
            &[SubscribeSpec {
                endpoint: p.endpoint().into(),
                server_key: None,
            }],
            &probe.message_topics(),
            None,
            Some(100),
        )
        .unwrap();
        assert_eq!(p.wait_subscriptions(1, Duration::from_secs(30)).unwrap(), 1);
        let ev = |n: u64| OutputEvent {
            ts: 1_700_000_000_000_000_000 + n,
            app: "scan".into(),
            topic: "symptom".into(),
            code: "SCAN".into(),
            key: "10.0.0.1".into(),
            key_fields: vec![(
                "ip_src".into(),
                format!("10.0.{}.{}", n / 256 % 256, n % 256),
            )],
            ..OutputEvent::default()
        };
        // The probe reads nothing while 20,000 messages go out.
        let n = 20_000u64;
        for i in 0..n {
            p.emit(&ev(i));
        }
        let mut sink = VecSink::default();
        let mut received = 0u64;
        let mut calls = 0u64;
        loop {
            let got = inbox.drain(&mut probe, &mut sink, 64).unwrap();
            assert!(got <= 64, "one drain hands over at most its batch");
            if got == 0 && !inbox.wait(Duration::from_millis(500)).unwrap() {
                break;
            }
            received += got as u64;
            calls += 1;
        }
        // One more after the flood reveals the drops at its end.
        p.emit(&ev(n));
        assert!(inbox.wait(Duration::from_secs(10)).unwrap());
        received += inbox.drain(&mut probe, &mut sink, 64).unwrap() as u64;
        let lost = inbox.subscriber_stats()[0].1.lost;
        assert!(received < n, "the queues are bounded: {received} received");
        assert_eq!(
            received + lost,
            n + 1,
            "every message is received or counted"
        );
        assert_eq!(inbox.stats().delivered, received);
        assert_eq!(probe.stats().messages, received);
        assert!(calls > 1);
        // The probe kept working on what it got: the distinct hosts it saw
        // raised the outbreak.
        assert_eq!(sink.0.len(), 1, "{:?}", sink.0);
    }

    /// The subscriber thread of a live capture (`Inbox::spawn`): a flood
    /// while the capture loop takes nothing overflows its bounded queue;
    /// every message sent is delivered, dropped at the queue, or lost at
    /// libzmq's high-water marks, each counted.
    #[test]
    fn a_flood_at_the_subscriber_thread_is_bounded_and_counted() {
        use streamon_host_ctl::net::{Inbox, SubscribeSpec};
        use streamon_probe::{sw_engine, EventSink, OutputEvent, Probe, RuntimeOptions, VecSink};

        let mut probe = Probe::new();
        let app = std::fs::read_to_string(root().join("apps/outbreak.xml")).unwrap();
        probe
            .install(
                "outbreak",
                &app,
                "outbreak.xml",
                &sw_engine,
                RuntimeOptions::default(),
            )
            .unwrap();
        let mut p = streamon_bus::Publisher::bind(&{
            let mut c = streamon_bus::PublisherConfig::new("flooder");
            c.endpoint = "tcp://127.0.0.1:*".into();
            c.format = streamon_bus::PayloadFormat::Json;
            c.sndhwm = 100;
            c
        })
        .unwrap();
        let inbox = Inbox::connect(
            &[SubscribeSpec {
                endpoint: p.endpoint().into(),
                server_key: None,
            }],
            &probe.message_topics(),
            None,
            Some(100),
        )
        .unwrap();
        assert_eq!(p.wait_subscriptions(1, Duration::from_secs(30)).unwrap(), 1);
        let mut thread = inbox.spawn(16);
        let ev = |n: u64| OutputEvent {
            ts: 1_700_000_000_000_000_000 + n,
            app: "scan".into(),
            topic: "symptom".into(),
            code: "SCAN".into(),
            key: "10.0.0.1".into(),
            key_fields: vec![(
                "ip_src".into(),
                format!("10.0.{}.{}", n / 256 % 256, n % 256),
            )],
            ..OutputEvent::default()
        };
        let n = 20_000u64;
        for i in 0..n {
            p.emit(&ev(i));
        }
        // Let the thread receive what reaches it, then one more event to
        // reveal libzmq's drops at the end of the flood (a seq gap).
        std::thread::sleep(Duration::from_secs(2));
        p.emit(&ev(n));
        std::thread::sleep(Duration::from_secs(1));
        let mut sink = VecSink::default();
        let before_stop = thread.drain_queue(&mut probe, &mut sink, 1024);
        assert!(
            before_stop <= 16,
            "the queue holds at most 16: {before_stop}"
        );
        let (inbox, result) = thread.stop(&mut probe, &mut sink);
        result.unwrap();
        let inbox = inbox.expect("the thread gives the inbox back");
        let st = inbox.stats();
        let sub = &inbox.subscriber_stats()[0].1;
        assert_eq!(sub.received + sub.lost, n + 1, "{st:?} {sub:?}");
        assert_eq!(st.delivered + st.queue_dropped, sub.received, "{st:?}");
        assert!(
            st.queue_dropped > 0,
            "a 16-message queue overflowed: {st:?}"
        );
        assert_eq!(probe.stats().messages, st.delivered);
    }
}
