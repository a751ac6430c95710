use streamon_contract::plan::TableSpec;
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind};
use streamon_sim::SimEngine;
use streamon_sw::SwEngine;

#[test]
fn smoke() {
    let plans: Vec<MetricPlan> = [
        MetricSpec::VariationDetector { log2_bits: 10, hashes: 4 },
        MetricSpec::ExactCounter { table: TableSpec { log2_buckets: 2, ways: 2 } },
        MetricSpec::Global,
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect();
    let mut sim = SimEngine::new(&plans).unwrap();
    let mut sw = SwEngine::new(&plans);
    let mut ops = vec![];
    for i in 0..50u32 {
        let k = (i % 7).to_le_bytes();
        ops.push(Op::new(0, OpKind::VdGetSet, &k, 0, 1000 * i as u64).unwrap());
        ops.push(Op::new(1, OpKind::AddGet, &k, i, 1 << 20 * (i % 3)).unwrap().if_new());
        ops.push(Op::new(2, OpKind::Add, &k, 3, 0).unwrap());
    }
    for op in &ops {
        let a = sw.apply_one(op);
        let b = sim.apply_one(op);
        assert_eq!(a, b, "{op:?}");
    }
    for m in 0..3 {
        assert_eq!(sw.dump(m), sim.dump(m), "dump {m}");
    }
}
