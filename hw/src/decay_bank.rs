//! The time-decaying counting Bloom filter bank (`tewma`): Bianchi,
//! d'Heureuse, Niccolini, "On-demand time-decaying Bloom filters for
//! telemarketer detection" (CCR 2011), with conservative update, as the
//! contract defines it (`docs/metric-contract.md`, DecayingFilter).
//!
//! Each of the `R` rows is a [`DecayRow`]: its own cell memory (Q40.24 count
//! and the tick of its last write) and its own copy of the metric's decay
//! table (2048 Q1.16 factors, written through the configuration bus at
//! install), so all rows are read, decayed and written in the same clock.
//!
//! The read-modify-write spans two stages, because the decay factor is read
//! from a block RAM addressed by the cell's age:
//!
//! | stage | what happens in a row |
//! |---|---|
//! | 2 | the cell is read (address from the hash: `g(r) >> (32 − b)`) |
//! | 3 | cell data; the age `now − tick` addresses the decay table |
//! | 4 | factor data; `decay(count) = floor(count·f / 2^16)` from four 16×16 products; the bank takes the minimum over rows and the new estimate; each row writes back |
//!
//! **Forwarding.** An op in stage 3 may need a cell that the op in stage 4
//! is writing *this* clock (its read, one clock earlier, could not see it)
//! or that the op before wrote last clock (the RAM is read-first). The
//! latter comes from a forwarding register. The former is the hard case:
//! the age needs the tick the stage-4 op writes, and that tick is known
//! early (it depends on the stored count being zero, not on the product),
//! so it is forwarded combinationally; the count itself is only needed in
//! stage 4, when the forwarding register already holds it. Back-to-back ops
//! on the same cells therefore run at one op per clock.
//!
//! **Clears** (`Clear`, and install) take one clock and no flip-flop per
//! cell, so a row's cells all sit in block RAM whatever its size. Beside
//! each cell a tag RAM holds the epoch of its last write; the row keeps the
//! current epoch (`AB` bits), and a cell whose tag differs reads as `(0, 0)`.
//! A clear bumps the epoch. Left alone, a cell's old tag would match again
//! after `2^AB` clears; so a clear also uses the write port it does not
//! otherwise need to rewrite one cell, `sweep`, as `(0, 0)` in the new
//! epoch (every cell is `(0, 0)` after a clear, so this changes nothing a
//! reader can see) and advances `sweep`. Every cell is thus rewritten at
//! least once every `2^AB` clears, a cell's tag is always one of the last
//! `2^AB` epochs, and it equals the current epoch only if the cell was
//! written since the last clear: the clear is exact for any number of
//! clears, without a stall and without reading the RAM.

use rust_hdl::prelude::*;

/// Bits of a stored cell: count `[0, 64)`, tick `[64, 96)`.
pub const CELL_BITS: usize = 96;

/// What the stage-4 op does to a row (`DecayRow::op4`).
pub mod row_ops {
    /// Nothing.
    pub const IDLE: u64 = 0;
    /// Conservative update: raise the cell to `new4` (after decay).
    pub const RAISE: u64 = 1;
    /// `ResetKey`: the cell becomes `(0, now)`.
    pub const RESET: u64 = 2;
    /// `Clear` or install: every cell becomes `(0, 0)`.
    pub const CLEAR: u64 = 3;
}

