//! The driver end to end against the simulated NIC (software device side),
//! checked against `SwEngine` run directly: random op streams, real traces,
//! ring wrap-around, and seeded fault injection producing typed errors.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use streamon_contract::plan::TableSpec;
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult, KEY_MAX};
use streamon_driver::regs::Counter;
use streamon_driver::{
    DeviceEngine, DeviceError, DriverConfig, DriverError, FaultPlan, SimNic, SimNicConfig,
    STATUS_DEVICE_ERROR,
};
use streamon_packet::pcap::PcapSource;
use streamon_packet::{parse, Field};
use streamon_sw::SwEngine;

fn plans() -> Vec<MetricPlan> {
    let table = TableSpec {
        log2_buckets: 6,
        ways: 2,
    };
    [
        MetricSpec::VariationDetector {
            log2_bits: 12,
            hashes: 4,
        },
        MetricSpec::ExactCounter { table },
        MetricSpec::Global,
        MetricSpec::CountMin {
            log2_cells: 6,
            rows: 3,
            conservative: true,
        },
        MetricSpec::HyperLogLog { log2_registers: 6 },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).expect("valid spec"))
    .collect()
}

fn open(plans: &[MetricPlan], nic: SimNicConfig, cfg: DriverConfig) -> DeviceEngine<SimNic> {
    let nic = SimNic::software(plans, nic).expect("simulated NIC starts");
    DeviceEngine::open(nic, plans, cfg).expect("device opens")
}

/// Raw ops, including malformed ones (bad kinds, metrics, key lengths,
/// gates): the device must answer those exactly as the engine does.
fn arb_op() -> impl Strategy<Value = Op> {
    (
        0u16..7,
        0u8..10,
        prop::bool::weighted(0.3),
        0u8..44,
        0u8..8,
        any::<u32>(),
        0u64..1_000_000_000,
    )
        .prop_map(|(metric, kind, if_new, key_len, seed, value, ts)| {
            let mut op = Op {
                metric,
                kind,
                flags: u8::from(if_new),
                key_len,
                value: value % 100,
                ts_ns: ts,
                ..Op::default()
            };
            for (i, b) in op
                .key
                .iter_mut()
                .take(key_len.min(KEY_MAX as u8) as usize)
                .enumerate()
            {
                *b = seed.wrapping_add(i as u8 % 3);
            }
            op
        })
}

fn direct(plans: &[MetricPlan], ops: &[Op]) -> (Vec<OpResult>, SwEngine) {
    let mut sw = SwEngine::new(plans);
    let mut out = vec![OpResult::default(); ops.len()];
    sw.apply(ops, &mut out);
    (out, sw)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random op streams, cut into random calls, through a small ring with
    /// small doorbell batches (so rings wrap many times): the same results
    /// as the software engine, op by op, and the same final state.
    #[test]
    fn device_engine_matches_sw_engine_on_random_streams(
        ops in prop::collection::vec(arb_op(), 1..600),
        cuts in prop::collection::vec(1usize..200, 1..8),
        log2_ring in 1u32..7,
        batch in 1u32..40,
    ) {
        let plans = plans();
        let (want, sw) = direct(&plans, &ops);
        let mut dev = open(&plans, SimNicConfig::default(), DriverConfig {
            ring_entries: 1 << log2_ring,
            batch,
            ..DriverConfig::default()
        });
        let mut got = vec![OpResult::default(); ops.len()];
        let mut at = 0;
        let mut i = 0;
        while at < ops.len() {
            let end = (at + cuts[i % cuts.len()]).min(ops.len());
            dev.try_apply(&ops[at..end], &mut got[at..end]).expect("device answers");
            at = end;
            i += 1;
        }
        prop_assert_eq!(&got, &want);
        for m in 0..plans.len() as u16 {
            prop_assert_eq!(dev.try_dump(m).expect("dump"), sw.dump(m), "metric {}", m);
        }
        prop_assert_eq!(dev.try_dump(99).expect("dump"), None);
        let c = dev.counters();
        prop_assert_eq!(c.ops_submitted, ops.len() as u64);
        prop_assert_eq!(c.ops_completed, ops.len() as u64);
        let d = dev.device_counters();
        prop_assert_eq!(d[Counter::OpsCompleted as usize], ops.len() as u64);
        prop_assert_eq!(d[Counter::SqDrops as usize], 0);
    }
}

