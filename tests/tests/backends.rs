//! One probe, any backend: the same applications on the same real captures
//! give byte-identical event output on
//!
//! * `sw`: the software engine;
//! * `sim`: the Verilated RTL of `hw/`, called directly;
//! * `sim-nic`: trace → probe → driver (`streamon_driver::DeviceEngine`) →
//!   submission ring in shared memory → simulated NIC thread → Verilated RTL
//!   → completion ring → results → features → XFSM → events.
//!
//! The applications (`tests/apps/sim_layout/`) are sized for the RTL's `sim`
//! layout and use every metric kind the hardware has: detectors gating
//! exact counters (distinct counting), plain exact counters (one counting
//! bytes) and the global counter. Besides the event bytes, the application
//! counters and every metric's final state (read back through the driver's
//! admin dump on `sim-nic`) must be equal.
//!
//! The shipped applications whose metrics the `sim` layout hosts (`ddos`,
//! `conficker`, `p2p`: detectors of 2^20 bits and `tewma` filters of 2^17
//! cells × 4 rows) run on `sw` and `sim` over captures where they publish,
//! with the same comparison (events, counters, every metric's full dump).
//!
//! Applications the hardware cannot host are refused at install, naming
//! the metric and what the hardware offers.

mod common;

use std::path::PathBuf;

use common::trace;
use streamon_host_ctl::backend::{Backend, DeviceHealth};
use streamon_host_ctl::replay::replay_file;
use streamon_probe::{Format, InstallFailure, Probe, RuntimeOptions, WriterSink};

/// Captures with different mixes: scans, floods, P2P, DNS, backscatter,
/// IPv6, pcapng, an 8-year jump in trace time; several overflow the
/// 16-bucket exact tables (evictions).
const CAPTURES: &[&str] = &[
    "ndpi_synscan.pcap",
    "ndpi_gnutella.pcap",
    "dstreamon_dos.pcap",
    "bss_backscatter.trace",
    "ndpi_bad-dns-traffic.pcap",
    "zeek_wikipedia.pcap",
    "ndpi_tcp_scan.pcapng",
    "zeek_nmap_vsn.pcap",
    "ndpi_bittorrent_utp.pcap",
];

const APPS: &[&str] = &["distinct_ports", "flow_counters"];

fn test_app(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/apps/sim_layout"))
        .join(format!("{name}.xml"));
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, source)
}

/// What one run produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// The JSON Lines event stream, as `streamon run` writes it.
    events: Vec<u8>,
    /// Per app: its counters, as JSON (`--stats-json`; maps compare
    /// regardless of order).
    stats: serde_json::Value,
    /// Per app, per metric: the final canonical dump.
    dumps: Vec<Vec<Option<Vec<u64>>>>,
}

fn run(backend: &Backend, capture: &str) -> Outcome {
    run_apps(backend, capture, APPS)
}

fn run_apps(backend: &Backend, capture: &str, apps: &[&str]) -> Outcome {
    let sources: Vec<(&str, String, String)> = apps
        .iter()
        .map(|&app| {
            let (path, source) = test_app(app);
            (app, path.display().to_string(), source)
        })
        .collect();
    run_sources(backend, capture, &sources)
}

