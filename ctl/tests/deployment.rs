//! The deployment as processes (D-StreaMon's first NFV variant): a
//! controller and three probes, each probe in its own network namespace
//! with two veth links to the host (control and events on one, captured
//! traffic on the other). Keys are made and distributed with the CLI,
//! applications deployed with the CLI, captures replayed into the probes'
//! capture links with `tcpreplay` at their recorded pace, and the alerts
//! the controller stores are compared with an offline run of the same
//! program on the same capture. Then one probe is killed: it is marked
//! down, and after a restart it rejoins and gets its application back.
//!
//! Needs root (namespaces, veth, `AF_PACKET`), `ip` and `tcpreplay`; CI
//! runs as root. Otherwise it prints why and returns.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_streamon-ctl");

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "streamon-ctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The namespaces, links and processes of the test; all removed on drop.
struct Testbed {
    tag: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    logs: PathBuf,
}

impl Testbed {
    fn ns(&self, i: usize) -> String {
        format!("sm{}p{i}", self.tag)
    }
    fn host_ctl_if(&self, i: usize) -> String {
        format!("sm{}c{i}", self.tag)
    }
    fn host_tx_if(&self, i: usize) -> String {
        format!("sm{}t{i}", self.tag)
    }

    /// Namespace `i` with `ctl0` (10.231.i.2/24, peer 10.231.i.1 on the
    /// host) and `cap0` (no address, IPv6 off: only replayed frames on it).
    fn add_probe_ns(&mut self, i: usize) {
        let ns = self.ns(i);
        let (c, t) = (self.host_ctl_if(i), self.host_tx_if(i));
        sh(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        sh(&[
            "ip", "link", "add", &c, "type", "veth", "peer", "name", "ctl0", "netns", &ns,
        ]);
        sh(&["ip", "addr", "add", &format!("10.231.{i}.1/24"), "dev", &c]);
        sh(&["ip", "link", "set", &c, "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.231.{i}.2/24"),
            "dev",
            "ctl0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "ctl0", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "link", "add", &t, "type", "veth", "peer", "name", "cap0", "netns", &ns,
        ]);
        sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{t}.disable_ipv6=1"),
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.cap0.disable_ipv6=1",
        ]);
        sh(&["ip", "link", "set", &t, "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "cap0", "up"]);
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) {
        let log = std::fs::File::create(self.logs.join(format!("{name}.log"))).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push((name.to_string(), child));
    }

    fn kill(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (name, _) in &self.children {
            let text =
                std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {name} ---\n"));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn state(api: &str) -> Option<serde_json::Value> {
    let (status, body) = streamon_ctl::http::request(api, "GET", "/api/state", None).ok()?;
    (status == 200).then(|| serde_json::from_slice(&body).ok())?
}

fn probe_field(api: &str, probe: &str, field: &str) -> serde_json::Value {
    state(api)
        .map(|s| s["probes"][probe][field].clone())
        .unwrap_or_default()
}

fn synced(api: &str, probe: &str, app: &str) -> bool {
    let Some(s) = state(api) else { return false };
    let p = &s["probes"][probe];
    p["health"] == "up"
        && p["apps"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["name"] == app && a[0]["state"] == "synced")
}

fn alerts(api: &str, probe: &str) -> BTreeSet<(String, String)> {
    let Some(s) = state(api) else {
        return BTreeSet::new();
    };
    s["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["probe"] == probe)
                .map(|e| {
                    (
                        e["app"].as_str().unwrap_or_default().to_string(),
                        e["key"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn three_probes_in_namespaces_with_tcpreplay() {
    if !is_root() {
        println!("skipped: needs root (network namespaces, veth, AF_PACKET)");
        return;
    }
    if !have("tcpreplay") || !have("ip") {
        println!("skipped: needs `ip` (iproute2) and `tcpreplay`");
        return;
    }
    // (probe, application, capture): each capture holds the attack its
    // application detects (see tests/tests/apps_on_traces.rs).
    let plan = [
        ("p1", "portscan", "ndpi_synscan.pcap"),
        ("p2", "modbus_scan", "dstreamon_device_scan.pcap"),
        ("p3", "ddos", "sddos_synflood_spoofed.pcap"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let logs = d("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut tb = Testbed {
        tag: format!("{}", std::process::id() % 10_000),
        namespaces: Vec::new(),
        children: Vec::new(),
        logs,
    };

    // Keys, made and distributed with the CLI.
    cli(&[
        "keys",
        "gen",
        "--dir",
        &s(&d("ctl")),
        "--name",
        "controller",
    ]);
    for (p, _, _) in plan {
        cli(&[
            "keys",
            "provision",
            "--controller-pub",
            &s(&d("ctl/controller.pub")),
            "--authorized",
            &s(&d("ctl/probes")),
            "--probe",
            p,
            "--out",
            &s(&d(p)),
        ]);
    }

    for i in 1..=plan.len() {
        tb.add_probe_ns(i);
    }
    let port = free_port();
    let api = format!("127.0.0.1:{}", free_port());
    let serve = |tb: &mut Testbed| {
        tb.spawn(
            "controller",
            Command::new(BIN).args([
                "serve",
                "--keys",
                &s(&d("ctl")),
                "--authorized",
                &s(&d("ctl/probes")),
                "--data",
                &s(&d("data")),
                "--bind",
                &format!("tcp://*:{port}"),
                "--http",
                &api,
                "--heartbeat-ms",
                "200",
                "--down-after-ms",
                "1500",
            ]),
        )
    };
    serve(&mut tb);
    wait_for(20, "the controller's API", || state(&api).is_some());
    let start_probe = |tb: &mut Testbed, i: usize| {
        let (p, _, _) = plan[i - 1];
        let ns = tb.ns(i);
        tb.spawn(
            p,
            Command::new("ip").args([
                "netns",
                "exec",
                &ns,
                BIN,
                "probe",
                "--id",
                p,
                "--keys",
                &s(&d(p)),
                "--controller-key",
                &s(&d(&format!("{p}/controller.pub"))),
                "--controller",
                &format!("tcp://10.231.{i}.1:{port}"),
                "--events",
                &format!("tcp://10.231.{i}.2:5560"),
                "--iface",
                "cap0",
                "--heartbeat-ms",
                "200",
            ]),
        );
    };
    for i in 1..=plan.len() {
        start_probe(&mut tb, i);
    }
    for (p, _, _) in plan {
        wait_for(30, &format!("{p} up\n{}", tb.logs()), || {
            probe_field(&api, p, "health") == "up"
        });
    }
    for (p, a, _) in plan {
        let file = root().join("apps").join(format!("{a}.xml"));
        cli(&["app", "deploy", "--api", &api, "--probe", p, &s(&file)]);
    }
    for (p, a, _) in plan {
        wait_for(30, &format!("{a} on {p}\n{}", tb.logs()), || {
            synced(&api, p, a)
        });
    }

    // Replay the three captures at once, at their recorded pace.
    let replays: Vec<(usize, Child)> = (1..=plan.len())
        .map(|i| {
            let c = Command::new("tcpreplay")
                .args(["-q", "-i", &tb.host_tx_if(i), &s(&trace(plan[i - 1].2))])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, c)
        })
        .collect();
    for (i, c) in replays {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tcpreplay into probe {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (p, a, capture) in plan {
        let expected: BTreeSet<(String, String)> = offline(a, capture)
            .into_iter()
            .filter(|e| e.topic == "alert")
            .map(|e| (e.app, e.key))
            .collect();
        assert!(!expected.is_empty(), "{a} alerts on {capture} offline");
        wait_for(
            30,
            &format!("{p}'s alerts {expected:?}\n{}", tb.logs()),
            || alerts(&api, p) == expected,
        );
    }

    // Kill p2: marked down; restarted, it rejoins with its application.
    tb.kill("p2");
    wait_for(20, &format!("p2 down\n{}", tb.logs()), || {
        probe_field(&api, "p2", "health") == "down"
    });
    assert_eq!(probe_field(&api, "p1", "health"), "up");
    start_probe(&mut tb, 2);
    wait_for(30, &format!("p2 re-synchronised\n{}", tb.logs()), || {
        synced(&api, "p2", "modbus_scan")
    });
    assert_eq!(probe_field(&api, "p2", "rejoins"), 1);
    assert_eq!(probe_field(&api, "p2", "times_down"), 1);
    let st = state(&api).unwrap();
    assert_eq!(st["counters"]["auth_refused"], 0, "{}", st["counters"]);
    assert_eq!(st["counters"]["events_lost"], 0, "{}", st["counters"]);
}
