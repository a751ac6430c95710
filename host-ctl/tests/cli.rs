//! The `streamon` command, run as a process: every shipped app on every
//! capture of `shared/traces`, `check` on a broken program, damaged and
//! foreign input files, and `demo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_streamon");
const APPS: &[&str] = &[
    "conficker",
    "ddos",
    "dns_nxdomain",
    "modbus_scan",
    "p2p",
    "portscan",
];

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn traces_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces"))
}

/// Every capture in `shared/traces` (read from the directory, so a new
/// capture is covered without editing this test).
fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(traces_dir())
        .expect("shared/traces")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    v.sort();
    assert!(v.len() >= 19, "{v:?}");
    v
}

fn app(name: &str) -> PathBuf {
    root().join("apps").join(format!("{name}.xml"))
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("streamon-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running streamon")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Frames in a capture, counted by the packet crate's reader.
fn frame_count(path: &Path) -> u64 {
    let mut src = streamon_packet::pcap::PcapSource::open(path).expect("open");
    let mut n = 0;
    while src.next_frame().expect("read").is_some() {
        n += 1;
    }
    n
}

#[test]
fn every_app_on_every_capture_exits_0_with_a_summary() {
    for pcap in captures() {
        let frames = frame_count(&pcap);
        for a in APPS {
            let out = run(&[
                "run",
                "--app",
                app(a).to_str().unwrap(),
                "--pcap",
                pcap.to_str().unwrap(),
                "--format",
                "jsonl",
            ]);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let what = format!("{a} on {}", pcap.display());
            assert!(out.status.success(), "{what}: {:?}\n{stderr}", out.status);
            assert!(stderr.contains("--- summary ---"), "{what}: {stderr}");
            assert!(
                stderr.contains(&format!("packets read      {frames}\n")),
                "{what}: expected {frames} packets\n{stderr}"
            );
            assert!(stderr.contains(&format!("app {a}:")), "{what}: {stderr}");
            let lines = stdout.lines().count();
            assert!(
                stderr.contains(&format!("events written    {lines}\n")),
                "{what}: {stderr}"
            );
            for line in stdout.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
                assert_eq!(v["app"], *a, "{what}: {line}");
            }
        }
    }
}

#[test]
fn all_apps_together_and_stats_json() {
    let dir = scratch("stats");
    let stats = dir.join("stats.json");
    let mut args = vec!["run".to_string()];
    for a in APPS {
        args.push("--app".into());
        args.push(app(a).to_str().unwrap().into());
    }
    let pcap = traces_dir().join("ndpi_synscan.pcap");
    args.extend([
        "--pcap".into(),
        pcap.to_str().unwrap().into(),
        "--format".into(),
        "text".into(),
        "--stats-json".into(),
        stats.to_str().unwrap().into(),
    ]);
    let out = Command::new(BIN).args(&args).output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" portscan alert ") && l.contains("172.16.0.8-64.13.134.52")),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats file")).expect("json");
    assert_eq!(v["probe"]["packets"], frame_count(&pcap));
    for a in APPS {
        assert!(v["apps"][a].is_object(), "{a} missing in {v}");
    }
    assert_eq!(v["apps"]["portscan"]["published"]["alert"], 1);
}

#[test]
fn check_accepts_the_shipped_apps() {
    let mut args = vec!["check".to_string()];
    args.extend(APPS.iter().map(|a| app(a).to_str().unwrap().to_string()));
    let out = Command::new(BIN).args(&args).output().expect("check");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for a in APPS {
        assert!(text(&out.stdout).contains(&format!("{a}.xml: ok")));
    }
}

#[test]
fn check_rejects_a_broken_program_with_its_position() {
    let dir = scratch("check");
    let file = dir.join("broken.xml");
    let line3 = r#"  <event type="packet" selector="proto tcp and bogus 3" primary-key="ip_src">"#;
    let src = format!("<streamon>\n  <statedef id=\"a\"/>\n{line3}\n  </event>\n</streamon>\n");
    std::fs::write(&file, src).unwrap();
    let col = line3.find("bogus").unwrap() + 1;
    let out = run(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("broken.xml:3:{col}: error")),
        "{stderr}"
    );
    assert!(stderr.contains("bogus"), "{stderr}");
    // `run` refuses it the same way, before reading any packet.
    let pcap = traces_dir().join("bss_port_scan.pcap");
    let out = run(&[
        "run",
        "--app",
        file.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("broken.xml:3:{col}")));
}

