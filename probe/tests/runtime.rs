//! The runtime's semantics on hand-made packets: distinct counting, timers
//! in packet time, state expiry, isolation between applications, defined
//! arithmetic.

use etherparse::PacketBuilder;
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::{sw_engine, OutputEvent, Probe, RuntimeOptions, VecSink};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SEC;

fn syn(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(40000, dport, 1, 1000)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn feed(probe: &mut Probe, sink: &mut VecSink, packets: &[(u64, Vec<u8>)]) {
    for (i, (ts, f)) in packets.iter().enumerate() {
        let meta = FrameMeta {
            ts_ns: *ts,
            orig_len: f.len() as u32,
            packet_no: i as u64 + 1,
        };
        probe.frame(f, LinkType::Ethernet, meta, sink);
    }
}

fn install(probe: &mut Probe, name: &str, src: &str) {
    probe
        .install(
            name,
            src,
            &format!("{name}.xml"),
            &sw_engine,
            RuntimeOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

fn texts<'a>(events: &'a [OutputEvent], topic: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.topic == topic)
        .map(|e| e.text.as_str())
        .collect()
}

const PORTS: &str = r#"<streamon>
  <statedef id="default"/>
  <metric name="ports">
    <variation_detector status="on" size="12" nhash="4"/>
    <variation_monitor status="on" type="dleft"/>
  </metric>
  <event type="packet" selector="proto tcp and flags tcp-syn" primary-key="ip_src">
    <state id="default">
      <use-metric id="ports" vd_update="ip_src-dst_port" vm_update="ip_src"/>
      <post-condition-action do='Publish(log, "%ip_src %ports")'/>
    </state>
  </event>
</streamon>"#;

#[test]
fn detector_and_counter_count_distinct_ports() {
    let mut probe = Probe::new();
    install(&mut probe, "ports", PORTS);
    let mut sink = VecSink::default();
    let a = [10, 0, 0, 1];
    let b = [10, 0, 0, 2];
    let s = [192, 0, 2, 9];
    let pkts: Vec<_> = [(a, 22), (a, 80), (a, 22), (b, 22), (a, 443), (a, 80)]
        .iter()
        .enumerate()
        .map(|(i, &(src, port))| (T0 + i as u64 * SEC, syn(src, s, port)))
        .collect();
    feed(&mut probe, &mut sink, &pkts);
    assert_eq!(
        texts(&sink.0, "log"),
        [
            "10.0.0.1 1.000000",
            "10.0.0.1 2.000000",
            "10.0.0.1 2.000000",
            "10.0.0.2 1.000000",
            "10.0.0.1 3.000000",
            "10.0.0.1 3.000000"
        ]
    );
}

const TIMERS: &str = r#"<streamon>
  <statedef id="idle"/>
  <statedef id="armed" timeout="30" next_state="idle"/>
  <metric name="n"><variation_monitor status="on" type="simple"/></metric>
  <feature name="ratio" body="1 / (n - n)"/>
  <event type="packet" selector="proto tcp" primary-key="ip_dst">
    <state id="idle">
      <use-metric id="n" vm_update="ip_dst"/>
      <condition expression="true" next_state="armed" action='Publish(log, "armed %ratio")'>
        <timeout_set class="tick" key="ip_dst" value="1"/>
      </condition>
    </state>
    <state id="armed">
      <use-metric id="n" vm_update="ip_dst"/>
    </state>
  </event>
  <event type="timeout" class="tick" primary-key="ip_dst">
    <state id="armed">
      <use-metric id="n" vm_get="ip_dst"/>
      <post-condition-action do='Publish(tick, "%ts")'/>
    </state>
  </event>
</streamon>"#;

#[test]
fn timers_run_in_packet_time_and_states_expire() {
    let mut probe = Probe::new();
    install(&mut probe, "timers", TIMERS);
    let mut sink = VecSink::default();
    let d = [192, 0, 2, 1];
    feed(
        &mut probe,
        &mut sink,
        &[
            (T0, syn([10, 0, 0, 1], d, 80)),
            // 10.5 s later: ticks at +1 … +10 fire first, in order, stamped
            // with their own due times.
            (T0 + 10 * SEC + SEC / 2, syn([10, 0, 0, 2], d, 80)),
            // 40 s later the state has expired (30 s) back to idle, so this
            // packet arms again.
            (T0 + 50 * SEC, syn([10, 0, 0, 3], d, 80)),
        ],
    );
    let ticks = texts(&sink.0, "tick");
    // Ticks fire while armed. At +30 the expiry and the 30th tick are due
    // together; the expiry was armed first, so it runs first, and the tick
    // then finds the key idle, where the timeout event has no behaviour
    // (counted, no output).
    assert_eq!(ticks.len(), 29, "{ticks:?}");
    assert_eq!(ticks[0], (T0 + SEC).to_string());
    assert_eq!(ticks[9], (T0 + 10 * SEC).to_string());
    assert_eq!(texts(&sink.0, "log"), ["armed 0.000000", "armed 0.000000"]);
    let (_, stats) = &probe.app_stats()[0];
    assert_eq!(stats.state_expiries, 1);
    // One per pass that computed the feature: 3 packets and 29 ticks.
    assert_eq!(stats.arith.div_by_zero, 32);
    assert!(stats.timeouts_fired >= 30);
    assert_eq!(ticks[28], (T0 + 29 * SEC).to_string());
    assert!(
        stats.no_behaviour >= 1,
        "ticks after the expiry find no behaviour"
    );
}

#[test]
fn applications_are_isolated_and_can_be_removed() {
    let mut probe = Probe::new();
    install(&mut probe, "one", PORTS);
    install(&mut probe, "two", PORTS);
    let mut sink = VecSink::default();
    let s = [192, 0, 2, 9];
    feed(
        &mut probe,
        &mut sink,
        &[
            (T0, syn([10, 0, 0, 1], s, 22)),
            (T0 + 1, syn([10, 0, 0, 1], s, 23)),
        ],
    );
    assert!(probe.uninstall("one"));
    assert!(!probe.uninstall("one"));
    feed(
        &mut probe,
        &mut sink,
        &[(T0 + 2, syn([10, 0, 0, 1], s, 24))],
    );
    let per_app: Vec<(&str, &str)> = sink
        .0
        .iter()
        .map(|e| (e.app.as_str(), e.text.as_str()))
        .collect();
    assert_eq!(
        per_app,
        [
            ("one", "10.0.0.1 1.000000"),
            ("two", "10.0.0.1 1.000000"),
            ("one", "10.0.0.1 2.000000"),
            ("two", "10.0.0.1 2.000000"),
            // "two" kept its metric state when "one" was removed.
            ("two", "10.0.0.1 3.000000"),
        ]
    );
}

#[test]
fn a_program_that_fails_check_is_refused_with_positions() {
    let mut probe = Probe::new();
    let err = probe
        .install("bad", "<streamon><statedef id=\"a\"/><event type=\"packet\" selector=\"nosuchfield 1\" primary-key=\"ip_src\"/></streamon>", "bad.xml", &sw_engine, RuntimeOptions::default())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("bad.xml:1:"), "{text}");
    assert!(text.contains("nosuchfield"), "{text}");
}