/// One row of the decaying filter: `2^AB` cells (`NB = 2^AB`), the decay
/// table, and the row's part of the forwarding logic.
///
/// Inputs: `rd_addr` (stage 2), `now3` (stage 3), `op4`/`now4`/`new4`
/// (stage 4), the decay-table write port (`fac_*`).
/// Outputs: `decayed` (stage 4: the op's cell decayed to `now4`), `cell3`
/// (the cell read at the previous clock's `rd_addr`, zero if cleared: the
/// dump data).
#[derive(LogicBlock)]
pub struct DecayRow<const AB: usize, const NB: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Stage 2: the cell to read.
    pub rd_addr: Signal<In, Bits<AB>>,
    /// Stage 3: the op's tick.
    pub now3: Signal<In, Bits<32>>,
    /// Stage 4: what the op does to this row ([`row_ops`]).
    pub op4: Signal<In, Bits<2>>,
    /// Stage 4: the op's tick.
    pub now4: Signal<In, Bits<32>>,
    /// Stage 4: the new estimate (`min + v << 24`) cells are raised to.
    pub new4: Signal<In, Bits<64>>,
    /// Stage 4: the op's cell decayed to `now4`.
    pub decayed: Signal<Out, Bits<64>>,
    /// The cell read at the previous clock's `rd_addr` (zero if cleared).
    pub cell3: Signal<Out, Bits<CELL_BITS>>,
    /// Decay-table write strobe.
    pub fac_we: Signal<In, Bit>,
    /// Decay-table entry (age in ticks).
    pub fac_addr: Signal<In, Bits<11>>,
    /// Decay factor, Q1.16 (`0..=65536`).
    pub fac_data: Signal<In, Bits<17>>,
    cells: RAM<Bits<CELL_BITS>, AB>,
    tags: RAM<Bits<AB>, AB>,
    factors: RAM<Bits<17>, 11>,
    epoch: DFF<Bits<AB>>,
    sweep: DFF<Bits<AB>>,
    cleared3: DFF<Bit>,
    addr3: DFF<Bits<AB>>,
    addr4: DFF<Bits<AB>>,
    fwd_v: DFF<Bit>,
    fwd_addr: DFF<Bits<AB>>,
    fwd_count: DFF<Bits<64>>,
    fwd_tick: DFF<Bits<32>>,
    count4: DFF<Bits<64>>,
    tick4: DFF<Bits<32>>,
    from_fwd4: DFF<Bit>,
    stale4: DFF<Bit>,
    // Stage 4 locals.
    cnt: Signal<Local, Bits<64>>,
    factor: Signal<Local, Bits<17>>,
    back: Signal<Local, Bits<32>>,
    wtick: Signal<Local, Bits<32>>,
    wcount: Signal<Local, Bits<64>>,
    write: Signal<Local, Bit>,
    // Stage 3 locals.
    count3: Signal<Local, Bits<64>>,
    tick3: Signal<Local, Bits<32>>,
    from_fwd: Signal<Local, Bit>,
    age: Signal<Local, Bits<32>>,
}

impl<const AB: usize, const NB: usize> Default for DecayRow<AB, NB> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const AB: usize, const NB: usize> DecayRow<AB, NB> {
    /// An empty row (all cells cleared, decay table zero).
    pub fn new() -> Self {
        assert_eq!(NB, 1 << AB, "NB must be 2^AB");
        DecayRow {
            clock: Default::default(),
            rd_addr: Default::default(),
            now3: Default::default(),
            op4: Default::default(),
            now4: Default::default(),
            new4: Default::default(),
            decayed: Default::default(),
            cell3: Default::default(),
            fac_we: Default::default(),
            fac_addr: Default::default(),
            fac_data: Default::default(),
            cells: RAM::new(Default::default()),
            tags: RAM::new(Default::default()),
            factors: RAM::new(Default::default()),
            epoch: Default::default(),
            sweep: Default::default(),
            cleared3: Default::default(),
            addr3: Default::default(),
            addr4: Default::default(),
            fwd_v: Default::default(),
            fwd_addr: Default::default(),
            fwd_count: Default::default(),
            fwd_tick: Default::default(),
            count4: Default::default(),
            tick4: Default::default(),
            from_fwd4: Default::default(),
            stale4: Default::default(),
            cnt: Default::default(),
            factor: Default::default(),
            back: Default::default(),
            wtick: Default::default(),
            wcount: Default::default(),
            write: Default::default(),
            count3: Default::default(),
            tick3: Default::default(),
            from_fwd: Default::default(),
            age: Default::default(),
        }
    }
}

