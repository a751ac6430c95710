//! `--threads N` gives the same events as one thread: every shipped
//! application installed in one probe, run over real captures on 1 thread
//! (`Probe`) and on 2, 4 and 8 (`ParallelProbe`, clamped to one worker per
//! application): the event streams are identical in content and order, and
//! so are every probe and application counter. Inputs: real captures of
//! `shared/traces`, and the seeded generated attacks of
//! `streamon_host_ctl::tracegen` (the real captures are too small to make
//! most applications alert; the generated ones make each of them alert).

mod common;

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
    let mut sink = Lines::default();
    let (probe, pending) = if threads == 1 {
        let mut probe = all_apps();
        for (data, linktype, meta) in frames {
            probe.frame(data, *linktype, *meta, &mut sink);
        }
        let pending = probe.finish();
        (probe, pending)
    } else {
        let mut par = ParallelProbe::start(all_apps(), threads);
        assert_eq!(par.threads(), threads.min(ALL_APPS.len()));
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
                 timeouts={} expiries={} blocked={} evictions={} op_errors={errs:?} \
                 published={topics:?} tracked={}",
                s.matched,
                s.unmatched,
                s.no_key,
                s.no_behaviour,
                s.transitions,
                s.timeouts_fired,
                s.state_expiries,
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