/// Complete records of a classic little-endian pcap within its first
/// `len` bytes, and the offset of the first record cut short.
fn records_within(data: &[u8], len: usize) -> (u64, usize) {
    let mut off = 24;
    let mut n = 0;
    loop {
        if off + 16 > len {
            return (n, off);
        }
        let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        if off + 16 + incl > len {
            return (n, off);
        }
        off += 16 + incl;
        n += 1;
    }
}

#[test]
fn truncated_capture_fails_and_says_how_far_it_got() {
    let dir = scratch("trunc");
    let orig = std::fs::read(traces_dir().join("ndpi_synscan.pcap")).unwrap();
    assert_eq!(&orig[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let cut = orig.len() / 2 + 7;
    let file = dir.join("cut.pcap");
    std::fs::write(&file, &orig[..cut]).unwrap();
    let (packets, offset) = records_within(&orig, cut);
    assert!(packets > 100);
    let out = run(&[
        "run",
        "--app",
        app("portscan").to_str().unwrap(),
        "--pcap",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "truncated at byte {offset}, after {packets} packets"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("cut.pcap"), "{stderr}");
    // The packets before the damage were processed: the scan was seen.
    assert!(
        stderr.contains(&format!("packets read      {packets}\n")),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("\"topic\":\"alert\""));
}

#[test]
fn non_pcap_and_missing_files_are_clear_errors() {
    let dir = scratch("foreign");
    let file = dir.join("notes.pcap");
    std::fs::write(&file, "hello, this is not a capture\n").unwrap();
    let out = run(&[
        "run",
        "--app",
        app("ddos").to_str().unwrap(),
        "--pcap",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("notes.pcap") && stderr.contains("not a pcap or pcapng file"),
        "{stderr}"
    );

    let missing = dir.join("missing.pcap");
    let out = run(&[
        "run",
        "--app",
        app("ddos").to_str().unwrap(),
        "--pcap",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot open capture"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&[
        "run",
        "--app",
        dir.join("nope.xml").to_str().unwrap(),
        "--pcap",
        file.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("nope.xml"));
}

#[test]
fn demo_alerts_on_the_victim() {
    let out = run(&["demo", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alerts: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|v: &serde_json::Value| v["topic"] == "alert")
        .collect();
    assert!(
        alerts
            .iter()
            .any(|v| v["key"] == "10.0.0.100" && v["state_to"] == "attack"),
        "{alerts:?}"
    );
    assert!(text(&out.stderr).contains("--- summary ---"));
}

fn sim_layout_app(name: &str) -> PathBuf {
    root()
        .join("tests/apps/sim_layout")
        .join(format!("{name}.xml"))
}

/// `--backend`: an unknown name is a usage error; a VFIO address without
/// the device is a clear error before anything runs.
#[test]
fn backend_choice_errors_are_clear() {
    let pcap = traces_dir().join("ndpi_synscan.pcap");
    let portscan = app("portscan");
    let base = [
        "run",
        "--app",
        portscan.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--events",
        "/dev/null",
    ];
    let out = run(&[&base[..], &["--backend", "fpga"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected sw, sim, sim-nic or vfio:<PCI address>"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[&base[..], &["--backend", "vfio:0000:ff:1f.7"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("0000:ff:1f.7"), "{err}");
    assert!(err.contains("docs/operations.md"), "{err}");
    assert!(!err.contains("--- summary ---"), "nothing ran: {err}");
}

/// `--backend sim-nic` (driver → simulated NIC → Verilated RTL) writes the
/// same bytes as `--backend sw`; an app with a metric the hardware lacks
/// is refused, naming it. Without the `sim` feature the binary says how to
/// get the backend instead.
#[test]
fn sim_nic_backend_writes_the_same_events_as_sw() {
    let dir = scratch("backends");
    let pcap = traces_dir().join("ndpi_gnutella.pcap");
    let events = |backend: &str| {
        let path = dir.join(format!("{backend}.jsonl"));
        let out = run(&[
            "run",
            "--app",
            sim_layout_app("distinct_ports").to_str().unwrap(),
            "--app",
            sim_layout_app("flow_counters").to_str().unwrap(),
            "--pcap",
            pcap.to_str().unwrap(),
            "--events",
            path.to_str().unwrap(),
            "--backend",
            backend,
        ]);
        (out, path)
    };
    if !cfg!(feature = "sim") {
        let (out, _) = events("sim-nic");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("--features sim"),
            "{}",
            text(&out.stderr)
        );
        return;
    }
    let (sw, sw_path) = events("sw");
    assert!(sw.status.success(), "{}", text(&sw.stderr));
    let (nic, nic_path) = events("sim-nic");
    assert!(nic.status.success(), "{}", text(&nic.stderr));
    let want = std::fs::read(&sw_path).unwrap();
    assert!(want.len() > 1000, "the apps publish on this capture");
    assert!(
        std::fs::read(&nic_path).unwrap() == want,
        "event bytes differ"
    );
    assert!(!text(&nic.stderr).contains("DeviceError"));

    let out = run(&[
        "run",
        "--app",
        // Since the sim layout grew, ddos fits; portscan's 2^16 x 4 table
        // still does not.
        app("portscan").to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--events",
        "/dev/null",
        "--backend",
        "sim-nic",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("metric 'dst_ports (variation_monitor)'"),
        "{err}"
    );
    assert!(err.contains("offers"), "{err}");
    assert!(!err.contains("--- summary ---"), "nothing ran: {err}");
}

/// `ndpi_bittorrent_utp.pcap` jumps 248,513,911 s (7.9 years) between two
/// packets. A 1 s periodic timeout left armed across it used to fire once
/// per second of the jump (a hang); now it fires once and the skipped
/// periods are in the summary and `--stats-json`, as many as the rule of
/// `docs/probe.md` ("Time jumps") gives, computed here from the packet
/// times.
#[test]
fn an_eight_year_jump_fires_once_and_reports_the_skipped_periods() {
    const S: u64 = 1_000_000_000;
    let dir = scratch("jump");
    let ticker = dir.join("ticker.xml");
    std::fs::write(
        &ticker,
        r#"<streamon>
  <statedef id="idle"/>
  <statedef id="ticking"/>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="idle">
      <condition expression="true" next_state="ticking"
                 action='timeout_set(tick, ip_src, 1)'/>
    </state>
  </event>
  <event type="timeout" class="tick" primary-key="ip_src">
    <state id="ticking">
      <post-condition-action do='Publish(tick, "%ts %ip_src")'/>
    </state>
  </event>
</streamon>"#,
    )
    .unwrap();
    let pcap = traces_dir().join("ndpi_bittorrent_utp.pcap");

    // The rule, as a loop over the packets: every parsed packet advances
    // time; each UDP source's first packet arms its timeout.
    let mut src = streamon_packet::pcap::PcapSource::open(&pcap).expect("open");
    let mut due = std::collections::BTreeMap::new();
    let (mut fired, mut skipped) = (0u64, 0u64);
    while let Some(f) = src.next_frame().expect("read") {
        let Ok(p) = streamon_packet::parse(f.data, f.linktype, f.meta) else {
            continue;
        };
        let now = f.meta.ts_ns;
        for d in due.values_mut() {
            if now < *d {
                continue;
            }
            let n = (now - *d) / S + 1;
            if n > streamon_probe::timers::CATCH_UP_LIMIT {
                fired += 1;
                skipped += n - 1;
            } else {
                fired += n;
            }
            *d += n * S;
        }
        if p.proto() == 17 {
            due.entry(p.src_addr()).or_insert(now + S);
        }
    }
    assert!(skipped > 200_000_000, "the capture jumps: {skipped}");

    let stats = dir.join("stats.json");
    let out = run(&[
        "run",
        "--app",
        ticker.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--format",
        "jsonl",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count() as u64, fired, "{stdout}");
    assert!(
        stderr.contains(&format!("  timeouts fired   {fired}\n"))
            && stderr.contains(&format!("  timeouts skipped {skipped}\n")),
        "{stderr}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats file")).expect("json");
    assert_eq!(v["apps"]["ticker"]["timeouts_fired"], fired);
    assert_eq!(v["apps"]["ticker"]["timeouts_skipped"], skipped);
}