impl<const AB: usize, const NB: usize> Logic for DecayRow<AB, NB> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, epoch, sweep, cleared3, addr3, addr4, fwd_v, fwd_addr, fwd_count,
            fwd_tick, count4, tick4, from_fwd4, stale4
        );
        self.cells.read_clock.next = self.clock.val();
        self.cells.write_clock.next = self.clock.val();
        self.tags.read_clock.next = self.clock.val();
        self.tags.write_clock.next = self.clock.val();
        self.factors.read_clock.next = self.clock.val();
        self.factors.write_clock.next = self.clock.val();
        self.factors.write_address.next = self.fac_addr.val();
        self.factors.write_data.next = self.fac_data.val();
        self.factors.write_enable.next = self.fac_we.val();
        // Stage 2.
        self.cells.read_address.next = self.rd_addr.val();
        self.tags.read_address.next = self.rd_addr.val();
        self.addr3.d.next = self.rd_addr.val();
        // Stage 4 first: stage 3 forwards the tick it writes.
        self.cnt.next = self.count4.q.val();
        if self.from_fwd4.q.val() {
            self.cnt.next = self.fwd_count.q.val();
        }
        self.factor.next = self.factors.read_data.val();
        if self.stale4.q.val() {
            self.factor.next = 0.into();
        }
        // floor(count * f / 2^16) for f < 2^16 from the count's four 16-bit
        // limbs; exact in 64 bits because the result never exceeds count.
        self.decayed.next = (bit_cast::<64, 32>(
            self.cnt.val().get_bits::<16>(0) * self.factor.val().get_bits::<16>(0),
        ) >> 16)
            + bit_cast::<64, 32>(
                self.cnt.val().get_bits::<16>(16) * self.factor.val().get_bits::<16>(0),
            )
            + (bit_cast::<64, 32>(
                self.cnt.val().get_bits::<16>(32) * self.factor.val().get_bits::<16>(0),
            ) << 16)
            + (bit_cast::<64, 32>(
                self.cnt.val().get_bits::<16>(48) * self.factor.val().get_bits::<16>(0),
            ) << 32);
        if self.factor.val().get_bit(16) {
            self.decayed.next = self.cnt.val();
        }
        // An empty cell has no age and takes now; otherwise a write never
        // moves a cell's tick back (`later_tick`).
        self.back.next = self.now4.val() - self.tick4.q.val();
        self.wtick.next = self.now4.val();
        if self.cnt.val().any() && self.back.val().get_bit(31) {
            self.wtick.next = self.tick4.q.val();
        }
        self.wcount.next = self.decayed.val();
        if self.new4.val() > self.decayed.val() {
            self.wcount.next = self.new4.val();
        }
        self.write.next = false;
        if self.op4.val() == 1 {
            self.write.next = true;
        }
        if self.op4.val() == 2 {
            self.write.next = true;
            self.wcount.next = 0.into();
            self.wtick.next = self.now4.val();
        }
        self.cells.write_address.next = self.addr4.q.val();
        self.cells.write_data.next = bit_cast::<CELL_BITS, 64>(self.wcount.val())
            | (bit_cast::<CELL_BITS, 32>(self.wtick.val()) << 64);
        self.cells.write_enable.next = self.write.val();
        self.tags.write_address.next = self.addr4.q.val();
        self.tags.write_data.next = self.epoch.q.val();
        self.tags.write_enable.next = self.write.val();
        self.fwd_v.d.next = self.write.val();
        self.fwd_addr.d.next = self.addr4.q.val();
        self.fwd_count.d.next = self.wcount.val();
        self.fwd_tick.d.next = self.wtick.val();
        self.cleared3.d.next = false;
        if self.op4.val() == 3 {
            // Clear: a new epoch, and the sweep cell rewritten in it.
            self.cleared3.d.next = true;
            self.epoch.d.next = self.epoch.q.val() + 1;
            self.sweep.d.next = self.sweep.q.val() + 1;
            self.cells.write_address.next = self.sweep.q.val();
            self.cells.write_data.next = 0.into();
            self.cells.write_enable.next = true;
            self.tags.write_address.next = self.sweep.q.val();
            self.tags.write_data.next = self.epoch.q.val() + 1;
            self.tags.write_enable.next = true;
        }
        // Stage 3: the freshest copy of the cell, newest source last.
        self.cell3.next = self.cells.read_data.val();
        // A read issued while a clear was in stage 4 missed the sweep
        // write, and the sweep cell's old tag may equal the new epoch; every
        // cell is (0, 0) after a clear anyway.
        if (self.tags.read_data.val() != self.epoch.q.val()) || self.cleared3.q.val() {
            self.cell3.next = 0.into();
        }
        self.count3.next = self.cell3.val().get_bits::<64>(0);
        self.tick3.next = self.cell3.val().get_bits::<32>(64);
        if self.fwd_v.q.val() && (self.fwd_addr.q.val() == self.addr3.q.val()) {
            self.count3.next = self.fwd_count.q.val();
            self.tick3.next = self.fwd_tick.q.val();
        }
        if self.op4.val() == 3 {
            self.count3.next = 0.into();
            self.tick3.next = 0.into();
        }
        self.from_fwd.next = false;
        if self.write.val() && (self.addr4.q.val() == self.addr3.q.val()) {
            // The count follows next clock from the forwarding register.
            self.tick3.next = self.wtick.val();
            self.from_fwd.next = true;
        }
        self.age.next = self.now3.val() - self.tick3.val();
        if self.age.val().get_bit(31) {
            self.age.next = 0.into();
        }
        self.factors.read_address.next = self.age.val().get_bits::<11>(0);
        self.stale4.d.next = self.age.val().get_bits::<21>(11).any();
        self.count4.d.next = self.count3.val();
        self.tick4.d.next = self.tick3.val();
        self.from_fwd4.d.next = self.from_fwd.val();
        self.addr4.d.next = self.addr3.q.val();
    }
}

