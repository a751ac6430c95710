//! The controller with real probe agents (threads of this process) over
//! CURVE on loopback: registration, validated deployment, events stored
//! across a controller restart, a probe marked down and re-synchronised,
//! unauthorised peers refused and logged, a flooding peer bounded.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use streamon_bus::curve::KeyPair;
use streamon_ctl::proto::{self, Message};
use streamon_ctl::{Agent, AgentConfig, ControllerConfig, ControllerHandle, Input, Op};

struct RunningAgent {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Agent>>,
}

impl RunningAgent {
    fn start(
        name: &str,
        keys: &KeyPair,
        ctl: &ControllerHandle,
        ctl_pub: [u8; 32],
        input: Input,
    ) -> Self {
        let mut agent = Agent::start(AgentConfig {
            probe_id: name.into(),
            controller: ctl.control_endpoint().to_string(),
            controller_key: ctl_pub,
            keys: keys.clone(),
            events_bind: "tcp://127.0.0.1:*".into(),
            events_advertise: None,
            extra_subscribers: vec![],
            heartbeat: Duration::from_millis(100),
            input,
        })
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            agent.run(&s).unwrap();
            agent
        });
        RunningAgent {
            stop,
            thread: Some(thread),
        }
    }

    fn kill(mut self) -> Agent {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn controller(
    keys: &KeyPair,
    authorized: Vec<[u8; 32]>,
    data: &Path,
    bind: &str,
) -> ControllerHandle {
    let mut c = ControllerConfig::new("ctl", bind, keys.clone(), data.to_path_buf());
    c.authorized = authorized;
    c.heartbeat = Duration::from_millis(100);
    c.down_after = Duration::from_millis(700);
    c.http = Some("127.0.0.1:0".into());
    streamon_ctl::start(c).unwrap()
}

fn health(ctl: &ControllerHandle, probe: &str) -> String {
    ctl.view()
        .probes
        .get(probe)
        .map(|p| p.health.clone())
        .unwrap_or_default()
}

fn synced(ctl: &ControllerHandle, probe: &str, apps: &[&str]) -> bool {
    let v = ctl.view();
    let Some(p) = v.probes.get(probe) else {
        return false;
    };
    let names: Vec<&str> = p.apps.iter().map(|a| a.name.as_str()).collect();
    p.health == "up" && names == apps && p.apps.iter().all(|a| a.state == "synced")
}

fn alert_keys(ctl: &ControllerHandle, probe: &str) -> BTreeSet<(String, String)> {
    ctl.view()
        .alerts
        .iter()
        .filter(|a| a.probe == probe)
        .map(|a| (a.app.clone(), a.key.clone()))
        .collect()
}

#[test]
fn deploy_collect_mark_down_resync_and_survive_a_restart() {
    let ctl_keys = keys();
    let p1 = keys();
    let data = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let ctl = controller(&ctl_keys, vec![p1.public], data.path(), "tcp://127.0.0.1:*");
    let endpoint = ctl.control_endpoint().to_string();
    let agent = RunningAgent::start(
        "p1",
        &p1,
        &ctl,
        ctl_keys.public,
        Input::Spool(spool_dir.path().into()),
    );
    wait_for(10, "p1 up", || health(&ctl, "p1") == "up");

    // Validation: a program with errors never reaches the probe.
    let err = ctl
        .op(Op::Deploy {
            probe: "p1".into(),
            app: "bad".into(),
            xml: "<streamon><event type=\"packet\"/></streamon>".into(),
        })
        .unwrap_err();
    assert!(err.starts_with("bad.xml:1:"), "{err}");
    assert!(ctl
        .op(Op::Deploy {
            probe: "nobody".into(),
            app: "x".into(),
            xml: app("ddos"),
        })
        .unwrap_err()
        .contains("no probe"));
    for name in ["portscan", "ddos"] {
        ctl.op(Op::Deploy {
            probe: "p1".into(),
            app: name.into(),
            xml: app(name),
        })
        .unwrap();
    }
    wait_for(10, "apps synced", || {
        synced(&ctl, "p1", &["ddos", "portscan"])
    });

    // Events: the scan's alert reaches the controller, as an offline run
    // of the same program on the same capture says.
    let expected: BTreeSet<(String, String)> = offline("portscan", "ndpi_synscan.pcap")
        .into_iter()
        .filter(|e| e.topic == "alert")
        .map(|e| (e.app, e.key))
        .collect();
    assert!(!expected.is_empty());
    spool(spool_dir.path(), "ndpi_synscan.pcap", "a.pcap");
    wait_for(20, "the scan's alert", || {
        alert_keys(&ctl, "p1") == expected
    });
    let offline_events = offline("portscan", "ndpi_synscan.pcap").len() as u64
        + offline("ddos", "ndpi_synscan.pcap").len() as u64;
    wait_for(10, "every event", || {
        ctl.view().probes["p1"].events_received == offline_events
    });

    // Stop and swap: the probe follows.
    ctl.op(Op::Stop {
        probe: "p1".into(),
        app: "portscan".into(),
    })
    .unwrap();
    ctl.op(Op::Swap {
        probe: "p1".into(),
        app: "ddos".into(),
        xml: app("p2p"),
    })
    .unwrap();
    wait_for(10, "stop and swap synced", || {
        let v = ctl.view();
        let r = &v.probes["p1"].reported;
        r.iter().any(|a| a.name == "portscan" && !a.running)
            && r.iter()
                .any(|a| a.name == "ddos" && a.digest == proto::digest(&app("p2p")))
    });

    // Kill the probe: marked down; a fresh probe process with the same key
    // rejoins and gets its applications back, as they were left.
    let old = agent.kill();
    assert_eq!(
        old.stats().refused.values().sum::<u64>(),
        0,
        "{:?}",
        old.stats()
    );
    drop(old);
    wait_for(10, "p1 down", || health(&ctl, "p1") == "down");
    let agent = RunningAgent::start("p1", &p1, &ctl, ctl_keys.public, Input::None);
    wait_for(10, "p1 back and re-synchronised", || {
        synced(&ctl, "p1", &["ddos", "portscan"])
    });
    let v = ctl.view();
    let p = &v.probes["p1"];
    assert_eq!((p.times_down, p.rejoins), (1, 1));
    assert!(p
        .reported
        .iter()
        .any(|a| a.name == "portscan" && !a.running));
    assert!(v.log.iter().any(|l| l.contains("probe p1 is down")));

    // Restart the controller on the same data and endpoint: the stored
    // events and alerts are back, the probe re-registers from its
    // heartbeats, and nothing needs redeploying.
    let sent_before = v.counters.commands_sent;
    drop(v);
    ctl.shutdown();
    let ctl = controller(&ctl_keys, vec![p1.public], data.path(), &endpoint);
    assert_eq!(alert_keys(&ctl, "p1"), expected, "alerts reloaded");
    assert_eq!(health(&ctl, "p1"), "unknown");
    wait_for(10, "p1 re-registered", || {
        synced(&ctl, "p1", &["ddos", "portscan"])
    });
    assert_eq!(
        ctl.view().counters.commands_sent,
        0,
        "was {sent_before} before"
    );
    let addr = ctl.http_addr().unwrap().to_string();
    let (status, body) =
        streamon_ctl::http::request(&addr, "GET", "/api/events?from=1&limit=1000", None).unwrap();
    assert_eq!(status, 200);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(events.len() as u64, offline_events, "stored events survive");
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=offline_events).collect::<Vec<_>>());
    // Seeking by id through the index.
    let (_, body) =
        streamon_ctl::http::request(&addr, "GET", "/api/events?from=300&limit=2", None).unwrap();
    let two: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    if offline_events >= 301 {
        assert_eq!(two[0]["id"], 300);
        assert_eq!(two[1]["id"], 301);
    }
    drop(agent);
}

