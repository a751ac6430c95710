//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver's WebDriver HTTP API. The page is loaded once; the test
//! then reads the DOM while things change underneath it: the probes and
//! their applications appear, an alert raised by a capture shows up live,
//! and a probe that stops reporting turns `down`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (installed by
//! `scripts/test.sh`); without them it prints why and returns.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use streamon_ctl::http::request;
use streamon_ctl::{Agent, AgentConfig, ControllerConfig, Input, Op};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    child: Child,
    addr: String,
    session: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
        };
        wait_for(30, "chromedriver ready", || {
            request(&d.addr, "GET", "/status", None)
                .ok()
                .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        d
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (status, answer) =
            request(&self.addr, method, path, body.as_deref().map(str::as_bytes))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&answer).unwrap_or_default();
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn script(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Texts of the elements matching a CSS selector, through WebDriver's
    /// own element lookup.
    fn texts(&self, css: &str) -> Vec<String> {
        let found = self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map(|els| {
                els.iter()
                    .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_string))
                    .map(|id| {
                        self.session_call("GET", &format!("/element/{id}/text"), None)
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page shows, read from its DOM.
const READ_DOM: &str = r##"
return {
  probes: Array.from(document.querySelectorAll("tr.probe")).map(tr => ({
    name: tr.dataset.probe,
    health: tr.dataset.health,
    apps: Array.from(tr.querySelectorAll(".app")).map(a => a.dataset.app + ":" + a.dataset.state)
  })),
  alerts: Array.from(document.querySelectorAll("#alerts li.alert")).map(li =>
    li.dataset.probe + "/" + li.dataset.app + "/" + li.dataset.key),
  updated: document.getElementById("updated").textContent
};"##;

fn probe_row(dom: &Value, name: &str) -> Option<(String, Vec<String>)> {
    dom["probes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| {
            (
                p["health"].as_str().unwrap_or_default().to_string(),
                p["apps"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
}

#[test]
fn dashboard_shows_probes_apps_and_live_alerts_in_chromium() {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        println!("skipped: needs the Debian packages chromium and chromium-driver");
        return;
    }
    let ctl_keys = keys();
    let data = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let mut c = ControllerConfig::new(
        "lab",
        "tcp://127.0.0.1:*",
        ctl_keys.clone(),
        data.path().into(),
    );
    c.heartbeat = Duration::from_millis(100);
    c.down_after = Duration::from_millis(800);
    c.http = Some("127.0.0.1:0".into());
    // Any probe key: this test is about the page, not admission.
    let (k1, k2) = (keys(), keys());
    c.authorized = vec![k1.public, k2.public];
    let ctl = streamon_ctl::start(c).unwrap();
    let start = |name: &str, k: &streamon_bus::curve::KeyPair, input| {
        let mut agent = Agent::start(AgentConfig {
            probe_id: name.into(),
            controller: ctl.control_endpoint().to_string(),
            controller_key: ctl_keys.public,
            keys: k.clone(),
            events_bind: "tcp://127.0.0.1:*".into(),
            events_advertise: None,
            extra_subscribers: vec![],
            heartbeat: Duration::from_millis(100),
            input,
        })
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        (stop, std::thread::spawn(move || agent.run(&s).unwrap()))
    };
    let (_stop1, _t1) = start("edge-1", &k1, Input::Spool(spool_dir.path().into()));
    let (stop2, t2) = start("edge-2", &k2, Input::None);
    wait_for(10, "both probes up", || {
        let v = ctl.view();
        ["edge-1", "edge-2"]
            .iter()
            .all(|p| v.probes.get(*p).is_some_and(|p| p.health == "up"))
    });
    for (p, a) in [
        ("edge-1", "portscan"),
        ("edge-1", "ddos"),
        ("edge-2", "modbus_scan"),
    ] {
        ctl.op(Op::Deploy {
            probe: p.into(),
            app: a.into(),
            xml: app(a),
        })
        .unwrap();
    }

    let driver = Driver::start();
    let url = format!("http://{}/", ctl.http_addr().unwrap());
    driver.session_call("POST", "/url", Some(json!({ "url": url })));
    let title = driver.session_call("GET", "/title", None);
    assert_eq!(title, "streamon controller");

    // Probes and their applications, as the page draws them.
    let mut dom = Value::Null;
    wait_for(20, "probes and apps in the page", || {
        dom = driver.script(READ_DOM);
        probe_row(&dom, "edge-1")
            == Some((
                "up".into(),
                vec!["ddos:synced".into(), "portscan:synced".into()],
            ))
            && probe_row(&dom, "edge-2") == Some(("up".into(), vec!["modbus_scan:synced".into()]))
    });
    assert_eq!(dom["alerts"], json!([]), "no alert yet");
    let names = driver.texts("tr.probe td.name");
    assert_eq!(names, ["edge-1", "edge-2"]);

    // A capture replayed on edge-1: its alert appears without a reload.
    let expected: BTreeSet<String> = offline("portscan", "ndpi_synscan.pcap")
        .into_iter()
        .filter(|e| e.topic == "alert")
        .map(|e| format!("edge-1/{}/{}", e.app, e.key))
        .collect();
    spool(spool_dir.path(), "ndpi_synscan.pcap", "scan.pcap");
    wait_for(30, "the live alert in the page", || {
        dom = driver.script(READ_DOM);
        let shown: BTreeSet<String> = dom["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        shown == expected
    });
    let alert_text = driver.texts("#alerts li.alert");
    assert!(
        alert_text
            .iter()
            .any(|t| t.contains("172.16.0.8-64.13.134.52")),
        "{alert_text:?}"
    );

    // edge-2 stops reporting: the page turns it down.
    stop2.store(true, Ordering::Relaxed);
    t2.join().unwrap();
    wait_for(20, "edge-2 down in the page", || {
        dom = driver.script(READ_DOM);
        probe_row(&dom, "edge-2").is_some_and(|(h, _)| h == "down")
    });
    assert_eq!(probe_row(&dom, "edge-1").unwrap().0, "up");

    // Keep a screenshot for people to look at.
    let png = driver.session_call("GET", "/screenshot", None);
    if let (Some(b64), Ok(dir)) = (png.as_str(), std::env::var("STREAMON_SCREENSHOT_DIR")) {
        std::fs::write(format!("{dir}/dashboard.b64"), b64).unwrap();
    }
}
