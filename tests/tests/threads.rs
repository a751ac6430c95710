//! `--threads N` gives the same events as one thread: every shipped
//! application installed in one probe, run over real captures on 1 thread
//! (`Probe`) and on 2, 4 and 8 (`ParallelProbe`, clamped to one worker per
//! application): the event streams are identical in content and order, and
//! so are every probe and application counter. Inputs: real captures of
//! `shared/traces`, and the seeded generated attacks of
//! `streamon_host_ctl::tracegen` (the real captures are too small to make
//! most applications alert; the generated ones make each of them alert).
//! And the 8-year jump of `ndpi_bittorrent_utp.pcap` under a periodic
//! timeout left armed: bounded, counted, and the same at every thread count.

mod common;

use std::collections::BTreeMap;

use common::*;
use streamon_host_ctl::tracegen;
use streamon_packet::pcap::PcapSource;
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{sw_engine, EventSink, OutputEvent, ParallelProbe, Probe, RuntimeOptions};

fn all_apps() -> Probe {
    let mut probe = Probe::new();
    for app in ALL_APPS {
        probe
            .install(
                app,
                &app_source(app),
                &format!("apps/{app}.xml"),
                &sw_engine,
                RuntimeOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{app} installs: {e}"));
    }
    probe
}

/// Events rendered with `Debug` (features are `f64`: a NaN must compare
/// equal to itself).
#[derive(Default)]
struct Lines(Vec<String>);

impl EventSink for Lines {
    fn emit(&mut self, ev: &OutputEvent) {
        self.0.push(format!("{ev:?}"));
    }
}

type Frames = Vec<(Vec<u8>, LinkType, FrameMeta)>;

fn load(trace_name: &str) -> Frames {
    let mut src = PcapSource::open(trace(trace_name)).expect("trace opens");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        out.push((f.data.to_vec(), f.linktype, f.meta));
    }
    out
}

fn generated(frames: Vec<tracegen::Frame>) -> Frames {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let meta = FrameMeta {
                ts_ns: f.ts_ns,
                orig_len: f.data.len() as u32,
                packet_no: i as u64 + 1,
            };
            (f.data, LinkType::Ethernet, meta)
        })
        .collect()
}

/// Events, probe counters and application counters, as comparable text.
fn run(frames: &Frames, threads: usize) -> (Vec<String>, String, String, usize) {
    run_with(all_apps, frames, threads)
}

