//! A probe that captures (live or from a file) *and* subscribes to another
//! probe (D-StreaMon's correlating probe), as processes over real libzmq:
//!
//! * a first-tier probe replays `ndpi_synscan.pcap` with
//!   `apps/scan_symptom.xml` and publishes its symptom (JSON);
//! * the second probe runs `apps/peer_watch.xml` (a message event puts the
//!   reported host on a watch list, a packet event confirms it from the
//!   probe's own traffic) with other packet applications, and
//!   - captures live on a veth pair in a network namespace fed by
//!     `tcpreplay` (root; "skipped: needs root" otherwise), stopped by
//!     SIGINT, `--count` and `--idle-exit` at 1, 4 and 2 threads: the
//!     reported host is confirmed once, every frame sent is read or
//!     counted, every message sent is received or counted
//!     (`received + lost = sent`, `delivered + queue_dropped + refused =
//!     received`);
//!   - replays a capture file from a FIFO written only once the symptom
//!     has arrived (a defined place for the message: the first drain
//!     point, after frame 64) at `--threads 1` and `--threads 4`: the
//!     same events byte for byte and the same counters;
//! * a probe on messages alone stops on SIGINT with its summary.
//!
//! The endpoints are `ipc://` files: they reach into the namespace, where
//! the loopback of the host is not.

#![cfg(feature = "bus")]

mod common;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use streamon_bus::{Payload, Subscriber, SubscriberConfig};
use streamon_capture::testbed::{is_root, Testbed};

const BIN: &str = env!("CARGO_BIN_EXE_streamon");

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn trace(name: &str) -> PathBuf {
    root().join("../shared/traces").join(name)
}

