//! Timers across jumps of trace time (`docs/probe.md`, "Time jumps"): the
//! bounded catch-up of periodic timeouts, cycles of state timeouts, time
//! going backwards, and instants past the end of representable time. Each
//! expectation is computed from the packet times with a plain loop over
//! the rule as documented, not read from the runtime.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use streamon_packet::{FrameMeta, LinkType};
use streamon_probe::timers::CATCH_UP_LIMIT;
use streamon_probe::{sw_engine, AppStats, OutputEvent, Probe, RuntimeOptions, VecSink};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SEC;

fn udp(src: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, [192, 0, 2, 1], 64)
        .udp(40000, 9999);
    let mut v = Vec::new();
    b.write(&mut v, &[1, 2, 3]).unwrap();
    v
}

/// Runs `src` over packets (time, source address); returns the events and
/// the application's counters.
fn run(src: &str, packets: &[(u64, [u8; 4])]) -> (Vec<OutputEvent>, AppStats, usize) {
    let mut probe = Probe::new();
    probe
        .install(
            "jumps",
            src,
            "jumps.xml",
            &sw_engine,
            RuntimeOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sink = VecSink::default();
    for (i, (ts, a)) in packets.iter().enumerate() {
        let f = udp(*a);
        let meta = FrameMeta {
            ts_ns: *ts,
            orig_len: f.len() as u32,
            packet_no: i as u64 + 1,
        };
        probe.frame(&f, LinkType::Ethernet, meta, &mut sink);
    }
    let pending = probe.finish();
    let stats = probe.app_stats().remove(0).1;
    (sink.0, stats, pending)
}

fn ticks(events: &[OutputEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.topic == "tick")
        .map(|e| e.ts)
        .collect()
}

/// A periodic timeout of `period` seconds armed by a source's first packet,
/// left armed: each firing publishes `tick`.
fn ticker(period: &str) -> String {
    format!(
        r#"<streamon>
  <statedef id="idle"/>
  <statedef id="ticking"/>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="idle">
      <condition expression="true" next_state="ticking"
                 action='timeout_set(tick, ip_src, {period})'/>
    </state>
  </event>
  <event type="timeout" class="tick" primary-key="ip_src">
    <state id="ticking">
      <post-condition-action do='Publish(tick, "%ip_src")'/>
    </state>
  </event>
</streamon>"#
    )
}

const A: [u8; 4] = [10, 0, 0, 1];

/// The rule for one periodic timer due first at `due` with period `p`,
/// advanced to each packet time in turn: the firing times and the
/// skipped count.
fn model(mut due: u64, p: u64, times: &[u64]) -> (Vec<u64>, u64) {
    let (mut fired, mut skipped) = (Vec::new(), 0);
    for &now in times {
        if now < due {
            continue;
        }
        let n = (now - due) / p + 1;
        if n > CATCH_UP_LIMIT {
            fired.push(due);
            skipped += n - 1;
        } else {
            fired.extend((0..n).map(|k| due + k * p));
        }
        due += n * p;
    }
    (fired, skipped)
}

#[test]
fn a_small_gap_fires_every_period() {
    // 5.5 s of silence: the ticks at +1 … +5 s, each at its own time.
    let pkts = [(T0, A), (T0 + 5 * SEC + SEC / 2, A)];
    let (events, stats, pending) = run(&ticker("1"), &pkts);
    let want: Vec<u64> = (1..=5).map(|k| T0 + k * SEC).collect();
    assert_eq!(ticks(&events), want);
    assert_eq!((stats.timeouts_fired, stats.timeouts_skipped), (5, 0));
    assert_eq!(pending, 1, "still armed after the last packet");
}

#[test]
fn a_gap_of_exactly_the_limit_is_caught_up_and_one_more_period_is_not() {
    // Due at T0 + 1 s … T0 + LIMIT s: all fire.
    let at_limit = T0 + CATCH_UP_LIMIT * SEC + SEC / 2;
    let (events, stats, _) = run(&ticker("1"), &[(T0, A), (at_limit, A)]);
    assert_eq!(ticks(&events).len() as u64, CATCH_UP_LIMIT);
    assert_eq!(stats.timeouts_skipped, 0);

    // One period more: the first due period fires, the rest are skipped
    // and the timeout goes on from the first period after the jump.
    let over = T0 + (CATCH_UP_LIMIT + 1) * SEC + SEC / 2;
    let after = over + 2 * SEC;
    let (events, stats, _) = run(&ticker("1"), &[(T0, A), (over, A), (after, A)]);
    assert_eq!(
        ticks(&events),
        [
            T0 + SEC,
            T0 + (CATCH_UP_LIMIT + 2) * SEC,
            T0 + (CATCH_UP_LIMIT + 3) * SEC
        ]
    );
    assert_eq!(stats.timeouts_skipped, CATCH_UP_LIMIT);
    assert_eq!(stats.timeouts_fired, 3);
}

#[test]
fn an_eight_year_jump_fires_once_and_counts_the_rest() {
    // The jump of ndpi_bittorrent_utp.pcap (248,513,911 s), at a 10 ms
    // period: 24.9 billion periods, which used to be fired one by one.
    let jump = 248_513_911 * SEC;
    let pkts = [(T0, A), (T0 + SEC / 20, A), (T0 + jump, A)];
    let (events, stats, pending) = run(&ticker("0.01"), &pkts);
    let p = SEC / 100;
    let (want, skipped) = model(T0 + p, p, &[T0 + SEC / 20, T0 + jump]);
    assert_eq!(ticks(&events), want);
    assert_eq!(want.len(), 5 + 1);
    assert_eq!(stats.timeouts_skipped, skipped);
    assert_eq!(skipped, jump / p - 5 - 1);
    assert_eq!(pending, 1);
}

/// A timeout whose pass re-arms it: with the same period (the pattern of
/// a timeout event that keeps itself going), or 1000 times shorter.
fn rearming(first: &str, again: &str) -> String {
    format!(
        r#"<streamon>
  <statedef id="idle"/>
  <statedef id="ticking"/>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="idle">
      <condition expression="true" next_state="ticking"
                 action='timeout_set(tick, ip_src, {first})'/>
    </state>
  </event>
  <event type="timeout" class="tick" primary-key="ip_src">
    <state id="ticking">
      <post-condition-action do='Publish(tick, "%ip_src"); timeout_set(tick, ip_src, {again})'/>
    </state>
  </event>
</streamon>"#
    )
}

#[test]
fn a_timeout_re_armed_by_its_own_passes_follows_the_same_rule() {
    // Same period: exactly the firings of a timeout left armed.
    let times = [T0 + 3 * SEC + 1, T0 + 500_000 * SEC, T0 + 500_002 * SEC];
    let mut pkts = vec![(T0, A)];
    pkts.extend(times.iter().map(|&t| (t, A)));
    let (events, stats, _) = run(&rearming("1", "1"), &pkts);
    let (want, skipped) = model(T0 + SEC, SEC, &times);
    assert_eq!(ticks(&events), want);
    assert_eq!(stats.timeouts_skipped, skipped);

    // Re-armed 1000 times shorter inside a jump: its first firing was the
    // only one due at its old period, but at the new one the rest of the
    // jump holds a million: those are skipped, and it goes on after `now`.
    let ms = SEC / 1000;
    let now = T0 + 2000 * SEC + SEC / 2;
    let later = now + 2 * ms;
    let (events, stats, _) = run(&rearming("1000", "0.001"), &[(T0, A), (now, A), (later, A)]);
    let first = T0 + 1000 * SEC;
    assert_eq!(ticks(&events), [first, now + ms, now + 2 * ms]);
    assert_eq!(stats.timeouts_skipped, (now - (first + ms)) / ms + 1);
}

/// Two states whose timeouts lead to each other: `a` (1 s) → `b` (2 s)
/// → `a` …; a packet in either reports the state it finds.
const CYCLE: &str = r#"<streamon>
  <statedef id="idle"/>
  <statedef id="a" timeout="1" next_state="b" code="A"/>
  <statedef id="b" timeout="2" next_state="a" code="B"/>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="idle">
      <condition expression="true" next_state="a"/>
    </state>
    <state id="a"><post-condition-action do='Publish(seen, "%state.code")'/></state>
    <state id="b"><post-condition-action do='Publish(seen, "%state.code")'/></state>
  </event>
</streamon>"#;

/// Where the `a`/`b` cycle entered at `t0` in `a` is at `now`, and how
/// many expiries that took.
fn cycle_at(t0: u64, now: u64) -> (&'static str, u64) {
    let (mut state, mut t, mut n) = ("A", t0, 0);
    loop {
        let d = if state == "A" { SEC } else { 2 * SEC };
        if t + d > now {
            return (state, n);
        }
        t += d;
        n += 1;
        state = if state == "A" { "B" } else { "A" };
    }
}

#[test]
fn a_cycle_of_state_timeouts_is_computed_through_a_jump() {
    // Four probes of the state: a small gap (expired one by one), a jump
    // of ~11.6 days (past the limit: computed), and two more.
    let times = [
        T0 + 10 * SEC,
        T0 + 1_000_000 * SEC + SEC / 2,
        T0 + 1_000_002 * SEC,
        T0 + 1_000_003 * SEC + 1,
    ];
    let mut pkts = vec![(T0, A)];
    pkts.extend(times.iter().map(|&t| (t, A)));
    let (events, stats, _) = run(CYCLE, &pkts);
    let seen: Vec<&str> = events.iter().map(|e| e.text.as_str()).collect();
    let want: Vec<&str> = times.iter().map(|&t| cycle_at(T0, t).0).collect();
    assert_eq!(seen, want);
    let total = cycle_at(T0, times[3]).1;
    assert_eq!(stats.state_expiries + stats.state_expiries_skipped, total);
    assert!(stats.state_expiries_skipped > 0, "{stats:?}");
    // 7 expiries before the jump, the limit inside it, a couple after.
    assert!(stats.state_expiries <= 7 + CATCH_UP_LIMIT + 3, "{stats:?}");
}

#[test]
fn a_state_timeout_below_a_nanosecond_does_not_loop_at_one_instant() {
    // Rounded to 1 ns (it used to be 0 ns: re-armed at the instant it
    // fired, forever). One second later the state has cycled 10^9 times.
    let src = r#"<streamon>
  <statedef id="idle"/>
  <statedef id="spin" timeout="0.0000000001" next_state="spin" code="S"/>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="idle"><condition expression="true" next_state="spin"/></state>
    <state id="spin"><post-condition-action do='Publish(seen, "%state.code")'/></state>
  </event>
</streamon>"#;
    let (events, stats, _) = run(src, &[(T0, A), (T0 + SEC, A)]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].text, "S");
    assert_eq!(stats.state_expiries, CATCH_UP_LIMIT);
    assert_eq!(
        stats.state_expiries + stats.state_expiries_skipped,
        SEC,
        "{stats:?}"
    );
}