fn trace(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces")
        .join(name)
}

/// Per packet: `VdGetSet(src)` on the detector, then `AddGet(src) IF_NEW`
/// on the exact counter (distinct sources), plus `Add` on the global
/// packet counter.
fn trace_ops(name: &str) -> Vec<Op> {
    let mut src = PcapSource::open(trace(name)).expect("trace opens");
    let mut ops = Vec::new();
    while let Some(f) = src.next_frame().expect("trace reads") {
        let Ok(p) = parse(f.data, f.linktype, f.meta) else {
            continue;
        };
        let Some(addr) = p.get(Field::IpSrc).and_then(|v| v.as_addr()) else {
            continue;
        };
        let key = match addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let ts = p.ts_ns();
        ops.push(Op::new(0, OpKind::VdGetSet, &key, 0, ts).unwrap());
        ops.push(Op::new(1, OpKind::AddGet, &key, 1, ts).unwrap().if_new());
        ops.push(Op::new(2, OpKind::Add, &[], 1, ts).unwrap());
    }
    ops
}

#[test]
fn real_traces_through_the_simulated_nic() {
    let plans = plans();
    for name in [
        "ndpi_synscan.pcap",
        "sddos_synflood_spoofed.pcap",
        "dstreamon_dos.pcap",
    ] {
        let ops = trace_ops(name);
        assert!(ops.len() > 300, "{name}: {} ops", ops.len());
        let (want, sw) = direct(&plans, &ops);
        let mut dev = open(&plans, SimNicConfig::default(), DriverConfig::default());
        let mut got = vec![OpResult::default(); ops.len()];
        // Packet-sized calls of 3 ops and bulk calls alternate.
        let (small, bulk) = ops.split_at(300);
        let (got_small, got_bulk) = got.split_at_mut(300);
        for (o, r) in small.chunks(3).zip(got_small.chunks_mut(3)) {
            dev.apply(o, r);
        }
        dev.apply(bulk, got_bulk);
        assert_eq!(got, want, "{name}");
        for m in 0..3 {
            assert_eq!(dev.dump(m), sw.dump(m), "{name}: metric {m}");
        }
        // The distinct-source gate worked: the exact counter holds ≥ 1 key.
        assert!(got.iter().any(|r| r.metric == 1 && r.value == 1), "{name}");
    }
}

#[test]
fn wrap_around_a_two_entry_ring() {
    let plans = plans();
    let ops: Vec<Op> = (0..1000u32)
        .map(|i| Op::new(1, OpKind::AddGet, &(i % 7).to_le_bytes(), 1, u64::from(i)).unwrap())
        .collect();
    let (want, _) = direct(&plans, &ops);
    let mut dev = open(
        &plans,
        SimNicConfig::default(),
        DriverConfig {
            ring_entries: 2,
            batch: 8,
            ..DriverConfig::default()
        },
    );
    let mut got = vec![OpResult::default(); ops.len()];
    dev.try_apply(&ops, &mut got).unwrap();
    assert_eq!(got, want);
    // Ring of 2: one op in flight at a time, one doorbell each.
    assert_eq!(dev.counters().sq_doorbells, 1000);
}

fn short() -> DriverConfig {
    DriverConfig {
        ring_entries: 16,
        batch: 4,
        timeout: Duration::from_millis(200),
    }
}

fn global_ops(n: u32) -> Vec<Op> {
    (0..n)
        .map(|i| Op::new(2, OpKind::Add, &[], 1, u64::from(i)).unwrap())
        .collect()
}

