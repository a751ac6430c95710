//! Hardware smoke test: the same driver code as `sim_nic.rs`, on a real card
//! through VFIO. Ignored by default (no card in CI). To run it:
//!
//! 1. Follow `docs/operations.md` steps 1–5 (IOMMU on, `vfio-pci` loaded,
//!    the card bound to it, permissions, huge pages).
//! 2. `STREAMON_PCI=0000:01:00.0 cargo test -p streamon-driver --test
//!    vfio_hardware -- --ignored`
//!
//! The card must be loaded with the bitstream whose metric configuration is
//! the plans below (one `Global` counter and one exact counter).

use streamon_contract::plan::TableSpec;
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_driver::vfio::VfioProvider;
use streamon_driver::{DeviceEngine, DriverConfig};
use streamon_sw::SwEngine;

#[test]
#[ignore = "needs a streamon card bound to vfio-pci: see docs/operations.md and this file's doc"]
fn smoke_test_on_a_real_card() {
    let pci = std::env::var("STREAMON_PCI").expect("set STREAMON_PCI to the card's PCI address");
    let plans: Vec<MetricPlan> = [
        MetricSpec::Global,
        MetricSpec::ExactCounter {
            table: TableSpec::default(),
        },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect();
    let provider = VfioProvider::open(&pci).unwrap_or_else(|e| panic!("{e}"));
    let mut dev = DeviceEngine::open(provider, &plans, DriverConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let ops: Vec<Op> = (0..100_000u32)
        .flat_map(|i| {
            [
                Op::new(0, OpKind::Add, &[], 1, u64::from(i)).unwrap(),
                Op::new(
                    1,
                    OpKind::AddGet,
                    &(i % 1000).to_le_bytes(),
                    1,
                    u64::from(i),
                )
                .unwrap(),
            ]
        })
        .collect();
    let mut got = vec![OpResult::default(); ops.len()];
    dev.try_apply(&ops, &mut got)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sw = SwEngine::new(&plans);
    let mut want = vec![OpResult::default(); ops.len()];
    sw.apply(&ops, &mut want);
    assert_eq!(got, want);
    assert_eq!(dev.try_dump(1).unwrap(), sw.dump(1));
}
