//! The register block: how many metrics are installed and, per metric id,
//! which kind it is and which bank hosts it.
//!
//! Bank parameters (sizes, k, tick shifts, initial thresholds) live in the
//! banks themselves, each decoding its own addresses on the same
//! configuration bus; see [`crate::regmap`].

use crate::regmap;
use rust_hdl::prelude::*;

/// Metric-id → (kind, bank) map and metric count.
///
/// Inputs: the configuration bus (`cfg_we`, `cfg_addr`, `cfg_data`).
/// Outputs: `n_metrics`, and `map` with metric `m`'s kind code in bits
/// `8m..8m+4` and bank index in `8m+4..8m+8` (kind code 0: not in hardware).
#[derive(LogicBlock)]
pub struct RegBlock {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Configuration write strobe.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration register address.
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Configuration write data.
    pub cfg_data: Signal<In, Bits<64>>,
    /// Installed metrics (ids `0..n_metrics`).
    pub n_metrics: Signal<Out, Bits<16>>,
    /// Per-metric kind and bank, 8 bits per metric id.
    pub map: Signal<Out, Bits<128>>,
    count: DFF<Bits<16>>,
    entries: DFF<Bits<128>>,
    addr_count: Constant<Bits<16>>,
    addr_map: Constant<Bits<16>>,
    map_shift: Signal<Local, Bits<8>>,
    one_byte: Constant<Bits<128>>,
}

impl Default for RegBlock {
    fn default() -> Self {
        Self::new()
    }
}

impl RegBlock {
    /// A register block with all metrics uninstalled.
    pub fn new() -> Self {
        RegBlock {
            addr_count: Constant::new((regmap::N_METRICS as u64).into()),
            addr_map: Constant::new((regmap::METRIC_MAP as u64).into()),
            one_byte: Constant::new(0xFFu64.into()),
            clock: Default::default(),
            cfg_we: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            n_metrics: Default::default(),
            map: Default::default(),
            count: Default::default(),
            entries: Default::default(),
            map_shift: Default::default(),
        }
    }
}

impl Logic for RegBlock {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, count, entries);
        self.map_shift.next = bit_cast::<8, 16>(self.cfg_addr.val() - self.addr_map.val()) << 3;
        if self.cfg_we.val() && self.cfg_addr.val() == self.addr_count.val() {
            self.count.d.next = self.cfg_data.val().get_bits::<16>(0);
        }
        if self.cfg_we.val()
            && self.cfg_addr.val() >= self.addr_map.val()
            && self.cfg_addr.val() < self.addr_map.val() + 16
        {
            self.entries.d.next = (self.entries.q.val()
                & !(self.one_byte.val() << self.map_shift.val()))
                | (bit_cast::<128, 8>(self.cfg_data.val().get_bits::<8>(0))
                    << self.map_shift.val());
        }
        self.n_metrics.next = self.count.q.val();
        self.map.next = self.entries.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(LogicBlock)]
    struct Bench {
        clock: Signal<In, Clock>,
        regs: RegBlock,
    }

    impl Logic for Bench {
        #[hdl_gen]
        fn update(&mut self) {
            self.regs.clock.next = self.clock.val();
        }
    }

    fn bench() -> Bench {
        let mut b = Bench {
            clock: Default::default(),
            regs: RegBlock::new(),
        };
        b.regs.cfg_we.connect();
        b.regs.cfg_addr.connect();
        b.regs.cfg_data.connect();
        b.connect_all();
        b
    }

    #[test]
    fn reg_block_is_synthesizable() {
        yosys_validate("regs", &generate_verilog(&bench())).unwrap();
    }

    /// Writes the count and three map entries, one of them twice; checks
    /// the packed map and that other addresses leave it alone.
    #[test]
    fn reg_block_stores_the_map() {
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<Bench>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Bench>| {
            let mut x = sim.init()?;
            let writes: [(usize, u64); 6] = [
                (regmap::N_METRICS, 3),
                (regmap::METRIC_MAP, 0x01),
                (regmap::METRIC_MAP + 1, 0x16),
                (regmap::METRIC_MAP + 15, 0x25),
                (regmap::METRIC_MAP + 1, 0x06),
                (regmap::METRIC_MAP + 16, 0xFF),
            ];
            for (a, d) in writes {
                x.regs.cfg_we.next = true;
                x.regs.cfg_addr.next = (a as u64).into();
                x.regs.cfg_data.next = d.into();
                wait_clock_cycle!(sim, clock, x);
            }
            x.regs.cfg_we.next = false;
            wait_clock_cycle!(sim, clock, x);
            sim_assert_eq!(sim, x.regs.n_metrics.val(), Bits::<16>::from(3u64), x);
            let want: u128 = 0x01 | 0x06 << 8 | 0x25 << 120;
            sim_assert_eq!(sim, x.regs.map.val().to_u128(), want, x);
            sim.done(x)
        });
        sim.run(Box::new(bench()), 200).unwrap();
    }
}
