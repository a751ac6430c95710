//! RustHDL's own simulator against the Verilator model, on the same
//! pipeline (`SimPipeline`), configuration and ops: the Rust models of the
//! leaf blocks (H3 unit, RAM, ROM) and the kernels as simulated by RustHDL
//! must give the same result records as the Verilog Verilator compiled.

use rust_hdl::prelude::*;
use streamon_contract::plan::{TableSpec, TimeConstant};
use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
use streamon_hw::layout::{connect_ports, SimPipeline};
use streamon_sim::SimEngine;

fn op_bits(op: &Op) -> Bits<512> {
    let b = op.to_bytes();
    let mut v = Bits::<512>::default();
    for (i, chunk) in b.chunks(8).enumerate() {
        v.set_bits::<64>(64 * i, u64::from_le_bytes(chunk.try_into().unwrap()).into());
    }
    v
}

fn result_of(v: Bits<128>) -> OpResult {
    let x = v.to_u128();
    OpResult::from_bytes(&x.to_le_bytes())
}

#[test]
fn rusthdl_simulator_agrees_with_verilator() {
    let plans: Vec<MetricPlan> = [
        MetricSpec::VariationDetector {
            log2_bits: 9,
            hashes: 3,
        },
        MetricSpec::ExactCounter {
            table: TableSpec {
                log2_buckets: 1,
                ways: 2,
            },
        },
        MetricSpec::Global,
        MetricSpec::DecayingFilter {
            log2_cells: 4,
            rows: 2,
            tau: TimeConstant { tau_ns: 2e6 },
        },
        MetricSpec::ExactEwma {
            table: TableSpec {
                log2_buckets: 1,
                ways: 2,
            },
            tau: TimeConstant { tau_ns: 2e6 },
        },
    ]
    .into_iter()
    .map(|s| MetricPlan::install(s).unwrap())
    .collect();
    let mut ops = Vec::new();
    for i in 0..24u32 {
        let key = [(i % 5) as u8, 1];
        ops.push(Op::new(0, OpKind::VdGetSet, &key, 0, i as u64).unwrap());
        ops.push(
            Op::new(
                1,
                OpKind::AddGet,
                &key[..1 + (i % 2) as usize],
                i,
                (i as u64) << 21,
            )
            .unwrap()
            .if_new(),
        );
        ops.push(
            Op::new(
                2,
                [OpKind::Add, OpKind::Get, OpKind::ResetKey][i as usize % 3],
                &[],
                5,
                0,
            )
            .unwrap(),
        );
        if i % 7 == 6 {
            ops.push(Op::new(1, OpKind::Clear, &[], 0, 0).unwrap());
        }
        // Back-to-back on the same cells, with decay between packets.
        let ts = (i as u64) * 150_000;
        ops.push(Op::new(3, OpKind::AddGet, &key[..1], i % 3 + 1, ts).unwrap());
        ops.push(
            Op::new(
                3,
                [OpKind::AddGet, OpKind::Get, OpKind::ResetKey][i as usize % 3],
                &key[..1],
                2,
                ts,
            )
            .unwrap(),
        );
        if i == 17 {
            ops.push(Op::new(3, OpKind::Clear, &[], 0, ts).unwrap());
        }
        ops.push(Op::new(4, OpKind::AddGet, &key, i % 4, ts).unwrap());
        ops.push(
            Op::new(
                4,
                [OpKind::AddGet, OpKind::Get][i as usize % 2],
                &key,
                1,
                ts,
            )
            .unwrap(),
        );
    }
    let mut sim = SimEngine::new(&plans).unwrap();
    let mut want = vec![OpResult::default(); ops.len()];
    sim.apply(&ops, &mut want);

    let writes = SimEngine::config_writes(&plans).unwrap();
    let budget = 10 * (writes.len() as u64 + ops.len() as u64 + 64) * 10;
    let stream: Vec<Bits<512>> = ops.iter().map(op_bits).collect();
    let n = ops.len();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let mut uut = SimPipeline::new();
    connect_ports(&mut uut);
    uut.connect_all();
    let mut hdl = Simulation::new();
    hdl.add_clock(5, |x: &mut Box<SimPipeline>| x.clock.next = !x.clock.val());
    hdl.add_testbench(move |mut sim: Sim<SimPipeline>| {
        let mut x = sim.init()?;
        for (a, d) in &writes {
            x.cfg_we.next = true;
            x.cfg_addr.next = (*a as u64).into();
            x.cfg_data.next = (*d).into();
            wait_clock_cycle!(sim, clock, x);
        }
        x.cfg_we.next = false;
        let mut sent = 0;
        while sink.lock().unwrap().len() < n {
            x.in_valid.next = sent < n;
            if sent < n {
                x.in_op.next = stream[sent];
                sent += 1;
            }
            wait_clock_cycle!(sim, clock, x);
            if x.out_valid.val() {
                sink.lock().unwrap().push(x.out_result.val());
            }
        }
        sim.done(x)
    });
    hdl.run(Box::new(uut), budget).unwrap();
    let got: Vec<OpResult> = got.lock().unwrap().iter().map(|&v| result_of(v)).collect();
    assert_eq!(got.len(), n);
    for i in 0..n {
        assert_eq!(
            got[i], want[i],
            "op #{i} {:?}: RustHDL simulator vs Verilator",
            ops[i]
        );
    }
}