#[test]
fn time_going_backwards_is_counted_and_timers_stay_in_order() {
    // The second packet is 30 s older than the first: counted; the tick
    // armed at T0 + 1 s fires at the third packet, and later ones on time.
    let pkts = [
        (T0, A),
        (T0 - 30 * SEC, A),
        (T0 + 2 * SEC + 1, A),
        (T0 - 100 * SEC, A),
    ];
    let (events, stats, _) = run(&ticker("1"), &pkts);
    assert_eq!(ticks(&events), [T0 + SEC, T0 + 2 * SEC]);
    assert_eq!(stats.time_backwards, 2);
    assert_eq!(stats.timeouts_skipped, 0);
}

#[test]
fn timers_past_the_end_of_time_are_counted_not_armed() {
    // 10^12 s after 2026 is past u64 nanoseconds (year 2554).
    let (events, stats, pending) = run(&ticker("1000000000000"), &[(T0, A), (T0 + SEC, A)]);
    assert!(events.is_empty());
    assert_eq!((stats.timers_beyond_end, pending), (1, 0));

    // A capture stamped 1.5 s before the end of time: the tick at −0.5 s
    // fires once, its next period cannot exist.
    let end = u64::MAX;
    let (events, stats, pending) = run(
        &ticker("1"),
        &[(end - 3 * SEC / 2, A), (end - SEC / 4, A), (end, A)],
    );
    assert_eq!(ticks(&events), [end - SEC / 2]);
    assert_eq!((stats.timers_beyond_end, pending), (1, 0));

    // A state timeout that would end past the end of time never expires.
    let src = r#"<streamon>
  <statedef id="idle"/>
  <statedef id="long" timeout="1000000000000" code="L"/>
  <event type="packet" selector="proto udp" primary-key="ip_src">
    <state id="idle"><condition expression="true" next_state="long"/></state>
    <state id="long"><post-condition-action do='Publish(seen, "%state.code")'/></state>
  </event>
</streamon>"#;
    let (events, stats, _) = run(src, &[(T0, A), (end, A)]);
    assert_eq!(events.len(), 1);
    assert_eq!(stats.timers_beyond_end, 1);
    assert_eq!(stats.state_expiries, 0);
}

