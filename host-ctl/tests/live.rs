//! `streamon run --iface` on a veth pair in a network namespace made by the
//! test, fed by `tcpreplay` with real and generated captures:
//!
//! * every frame tcpreplay sent is in the run's counters as read or
//!   dropped by the kernel (`--stats-json`: `capture.frames +
//!   capture.kernel_drops + capture.left_in_ring = sent`), and the probe
//!   saw every frame read;
//! * the frames the run saw (`--write-pcap`) are the file's, in order,
//!   byte for byte;
//! * the live run's events equal, byte for byte, those of `streamon run
//!   --pcap` on the frames it saw. They are not those of a run on the
//!   original file: the live packet time is the kernel's receive time,
//!   and rates, windows and timeouts follow packet time. Replayed at the
//!   file's own pace, a short capture whose events depend on counts and
//!   ratios gives the same (app, key, transition, packet number) as the
//!   file;
//! * it stops on Ctrl-C (SIGINT) and on `--count`, at 1, 2 and 4 threads;
//! * an unknown interface and a missing CAP_NET_RAW are clear errors.
//!
//! The namespace tests need root (CI runs as root); otherwise they print
//! "skipped: needs root" and return.

mod common;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use streamon_capture::testbed::{is_root, Testbed};
use streamon_packet::pcap::PcapSource;

const BIN: &str = env!("CARGO_BIN_EXE_streamon");

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn trace(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces")).join(name)
}

fn app_args() -> Vec<String> {
    let mut v = Vec::new();
    for app in [
        "conficker",
        "ddos",
        "dns_nxdomain",
        "modbus_scan",
        "p2p",
        "portscan",
    ] {
        v.push("--app".into());
        v.push(
            root()
                .join("apps")
                .join(format!("{app}.xml"))
                .display()
                .to_string(),
        );
    }
    v
}