fn app(name: &str) -> PathBuf {
    root().join("apps").join(name)
}

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("streamon-chain-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .expect("stats json")
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// The first tier: `scan_symptom.xml` on `ndpi_synscan.pcap`, publishing
/// JSON on `endpoint` once one subscriber is there. Returns its symptom
/// events and how many events it sent.
fn publish(dir: &Path, endpoint: &str, start_time: Option<u64>) -> (Vec<serde_json::Value>, u64) {
    let events = dir.join("site1.jsonl");
    let stats = dir.join("site1.json");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--probe-id", "site1", "--app"])
        .arg(app("scan_symptom.xml"))
        .arg("--pcap")
        .arg(trace("ndpi_synscan.pcap"))
        .arg("--events")
        .arg(&events)
        .arg("--stats-json")
        .arg(&stats)
        .args(["--publish", endpoint, "--publish-format", "json"])
        .args(["--wait-subscribers", "1", "--wait-timeout", "60"]);
    if let Some(t) = start_time {
        cmd.args(["--start-time", &t.to_string()]);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("subscriptions    1"), "{err}");
    let sent = n(&json(&stats)["bus"]["publisher"]["sent"]);
    (lines(&events), sent)
}

/// Every message the publisher sent is accounted for at the subscriber.
fn check_messages(stats: &serde_json::Value, sent: u64, what: &str) {
    let inbox = &stats["bus"]["inbox"];
    let sub = &inbox["subscriptions"][0];
    let received = n(&sub["received"]);
    assert_eq!(
        received + n(&sub["lost"]),
        sent,
        "{what}: received + lost = sent\n{stats}"
    );
    let refused: u64 = inbox["refused"].as_object().unwrap().values().map(n).sum();
    assert_eq!(
        n(&inbox["delivered"]) + n(&inbox["queue_dropped"]) + refused,
        received,
        "{what}: delivered + dropped + refused = received\n{stats}"
    );
    assert_eq!(n(&inbox["delivered"]), n(&stats["probe"]["messages"]));
}

/// peer_watch's events: the reported host watched (log), then confirmed
/// from this probe's own packets (alert), once.
fn check_confirmed(events: &[serde_json::Value], host: &str, what: &str) {
    let mine: Vec<_> = events.iter().filter(|e| e["app"] == "peer_watch").collect();
    assert_eq!(mine.len(), 2, "{what}: {mine:?}");
    assert_eq!(mine[0]["topic"], "log");
    assert_eq!(mine[0]["event"], "message:0");
    assert_eq!(mine[0]["key"], host);
    assert_eq!(mine[0]["state_to"], "watched");
    let text = mine[0]["text"].as_str().unwrap();
    assert!(text.contains("probe site1 reports SCAN"), "{what}: {text}");
    assert_eq!(mine[1]["topic"], "alert");
    assert_eq!(mine[1]["event"], "packet:1");
    assert_eq!(mine[1]["key"], host);
    assert_eq!(mine[1]["state_to"], "confirmed");
}

enum Stop {
    Signal,
    Count(u64),
    Idle,
}

struct LiveChained {
    events: Vec<serde_json::Value>,
    stats: serde_json::Value,
    stderr: String,
    frames_sent: u64,
    messages_sent: u64,
    host: String,
}

/// Starts the second probe capturing in the namespace and subscribed to
/// the first; runs the first; once its symptom has had time to arrive,
/// replays the capture into the link; stops the second probe as `stop`
/// says.
fn live_chained(bed: &Testbed, tag: &str, threads: u16, stop: Stop) -> LiveChained {
    let dir = scratch(tag);
    let endpoint = format!("ipc://{}", dir.join("site1.sock").display());
    let events = dir.join("live.jsonl");
    let stats = dir.join("live.json");
    // The second probe publishes too: the test sees from its `log` event
    // that the symptom has reached the applications before it sends the
    // packets (libzmq retries the connection until the socket exists).
    let own = format!("ipc://{}", dir.join("site2.sock").display());
    let mut watch = Subscriber::connect(&SubscriberConfig {
        endpoints: vec![own.clone()],
        topics: vec!["log".into()],
        ..Default::default()
    })
    .expect("subscriber");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/var/run/netns/{}", bed.netns))
        .arg(BIN)
        .args(["run", "--probe-id", "site2", "--app"])
        .arg(app("peer_watch.xml"))
        .arg("--app")
        .arg(app("portscan.xml"))
        .arg("--app")
        .arg(app("scan_symptom.xml"))
        .args(["--iface", &bed.rx, "--threads", &threads.to_string()])
        .args(["--subscribe", &endpoint])
        .args(["--publish", &own, "--publish-format", "json"])
        .args(["--wait-subscribers", "1", "--wait-timeout", "60"])
        .arg("--events")
        .arg(&events)
        .arg("--stats-json")
        .arg(&stats)
        .args(["--duration", "120"]);
    match stop {
        Stop::Signal => {}
        Stop::Count(c) => {
            cmd.args(["--count", &c.to_string()]);
        }
        Stop::Idle => {
            cmd.args(["--idle-exit", "8"]);
        }
    }
    let mut child: Child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter starts");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    common::wait_for_line(&mut err, "capturing on", "capturing");
    // The first tier's clock starts now, as a live probe's would.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let (symptoms, messages_sent) = publish(&dir, &endpoint, Some(now));
    assert_eq!(symptoms.len(), 1, "{symptoms:?}");
    let host = symptoms[0]["key"].as_str().unwrap().to_string();
    // The message crosses a local socket and the subscriber thread's queue
    // to the capture loop, which takes it at its next empty poll (5 ms);
    // peer_watch then logs the host it watches.
    let watching = watch
        .recv_timeout(Duration::from_secs(60))
        .expect("receiving")
        .expect("peer_watch logs the reported host within 60 s");
    let Payload::Record(r) = &watching.payload else {
        panic!("{watching:?}")
    };
    assert_eq!(
        (r.app.as_str(), r.key.as_str()),
        ("peer_watch", host.as_str())
    );
    let replayed = bed
        .replay(&trace("ndpi_synscan.pcap"), &["--pps=20000"])
        .expect("tcpreplay");
    assert_eq!(replayed.failed, 0, "tcpreplay failed to send some frames");
    if let Stop::Signal = stop {
        std::thread::sleep(Duration::from_millis(500));
        common::interrupt(&child);
    }
    let rest = common::finish(&mut child, &mut err);
    LiveChained {
        events: lines(&events),
        stats: json(&stats),
        stderr: rest,
        frames_sent: replayed.sent,
        messages_sent,
        host,
    }
}

#[test]
fn a_live_probe_correlates_its_own_link_with_a_peers_symptoms() {
    if !is_root() {
        eprintln!(
            "a_live_probe_correlates_its_own_link_with_a_peers_symptoms: skipped: needs root"
        );
        return;
    }
    let bed = Testbed::new("C").expect("testbed");
    let frames = streamon_packet::pcap::PcapSource::open(trace("ndpi_synscan.pcap"))
        .map(|mut s| {
            let mut k = 0u64;
            while s.next_frame().expect("trace reads").is_some() {
                k += 1;
            }
            k
        })
        .expect("trace opens");
    let mut projected = Vec::new();
    for (tag, threads, stop, by) in [
        ("sigint", 1, Stop::Signal, "signal"),
        ("count", 4, Stop::Count(frames), "count"),
        ("idle", 2, Stop::Idle, "idle"),
    ] {
        let what = format!("{tag}, {threads} threads");
        let run = live_chained(&bed, tag, threads, stop);
        let c = &run.stats["capture"];
        assert_eq!(c["stopped_by"], by, "{what}\n{}", run.stderr);
        assert_eq!(
            n(&c["frames"]) + n(&c["kernel_drops"]) + n(&c["left_in_ring"]),
            run.frames_sent,
            "{what}: read + dropped + left = sent\n{}",
            run.stderr
        );
        assert_eq!(n(&run.stats["probe"]["packets"]), n(&c["frames"]));
        assert_eq!(run.messages_sent, 1);
        check_messages(&run.stats, run.messages_sent, &what);
        assert!(
            run.stderr.contains("messages delivered 1"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("--- live capture ---"),
            "{}",
            run.stderr
        );
        check_confirmed(&run.events, &run.host, &what);
        // Live packet times differ between runs; what the applications
        // decided, and on which packet, does not.
        projected.push(
            run.events
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {} {} {}",
                        e["app"], e["key"], e["state_to"], e["event"], e["packet_no"]
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(projected[0], projected[1], "1 thread vs 4");
    assert_eq!(projected[0], projected[2], "1 thread vs 2");
}

/// The second probe on a capture file read from a FIFO that the test
/// fills once the symptom has arrived: the message then enters at the
/// first drain point (after frame 64) at any thread count.
fn pcap_chained(threads: u16) -> (Vec<u8>, serde_json::Value, String) {
    let dir = scratch(&format!("pcap{threads}"));
    let endpoint = format!("ipc://{}", dir.join("site1.sock").display());
    let fifo = dir.join("input.pcap");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let events = dir.join("out.jsonl");
    let stats = dir.join("out.json");
    let second = Command::new(BIN)
        .args(["run", "--probe-id", "site2", "--app"])
        .arg(app("peer_watch.xml"))
        .arg("--app")
        .arg(app("portscan.xml"))
        .arg("--app")
        .arg(app("scan_symptom.xml"))
        .arg("--pcap")
        .arg(&fifo)
        .args(["--threads", &threads.to_string(), "--subscribe", &endpoint])
        .args(["--idle-exit", "1", "--max-run", "120"])
        .arg("--events")
        .arg(&events)
        .arg("--stats-json")
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (symptoms, sent) = publish(&dir, &endpoint, None);
    assert_eq!(symptoms.len(), 1, "{symptoms:?}");
    // The symptom crosses a local socket into the subscriber's queue (the
    // publisher sent it long before it exited).
    std::thread::sleep(Duration::from_secs(2));
    // Opening the FIFO for writing releases the replay.
    std::fs::write(&fifo, std::fs::read(trace("ndpi_synscan.pcap")).unwrap()).unwrap();
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let stats = json(&stats);
    check_messages(&stats, sent, &format!("pcap, {threads} threads"));
    let evs = lines(&events);
    check_confirmed(
        &evs,
        symptoms[0]["key"].as_str().unwrap(),
        &format!("pcap, {threads} threads"),
    );
    (std::fs::read(&events).unwrap(), stats, err)
}

#[test]
fn capture_file_and_messages_give_the_same_events_at_1_and_4_threads() {
    let (one, one_stats, one_err) = pcap_chained(1);
    let (four, four_stats, four_err) = pcap_chained(4);
    assert_eq!(
        String::from_utf8_lossy(&one),
        String::from_utf8_lossy(&four),
        "events, 1 vs 4 threads\n{one_err}\n{four_err}"
    );
    assert_eq!(one_stats["probe"], four_stats["probe"]);
    assert_eq!(one_stats["apps"], four_stats["apps"]);
    // The message came after frame 64: peer_watch's confirmation is on a
    // later packet.
    let evs: Vec<serde_json::Value> = String::from_utf8_lossy(&one)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alert = evs
        .iter()
        .find(|e| e["app"] == "peer_watch" && e["topic"] == "alert")
        .unwrap();
    assert!(n(&alert["packet_no"]) > 64, "{alert}");
}

/// A probe on messages alone listens until Ctrl-C, then stops cleanly with
/// its summary and counters (before, SIGINT killed it without either).
#[test]
fn sigint_ends_a_subscribed_probe_with_its_summary() {
    let dir = scratch("sigint");
    let endpoint = format!("ipc://{}", dir.join("nobody.sock").display());
    let stats = dir.join("stats.json");
    let mut child = Command::new(BIN)
        .args(["run", "--app"])
        .arg(app("outbreak.xml"))
        .args(["--subscribe", &endpoint, "--threads", "2"])
        .arg("--stats-json")
        .arg(&stats)
        .arg("--events")
        .arg(dir.join("out.jsonl"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    common::wait_for_line(&mut err, "listening for messages", "listening");
    common::interrupt(&child);
    let rest = common::finish(&mut child, &mut err);
    assert!(rest.contains("--- summary ---"), "{rest}");
    assert!(rest.contains("messages delivered 0"), "{rest}");
    assert_eq!(n(&json(&stats)["bus"]["inbox"]["delivered"]), 0);
}

/// A probe replaying a capture while subscribed handles Ctrl-C: the replay
/// ends at the next drain point (every 64 frames), with the summary, and
/// says so. The capture comes from a FIFO the test keeps open, so the
/// replay is still running when the signal comes.
#[test]
fn sigint_ends_a_subscribed_replay_with_its_summary() {
    use std::io::Write;

    let dir = scratch("sigint-pcap");
    let endpoint = format!("ipc://{}", dir.join("nobody.sock").display());
    let fifo = dir.join("input.pcap");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let child = Command::new(BIN)
        .args(["run", "--app"])
        .arg(app("peer_watch.xml"))
        .arg("--pcap")
        .arg(&fifo)
        .args(["--subscribe", &endpoint, "--threads", "2"])
        .arg("--events")
        .arg(dir.join("out.jsonl"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Half of the capture, and the FIFO stays open: the replay waits.
    let bytes = std::fs::read(trace("ndpi_synscan.pcap")).unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&bytes[..bytes.len() / 2]).unwrap();
    w.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    common::interrupt(&child);
    // The replay sees the flag at its next drain point: give it frames.
    let _ = w.write_all(&bytes[bytes.len() / 2..]);
    drop(w);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("replay stopped by a signal after"), "{err}");
    assert!(err.contains("--- summary ---"), "{err}");
    let frames: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("packets read"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(frames < 2011, "the replay ended early: {frames}\n{err}");
}