/// A decaying-filter bank of at most `R` rows of `2^AB` cells
/// (`NB = 2^AB`).
///
/// Inputs: `hash_s2` (stage 2); in stage 3 `go`, `kind`, `value`, `ts`; the
/// configuration bus (`regmap::df_bank`, `regmap::df_factor`); the dump
/// port. Outputs: `result` (stage 4, zero unless the bank ran an op),
/// `dump_data` (one clock after `dump_word`).
#[derive(LogicBlock)]
pub struct DecayBank<const AB: usize, const NB: usize, const R: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Hash of the op in stage 2 (read addresses).
    pub hash_s2: Signal<In, Bits<64>>,
    /// Stage 3: apply the op to this bank.
    pub go: Signal<In, Bit>,
    /// Stage 3: effective op kind.
    pub kind: Signal<In, Bits<8>>,
    /// Stage 3: increment.
    pub value: Signal<In, Bits<32>>,
    /// Stage 3: timestamp, ns.
    pub ts: Signal<In, Bits<64>>,
    /// Stage 4 result value.
    pub result: Signal<Out, Bits<64>>,
    /// Configuration write strobe.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address.
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<64>>,
    /// Dump mode: RAM reads come from `dump_word`.
    pub dump_en: Signal<In, Bit>,
    /// Dump word address.
    pub dump_word: Signal<In, Bits<24>>,
    /// Dump data, one clock after `dump_word`.
    pub dump_data: Signal<Out, Bits<64>>,
    rows: [DecayRow<AB, NB>; R],
    log2_cells: DFF<Bits<6>>,
    nrows: DFF<Bits<5>>,
    tick_shift: DFF<Bits<6>>,
    go4: DFF<Bit>,
    kind4: DFF<Bits<8>>,
    value4: DFF<Bits<32>>,
    now4: DFF<Bits<32>>,
    dump_q: DFF<Bits<24>>,
    base: Constant<Bits<16>>,
    fac_page: Constant<Bits<5>>,
    ones64: Constant<Bits<64>>,
    one16: Constant<Bits<16>>,
    gi: Signal<Local, Bits<32>>,
    stride: Signal<Local, Bits<32>>,
    now3: Signal<Local, Bits<32>>,
    remaining: Signal<Local, Bits<5>>,
    least: Signal<Local, Bits<64>>,
    sum: Signal<Local, Bits<65>>,
    fresh: Signal<Local, Bits<64>>,
    action: Signal<Local, Bits<2>>,
    dump_row: Signal<Local, Bits<16>>,
    dump_cell: Signal<Local, Bits<CELL_BITS>>,
}

