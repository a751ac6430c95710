//! Row-partitioned sketches: the time-decaying counting Bloom filter
//! (`tewma`), the count-min sketch, and HyperLogLog.
//!
//! Row `i` of a k-row sketch is indexed only by hash position `i`, so the
//! hardware gives each row its own memory bank and updates all k in the
//! same clock.

use streamon_contract::fixed::{age, count_from_value, decay, later_tick, tick};
use streamon_contract::h3::Positions;
use streamon_contract::MetricPlan;

use crate::memory::HugeArray;

/// Time-decaying counting Bloom filter with conservative update
/// (Bianchi, d'Heureuse, Niccolini, "On-demand time-decaying Bloom filters
/// for telemarketer detection", CCR 2011; StreaMon's `tewma`).
pub(crate) struct DecayingFilter {
    log2_cells: u32,
    rows: u32,
    tick_shift: u8,
    decay: Vec<u32>,
    /// `[count (Q40.24), tick]`, row after row.
    cells: HugeArray<[u64; 2]>,
}

impl DecayingFilter {
    pub(crate) fn new(plan: &MetricPlan) -> Self {
        DecayingFilter {
            log2_cells: plan.log2_size,
            rows: plan.width,
            tick_shift: plan.tick_shift,
            decay: plan.decay.clone(),
            cells: HugeArray::zeroed((plan.width as usize) << plan.log2_size),
        }
    }

    #[inline]
    pub(crate) fn index(&self, pos: &Positions, row: u32) -> usize {
        ((row as usize) << self.log2_cells) + pos.row_cell(row, self.log2_cells)
    }

    #[inline]
    pub(crate) fn prefetch(&self, pos: &Positions) {
        for r in 0..self.rows {
            crate::prefetch::prefetch(&self.cells[self.index(pos, r)]);
        }
    }

    #[inline]
    fn decayed(&self, cell: &[u64; 2], now: u32) -> u64 {
        if cell[0] == 0 {
            return 0;
        }
        decay(cell[0], age(now, cell[1] as u32), &self.decay)
    }

    /// Conservative update: every row decays to now, the minimum plus the
    /// increment is the new estimate, and each cell is raised to at least it.
    pub(crate) fn add(&mut self, pos: &Positions, value: u32, ts_ns: u64) -> u64 {
        let now = tick(ts_ns, self.tick_shift);
        let mut decayed = [0u64; 16];
        let mut min = u64::MAX;
        for r in 0..self.rows {
            let d = self.decayed(&self.cells[self.index(pos, r)], now);
            decayed[r as usize] = d;
            min = min.min(d);
        }
        let new = min.saturating_add(count_from_value(value));
        for r in 0..self.rows {
            let i = self.index(pos, r);
            let cell = &mut self.cells[i];
            cell[1] = written_tick(cell, now);
            cell[0] = decayed[r as usize].max(new);
        }
        new
    }

    /// The minimum of the key's decayed cells; reading changes nothing.
    pub(crate) fn get(&self, pos: &Positions, ts_ns: u64) -> u64 {
        let now = tick(ts_ns, self.tick_shift);
        (0..self.rows)
            .map(|r| self.decayed(&self.cells[self.index(pos, r)], now))
            .min()
            .unwrap_or(0)
    }

    /// Zeroes the key's cells (colliding keys lose what they shared).
    pub(crate) fn reset(&mut self, pos: &Positions, ts_ns: u64) {
        let now = tick(ts_ns, self.tick_shift);
        for r in 0..self.rows {
            let i = self.index(pos, r);
            self.cells[i] = [0, now as u64];
        }
    }

    pub(crate) fn clear(&mut self) {
        self.cells.iter_mut().for_each(|c| *c = [0, 0]);
    }

    pub(crate) fn dump(&self, out: &mut Vec<u64>) {
        for c in self.cells.iter() {
            out.extend_from_slice(c);
        }
    }
}

/// The tick a cell keeps when written at `now`: an empty cell has no age
/// and takes `now`; otherwise time never moves back (`later_tick`).
#[inline]
fn written_tick(cell: &[u64; 2], now: u32) -> u64 {
    if cell[0] == 0 {
        now as u64
    } else {
        later_tick(now, cell[1] as u32) as u64
    }
}