/// Seeded faults: each produces its typed error and counter, never a hang
/// or a panic; the ops answered before the fault are right; `reset` brings
/// the engine back.
#[test]
fn seeded_faults_give_typed_errors() {
    let plans = plans();
    let ops = global_ops(200);
    let (want, _) = direct(&plans, &ops);
    let mut seen = [0u32; 3];
    for seed in 0..12u64 {
        let faults = FaultPlan::seeded(seed, ops.len() as u64);
        let mut dev = open(
            &plans,
            SimNicConfig {
                faults,
                ..SimNicConfig::default()
            },
            short(),
        );
        let mut got = vec![OpResult::default(); ops.len()];
        let err = dev
            .try_apply(&ops, &mut got)
            .expect_err("a fault was injected");
        let at = faults
            .corrupt_seq_at
            .or(faults.corrupt_sq_head_at)
            .or(faults.stall_after)
            .unwrap() as usize;
        let c = dev.counters();
        match err {
            DeviceError::UnexpectedCompletion { expected, got: g } => {
                assert_eq!(faults.corrupt_seq_at, Some(at as u64), "seed {seed}");
                assert_eq!(expected, at as u32);
                assert_ne!(g, expected);
                assert_eq!(c.unexpected_completions, 1);
                seen[0] += 1;
            }
            DeviceError::RingIndexOutOfRange { which, index, size } => {
                assert_eq!(faults.corrupt_sq_head_at, Some(at as u64), "seed {seed}");
                assert_eq!((which, size), ("sq_head", 16));
                assert!(index >= size);
                assert_eq!(c.ring_index_errors, 1);
                seen[1] += 1;
            }
            DeviceError::Timeout { in_flight, .. } => {
                assert_eq!(faults.stall_after, Some(at as u64), "seed {seed}");
                assert!(in_flight > 0);
                assert_eq!(c.timeouts, 1);
                seen[2] += 1;
            }
            e => panic!("seed {seed}: unexpected {e:?}"),
        }
        assert_eq!(
            got[..at],
            want[..at],
            "seed {seed}: results before the fault"
        );
        assert!(dev.is_failed());
        assert_eq!(
            dev.try_apply(&ops[..1], &mut got[..1]),
            Err(DeviceError::Failed)
        );
        assert_eq!(dev.try_dump(0), Err(DeviceError::Failed));
        // A reset returns the metrics to their installed state and the
        // fault plan counts from it again: a prefix shorter than the fault
        // runs clean.
        dev.reset().expect("reset");
        let n = at.min(20);
        dev.try_apply(&ops[..n], &mut got[..n])
            .expect("works after reset");
        assert_eq!(got[..n], want[..n]);
    }
    assert!(
        seen.iter().all(|&s| s > 0),
        "each fault kind drawn: {seen:?}"
    );
}

#[test]
fn metric_engine_apply_marks_unanswered_ops() {
    let plans = plans();
    let ops = global_ops(50);
    let faults = FaultPlan {
        stall_after: Some(10),
        ..FaultPlan::default()
    };
    let mut dev = open(
        &plans,
        SimNicConfig {
            faults,
            ..SimNicConfig::default()
        },
        short(),
    );
    let mut got = vec![OpResult::default(); ops.len()];
    dev.apply(&ops, &mut got);
    assert!(got[..10].iter().all(|r| r.status == 0));
    assert!(got[10..]
        .iter()
        .all(|r| r.status == STATUS_DEVICE_ERROR && r.metric == 2));
    assert_eq!(dev.counters().ops_failed, 40);
    assert!(got[20].check().is_err());
}