impl<const AB: usize, const NB: usize, const R: usize> DecayBank<AB, NB, R> {
    /// A bank answering configuration writes at `base` (`regmap::df_bank`)
    /// and decay-table writes in page `page` (`regmap::df_factor`).
    pub fn new(base: usize, page: usize) -> Self {
        assert_eq!(NB, 1 << AB, "NB must be 2^AB");
        assert!((1..=16).contains(&R), "1..=16 rows");
        assert!(AB <= 18, "at most 2^18 cells per row (dump address space)");
        DecayBank {
            clock: Default::default(),
            hash_s2: Default::default(),
            go: Default::default(),
            kind: Default::default(),
            value: Default::default(),
            ts: Default::default(),
            result: Default::default(),
            cfg_we: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            dump_en: Default::default(),
            dump_word: Default::default(),
            dump_data: Default::default(),
            rows: std::array::from_fn(|_| DecayRow::new()),
            log2_cells: Default::default(),
            nrows: Default::default(),
            tick_shift: Default::default(),
            go4: Default::default(),
            kind4: Default::default(),
            value4: Default::default(),
            now4: Default::default(),
            dump_q: Default::default(),
            base: Constant::new((base as u64).into()),
            fac_page: Constant::new((page as u64).into()),
            ones64: Constant::new(u64::MAX.into()),
            one16: Constant::new(1u64.into()),
            gi: Default::default(),
            stride: Default::default(),
            now3: Default::default(),
            remaining: Default::default(),
            least: Default::default(),
            sum: Default::default(),
            fresh: Default::default(),
            action: Default::default(),
            dump_row: Default::default(),
            dump_cell: Default::default(),
        }
    }
}

