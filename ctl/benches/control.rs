//! Control-plane round trips on loopback, with CURVE: an operator's swap
//! until the probe's acknowledgement is in the controller's view, and a
//! status command until its answer is. Prints p50/p99/max over the runs
//! (a bench binary, not criterion: each sample is a whole round trip
//! through two threads and two sockets).
//!
//! ```text
//! cargo bench -p streamon-ctl --bench control
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamon_bus::curve::KeyPair;
use streamon_ctl::proto;
use streamon_ctl::{Agent, AgentConfig, ControllerConfig, Input, Op};

const RUNS: usize = 200;

fn main() {
    let ctl_keys = KeyPair::generate().expect("CURVE");
    let p1 = KeyPair::generate().expect("CURVE");
    let data = tempfile::tempdir().expect("tempdir");
    let mut c = ControllerConfig::new(
        "bench",
        "tcp://127.0.0.1:*",
        ctl_keys.clone(),
        data.path().into(),
    );
    c.authorized = vec![p1.public];
    c.heartbeat = Duration::from_millis(200);
    let ctl = streamon_ctl::start(c).expect("controller");
    let mut agent = Agent::start(AgentConfig {
        probe_id: "p1".into(),
        controller: ctl.control_endpoint().to_string(),
        controller_key: ctl_keys.public,
        keys: p1,
        events_bind: "tcp://127.0.0.1:*".into(),
        events_advertise: None,
        extra_subscribers: vec![],
        heartbeat: Duration::from_millis(200),
        input: Input::None,
    })
    .expect("agent");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || agent.run(&s).expect("agent runs"));
    while ctl.view().probes.get("p1").is_none_or(|p| p.health != "up") {
        std::thread::sleep(Duration::from_millis(5));
    }
    let apps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps");
    let a = std::fs::read_to_string(apps.join("portscan.xml")).expect("app");
    // The same program with a trailing comment: another digest.
    let b = format!("{a}<!-- b -->\n");
    ctl.op(Op::Deploy {
        probe: "p1".into(),
        app: "x".into(),
        xml: a.clone(),
    })
    .expect("deploy");
    let reported = |xml: &str| {
        let d = proto::digest(xml);
        ctl.view()
            .probes
            .get("p1")
            .is_some_and(|p| p.reported.iter().any(|r| r.name == "x" && r.digest == d))
    };
    while !reported(&a) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut swaps = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let xml = if i % 2 == 0 { &b } else { &a };
        let t0 = Instant::now();
        ctl.op(Op::Swap {
            probe: "p1".into(),
            app: "x".into(),
            xml: xml.clone(),
        })
        .expect("swap");
        while !reported(xml) {
            std::hint::spin_loop();
        }
        swaps.push(t0.elapsed());
    }
    let mut statuses = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let before = ctl.view().probes["p1"].status.clone();
        let t0 = Instant::now();
        ctl.op(Op::Status { probe: "p1".into() }).expect("status");
        // The status answer carries the probe's counters, which change
        // with every command: wait for a new one.
        while ctl.view().probes["p1"].status == before {
            std::hint::spin_loop();
        }
        statuses.push(t0.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    t.join().expect("agent thread");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "control round trips, {RUNS} runs each, loadavg {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (name, mut v) in [
        ("swap (check + plan + install on the probe)", swaps),
        ("status", statuses),
    ] {
        v.sort();
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        println!(
            "{name:<44} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}",
            q(0.5),
            q(0.99),
            v[v.len() - 1]
        );
    }
}
