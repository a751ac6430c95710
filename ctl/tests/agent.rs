//! The probe agent against a hand-driven control peer: every refusal has a
//! reason and a counter, replays are refused, only the controller's key is
//! obeyed, and commands change applications without touching the others.

mod common;

use std::time::{Duration, Instant};

use common::*;
use streamon_bus::curve::KeyPair;
use streamon_ctl::proto::{self, Message, Reason};
use streamon_ctl::{Agent, AgentConfig, Input};

/// A controller stand-in: a CURVE-server ROUTER.
struct FakeController {
    router: zmq::Socket,
    _ctx: zmq::Context,
    peer: Option<Vec<u8>>,
}

impl FakeController {
    fn bind(keys: &KeyPair, endpoint: &str) -> FakeController {
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER).unwrap();
        router.set_linger(0).unwrap();
        router.set_curve_server(true).unwrap();
        router.set_curve_secretkey(&keys.secret).unwrap();
        router.bind(endpoint).unwrap();
        FakeController {
            router,
            _ctx: ctx,
            peer: None,
        }
    }

    fn endpoint(&self) -> String {
        self.router.get_last_endpoint().unwrap().unwrap()
    }

    /// The next message from the agent, driving it meanwhile.
    fn next(&mut self, agent: &mut Agent, secs: u64) -> Option<Message> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            agent.turn(Duration::from_millis(5)).unwrap();
            if let Ok(frames) = self.router.recv_multipart(zmq::DONTWAIT) {
                assert_eq!(frames.len(), 2, "identity + one frame");
                self.peer = Some(frames[0].clone());
                return Some(proto::decode(&frames[1]).expect("the agent sends valid messages"));
            }
        }
        None
    }

    /// The next message that is not a report.
    fn answer(&mut self, agent: &mut Agent) -> Message {
        loop {
            match self.next(agent, 10).expect("an answer") {
                Message::Announce(_) | Message::Heartbeat(_) | Message::Welcome { .. } => {}
                m => return m,
            }
        }
    }

    fn send_raw(&self, frames: Vec<Vec<u8>>) {
        let mut all = vec![self.peer.clone().expect("the agent has spoken")];
        all.extend(frames);
        self.router.send_multipart(all, 0).unwrap();
    }

    fn send(&self, msg: &Message) {
        self.send_raw(vec![proto::encode(msg)]);
    }
}

fn agent(controller: &str, ctl: &KeyPair, input: Input) -> Agent {
    Agent::start(AgentConfig {
        probe_id: "p1".into(),
        controller: controller.into(),
        controller_key: ctl.public,
        keys: keys(),
        events_bind: "tcp://127.0.0.1:*".into(),
        events_advertise: None,
        extra_subscribers: vec![],
        heartbeat: Duration::from_millis(200),
        input,
    })
    .unwrap()
}