/// Count-min sketch (Cormode & Muthukrishnan 2005) over saturating `u32`
/// cells, with optional conservative update.
pub(crate) struct CountMin {
    log2_cells: u32,
    rows: u32,
    conservative: bool,
    cells: HugeArray<u32>,
}

impl CountMin {
    pub(crate) fn new(plan: &MetricPlan) -> Self {
        CountMin {
            log2_cells: plan.log2_size,
            rows: plan.width,
            conservative: plan.conservative,
            cells: HugeArray::zeroed((plan.width as usize) << plan.log2_size),
        }
    }

    #[inline]
    fn index(&self, pos: &Positions, row: u32) -> usize {
        ((row as usize) << self.log2_cells) + pos.row_cell(row, self.log2_cells)
    }

    #[inline]
    pub(crate) fn prefetch(&self, pos: &Positions) {
        for r in 0..self.rows {
            crate::prefetch::prefetch(&self.cells[self.index(pos, r)]);
        }
    }

    pub(crate) fn add(&mut self, pos: &Positions, value: u32) -> u64 {
        if self.conservative {
            let new = self
                .get(pos)
                .saturating_add(value as u64)
                .min(u32::MAX as u64) as u32;
            for r in 0..self.rows {
                let i = self.index(pos, r);
                self.cells[i] = self.cells[i].max(new);
            }
            new as u64
        } else {
            let mut min = u32::MAX;
            for r in 0..self.rows {
                let i = self.index(pos, r);
                self.cells[i] = self.cells[i].saturating_add(value);
                min = min.min(self.cells[i]);
            }
            min as u64
        }
    }

    pub(crate) fn get(&self, pos: &Positions) -> u64 {
        (0..self.rows)
            .map(|r| self.cells[self.index(pos, r)])
            .min()
            .unwrap_or(0) as u64
    }

    pub(crate) fn reset(&mut self, pos: &Positions) {
        for r in 0..self.rows {
            let i = self.index(pos, r);
            self.cells[i] = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.cells.fill(0);
    }

    pub(crate) fn dump(&self, out: &mut Vec<u64>) {
        out.extend(self.cells.iter().map(|&c| c as u64));
    }
}

/// Rank ceiling: ranks are 1..=33, so `2^(33 − rank)` never underflows.
const HLL_RANK_BITS: u32 = 33;

/// HyperLogLog (Flajolet et al. 2007) that keeps its harmonic sum
/// `Z = Σ 2^(33 − reg)` and its zero-register count exactly, in integers, so
/// every result is `Z | zeros << 48` and the float estimate is made on the
/// host.
pub(crate) struct HyperLogLog {
    p: u32,
    registers: Vec<u8>,
    z: u64,
    zeros: u64,
}

impl HyperLogLog {
    pub(crate) fn new(plan: &MetricPlan) -> Self {
        let m = 1u64 << plan.log2_size;
        HyperLogLog {
            p: plan.log2_size,
            registers: vec![0; m as usize],
            z: m << HLL_RANK_BITS,
            zeros: m,
        }
    }

    pub(crate) fn packed(&self) -> u64 {
        self.z | self.zeros << 48
    }

    pub(crate) fn add(&mut self, pos: &Positions) -> u64 {
        let r = pos.hll_register(self.p);
        let rank = pos.hll_rank();
        let old = self.registers[r];
        if rank > old {
            self.z -= 1 << (HLL_RANK_BITS - old as u32);
            self.z += 1 << (HLL_RANK_BITS - rank as u32);
            if old == 0 {
                self.zeros -= 1;
            }
            self.registers[r] = rank;
        }
        self.packed()
    }

    pub(crate) fn clear(&mut self) {
        let m = 1u64 << self.p;
        self.registers.fill(0);
        self.z = m << HLL_RANK_BITS;
        self.zeros = m;
    }

    pub(crate) fn dump(&self, out: &mut Vec<u64>) {
        out.extend([self.z, self.zeros]);
        out.extend(
            self.registers
                .chunks(8)
                .map(|c| c.iter().rev().fold(0u64, |acc, &r| acc << 8 | r as u64)),
        );
    }
}