/// [`run`] with the applications `make` installs.
fn run_with(
    make: fn() -> Probe,
    frames: &Frames,
    threads: usize,
) -> (Vec<String>, String, String, usize) {
    let mut sink = Lines::default();
    let (probe, pending) = if threads == 1 {
        let mut probe = make();
        for (data, linktype, meta) in frames {
            probe.frame(data, *linktype, *meta, &mut sink);
        }
        let pending = probe.finish();
        (probe, pending)
    } else {
        let probe = make();
        let n_apps = probe.apps().len();
        let mut par = ParallelProbe::start(probe, threads);
        assert_eq!(par.threads(), threads.min(n_apps));
        for (data, linktype, meta) in frames {
            par.frame(data, *linktype, *meta, &mut sink);
        }
        par.finish(&mut sink).expect("no worker lost")
    };
    let probe_stats = format!("{:?}", probe.stats());
    // `AppStats` holds HashMaps: compare them through a sorted rendering.
    let app_stats = probe
        .app_stats()
        .into_iter()
        .map(|(n, s)| {
            let mut errs: Vec<_> = s.op_errors.iter().collect();
            errs.sort();
            let mut topics: Vec<_> = s.published.iter().collect();
            topics.sort();
            format!(
                "{n}: matched={:?} unmatched={} no_key={} no_behaviour={} transitions={} \
                 timeouts={} expiries={} skipped={}/{} beyond_end={} backwards={} \
                 blocked={} evictions={} op_errors={errs:?} published={topics:?} tracked={}",
                s.matched,
                s.unmatched,
                s.no_key,
                s.no_behaviour,
                s.transitions,
                s.timeouts_fired,
                s.state_expiries,
                s.timeouts_skipped,
                s.state_expiries_skipped,
                s.timers_beyond_end,
                s.time_backwards,
                s.blocked,
                s.evictions,
                probe
                    .apps()
                    .iter()
                    .find(|a| a.name() == n)
                    .map(|a| a.tracked_keys())
                    .unwrap_or(0)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    (sink.0, probe_stats, app_stats, pending)
}

#[test]
fn every_thread_count_gives_the_single_thread_events_in_order() {
    let mut inputs: Vec<(String, Frames)> = [
        "ndpi_synscan.pcap",
        "dstreamon_dos.pcap",
        "ndpi_bad-dns-traffic.pcap",
        "zeek_nmap_vsn.pcap",
        "ndpi_gnutella.pcap",
        "bss_backscatter.trace",
        "sv_synflood_fw.pcap",
        "ndpi_tcp_scan.pcapng",
    ]
    .iter()
    .map(|n| (n.to_string(), load(n)))
    .collect();
    inputs.push((
        "tracegen::syn_flood(1)".into(),
        generated(tracegen::syn_flood(1)),
    ));
    inputs.push((
        "tracegen::nxdomain_storm(3)".into(),
        generated(tracegen::nxdomain_storm(3)),
    ));
    inputs.push((
        "tracegen::conficker(5)".into(),
        generated(tracegen::conficker(5)),
    ));
    inputs.push((
        "tracegen::ddos_ramp(11)".into(),
        generated(tracegen::ddos_ramp(11)),
    ));
    let mut total_events = 0;
    let mut inputs_with_events = 0;
    for (name, frames) in &inputs {
        let one = run(frames, 1);
        println!("{name}: {} frames, {} events", frames.len(), one.0.len());
        total_events += one.0.len();
        inputs_with_events += usize::from(!one.0.is_empty());
        for threads in [2, 4, 8] {
            let many = run(frames, threads);
            assert_eq!(
                one.0.len(),
                many.0.len(),
                "{name}: event count at {threads} threads"
            );
            for (i, (a, b)) in one.0.iter().zip(&many.0).enumerate() {
                assert_eq!(a, b, "{name}: event {i} at {threads} threads");
            }
            assert_eq!(one.1, many.1, "{name}: probe counters at {threads} threads");
            assert_eq!(one.2, many.2, "{name}: app counters at {threads} threads");
            assert_eq!(
                one.3, many.3,
                "{name}: pending timeouts at {threads} threads"
            );
        }
    }
    // The comparison means something only if the apps said something.
    assert!(
        total_events > 100 && inputs_with_events >= 5,
        "only {total_events} events from {inputs_with_events} inputs"
    );
}

/// A 1 s periodic timeout armed by each UDP source's first packet and left
/// armed (as `apps/portscan.xml` leaves `watchports` armed when a pair
/// expires back to `default`); each firing publishes `tick`.
const TICKER: &str = r#"<streamon>
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
</streamon>"#;

fn ticker_and_all_apps() -> Probe {
    let mut probe = all_apps();
    probe
        .install(
            "ticker",
            TICKER,
            "ticker.xml",
            &sw_engine,
            RuntimeOptions::default(),
        )
        .expect("ticker installs");
    probe
}

/// The catch-up rule of `docs/probe.md` ("Time jumps") for `TICKER`,
/// written as a plain loop over the packet times: the firings and the
/// skipped count.
fn ticker_model(pkts: &[Pkt]) -> (usize, u64) {
    const S: u64 = 1_000_000_000;
    let limit = streamon_probe::timers::CATCH_UP_LIMIT;
    // Next due time of each source's timeout.
    let mut due: BTreeMap<std::net::IpAddr, u64> = BTreeMap::new();
    let (mut fired, mut skipped) = (0usize, 0u64);
    for p in pkts {
        for d in due.values_mut() {
            if p.ts < *d {
                continue;
            }
            let n = (p.ts - *d) / S + 1;
            if n > limit {
                fired += 1;
                skipped += n - 1;
            } else {
                fired += n as usize;
            }
            *d += n * S;
        }
        if p.proto == 17 && !due.contains_key(&p.src) {
            due.insert(p.src, p.ts + S);
        }
    }
    (fired, skipped)
}

#[test]
fn an_eight_year_jump_under_a_periodic_timeout_is_bounded_counted_and_thread_independent() {
    let name = "ndpi_bittorrent_utp.pcap";
    let pkts = load_trace(name);
    // The capture does jump: 248,513,911 s between two packets.
    let jump = pkts
        .windows(2)
        .map(|w| w[1].ts.saturating_sub(w[0].ts))
        .max();
    assert!(jump > Some(200_000_000 * 1_000_000_000), "{jump:?}");
    let frames = load(name);
    let one = run_with(ticker_and_all_apps, &frames, 1);
    let (fired, skipped) = ticker_model(&pkts);
    let ticks = one
        .0
        .iter()
        .filter(|e| e.contains("topic: \"tick\""))
        .count();
    assert_eq!(ticks, fired, "{:#?}", one.0);
    let ticker = one
        .2
        .lines()
        .find(|l| l.starts_with("ticker: "))
        .expect("the ticker's counters");
    assert!(
        ticker.contains(&format!(" timeouts={fired} "))
            && ticker.contains(&format!(" skipped={skipped}/0 ")),
        "expected {fired} fired, {skipped} skipped: {ticker}"
    );
    assert!(skipped > 200_000_000, "{skipped}");
    for threads in [2, 4, 8] {
        let many = run_with(ticker_and_all_apps, &frames, threads);
        assert_eq!(one.0, many.0, "events at {threads} threads");
        assert_eq!(one.1, many.1, "probe counters at {threads} threads");
        assert_eq!(one.2, many.2, "app counters at {threads} threads");
        assert_eq!(one.3, many.3, "pending timeouts at {threads} threads");
    }
}