/// Runs applications given as (name, path for diagnostics, source).
fn run_sources(backend: &Backend, capture: &str, apps: &[(&str, String, String)]) -> Outcome {
    let health = DeviceHealth::default();
    let factory = backend.factory(health.clone());
    let mut probe = Probe::new();
    for (app, path, source) in apps {
        probe
            .install(app, source, path, &factory, RuntimeOptions::default())
            .unwrap_or_else(|e| panic!("{app} on {backend}: {e}"));
    }
    let mut events = Vec::new();
    {
        let mut sink = WriterSink::new(&mut events, Format::JsonLines);
        replay_file(&mut probe, &trace(capture), &mut sink, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{capture} on {backend}: {e}"));
        sink.flush().expect("writing to memory");
    }
    assert!(
        !health.failed(),
        "{capture} on {backend}: device failed: {:?}",
        health.first_failure()
    );
    let stats = serde_json::to_value(probe.app_stats()).expect("stats serialise");
    let dumps = probe
        .apps()
        .iter()
        .map(|a| {
            let engine = a.engine();
            (0..engine.plans().len() as u16)
                .map(|m| engine.dump(m))
                .collect()
        })
        .collect();
    Outcome {
        events,
        stats,
        dumps,
    }
}

fn assert_same(capture: &str, backend: &Backend, want: &Outcome, got: &Outcome) {
    assert_same_apps(capture, backend, want, got, APPS)
}

fn assert_same_apps(
    capture: &str,
    backend: &Backend,
    want: &Outcome,
    got: &Outcome,
    apps: &[&str],
) {
    if got.events != want.events {
        let (w, g) = (
            String::from_utf8_lossy(&want.events),
            String::from_utf8_lossy(&got.events),
        );
        let first = w
            .lines()
            .zip(g.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(w.lines().count().min(g.lines().count()));
        panic!(
            "{capture}: {backend} events differ from sw at line {} ({} vs {} lines)\nsw:      {}\n{backend}: {}",
            first + 1,
            w.lines().count(),
            g.lines().count(),
            w.lines().nth(first).unwrap_or("<end>"),
            g.lines().nth(first).unwrap_or("<end>"),
        );
    }
    assert_eq!(got.stats, want.stats, "{capture}: {backend} counters");
    for (app, (w, g)) in want.dumps.iter().zip(&got.dumps).enumerate() {
        for (m, (w, g)) in w.iter().zip(g).enumerate() {
            assert!(w.is_some(), "{capture}: sw has no dump of metric {m}");
            assert_eq!(
                g, w,
                "{capture}: {backend} app {} metric {m} state",
                apps[app]
            );
        }
    }
}

/// The end-to-end equivalence: every capture, both apps, three backends.
#[test]
fn sim_and_sim_nic_give_the_same_events_as_sw_on_real_captures() {
    let (mut lines, mut evicting, mut alerts) = (0, 0, 0);
    for capture in CAPTURES {
        let want = run(&Backend::Sw, capture);
        for backend in [Backend::Sim, Backend::SimNic] {
            let got = run(&backend, capture);
            assert_same(capture, &backend, &want, &got);
        }
        let text = String::from_utf8(want.events).expect("JSON Lines are UTF-8");
        lines += text.lines().count();
        alerts += text.matches("\"topic\":\"alert\"").count();
        let evictions: u64 = want
            .stats
            .as_array()
            .expect("a list of (app, stats)")
            .iter()
            .map(|pair| pair[1]["evictions"].as_u64().expect("evictions"))
            .sum();
        evicting += usize::from(evictions > 0);
    }
    // The comparison is not vacuous: the apps publish on these captures,
    // raise alerts, and overflow the small hardware tables.
    assert!(lines >= 500, "only {lines} events in all");
    assert!(alerts >= 2, "only {alerts} alerts");
    assert!(evicting >= 2, "only {evicting} captures evicted");
}

/// The catch-up rule of periodic timeouts (`docs/probe.md`, "Time jumps")
/// is the runtime's, above the engine: a report left armed across the
/// 7.9-year jump of `ndpi_bittorrent_utp.pcap`, reading and resetting
/// metrics in every report, gives the same events, counters (skipped
/// firings included) and metric state on every backend.
#[test]
fn a_periodic_report_across_an_eight_year_jump_is_the_same_on_every_backend() {
    let capture = "ndpi_bittorrent_utp.pcap";
    let apps = &["periodic_report"];
    let want = run_apps(&Backend::Sw, capture, apps);
    let stats = &want.stats[0][1];
    let skipped = stats["timeouts_skipped"]
        .as_u64()
        .expect("timeouts_skipped");
    let fired = stats["timeouts_fired"].as_u64().expect("timeouts_fired");
    assert!(skipped > 200_000_000, "the jump is skipped: {stats}");
    assert!(fired > 0 && fired < 10_000, "and bounded: {stats}");
    let text = String::from_utf8(want.events.clone()).expect("UTF-8");
    assert!(
        text.matches("\"topic\":\"report\"").count() as u64 == fired,
        "every firing reports: {text}"
    );
    for backend in [Backend::Sim, Backend::SimNic] {
        let got = run_apps(&backend, capture, apps);
        assert_same_apps(capture, &backend, &want, &got, apps);
    }
}

/// The shipped applications that use `tewma` (and detectors of the
/// language's default 2^20 bits), each on captures where it publishes and
/// writes its filters: `sw` and `sim` give the same events, counters and
/// final dumps (every cell of every 2^17 × 4 filter, read through the
/// hardware's dump port: about 10^6 clocks per filter, which is why each
/// app runs on few captures).
#[test]
fn shipped_tewma_apps_give_the_same_events_on_sim_as_on_sw() {
    let cases: &[(&str, &[&str])] = &[
        (
            "ddos",
            &["sddos_synflood_spoofed.pcap", "sv_synflood_fw.pcap"],
        ),
        ("p2p", &["ndpi_gnutella.pcap"]),
        ("conficker", &["zeek_nmap_vsn.pcap"]),
    ];
    for &(app, captures) in cases {
        let apps = [(app, format!("apps/{app}.xml"), common::app_source(app))];
        let mut lines = 0;
        for capture in captures {
            let want = run_sources(&Backend::Sw, capture, &apps);
            let got = run_sources(&Backend::Sim, capture, &apps);
            assert_same_apps(capture, &Backend::Sim, &want, &got, &[app]);
            lines += want.events.iter().filter(|&&b| b == b'\n').count();
            // Not vacuous: the filters were written.
            let written = want.dumps[0]
                .iter()
                .flatten()
                .any(|d| d[0] == 2 && d[4..].iter().any(|&w| w != 0));
            assert!(written, "{app} on {capture}: no tewma cell was written");
        }
        assert!(lines > 0, "{app} published nothing on its captures");
    }
}

fn refusal(backend: &Backend, app: &str, source: &str) -> String {
    let factory = backend.factory(DeviceHealth::default());
    let mut probe = Probe::new();
    match probe.install(app, source, app, &factory, RuntimeOptions::default()) {
        Err(e @ InstallFailure::Engine { .. }) => {
            assert!(probe.apps().is_empty(), "nothing installed");
            e.to_string()
        }
        Err(e) => panic!("{app} on {backend}: not an engine refusal: {e}"),
        Ok(_) => panic!("{app} on {backend}: installed, but the hardware cannot host it"),
    }
}

/// A metric the hardware does not implement (HyperLogLog), a `tewma` larger
/// than the hardware's banks (the shipped DDoS app with `size="18"`), a
/// detector larger than the banks (the shipped port-scan app with 2^21
/// bits), the shipped port-scan app's 2^16 × 4 `dleft` table and an exact
/// table larger than the banks are refused on both RTL backends, naming the
/// metric and what the hardware offers. The same apps install on `sw`.
#[test]
fn apps_the_hardware_cannot_host_are_refused_at_install() {
    let too_big_table = test_app("flow_counters").1.replace(
        r#"type="dleft" size="4" ways="2""#,
        r#"type="dleft" size="6" ways="2""#,
    );
    let with_hll = test_app("flow_counters").1.replace(
        r#"<variation_monitor status="on" type="simple"/>"#,
        r#"<variation_monitor status="on" type="hll" size="6"/>"#,
    );
    let big_tewma = common::app_source("ddos").replace(
        r#"type="tewma" window="60""#,
        r#"type="tewma" window="60" size="18""#,
    );
    let big_detector = common::app_source("portscan").replace(
        r#"<variation_detector status="on" size="20""#,
        r#"<variation_detector status="on" size="21""#,
    );
    let cases = [
        (
            "ddos",
            big_tewma,
            "syn_rate (variation_monitor)",
            "filter of 4 rows x 2^18 cells",
        ),
        (
            "flow_counters",
            with_hll,
            "total (variation_monitor)",
            "hll is not implemented in hardware",
        ),
        (
            "portscan",
            big_detector,
            "dst_ports (variation_detector)",
            "detector of 2^21 bits",
        ),
        (
            "portscan",
            common::app_source("portscan"),
            "dst_ports (variation_monitor)",
            "table of 2^16 buckets x 4 ways",
        ),
        (
            "flow_counters",
            too_big_table,
            "pkts (variation_monitor)",
            "table of 2^6 buckets x 2 ways",
        ),
    ];
    for backend in [Backend::Sim, Backend::SimNic] {
        for (app, source, metric, why) in &cases {
            let e = refusal(&backend, app, source);
            assert!(
                e.contains(&format!("metric '{metric}'")),
                "{backend} {app}: {e}"
            );
            assert!(e.contains(why), "{backend} {app}: {e}");
            assert!(
                e.contains("the hardware (layout 'sim') offers"),
                "{backend} {app}: {e}"
            );
            assert!(e.contains("dleft of size ≤ 4"), "{backend} {app}: {e}");
        }
    }
    for (app, source, ..) in &cases {
        let mut probe = Probe::new();
        probe
            .install(
                app,
                source,
                app,
                &Backend::Sw.factory(DeviceHealth::default()),
                RuntimeOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{app} on sw: {e}"));
    }
}