fn refusal(m: &Message) -> (Option<u64>, Reason, String) {
    match m {
        Message::Refuse {
            nonce,
            reason,
            detail,
            ..
        } => (*nonce, *reason, detail.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refusals_are_answered_with_reasons_and_counted() {
    let ctl = keys();
    let mut fake = FakeController::bind(&ctl, "tcp://127.0.0.1:*");
    let mut a = agent(&fake.endpoint(), &ctl, Input::None);
    let Some(Message::Announce(r)) = fake.next(&mut a, 10) else {
        panic!("no announce")
    };
    assert_eq!((r.probe.as_str(), r.seq, r.apps.len()), ("p1", 0, 0));

    let deploy = |nonce, app: &str, xml: String| Message::Deploy {
        nonce,
        app: app.into(),
        xml,
    };
    fake.send(&deploy(10, "portscan", app("portscan")));
    let Message::Ack { nonce, apps, .. } = fake.answer(&mut a) else {
        panic!("deploy not acknowledged")
    };
    assert_eq!(nonce, 10);
    assert_eq!(apps[0].digest, proto::digest(&app("portscan")));

    // The same command again, and an older one: replays.
    fake.send(&deploy(10, "portscan", app("portscan")));
    assert_eq!(refusal(&fake.answer(&mut a)).1, Reason::Replayed);
    fake.send(&deploy(5, "ddos", app("ddos")));
    let (nonce, reason, detail) = refusal(&fake.answer(&mut a));
    assert_eq!((nonce, reason), (Some(5), Reason::Replayed));
    assert!(detail.contains("last accepted 10"), "{detail}");

    // Malformed, oversized, unknown, other version, two frames, wrong
    // direction.
    let cases: Vec<(Vec<Vec<u8>>, Reason)> = vec![
        (vec![b"not json".to_vec()], Reason::Malformed),
        (
            vec![vec![b'{'; proto::MAX_MESSAGE_BYTES + 10]],
            Reason::Oversized,
        ),
        (
            vec![br#"{"v":1,"type":"format_disk","nonce":11}"#.to_vec()],
            Reason::UnknownType,
        ),
        (
            vec![br#"{"v":2,"type":"status","nonce":11}"#.to_vec()],
            Reason::Version,
        ),
        (vec![b"{}".to_vec(), b"{}".to_vec()], Reason::Malformed),
        (
            vec![br#"{"v":1,"type":"deploy","nonce":11,"app":"x"}"#.to_vec()],
            Reason::Invalid,
        ),
        (
            vec![proto::encode(&Message::Ack {
                probe: "p1".into(),
                nonce: 1,
                command: "deploy".into(),
                detail: String::new(),
                apps: vec![],
            })],
            Reason::Unexpected,
        ),
    ];
    for (frames, want) in cases {
        fake.send_raw(frames);
        let (_, reason, detail) = refusal(&fake.answer(&mut a));
        assert_eq!(reason, want, "{detail}");
    }

    // A program that does not check, an unknown application, a deploy of
    // an installed one.
    fake.send(&deploy(11, "bad", "<streamon><event/></streamon>".into()));
    let (_, reason, detail) = refusal(&fake.answer(&mut a));
    assert_eq!(reason, Reason::CheckFailed);
    assert!(detail.starts_with("bad.xml:1:"), "{detail}");
    fake.send(&Message::Start {
        nonce: 12,
        app: "nope".into(),
    });
    assert_eq!(refusal(&fake.answer(&mut a)).1, Reason::UnknownApp);
    fake.send(&deploy(13, "portscan", app("portscan")));
    assert_eq!(refusal(&fake.answer(&mut a)).1, Reason::AlreadyDeployed);

    // The controller sets the heartbeat interval, within bounds.
    fake.send(&Message::Welcome {
        controller: "c".into(),
        heartbeat_ms: 1,
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.heartbeat() != Duration::from_millis(50) && Instant::now() < deadline {
        a.turn(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(
        a.heartbeat(),
        Duration::from_millis(50),
        "1 ms is raised to 50"
    );

    // Still alive and answering.
    fake.send(&Message::Status { nonce: 14 });
    let Message::Ack {
        command, detail, ..
    } = fake.answer(&mut a)
    else {
        panic!("status not acknowledged")
    };
    assert_eq!(command, "status");
    let status: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert!(status["apps"]["portscan"].is_object(), "{status}");

    let s = a.stats();
    let count = |r: &str| s.refused.get(r).copied().unwrap_or(0);
    assert_eq!(count("replayed"), 2);
    assert_eq!(count("malformed"), 2);
    assert_eq!(count("oversized"), 1);
    assert_eq!(count("unknown_type"), 1);
    assert_eq!(count("version"), 1);
    assert_eq!(count("invalid"), 1);
    assert_eq!(count("unexpected"), 1);
    assert_eq!(count("check_failed"), 1);
    assert_eq!(count("unknown_app"), 1);
    assert_eq!(count("already_deployed"), 1);
    assert_eq!(s.accepted, 2, "the deploy and the status");
    assert!(a
        .recent_log()
        .any(|l| l.contains("refused deploy (nonce 5): replayed")));
}

#[test]
fn a_controller_without_the_key_cannot_deploy() {
    let real = keys();
    let rogue_keys = keys();
    let mut rogue = FakeController::bind(&rogue_keys, "tcp://127.0.0.1:*");
    let endpoint = rogue.endpoint();
    let mut a = agent(&endpoint, &real, Input::None);
    // The rogue never hears from the probe: the handshake fails.
    assert!(rogue.next(&mut a, 2).is_none());
    // On a loaded machine the monitor's report may come a little later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().handshake_failures == 0 && Instant::now() < deadline {
        a.turn(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(a.probe().apps().len(), 0);
    assert!(a.stats().handshake_failures >= 1, "{:?}", a.stats());
    assert!(
        a.recent_log().any(|l| l.contains("CURVE handshake failed")),
        "refusal logged"
    );
    // The real controller on the same endpoint is obeyed.
    drop(rogue);
    let mut fake = FakeController::bind(&real, &endpoint);
    loop {
        match fake.next(&mut a, 10).expect("the probe reconnects") {
            Message::Announce(_) | Message::Heartbeat(_) => break,
            _ => {}
        }
    }
    fake.send(&Message::Deploy {
        nonce: 1,
        app: "ddos".into(),
        xml: app("ddos"),
    });
    assert!(matches!(fake.answer(&mut a), Message::Ack { .. }));
    assert_eq!(a.probe().apps().len(), 1);
}

#[test]
fn swap_stop_and_remove_leave_the_other_applications_state() {
    let ctl = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut fake = FakeController::bind(&ctl, "tcp://127.0.0.1:*");
    let mut a = agent(&fake.endpoint(), &ctl, Input::Spool(dir.path().into()));
    fake.next(&mut a, 10).expect("announce");
    let mut nonce = 0;
    let mut cmd = |fake: &mut FakeController, a: &mut Agent, m: &dyn Fn(u64) -> Message| {
        nonce += 1;
        fake.send(&m(nonce));
        match fake.answer(a) {
            Message::Ack { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    for name in ["portscan", "ddos", "p2p"] {
        cmd(&mut fake, &mut a, &|n| Message::Deploy {
            nonce: n,
            app: name.into(),
            xml: app(name),
        });
    }
    spool(dir.path(), "ndpi_synscan.pcap", "1.pcap");
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.stats().files_done < 1 && Instant::now() < deadline {
        a.turn(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(a.stats().files_done, 1);
    let keys_of = |a: &Agent, name: &str| {
        a.probe()
            .apps()
            .iter()
            .find(|x| x.name() == name)
            .map(|x| (x.tracked_keys(), x.stats().matched.clone()))
            .unwrap()
    };
    let portscan_before = keys_of(&a, "portscan");
    assert!(portscan_before.0 > 0, "the scan left tracked keys");
    // Swap ddos for p2p's program, stop p2p, remove nothing yet.
    cmd(&mut fake, &mut a, &|n| Message::Swap {
        nonce: n,
        app: "ddos".into(),
        xml: app("p2p"),
    });
    cmd(&mut fake, &mut a, &|n| Message::Stop {
        nonce: n,
        app: "p2p".into(),
    });
    assert_eq!(
        keys_of(&a, "portscan"),
        portscan_before,
        "untouched by swap/stop"
    );
    let p2p_before = keys_of(&a, "p2p");
    let names: Vec<String> = a.apps().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["portscan", "ddos", "p2p"]);
    assert_eq!(a.apps()[1].digest, proto::digest(&app("p2p")));
    assert_eq!(keys_of(&a, "ddos").0, 0, "the swapped app starts fresh");
    // More packets: portscan goes on from its state, p2p (stopped) sees none.
    spool(dir.path(), "bss_port_scan.pcap", "2.pcap");
    while a.stats().files_done < 2 && Instant::now() < deadline {
        a.turn(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(keys_of(&a, "p2p"), p2p_before, "a stopped app sees nothing");
    let after = keys_of(&a, "portscan");
    let total = |m: &[u64]| m.iter().sum::<u64>();
    assert!(
        total(&after.1) > total(&portscan_before.1),
        "portscan kept counting"
    );
    assert!(after.0 >= portscan_before.0, "and kept its keys");
    cmd(&mut fake, &mut a, &|n| Message::Remove {
        nonce: n,
        app: "ddos".into(),
    });
    assert_eq!(keys_of(&a, "portscan"), after);
    assert!(dir.path().join("1.pcap.done").exists());
}
