//! A serialising top for small FPGAs: the pipeline behind a byte-wide port.
//!
//! The pipeline's own ports are 512 bits of op, 128 of result, 64 of
//! configuration data and 64 of dump data: 837 pins, where an iCE40 has 96
//! (UP5K) to ~200 (HX8K). This wrapper loads an op frame one byte per clock
//! into a shift register and issues it with a command; results and dump words
//! leave the same way, one byte per clock. It also narrows the key: the frame
//! carries the first [`FRAME_KEY_BYTES`] key bytes and the rest of the op's
//! key is zero, so this top serves keys of at most that many bytes (longer
//! keys hash as if their later bytes were zero). Constant zero key bits let
//! synthesis drop most of the H3 unit and of the key registers.
//!
//! Its exact bank is counters-only (`Pipeline::with_exact_ewma(false)`): an
//! iCE40 has no asynchronous-read RAM, and the ExactEwma decay table
//! (2048 × 17 bits, read combinationally) became 34,816 flip-flops, ten
//! times an HX8K. So this top serves ExactCounter, not ExactEwma.
//!
//! The pipeline inside still takes one op per clock; the wrapper only limits
//! how fast ops can be fed from outside (one per `FRAME_BYTES + 1` clocks),
//! so place-and-route timing is that of the pipeline's own paths.
//!
//! Protocol (all inputs registered once):
//! * `rx_valid`: shift `rx` into the frame (the frame's byte 0 is the byte
//!   sent first `FRAME_BYTES` shifts earlier: bytes are sent in op order);
//! * `cmd` 1: issue the frame as an op record (bytes `0..FRAME_BYTES` of the
//!   contract's 64-byte layout, the rest zero);
//! * `cmd` 2: configuration write, `cfg_addr` = frame bytes 0..2,
//!   `cfg_data` = frame bytes 8..16;
//! * `cmd` 3: dump read of `dump_addr` = frame bytes 0..4;
//! * a result record (16 bytes) or dump word (8 bytes) is loaded into the
//!   output shift register when it arrives, `tx_valid` rises; `tx` is its
//!   lowest byte and `tx_shift` moves the next byte down (`tx_valid` stays
//!   until the register is reloaded or `tx_shift` has emptied it).

use crate::layout::Ice40Pipeline;
use rust_hdl::prelude::*;

/// Key bytes carried by a frame.
pub const FRAME_KEY_BYTES: usize = 4;
/// Bytes of an op frame: the op record's header (24 bytes) and the key bytes.
pub const FRAME_BYTES: usize = 24 + FRAME_KEY_BYTES;
const FRAME_BITS: usize = FRAME_BYTES * 8;
// The kernel shifts a new byte in at bit 216 (a literal: kernels take no
// constant expressions).
const _: () = assert!(FRAME_BITS == 224);

/// The pipeline of [`crate::layout::ICE40`] behind byte-wide ports (21 pins
/// with the clock).
///
/// Inputs: `rx`, `rx_valid`, `cmd`, `tx_shift`. Outputs: `tx`, `tx_valid`.
#[derive(LogicBlock)]
pub struct SerialTop {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Frame byte.
    pub rx: Signal<In, Bits<8>>,
    /// Shift `rx` into the frame.
    pub rx_valid: Signal<In, Bit>,
    /// 0 idle, 1 op, 2 configuration write, 3 dump read.
    pub cmd: Signal<In, Bits<2>>,
    /// Lowest byte of the output shift register.
    pub tx: Signal<Out, Bits<8>>,
    /// The output register holds unread bytes.
    pub tx_valid: Signal<Out, Bit>,
    /// Move the next output byte to `tx`.
    pub tx_shift: Signal<In, Bit>,
    pipe: Ice40Pipeline,
    rx_q: DFF<Bits<8>>,
    rx_valid_q: DFF<Bit>,
    cmd_q: DFF<Bits<2>>,
    tx_shift_q: DFF<Bit>,
    frame: DFF<Bits<FRAME_BITS>>,
    dump_wait: DFF<Bit>,
    out_sr: DFF<Bits<128>>,
    out_left: DFF<Bits<5>>,
}

impl Default for SerialTop {
    fn default() -> Self {
        Self::new()
    }
}

impl SerialTop {
    /// The wrapped [`Ice40Pipeline`], all metrics uninstalled.
    pub fn new() -> Self {
        SerialTop {
            clock: Default::default(),
            rx: Default::default(),
            rx_valid: Default::default(),
            cmd: Default::default(),
            tx: Default::default(),
            tx_valid: Default::default(),
            tx_shift: Default::default(),
            pipe: Ice40Pipeline::with_exact_ewma(false),
            rx_q: Default::default(),
            rx_valid_q: Default::default(),
            cmd_q: Default::default(),
            tx_shift_q: Default::default(),
            frame: Default::default(),
            dump_wait: Default::default(),
            out_sr: Default::default(),
            out_left: Default::default(),
        }
    }
}

