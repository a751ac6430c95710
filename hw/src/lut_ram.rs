//! A small memory with a synchronous write and a combinational
//! (asynchronous) read: distributed RAM on an FPGA (LUT RAM).
//!
//! RustHDL's `RAM` reads one clock after the address. The exact bank needs
//! a decay factor for the age of the slot it found in the same clock as it
//! finds it (its read-modify-write is one stage), so its decay table is
//! this leaf memory, written through the configuration bus at install and
//! read combinationally. Hand-written Verilog, as the style guide allows
//! for leaf memories; the Rust `update` is the simulation model.
//!
//! A `LutRam` built with [`LutRam::absent`] has no storage: it reads zero
//! and ignores writes. It stands for a table a layout leaves out (an exact
//! bank meant for counters only, e.g. on an iCE40, which has no
//! asynchronous-read RAM and turns a 2048-word table into flip-flops).

use rust_hdl::prelude::*;
use std::collections::BTreeMap;

/// `2^N` words of type `D`; write on the clock, read at once.
///
/// Inputs: `write_clock`, `write_enable`, `write_address`, `write_data`,
/// `read_address`. Output: `read_data` (combinational from
/// `read_address`; zero for never-written words).
#[derive(LogicBlock, Default)]
pub struct LutRam<D: Synth, const N: usize> {
    /// Address read.
    pub read_address: Signal<In, Bits<N>>,
    /// The word at `read_address`.
    pub read_data: Signal<Out, D>,
    /// Write clock.
    pub write_clock: Signal<In, Clock>,
    /// Address written on the clock edge.
    pub write_address: Signal<In, Bits<N>>,
    /// Word written.
    pub write_data: Signal<In, D>,
    /// Write strobe.
    pub write_enable: Signal<In, Bit>,
    _sim: BTreeMap<Bits<N>, D>,
    _absent: bool,
}

impl<D: Synth, const N: usize> LutRam<D, N> {
    /// A memory with no storage: reads zero, ignores writes, and its
    /// Verilog is a constant.
    pub fn absent() -> Self {
        LutRam {
            _absent: true,
            ..Default::default()
        }
    }
}

impl<D: Synth, const N: usize> Logic for LutRam<D, N> {
    fn update(&mut self) {
        if self._absent {
            self.read_data.next = D::default();
            return;
        }
        if self.write_clock.pos_edge() && self.write_enable.val() {
            self._sim
                .insert(self.write_address.val(), self.write_data.val());
        }
        self.read_data.next = *self
            ._sim
            .get(&self.read_address.val())
            .unwrap_or(&D::default());
    }

    fn connect(&mut self) {
        self.read_data.connect();
    }

    fn hdl(&self) -> Verilog {
        if self._absent {
            return Verilog::Custom(
                "\
always @(*) begin
   read_data = 0;
end
"
                .into(),
            );
        }
        Verilog::Custom(format!(
            "\
reg[{d}:0] mem[{last}:0];

always @(*) begin
   read_data = mem[read_address];
end

always @(posedge write_clock) begin
   if (write_enable) begin
      mem[write_address] <= write_data;
   end
end
",
            d = D::BITS - 1,
            last = (1usize << N) - 1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(LogicBlock)]
    struct Bench {
        clock: Signal<In, Clock>,
        mem: LutRam<Bits<17>, 4>,
    }

    impl Logic for Bench {
        #[hdl_gen]
        fn update(&mut self) {
            self.mem.write_clock.next = self.clock.val();
        }
    }

    fn bench() -> Bench {
        bench_with(Default::default())
    }

    fn bench_with(mem: LutRam<Bits<17>, 4>) -> Bench {
        let mut b = Bench {
            clock: Default::default(),
            mem,
        };
        b.mem.read_address.connect();
        b.mem.write_address.connect();
        b.mem.write_data.connect();
        b.mem.write_enable.connect();
        b.connect_all();
        b
    }

    #[test]
    fn lut_ram_is_synthesizable() {
        yosys_validate("lut_ram", &generate_verilog(&bench())).unwrap();
    }

    /// An absent table has no memory in its Verilog and synthesizes.
    #[test]
    fn absent_lut_ram_is_synthesizable_and_has_no_memory() {
        let v = generate_verilog(&bench_with(LutRam::absent()));
        assert!(!v.contains("mem["), "no storage expected:\n{v}");
        yosys_validate("lut_ram_absent", &v).unwrap();
    }

    /// An absent table reads zero whatever was written.
    #[test]
    fn absent_lut_ram_reads_zero() {
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<Bench>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Bench>| {
            let mut x = sim.init()?;
            for a in 0..16u64 {
                x.mem.write_enable.next = true;
                x.mem.write_address.next = a.into();
                x.mem.write_data.next = (0x10000 | (a * 3 + 1)).into();
                wait_clock_cycle!(sim, clock, x);
            }
            x.mem.write_enable.next = false;
            for a in [3u64, 15, 0] {
                x.mem.read_address.next = a.into();
                x = sim.wait(1, x)?;
                sim_assert_eq!(sim, x.mem.read_data.val().to_u64(), 0, x);
            }
            sim.done(x)
        });
        sim.run(Box::new(bench_with(LutRam::absent())), 1000)
            .unwrap();
    }

    /// Writes land on the clock edge and only with the strobe; reads see
    /// them without a clock.
    #[test]
    fn lut_ram_reads_without_a_clock() {
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<Bench>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Bench>| {
            let mut x = sim.init()?;
            for a in 0..16u64 {
                x.mem.write_enable.next = a != 7;
                x.mem.write_address.next = a.into();
                x.mem.write_data.next = (0x10000 | (a * 3)).into();
                wait_clock_cycle!(sim, clock, x);
            }
            x.mem.write_enable.next = false;
            for a in [3u64, 7, 15, 0] {
                x.mem.read_address.next = a.into();
                x = sim.wait(1, x)?;
                let want = if a == 7 { 0 } else { 0x10000 | (a * 3) };
                sim_assert_eq!(sim, x.mem.read_data.val().to_u64(), want, x);
            }
            sim.done(x)
        });
        sim.run(Box::new(bench()), 1000).unwrap();
    }
}