#[test]
fn hot_swap_stop_and_start_keep_the_other_applications_state() {
    let mut probe = Probe::new();
    install(&mut probe, "one", PORTS);
    install(&mut probe, "two", PORTS);
    install(&mut probe, "three", PORTS);
    let mut sink = VecSink::default();
    let s = [192, 0, 2, 9];
    let a = [10, 0, 0, 1];
    feed(
        &mut probe,
        &mut sink,
        &[(T0, syn(a, s, 22)), (T0 + 1, syn(a, s, 23))],
    );
    // Swap "two" for a program that logs with another prefix; stop "three".
    let swapped = PORTS.replace(r#""%ip_src %ports""#, r#""new %ip_src %ports""#);
    let warnings = probe
        .replace(
            "two",
            &swapped,
            "two.xml",
            &sw_engine,
            RuntimeOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(warnings, Some(vec![]));
    assert!(probe.set_running("three", false));
    assert_eq!(probe.is_running("three"), Some(false));
    // A swap that fails to check leaves the old program running.
    assert!(probe
        .replace(
            "one",
            "<streamon>",
            "bad.xml",
            &sw_engine,
            RuntimeOptions::default()
        )
        .is_err());
    // Swapping or pausing an unknown application says so.
    assert!(probe
        .replace(
            "nope",
            PORTS,
            "nope.xml",
            &sw_engine,
            RuntimeOptions::default()
        )
        .unwrap()
        .is_none());
    assert!(!probe.set_running("nope", true));
    sink.0.clear();
    feed(&mut probe, &mut sink, &[(T0 + 2, syn(a, s, 24))]);
    assert!(probe.set_running("three", true));
    feed(&mut probe, &mut sink, &[(T0 + 3, syn(a, s, 25))]);
    let per_app: Vec<(&str, &str)> = sink
        .0
        .iter()
        .map(|e| (e.app.as_str(), e.text.as_str()))
        .collect();
    assert_eq!(
        per_app,
        [
            // "one" kept its state through the failed swap: 3rd port.
            ("one", "10.0.0.1 3.000000"),
            // "two" restarted from fresh state with the new program.
            ("two", "new 10.0.0.1 1.000000"),
            // "three" was stopped for port 24: it saw 22, 23, then 25.
            ("one", "10.0.0.1 4.000000"),
            ("two", "new 10.0.0.1 2.000000"),
            ("three", "10.0.0.1 3.000000"),
        ]
    );
    let names: Vec<&str> = probe.apps().iter().map(|a| a.name()).collect();
    assert_eq!(names, ["one", "two", "three"], "a swap keeps the order");
}