#[test]
fn unauthorised_probes_are_refused_and_logged() {
    let ctl_keys = keys();
    let (p1, p2, stranger) = (keys(), keys(), keys());
    let data = tempfile::tempdir().unwrap();
    let ctl = controller(
        &ctl_keys,
        vec![p1.public, p2.public],
        data.path(),
        "tcp://127.0.0.1:*",
    );
    let _a = RunningAgent::start("p1", &p1, &ctl, ctl_keys.public, Input::None);
    wait_for(10, "p1 up", || health(&ctl, "p1") == "up");
    // A key that is not admitted: refused by ZAP, logged, never listed.
    let _s = RunningAgent::start("intruder", &stranger, &ctl, ctl_keys.public, Input::None);
    // An admitted key claiming another probe's name.
    let _t = RunningAgent::start("p1", &p2, &ctl, ctl_keys.public, Input::None);
    wait_for(10, "refusals logged", || {
        let v = ctl.view();
        v.counters.auth_refused >= 1
            && v.counters
                .control_refused
                .get("unauthorised")
                .copied()
                .unwrap_or(0)
                >= 1
            && v.log
                .iter()
                .any(|l| l.contains("refused a control connection"))
    });
    let v = ctl.view();
    assert!(!v.probes.contains_key("intruder"));
    assert_eq!(v.probes["p1"].key, streamon_bus::curve::z85(&p1.public));
    assert!(v.log.iter().any(|l| l.contains("is bound to key")));
}