#[test]
fn bad_identification_is_refused() {
    let plans = plans();
    let with = |faults| {
        SimNic::software(
            &plans,
            SimNicConfig {
                faults,
                ..SimNicConfig::default()
            },
        )
        .unwrap()
    };
    let e = DeviceEngine::open(
        with(FaultPlan {
            magic: Some(0xDEAD_BEEF),
            ..FaultPlan::default()
        }),
        &plans,
        DriverConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DriverError::BadMagic {
                found: 0xDEAD_BEEF,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("not a streamon SmartNIC"));
    let e = DeviceEngine::open(
        with(FaultPlan {
            version: Some(2 << 16),
            ..FaultPlan::default()
        }),
        &plans,
        DriverConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DriverError::UnsupportedVersion {
                major: 2,
                minor: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn plans_must_match_the_configuration_window() {
    let plans = plans();
    let nic = SimNic::software(&plans[..2], SimNicConfig::default()).unwrap();
    let e = DeviceEngine::open(nic, &plans, DriverConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            DriverError::PlanMismatch {
                device_count: 2,
                plans_count: 5,
                ..
            }
        ),
        "{e}"
    );
    let nic = SimNic::software(&plans, SimNicConfig::default()).unwrap();
    let e = DeviceEngine::open(
        nic,
        &plans,
        DriverConfig {
            ring_entries: 100,
            ..DriverConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DriverError::BadRing {
                requested: 100,
                max: 4096
            }
        ),
        "{e}"
    );
}

/// A completion that answers no op (written after the last real one, with
/// the next sequence number, so it would pass the sequence check) is caught
/// before the next batch is submitted: a typed error and a counter, and no
/// result of the next batch is taken from it.
#[test]
fn a_completion_for_an_op_never_submitted_is_refused() {
    let plans = plans();
    let ops = global_ops(40);
    let mut dev = open(
        &plans,
        SimNicConfig {
            faults: FaultPlan {
                spurious_completion_after: Some(19),
                ..FaultPlan::default()
            },
            ..SimNicConfig::default()
        },
        // Room in the completion ring for the stray entry.
        DriverConfig {
            ring_entries: 64,
            ..short()
        },
    );
    let mut got = vec![OpResult::default(); ops.len()];
    dev.try_apply(&ops[..20], &mut got[..20])
        .expect("the first 20 ops are answered");
    // Let the device write its stray completion.
    let start = std::time::Instant::now();
    while dev.device_counters()[Counter::OpsCompleted as usize] < 20
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    let e = dev
        .try_apply(&ops[20..], &mut got[20..])
        .expect_err("the stray completion is noticed");
    assert_eq!(e, DeviceError::CompletionWithoutOp { seq: 20 });
    assert!(e.to_string().contains("no op was in flight"), "{e}");
    assert_eq!(dev.counters().unexpected_completions, 1);
    assert_eq!(dev.last_error(), Some(e));
    assert!(got[20..].iter().all(|r| *r == OpResult::default()));
    dev.reset().expect("reset");
    assert_eq!(dev.last_error(), None);
}

/// A device that never finishes its reset: `open` gives up after the
/// timeout with a typed error instead of waiting forever.
#[test]
fn a_device_that_never_comes_up_times_out() {
    let plans = plans();
    let nic = SimNic::software(
        &plans,
        SimNicConfig {
            faults: FaultPlan {
                ignore_reset: true,
                ..FaultPlan::default()
            },
            ..SimNicConfig::default()
        },
    )
    .unwrap();
    let start = std::time::Instant::now();
    let e = DeviceEngine::open(nic, &plans, short()).unwrap_err();
    assert!(matches!(e, DriverError::ResetTimeout(_)), "{e}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

/// A device that does not host a plan's kind is refused at open, and the
/// error says what the device hosts.
#[test]
fn a_kind_the_device_does_not_host_is_refused_with_what_it_hosts() {
    use streamon_contract::MetricKind;
    use streamon_driver::regs::MetricKinds;
    let plans = plans();
    let owned = plans.clone();
    let nic = SimNic::with_engine(
        &plans,
        MetricKinds::of(&[MetricKind::Global, MetricKind::ExactCounter]),
        SimNicConfig::default(),
        Box::new(move || Box::new(SwEngine::new(&owned))),
        "software engine, two kinds",
    )
    .unwrap();
    let e = DeviceEngine::open(nic, &plans, DriverConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            DriverError::MetricKindNotHosted {
                metric: 0,
                kind: MetricKind::VariationDetector,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("it hosts Global, ExactCounter"),
        "{e}"
    );
}