fn frames_of(path: &Path) -> Vec<Vec<u8>> {
    let mut src = PcapSource::open(path).expect("pcap opens");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("pcap reads") {
        out.push(f.data.to_vec());
    }
    out
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("streamon-live-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

enum Stop {
    Signal,
    Count(u64),
}

struct LiveRun {
    sent: u64,
    stats: serde_json::Value,
    events: PathBuf,
    seen: PathBuf,
    stderr: String,
}

/// Starts `streamon run --iface` inside the namespace, waits until it
/// captures, replays `file` with `replay_opts`, stops it, and collects.
fn live_run(
    bed: &Testbed,
    dir: &Path,
    file: &Path,
    replay_opts: &[&str],
    threads: u16,
    stop: Stop,
) -> LiveRun {
    let events = dir.join("live.jsonl");
    let seen = dir.join("live.pcap");
    let stats = dir.join("live.json");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/var/run/netns/{}", bed.netns))
        .arg(BIN)
        .arg("run")
        .args(app_args())
        .args(["--iface", &bed.rx, "--threads", &threads.to_string()])
        .arg("--events")
        .arg(&events)
        .arg("--write-pcap")
        .arg(&seen)
        .arg("--stats-json")
        .arg(&stats)
        .args(["--duration", "60"]);
    if let Stop::Count(n) = stop {
        cmd.args(["--count", &n.to_string()]);
    }
    // nsenter execs the command: the child's pid is streamon's.
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter starts");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    common::wait_for_line(&mut err, "capturing on", "capturing");
    let replayed = bed.replay(file, replay_opts).expect("tcpreplay");
    assert_eq!(replayed.failed, 0, "tcpreplay failed to send some frames");
    if let Stop::Signal = stop {
        // Let the last partly filled block time out (10 ms) and be read.
        std::thread::sleep(Duration::from_millis(500));
        common::interrupt(&child);
    }
    let rest = common::finish(&mut child, &mut err);
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats written")).expect("stats json");
    LiveRun {
        sent: replayed.sent,
        stats,
        events,
        seen,
        stderr: rest,
    }
}

fn offline_events(dir: &Path, pcap: &Path) -> Vec<u8> {
    let out = dir.join("offline.jsonl");
    let st = Command::new(BIN)
        .arg("run")
        .args(app_args())
        .arg("--pcap")
        .arg(pcap)
        .arg("--events")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .expect("streamon runs");
    assert!(st.success());
    std::fs::read(&out).expect("offline events")
}

fn n(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or_else(|| panic!("{path:?} in stats"))
}

/// The accounting and equality checks every live run must pass; returns
/// the number of events.
fn check(run: &LiveRun, original: &Path, dir: &Path, what: &str) -> usize {
    let c = &run.stats["capture"];
    let read = n(c, &["frames"]);
    let dropped = n(c, &["kernel_drops"]);
    let left = n(c, &["left_in_ring"]);
    assert_eq!(
        read + dropped + left,
        run.sent,
        "{what}: read + dropped + left = sent\n{}",
        run.stderr
    );
    assert_eq!(
        n(&run.stats, &["probe", "packets"]),
        read,
        "{what}: the probe saw every frame read"
    );
    assert!(run.stderr.contains("--- live capture ---") && run.stderr.contains("kernel drops"));
    let seen = frames_of(&run.seen);
    assert_eq!(
        seen.len() as u64,
        read,
        "{what}: --write-pcap has every frame fed"
    );
    if dropped == 0 && left == 0 {
        assert_eq!(
            seen,
            frames_of(original),
            "{what}: the frames are the file's"
        );
    } else {
        println!(
            "{what}: {dropped} dropped, {left} left in ring: frames not compared with the file"
        );
    }
    let live = std::fs::read(&run.events).expect("live events");
    assert_eq!(
        live,
        offline_events(dir, &run.seen),
        "{what}: live events = offline events on the same frames"
    );
    live.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn live_runs_account_for_every_frame_and_match_the_offline_run() {
    if !is_root() {
        println!(
            "live_runs_account_for_every_frame_and_match_the_offline_run: skipped: needs root"
        );
        return;
    }
    let bed = Testbed::new("L").expect("testbed");
    let dir = tmpdir("a");

    // A generated SYN flood (7,118 frames) at 5 kpps, stopped by --count,
    // on 4 threads: time compressed, the floods alert.
    let flood = dir.join("syn_flood.pcap");
    let frames = streamon_host_ctl::tracegen::syn_flood(1);
    streamon_host_ctl::tracegen::write_pcap(&flood, &frames).expect("pcap written");
    let run = live_run(
        &bed,
        &dir,
        &flood,
        &["--pps=5000"],
        4,
        Stop::Count(frames.len() as u64),
    );
    assert_eq!(run.stats["capture"]["stopped_by"], "count");
    let events = check(&run, &flood, &dir, "syn_flood --count, 4 threads");
    assert!(events > 0, "the compressed flood alerts");

    // A real nmap scan at 20 kpps stopped by Ctrl-C, on 2 threads.
    let scan = trace("ndpi_synscan.pcap");
    let run = live_run(&bed, &dir, &scan, &["--pps=20000"], 2, Stop::Signal);
    assert_eq!(run.stats["capture"]["stopped_by"], "signal");
    check(&run, &scan, &dir, "ndpi_synscan SIGINT, 2 threads");

    // zeek_nmap_vsn.pcap (547 frames over 2.4 s) at the file's own pace, on
    // 1 thread: its two alerts come from NXDOMAIN counts and ratios, so
    // the same keys make the same transitions at the same packets as in a
    // run on the file (times and rates differ by the replay's jitter).
    let vsn = trace("zeek_nmap_vsn.pcap");
    let run = live_run(&bed, &dir, &vsn, &["--multiplier=1"], 1, Stop::Signal);
    check(&run, &vsn, &dir, "zeek_nmap_vsn at 1x, 1 thread");
    let project = |bytes: &[u8]| -> Vec<String> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l).expect("event json");
                format!(
                    "{} {} {} {}->{} {} {}",
                    v["app"],
                    v["topic"],
                    v["key"],
                    v["state_from"],
                    v["state_to"],
                    v["event"],
                    v["packet_no"]
                )
            })
            .collect()
    };
    let live = project(&std::fs::read(&run.events).expect("events"));
    let original = project(&offline_events(&dir, &vsn));
    assert!(!original.is_empty());
    assert_eq!(
        live, original,
        "same transitions at the same packets as the file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_interface_and_missing_permission_are_clear_errors() {
    let out = Command::new(BIN)
        .arg("run")
        .args(app_args())
        .args(["--iface", "nosuch0"])
        .output()
        .expect("streamon runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no network interface named \"nosuch0\""),
        "{err}"
    );
    assert!(
        !err.contains("--- summary ---"),
        "nothing ran, nothing summarised: {err}"
    );

    // A pre-filter that is not a `tcpdump -ddd` program: refused with the
    // line, before any capture is opened.
    let bad = std::env::temp_dir().join(format!("streamon-bad-{}.bpf", std::process::id()));
    std::fs::write(&bad, "2\n40 0 0 12\n6 0 0\n").expect("write");
    let out = Command::new(BIN)
        .arg("run")
        .args(app_args())
        .args(["--iface", "lo", "--bpf"])
        .arg(&bad)
        .output()
        .expect("streamon runs");
    let _ = std::fs::remove_file(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a `tcpdump -ddd` program") && err.contains("line 3"),
        "{err}"
    );

    // Without CAP_NET_RAW (as root: drop to nobody; as a user: as is).
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
        ]);
        c
    } else {
        Command::new(BIN)
    };
    let out = cmd
        .arg("run")
        .args(app_args())
        .args(["--iface", "lo"])
        .output()
        .expect("streamon runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs CAP_NET_RAW"), "{err}");
}