#[test]
fn a_flooding_probe_is_bounded_and_counted() {
    let ctl_keys = keys();
    let (p1, flooder) = (keys(), keys());
    let data = tempfile::tempdir().unwrap();
    let ctl = controller(
        &ctl_keys,
        vec![p1.public, flooder.public],
        data.path(),
        "tcp://127.0.0.1:*",
    );
    let _a = RunningAgent::start("p1", &p1, &ctl, ctl_keys.public, Input::None);
    wait_for(10, "p1 up", || health(&ctl, "p1") == "up");
    // An admitted peer sends 20,000 messages as fast as it can: oversized,
    // garbage, and commands a controller never takes.
    let ctx = zmq::Context::new();
    let d = ctx.socket(zmq::DEALER).unwrap();
    d.set_linger(0).unwrap();
    d.set_sndhwm(0).unwrap();
    d.set_curve_serverkey(&ctl_keys.public).unwrap();
    d.set_curve_publickey(&flooder.public).unwrap();
    d.set_curve_secretkey(&flooder.secret).unwrap();
    d.connect(ctl.control_endpoint()).unwrap();
    let junk = [
        b"garbage".to_vec(),
        proto::encode(&Message::Status { nonce: 1 }),
        vec![b'x'; proto::MAX_MESSAGE_BYTES + 1],
    ];
    const N: u64 = 20_000;
    for i in 0..N {
        let m = if i < 3 {
            &junk[2]
        } else {
            &junk[(i % 2) as usize]
        };
        d.send(m.as_slice(), 0).unwrap();
    }
    // Meanwhile the controller keeps serving p1.
    ctl.op(Op::Deploy {
        probe: "p1".into(),
        app: "ddos".into(),
        xml: app("ddos"),
    })
    .unwrap();
    wait_for(20, "p1 served during the flood", || {
        synced(&ctl, "p1", &["ddos"])
    });
    wait_for(30, "every flood message counted", || {
        let c = ctl.view().counters;
        let refused: u64 = c.control_refused.values().sum();
        // Every message is either refused with a reason or dropped by the
        // rate limit; p1's own reports are the rest of `received`.
        c.control_rate_limited + refused >= N
    });
    let c = ctl.view().counters;
    assert!(c.control_rate_limited > 0, "{c:?}");
    assert!(
        c.control_refused.get("malformed").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    assert!(
        c.control_refused.get("unexpected").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    assert_eq!(health(&ctl, "p1"), "up");
}

#[test]
fn an_event_flood_is_bounded_and_counted() {
    use streamon_bus::{PayloadFormat, Publisher, PublisherConfig};
    use streamon_probe::{EventSink, OutputEvent};

    let ctl_keys = keys();
    let (p1, flooder) = (keys(), keys());
    let data = tempfile::tempdir().unwrap();
    let mut c = ControllerConfig::new(
        "ctl",
        "tcp://127.0.0.1:*",
        ctl_keys.clone(),
        data.path().into(),
    );
    c.authorized = vec![p1.public, flooder.public];
    c.heartbeat = Duration::from_millis(100);
    c.down_after = Duration::from_millis(1500);
    // Small queues, so the flood overflows them.
    c.events_rcvhwm = 100;
    c.store_queue = 64;
    let ctl = streamon_ctl::start(c).unwrap();
    let _a = RunningAgent::start("p1", &p1, &ctl, ctl_keys.public, Input::None);

    // The flooding probe: a real publisher with its key, announced on the
    // control channel like any probe.
    let mut publisher = Publisher::bind(&PublisherConfig {
        endpoint: "tcp://127.0.0.1:*".into(),
        probe_id: "noisy".into(),
        format: PayloadFormat::Json,
        sndhwm: streamon_bus::DEFAULT_SNDHWM,
        curve: Some((flooder.clone(), vec![ctl_keys.public])),
    })
    .unwrap();
    let ctx = zmq::Context::new();
    let d = ctx.socket(zmq::DEALER).unwrap();
    d.set_linger(0).unwrap();
    d.set_curve_serverkey(&ctl_keys.public).unwrap();
    d.set_curve_publickey(&flooder.public).unwrap();
    d.set_curve_secretkey(&flooder.secret).unwrap();
    d.connect(ctl.control_endpoint()).unwrap();
    let endpoint = publisher.endpoint().to_string();
    let report = |seq| {
        proto::encode(&Message::Heartbeat(proto::ProbeReport {
            probe: "noisy".into(),
            seq,
            events_endpoint: endpoint.clone(),
            apps: vec![],
            last_nonce: 0,
            packets: 0,
            events: 0,
            refused: 0,
        }))
    };
    d.send(report(1), 0).unwrap();
    wait_for(10, "noisy up", || health(&ctl, "noisy") == "up");
    wait_for(10, "p1 up", || health(&ctl, "p1") == "up");
    std::thread::sleep(Duration::from_millis(300)); // the subscription lands
    let ev = OutputEvent {
        ts: 1,
        app: "flood".into(),
        topic: "alert".into(),
        state_from: "a".into(),
        state_to: "b".into(),
        code: "F".into(),
        level: "HIGH".into(),
        key: "10.0.0.1".into(),
        key_fields: vec![],
        text: "flood".into(),
        features: vec![("x".into(), 1.0)],
        event: "packet:0".into(),
        packet_no: 1,
        raw: None,
    };
    const N: u64 = 100_000;
    for _ in 0..N {
        publisher.emit(&ev);
    }
    assert_eq!(publisher.stats().sent, N);
    // Meanwhile the controller keeps serving p1.
    ctl.op(Op::Deploy {
        probe: "p1".into(),
        app: "ddos".into(),
        xml: app("ddos"),
    })
    .unwrap();
    wait_for(20, "p1 served during the flood", || {
        synced(&ctl, "p1", &["ddos"])
    });
    d.send(report(2), 0).unwrap();
    // Events that libzmq dropped after the last one received show only
    // when a later one arrives (its sequence number tells how many came
    // before it): one more event every 100 ms until the counts meet.
    wait_for(30, "the flood accounted for", || {
        publisher.emit(&ev);
        std::thread::sleep(Duration::from_millis(100));
        let c = ctl.view().counters;
        c.events_received + c.events_lost == publisher.stats().sent
    });
    wait_for(10, "the store accounted for", || {
        let c = ctl.view().counters;
        c.store_written + c.store_queue_full_drops == c.events_received
    });
    // The flood overflowed the bounded queues (libzmq's high-water marks,
    // counted from the sequence gaps, and the store's queue), and every
    // event is accounted for.
    let v = ctl.view();
    let c = &v.counters;
    eprintln!("after the flood: {c:?}");
    assert!(c.events_lost + c.store_queue_full_drops > 0, "{c:?}");
    assert!(v.alerts.len() <= 200, "the alert list is bounded");
    assert_eq!(health(&ctl, "p1"), "up");
}
