//! Per-metric properties the contract promises (docs/metric-contract.md).

use std::collections::HashMap;

use proptest::prelude::*;
use streamon_contract::plan::TableSpec;
use streamon_contract::{
    MetricEngine, MetricPlan, MetricSpec, Op, OpKind, ResultFlags, TimeConstant,
};
use streamon_sw::SwEngine;

fn engine(spec: MetricSpec) -> SwEngine {
    SwEngine::new(&[MetricPlan::install(spec).unwrap()])
}

fn op(kind: OpKind, key: u32, value: u32, ts: u64) -> Op {
    Op::new(0, kind, &key.to_be_bytes(), value, ts).unwrap()
}

proptest! {
    /// A key set since the last swap (or one swap before) is always found:
    /// no false negatives.
    #[test]
    fn detector_has_no_false_negatives(keys in proptest::collection::vec(any::<u32>(), 1..3000)) {
        let mut e = engine(MetricSpec::VariationDetector { log2_bits: 12, hashes: 6 });
        let mut since_swap: Vec<Vec<u32>> = vec![Vec::new(), Vec::new()];
        for (i, &k) in keys.iter().enumerate() {
            let r = e.apply_one(&op(OpKind::VdSet, k, 0, 0));
            if r.flags & ResultFlags::SWAPPED != 0 {
                // The filter that learned k keeps it as the detecting one.
                since_swap.remove(0);
                since_swap.push(Vec::new());
                since_swap[0].push(k);
            } else {
                since_swap[1].push(k);
            }
            // Check every key of both live generations now and then (every
            // insert would make the test quadratic).
            if i % 64 != 63 && i + 1 != keys.len() {
                continue;
            }
            for gen in &since_swap {
                for &g in gen {
                    prop_assert_eq!(e.apply_one(&op(OpKind::VdGet, g, 0, 0)).value, 1, "lost key {}", g);
                }
            }
        }
    }

    /// Count-min (plain and conservative) never under-estimates a key's sum.
    #[test]
    fn countmin_never_underestimates(
        adds in proptest::collection::vec((0u32..200, 1u32..5), 1..2000),
        conservative in any::<bool>(),
    ) {
        let mut e = engine(MetricSpec::CountMin { log2_cells: 6, rows: 3, conservative });
        let mut exact: HashMap<u32, u64> = HashMap::new();
        for &(k, v) in &adds {
            e.apply_one(&op(OpKind::Add, k, v, 0));
            *exact.entry(k).or_default() += v as u64;
        }
        for (&k, &n) in &exact {
            prop_assert!(e.apply_one(&op(OpKind::Get, k, 0, 0)).value >= n);
        }
    }

    /// Between updates a decaying count only goes down, and with no update
    /// for 16 τ it is 0.
    #[test]
    fn decaying_counts_fall_between_updates(
        adds in proptest::collection::vec((0u32..50, 1u32..100), 1..200),
        steps in proptest::collection::vec(1u64..5_000_000_000, 1..20),
        exact_table in any::<bool>(),
    ) {
        let tau = TimeConstant::from_window_secs(2.0);
        let mut e = if exact_table {
            engine(MetricSpec::ExactEwma { table: TableSpec { log2_buckets: 8, ways: 4 }, tau })
        } else {
            engine(MetricSpec::DecayingFilter { log2_cells: 8, rows: 3, tau })
        };
        let t0 = 1_767_225_600_000_000_000u64;
        for &(k, v) in &adds {
            e.apply_one(&op(OpKind::Add, k, v, t0));
        }
        for k in 0..50 {
            let mut t = t0;
            let mut last = e.apply_one(&op(OpKind::Get, k, 0, t)).value;
            for &s in &steps {
                t += s;
                let now = e.apply_one(&op(OpKind::Get, k, 0, t)).value;
                prop_assert!(now <= last, "key {} grew from {} to {}", k, last, now);
                last = now;
            }
            prop_assert_eq!(e.apply_one(&op(OpKind::Get, k, 0, t0 + 40_000_000_000)).value, 0);
        }
    }

    /// Exact tables: get after add gives the sum while nothing is evicted,
    /// resetting one key leaves every other key as it was, and occupancy
    /// never exceeds capacity (evictions are counted instead).
    #[test]
    fn exact_tables_are_exact_and_bounded(
        ops in proptest::collection::vec((0u32..64, 1u32..10, prop_oneof![9 => Just(false), 1 => Just(true)]), 1..1500),
    ) {
        let table = TableSpec { log2_buckets: 3, ways: 4 };
        let capacity = 32;
        let mut e = engine(MetricSpec::ExactCounter { table });
        let mut exact: HashMap<u32, u64> = HashMap::new();
        let mut evictions = 0u64;
        for (i, &(k, v, reset)) in ops.iter().enumerate() {
            let ts = i as u64 * 2_000_000;
            if reset {
                let others: Vec<(u32, u64)> = (0..64).filter(|&o| o != k)
                    .map(|o| (o, e.apply_one(&op(OpKind::Get, o, 0, ts)).value)).collect();
                e.apply_one(&op(OpKind::ResetKey, k, 0, ts));
                exact.remove(&k);
                prop_assert_eq!(e.apply_one(&op(OpKind::Get, k, 0, ts)).value, 0);
                for (o, before) in others {
                    prop_assert_eq!(e.apply_one(&op(OpKind::Get, o, 0, ts)).value, before);
                }
                continue;
            }
            let r = e.apply_one(&op(OpKind::AddGet, k, v, ts));
            if r.flags & ResultFlags::EVICTED != 0 {
                evictions += 1;
                // Forget whichever key is gone: the table says 0 for it now.
                exact.retain(|&o, _| o == k || e.apply_one(&op(OpKind::Get, o, 0, ts)).value != 0);
            }
            let sum = exact.entry(k).or_default();
            *sum += v as u64;
            prop_assert_eq!(r.value, *sum);
            prop_assert!(exact.len() <= capacity);
        }
        let dump = e.dump(0).unwrap();
        prop_assert_eq!(dump[3], evictions, "evictions are counted");
    }
}