impl<const AB: usize, const NB: usize, const R: usize> Logic for DecayBank<AB, NB, R> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, log2_cells, nrows, tick_shift, go4, kind4, value4, now4, dump_q);
        // Stage 2: row r reads cell g(r) >> (32 - b), g(r) = lo + r * (hi | 1).
        self.stride.next = self.hash_s2.val().get_bits::<32>(32) | 1;
        self.gi.next = self.hash_s2.val().get_bits::<32>(0);
        for r in 0..R {
            self.rows[r].clock.next = self.clock.val();
            if self.dump_en.val() {
                self.rows[r].rd_addr.next = self.dump_word.val().get_bits::<AB>(1);
            } else {
                self.rows[r].rd_addr.next =
                    bit_cast::<AB, 32>(self.gi.val() >> (32 - self.log2_cells.q.val()));
            }
            self.gi.next = self.gi.val() + self.stride.val();
            self.rows[r].fac_we.next =
                self.cfg_we.val() && (self.cfg_addr.val().get_bits::<5>(11) == self.fac_page.val());
            self.rows[r].fac_addr.next = self.cfg_addr.val().get_bits::<11>(0);
            self.rows[r].fac_data.next = self.cfg_data.val().get_bits::<17>(0);
        }
        // Stage 3.
        self.now3.next = bit_cast::<32, 64>(self.ts.val() >> self.tick_shift.q.val());
        self.go4.d.next = self.go.val();
        self.kind4.d.next = self.kind.val();
        self.value4.d.next = self.value.val();
        self.now4.d.next = self.now3.val();
        // Stage 4: the minimum over the installed rows, the new estimate.
        self.least.next = self.ones64.val();
        self.remaining.next = self.nrows.q.val();
        for r in 0..R {
            if self.remaining.val().any() {
                if self.rows[r].decayed.val() < self.least.val() {
                    self.least.next = self.rows[r].decayed.val();
                }
                self.remaining.next = self.remaining.val() - 1;
            }
        }
        self.sum.next =
            bit_cast::<65, 64>(self.least.val()) + (bit_cast::<65, 32>(self.value4.q.val()) << 24);
        self.fresh.next = self.sum.val().get_bits::<64>(0);
        if self.sum.val().get_bit(64) {
            self.fresh.next = self.ones64.val();
        }
        self.action.next = 0.into();
        self.result.next = 0.into();
        if self.go4.q.val() {
            if (self.kind4.q.val() == 4) | (self.kind4.q.val() == 6) {
                self.action.next = 1.into();
                self.result.next = self.fresh.val();
            }
            if self.kind4.q.val() == 5 {
                self.result.next = self.least.val();
            }
            if self.kind4.q.val() == 7 {
                self.action.next = 2.into();
            }
            if self.kind4.q.val() == 8 {
                self.action.next = 3.into();
            }
        }
        // Configuration: log2 cells, rows, tick shift (which installs).
        if self.cfg_we.val() && (self.cfg_addr.val() == self.base.val()) {
            self.log2_cells.d.next = self.cfg_data.val().get_bits::<6>(0);
        }
        if self.cfg_we.val() && (self.cfg_addr.val() == self.base.val() + 1) {
            self.nrows.d.next = self.cfg_data.val().get_bits::<5>(0);
        }
        if self.cfg_we.val() && (self.cfg_addr.val() == self.base.val() + 2) {
            self.tick_shift.d.next = self.cfg_data.val().get_bits::<6>(0);
            self.action.next = 3.into();
        }
        self.remaining.next = self.nrows.q.val();
        for r in 0..R {
            self.rows[r].now3.next = self.now3.val();
            self.rows[r].now4.next = self.now4.q.val();
            self.rows[r].new4.next = self.fresh.val();
            self.rows[r].op4.next = 0.into();
            if self.remaining.val().any() {
                self.rows[r].op4.next = self.action.val();
                self.remaining.next = self.remaining.val() - 1;
            }
            if self.action.val() == 3 {
                self.rows[r].op4.next = 3.into();
            }
        }
        // Dump: row r's cell c, word j (count, tick) at MEM | r<<19 | c<<1 | j.
        self.dump_q.d.next = self.dump_word.val();
        self.dump_row.next = self.one16.val() << self.dump_q.q.val().get_bits::<4>(19);
        self.dump_cell.next = 0.into();
        for r in 0..R {
            if self.dump_row.val().get_bit(r) {
                self.dump_cell.next = self.rows[r].cell3.val();
            }
        }
        self.dump_data.next = 0.into();
        if self.dump_q.q.val().get_bit(23) {
            if self.dump_q.q.val().get_bit(0) {
                self.dump_data.next = bit_cast::<64, 32>(self.dump_cell.val().get_bits::<32>(64));
            } else {
                self.dump_data.next = self.dump_cell.val().get_bits::<64>(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regmap;
    use streamon_contract::h3::h3;
    use streamon_contract::{MetricEngine, MetricPlan, MetricSpec, Op, OpKind, OpResult};
    use streamon_sw::SwEngine;

    type Uut = DecayBank<4, 16, 3>;

    #[derive(LogicBlock)]
    struct Bench {
        clock: Signal<In, Clock>,
        uut: Uut,
    }

    impl Logic for Bench {
        #[hdl_gen]
        fn update(&mut self) {
            self.uut.clock.next = self.clock.val();
        }
    }

    fn bench() -> Bench {
        let mut b = Bench {
            clock: Default::default(),
            uut: DecayBank::new(regmap::df_bank(0), regmap::df_page(0)),
        };
        b.uut.hash_s2.connect();
        b.uut.go.connect();
        b.uut.kind.connect();
        b.uut.value.connect();
        b.uut.ts.connect();
        b.uut.cfg_we.connect();
        b.uut.cfg_addr.connect();
        b.uut.cfg_data.connect();
        b.uut.dump_en.connect();
        b.uut.dump_word.connect();
        b.connect_all();
        b
    }

    #[test]
    fn decay_bank_is_synthesizable() {
        yosys_validate("decay_bank", &generate_verilog(&bench())).unwrap();
    }

    fn plan(log2_cells: u32, rows: u32, tau_ns: f64) -> MetricPlan {
        MetricPlan::install(MetricSpec::DecayingFilter {
            log2_cells,
            rows,
            tau: streamon_contract::plan::TimeConstant { tau_ns },
        })
        .unwrap()
    }

    /// The bank's configuration writes: decay table, then the parameters
    /// (the tick shift last: it installs).
    fn config(p: &MetricPlan) -> Vec<(u64, u64)> {
        let mut w: Vec<(u64, u64)> = p
            .decay
            .iter()
            .enumerate()
            .map(|(d, &f)| (regmap::df_factor(0, d) as u64, f as u64))
            .collect();
        let base = regmap::df_bank(0) as u64;
        w.push((base, p.log2_size as u64));
        w.push((base + 1, p.width as u64));
        w.push((base + 2, p.tick_shift as u64));
        w
    }

    /// Runs `ops` (all on metric 0, kinds Add..=Clear) through the bank in
    /// RustHDL's simulator one per clock, then dumps every cell; returns the
    /// results and the dump words (the contract's layout after the header).
    fn run_bank(p: &MetricPlan, ops: &[Op]) -> (Vec<u64>, Vec<u64>) {
        let writes = config(p);
        let (rows, cells) = (p.width, 1u32 << p.log2_size);
        let clocks = (2048 + 8 + ops.len() as u64 + 2 * (rows * cells) as u64) * 10 + 100;
        let ops: Vec<Op> = ops.to_vec();
        let out = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
        let sink = out.clone();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<Bench>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Bench>| {
            let mut x = sim.init()?;
            for &(a, d) in &writes {
                x.uut.cfg_we.next = true;
                x.uut.cfg_addr.next = a.into();
                x.uut.cfg_data.next = d.into();
                wait_clock_cycle!(sim, clock, x);
            }
            x.uut.cfg_we.next = false;
            // Clock t: op t in stage 2, op t-1 in stage 3; after the edge
            // the stage-4 result is op t-1's.
            for t in 0..=ops.len() {
                if let Some(op) = ops.get(t) {
                    x.uut.hash_s2.next = h3(op.key_bytes()).into();
                }
                x.uut.go.next = false;
                if let Some(op) = t.checked_sub(1).map(|i| ops[i]) {
                    x.uut.go.next = true;
                    x.uut.kind.next = (op.kind as u64).into();
                    x.uut.value.next = (op.value as u64).into();
                    x.uut.ts.next = op.ts_ns.into();
                }
                wait_clock_cycle!(sim, clock, x);
                if t > 0 {
                    sink.lock().unwrap().0.push(x.uut.result.val().to_u64());
                }
            }
            x.uut.go.next = false;
            wait_clock_cycle!(sim, clock, x);
            x.uut.dump_en.next = true;
            for r in 0..rows {
                for c in 0..cells {
                    for j in 0..2 {
                        x.uut.dump_word.next = (regmap::dump_df_word(r, c, j) as u64).into();
                        wait_clock_cycle!(sim, clock, x);
                        sink.lock().unwrap().1.push(x.uut.dump_data.val().to_u64());
                    }
                }
            }
            sim.done(x)
        });
        sim.run(Box::new(bench()), clocks).unwrap();
        let got = out.lock().unwrap().clone();
        got
    }

    /// The software engine's results and dump words (header dropped).
    fn software(p: &MetricPlan, ops: &[Op]) -> (Vec<u64>, Vec<u64>) {
        let mut sw = SwEngine::new(std::slice::from_ref(p));
        let mut res = vec![OpResult::default(); ops.len()];
        sw.apply(ops, &mut res);
        let dump = sw.dump(0).unwrap()[4..].to_vec();
        (res.iter().map(|r| r.value).collect(), dump)
    }

    fn check(p: &MetricPlan, ops: &[Op]) {
        let (hw_res, hw_dump) = run_bank(p, ops);
        let (sw_res, sw_dump) = software(p, ops);
        for i in 0..ops.len() {
            assert_eq!(hw_res[i], sw_res[i], "op #{i} {:?}", ops[i]);
        }
        assert_eq!(hw_dump.len(), sw_dump.len());
        for w in 0..sw_dump.len() {
            assert_eq!(hw_dump[w], sw_dump[w], "dump word {w}");
        }
    }

    /// Same-cell bursts (forwarding from stage 4 and from the forwarding
    /// register), decay across ages, time going back, a value that
    /// saturates, resets and a clear in the middle of a burst.
    #[test]
    fn decay_bank_matches_the_software_engine() {
        let p = plan(4, 3, 3e6);
        let mut ops = Vec::new();
        let mut ts = 1_000_000_000u64;
        let kinds = [
            OpKind::AddGet,
            OpKind::Add,
            OpKind::AddGet,
            OpKind::Get,
            OpKind::AddGet,
            OpKind::ResetKey,
            OpKind::AddGet,
            OpKind::Add,
        ];
        for i in 0..120u32 {
            let key = [(i / 3 % 5) as u8];
            let kind = if i == 70 {
                OpKind::Clear
            } else {
                kinds[i as usize % kinds.len()]
            };
            let value = match i % 11 {
                0 => u32::MAX,
                1 => 0,
                _ => i % 4 + 1,
            };
            ts = match i % 13 {
                0 => ts + 3_000_000,
                5 => ts - 200_000,
                9 => ts + 40_000_000,
                _ => ts + 20_000,
            };
            ops.push(Op::new(0, kind, &key, value, ts).unwrap());
        }
        check(&p, &ops);
    }

    /// Clears far past the epoch counter's wrap (16 cells: the epoch wraps
    /// every 16 clears): keys written, then runs of 1, 15, 16, 17 and 32
    /// clears with nothing written in between, then every key read and
    /// written again; then a stretch with clears every few ops. Without the
    /// sweep write, counts written 16 clears earlier come back (checked
    /// when written).
    #[test]
    fn decay_bank_clears_exactly_past_the_epoch_wrap() {
        let p = plan(4, 3, 5e6);
        let mut ops = Vec::new();
        let mut ts = 2_000_000_000u64;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut push = |ops: &mut Vec<Op>, kind, key: u8, v: u32| {
            ts += 10_000;
            ops.push(Op::new(0, kind, &[key], v, ts).unwrap());
        };
        for run in [1, 15, 16, 17, 32, 3, 16] {
            for k in 0..12 {
                push(&mut ops, OpKind::AddGet, k, k as u32 + 1);
            }
            for _ in 0..run {
                push(&mut ops, OpKind::Clear, 0, 0);
            }
            for k in 0..12 {
                push(&mut ops, OpKind::Get, k, 0);
            }
        }
        for _ in 0..400 {
            let r = next();
            let kind = match r >> 16 & 15 {
                0..=2 => OpKind::Clear,
                3..=8 => OpKind::AddGet,
                9..=11 => OpKind::Add,
                12..=14 => OpKind::Get,
                _ => OpKind::ResetKey,
            };
            push(
                &mut ops,
                kind,
                (r >> 8) as u8 % 12,
                (r >> 24) as u32 % 7 + 1,
            );
        }
        check(&p, &ops);
    }

    /// The one read that can see an aliased tag: an op issued while the
    /// clear that bumps the epoch to `e + 16` is in stage 4 reads the cell
    /// that clear sweeps, last written in epoch `e`, before the sweep write
    /// lands (the RAM is read-first). One row, so the stale count would be
    /// the answer.
    #[test]
    fn a_read_racing_the_sweep_write_sees_the_clear() {
        let p = plan(4, 1, 1e9);
        // A key whose cell is cell 1, the sweep cell of the first clear
        // below (the install is a clear too: it swept cell 0).
        let key = (0..=255u8)
            .map(|b| [b, 7])
            .find(|k| (h3(k) as u32) >> 28 == 1)
            .unwrap();
        let mut ts = 1_000u64;
        let mut op = |kind, key: &[u8]| {
            ts += 1;
            Op::new(0, kind, key, 9, ts).unwrap()
        };
        let mut ops = vec![op(OpKind::Clear, b"x"), op(OpKind::AddGet, &key)];
        for _ in 0..16 {
            ops.push(op(OpKind::Clear, b"x"));
        }
        ops.push(op(OpKind::Get, b"y"));
        ops.push(op(OpKind::AddGet, &key));
        ops.push(op(OpKind::Get, &key));
        check(&p, &ops);
    }

    /// A single row and a count that saturates Q40.24 while staying young.
    #[test]
    fn decay_bank_saturates_like_the_software_engine() {
        let p = plan(4, 1, 1e9);
        let ops: Vec<Op> = (0..300u64)
            .map(|i| Op::new(0, OpKind::AddGet, b"k", u32::MAX, 5 + i).unwrap())
            .collect();
        check(&p, &ops);
    }
}