impl Logic for SerialTop {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, rx_q, rx_valid_q, cmd_q, tx_shift_q, frame, dump_wait, out_sr, out_left
        );
        self.pipe.clock.next = self.clock.val();
        self.rx_q.d.next = self.rx.val();
        self.rx_valid_q.d.next = self.rx_valid.val();
        self.cmd_q.d.next = self.cmd.val();
        self.tx_shift_q.d.next = self.tx_shift.val();
        if self.rx_valid_q.q.val() {
            self.frame.d.next =
                (self.frame.q.val() >> 8) | (bit_cast::<FRAME_BITS, 8>(self.rx_q.q.val()) << 216);
        }
        self.pipe.in_valid.next = self.cmd_q.q.val() == 1;
        self.pipe.in_op.next = bit_cast::<512, FRAME_BITS>(self.frame.q.val());
        self.pipe.cfg_we.next = self.cmd_q.q.val() == 2;
        self.pipe.cfg_addr.next = self.frame.q.val().get_bits::<16>(0);
        self.pipe.cfg_data.next = self.frame.q.val().get_bits::<64>(64);
        self.pipe.dump_en.next = self.cmd_q.q.val() == 3;
        self.pipe.dump_addr.next = self.frame.q.val().get_bits::<32>(0);
        self.dump_wait.d.next = self.cmd_q.q.val() == 3;
        if self.tx_shift_q.q.val() && self.out_left.q.val().any() {
            self.out_sr.d.next = self.out_sr.q.val() >> 8;
            self.out_left.d.next = self.out_left.q.val() - 1;
        }
        if self.pipe.out_valid.val() {
            self.out_sr.d.next = self.pipe.out_result.val();
            self.out_left.d.next = 16.into();
        }
        if self.dump_wait.q.val() {
            self.out_sr.d.next = bit_cast::<128, 64>(self.pipe.dump_data.val());
            self.out_left.d.next = 8.into();
        }
        self.tx.next = self.out_sr.q.val().get_bits::<8>(0);
        self.tx_valid.next = self.out_left.q.val().any();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regmap;
    use std::sync::{Arc, Mutex};
    use streamon_contract::plan::TableSpec;
    use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
    use streamon_sw::SwEngine;

    fn top() -> SerialTop {
        let mut t = SerialTop::new();
        t.rx.connect();
        t.rx_valid.connect();
        t.cmd.connect();
        t.tx_shift.connect();
        t.connect_all();
        t
    }

    #[test]
    fn serial_top_is_synthesizable() {
        yosys_validate("serial_top", &generate_verilog(&top())).unwrap();
    }

    /// A small pipeline, both ways: its `caps` output and whether its
    /// Verilog holds the exact bank's 2048-word decay table.
    fn caps_and_table(exact_ewma: bool) -> (u64, bool) {
        type Small = crate::pipeline::Pipeline<0, 1, 2, 1, 2, 4, 1, 1, 0, 4, 16, 1>;
        let build = || {
            let mut p = Small::with_exact_ewma(exact_ewma);
            crate::layout::connect_ports(&mut p);
            p.connect_all();
            p
        };
        let table = generate_verilog(&build()).contains("mem[2047:0]");
        let caps = Arc::new(Mutex::new(0u64));
        let seen = caps.clone();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<Small>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Small>| {
            let mut x = sim.init()?;
            wait_clock_cycle!(sim, clock, x);
            *seen.lock().unwrap() = x.caps.val().to_u64();
            sim.done(x)
        });
        sim.run(Box::new(build()), 100).unwrap();
        let c = *caps.lock().unwrap();
        (c, table)
    }

    /// The iCE40 top's exact bank has no decay table, and a counters-only
    /// pipeline says so in its capability bitmap; the default pipeline keeps
    /// both.
    #[test]
    fn counters_only_pipeline_drops_the_table_and_the_capability() {
        assert_eq!(caps_and_table(true), (crate::pipeline::CAPABILITIES, true));
        assert_eq!(
            caps_and_table(false),
            (crate::pipeline::CAPABILITIES_NO_EXACT_EWMA, false)
        );
        assert_eq!(crate::pipeline::CAPABILITIES_NO_EXACT_EWMA & 1 << 7, 0);
        assert!(!crate::layout::ice40_top_verilog().contains("mem[2047:0]"));
    }

    /// A frame: the first `FRAME_BYTES` of a 64-byte record.
    fn frame_of(bytes: &[u8; 64]) -> Vec<u8> {
        bytes[..FRAME_BYTES].to_vec()
    }

    fn cfg_frame(addr: u64, data: u64) -> Vec<u8> {
        let mut b = [0u8; 64];
        b[0..2].copy_from_slice(&(addr as u16).to_le_bytes());
        b[8..16].copy_from_slice(&data.to_le_bytes());
        frame_of(&b)
    }

    /// Installs an exact counter (2^3 buckets × 1 way) and a global through
    /// the byte port, streams ops with keys of up to 4 bytes and reads the
    /// 16-byte result records and a dump word back byte by byte: they equal
    /// the software engine's.
    #[test]
    fn serial_top_round_trips_ops_and_dumps() {
        let plans = vec![
            MetricPlan::install(MetricSpec::ExactCounter {
                table: TableSpec {
                    log2_buckets: 3,
                    ways: 1,
                },
            })
            .unwrap(),
            MetricPlan::install(MetricSpec::Global).unwrap(),
        ];
        let ex = regmap::exact_bank(0) as u64;
        let mut cmds: Vec<(u8, Vec<u8>)> = [
            (ex, 3),
            (ex + 1, 1),
            (ex + 2, plans[0].tick_shift as u64),
            (regmap::METRIC_MAP as u64, 6),
            (regmap::global_bank(0) as u64, 0),
            (regmap::METRIC_MAP as u64 + 1, 5),
            (regmap::N_METRICS as u64, 2),
        ]
        .iter()
        .map(|&(a, d)| (2, cfg_frame(a, d)))
        .collect();
        let mut ops = Vec::new();
        for i in 0..12u32 {
            let key = (0x0506_0700u32 | (i % 5)).to_be_bytes();
            let len = 1 + (i as usize * 3) % 4;
            ops.push(Op::new(0, OpKind::AddGet, &key[4 - len..], i + 1, (i as u64) << 22).unwrap());
            ops.push(Op::new(1, OpKind::AddGet, &[], 3, 0).unwrap());
        }
        ops.push(Op::new(7, OpKind::Get, &[], 0, 0).unwrap()); // unknown metric
        cmds.extend(ops.iter().map(|op| (1, frame_of(&op.to_bytes()))));
        let dump_addr = regmap::dump_global(0) | regmap::DUMP_GLOBAL_SUM;
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&dump_addr.to_le_bytes());
        cmds.push((3, frame_of(&d)));
        let mut sw = SwEngine::new(&plans);
        let mut want = vec![OpResult::default(); ops.len()];
        sw.apply(&ops, &mut want);
        let want_sum = sw.dump(1).unwrap()[4];

        let out = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = out.clone();
        let n_cmds = cmds.len();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<SerialTop>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<SerialTop>| {
            let mut x = sim.init()?;
            for (cmd, frame) in &cmds {
                for &b in frame {
                    x.rx.next = (b as u64).into();
                    x.rx_valid.next = true;
                    wait_clock_cycle!(sim, clock, x);
                }
                x.rx_valid.next = false;
                x.cmd.next = (*cmd as u64).into();
                wait_clock_cycle!(sim, clock, x);
                x.cmd.next = 0.into();
                if *cmd == 2 {
                    continue;
                }
                // Inputs are registered: the reply is loaded a few clocks on.
                let mut waited = 0;
                while !x.tx_valid.val() && waited < 16 {
                    wait_clock_cycle!(sim, clock, x);
                    waited += 1;
                }
                let mut bytes = Vec::new();
                while x.tx_valid.val() && bytes.len() < 16 {
                    bytes.push(x.tx.val().to_u8());
                    x.tx_shift.next = true;
                    wait_clock_cycle!(sim, clock, x);
                    x.tx_shift.next = false;
                    // The shift request is registered: one clock to act.
                    wait_clock_cycle!(sim, clock, x);
                }
                sink.lock().unwrap().push(bytes);
            }
            sim.done(x)
        });
        sim.run(Box::new(top()), (n_cmds as u64) * 100 * 10)
            .unwrap();
        let replies = out.lock().unwrap().clone();
        assert_eq!(replies.len(), ops.len() + 1, "one reply per op and dump");
        for (i, (r, w)) in replies.iter().zip(&want).enumerate() {
            assert_eq!(r.len(), 16, "op #{i}: 16 result bytes");
            let got = OpResult::from_bytes(r[..16].try_into().unwrap());
            assert_eq!(got, *w, "op #{i} {:?}", ops[i]);
        }
        let dump = replies.last().unwrap();
        assert_eq!(dump.len(), 8, "8 dump bytes");
        assert_eq!(u64::from_le_bytes(dump[..8].try_into().unwrap()), want_sum);
    }
}