/// Gaps between packets, in periods: small ones, ones around the limit,
/// huge ones, and steps back.
fn gap() -> impl Strategy<Value = i64> {
    let limit = CATCH_UP_LIMIT as i64;
    prop_oneof![
        0i64..5,
        (limit - 2)..(limit + 3),
        (limit * 10)..(1i64 << 28),
        -50i64..0,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The runtime fires exactly what the rule as documented fires, with
    /// the same skipped count, for any period and any packet times.
    #[test]
    fn the_runtime_follows_the_documented_rule(
        period_ms in 1u64..5_000,
        steps in prop::collection::vec((gap(), 0u64..1000), 1..8),
    ) {
        let p = period_ms * SEC / 1000;
        let mut t = T0;
        let mut times = Vec::new();
        for (periods, frac) in steps {
            let d = (periods.unsigned_abs() * p).saturating_add(frac * p / 1000);
            t = if periods < 0 { t.saturating_sub(d) } else { t.saturating_add(d) };
            times.push(t);
        }
        let mut pkts = vec![(T0, A)];
        pkts.extend(times.iter().map(|&t| (t, A)));
        let secs = format!("{}", period_ms as f64 / 1000.0);
        let (events, stats, _) = run(&ticker(&secs), &pkts);
        // The model sees the same rounding of the period as the program.
        let p = ((period_ms as f64 / 1000.0) * 1e9) as u64;
        let (want, skipped) = model(T0 + p, p, &times);
        prop_assert_eq!(ticks(&events), want);
        prop_assert_eq!(stats.timeouts_skipped, skipped);
        let back = times
            .iter()
            .scan(T0, |latest, &t| {
                let b = t < *latest;
                *latest = (*latest).max(t);
                Some(b as u64)
            })
            .sum::<u64>();
        prop_assert_eq!(stats.time_backwards, back);
    }
}

/// A program whose states `s1`…`sk` each have a timeout (`ms[i]`) and a
/// `next_state` (`next[i]`: 0 is `idle`, the initial state, else `s<n>`):
/// any shape of chains and cycles. A packet publishes the code of the
/// state it finds; in `idle` it enters `s1`.
fn state_graph(ms: &[u64], next: &[usize]) -> String {
    let name = |n: usize| {
        if n == 0 {
            "idle".to_string()
        } else {
            format!("s{n}")
        }
    };
    let mut x = String::from("<streamon>\n  <statedef id=\"idle\" code=\"0\"/>\n");
    for (i, (t, n)) in ms.iter().zip(next).enumerate() {
        x += &format!(
            "  <statedef id=\"s{}\" code=\"{}\" timeout=\"{}\" next_state=\"{}\"/>\n",
            i + 1,
            i + 1,
            *t as f64 / 1000.0,
            name(*n)
        );
    }
    x += "  <event type=\"packet\" selector=\"proto udp\" primary-key=\"ip_src\">\n";
    x += "    <state id=\"idle\"><condition expression=\"true\" next_state=\"s1\" \
          action='Publish(seen, \"%state.code\")'/></state>\n";
    for i in 1..=ms.len() {
        x += &format!(
            "    <state id=\"s{i}\"><post-condition-action do='Publish(seen, \"%state.code\")'/></state>\n"
        );
    }
    x + "  </event>\n</streamon>"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// State expiries computed past the limit (laps of a cycle by
    /// arithmetic) give the state, and the number of expiries, that
    /// expiring one by one gives, for any graph of state timeouts.
    #[test]
    fn computed_expiries_equal_expiring_one_by_one(
        graph in prop::collection::vec((100u64..3000, 0usize..5), 1..5),
        gaps_ms in prop::collection::vec(
            prop_oneof![0u64..20_000, 1_000_000u64..20_000_000],
            1..6,
        ),
    ) {
        let k = graph.len();
        let ms: Vec<u64> = graph.iter().map(|g| g.0).collect();
        let next: Vec<usize> = graph.iter().map(|g| g.1 % (k + 1)).collect();
        let mut times = vec![T0];
        for g in &gaps_ms {
            times.push(times.last().unwrap() + g * 1_000_000);
        }
        let pkts: Vec<_> = times.iter().map(|&t| (t, A)).collect();
        let (events, stats, _) = run(&state_graph(&ms, &next), &pkts);

        // One expiry at a time, with the program's rounding of seconds.
        let ns: Vec<u64> = ms.iter().map(|&t| ((t as f64 / 1000.0) * 1e9) as u64).collect();
        let (mut cur, mut entered, mut expiries) = (0usize, 0u64, 0u64);
        let mut want = Vec::new();
        for &now in &times {
            while cur != 0 && entered + ns[cur - 1] <= now {
                entered += ns[cur - 1];
                cur = next[cur - 1];
                expiries += 1;
            }
            want.push(cur.to_string());
            if cur == 0 {
                cur = 1;
                entered = now;
            }
        }
        let seen: Vec<String> = events.iter().map(|e| e.text.clone()).collect();
        prop_assert_eq!(seen, want);
        prop_assert_eq!(stats.state_expiries + stats.state_expiries_skipped, expiries);
    }
}
