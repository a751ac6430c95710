//! The global counter bank (`simple`): one saturating `u64`, keys ignored.

use rust_hdl::prelude::*;

/// One global counter.
///
/// Inputs: in stage 3 `go`, `kind`, `value`; the configuration bus (a write
/// at `base` installs, i.e. zeroes the sum); `dump_word` (word 1 is the sum).
/// Outputs: `result` (stage 3), `dump_data` (one clock after `dump_word`).
#[derive(LogicBlock)]
pub struct GlobalBank {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Stage 3: apply the op to this bank.
    pub go: Signal<In, Bit>,
    /// Stage 3: effective op kind.
    pub kind: Signal<In, Bits<8>>,
    /// Stage 3: increment.
    pub value: Signal<In, Bits<32>>,
    /// Stage 3 result value.
    pub result: Signal<Out, Bits<64>>,
    /// Configuration write strobe.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address.
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Dump word address.
    pub dump_word: Signal<In, Bits<24>>,
    /// Dump data.
    pub dump_data: Signal<Out, Bits<64>>,
    sum: DFF<Bits<64>>,
    dump_q: DFF<Bits<24>>,
    base: Constant<Bits<16>>,
    ones64: Constant<Bits<64>>,
    total: Signal<Local, Bits<65>>,
}

impl GlobalBank {
    /// A bank installed by a configuration write at `base`.
    pub fn new(base: usize) -> Self {
        GlobalBank {
            clock: Default::default(),
            go: Default::default(),
            kind: Default::default(),
            value: Default::default(),
            result: Default::default(),
            cfg_we: Default::default(),
            cfg_addr: Default::default(),
            dump_word: Default::default(),
            dump_data: Default::default(),
            sum: Default::default(),
            dump_q: Default::default(),
            base: Constant::new((base as u64).into()),
            ones64: Constant::new(u64::MAX.into()),
            total: Default::default(),
        }
    }
}

impl Logic for GlobalBank {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, sum, dump_q);
        self.total.next =
            bit_cast::<65, 64>(self.sum.q.val()) + bit_cast::<65, 32>(self.value.val());
        self.result.next = 0.into();
        if self.go.val() {
            if self.kind.val() == 5 {
                self.result.next = self.sum.q.val();
            }
            if (self.kind.val() == 4) | (self.kind.val() == 6) {
                if self.total.val().get_bit(64) {
                    self.sum.d.next = self.ones64.val();
                    self.result.next = self.ones64.val();
                } else {
                    self.sum.d.next = self.total.val().get_bits::<64>(0);
                    self.result.next = self.total.val().get_bits::<64>(0);
                }
            }
            if (self.kind.val() == 7) | (self.kind.val() == 8) {
                self.sum.d.next = 0.into();
            }
        }
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() {
            self.sum.d.next = 0.into();
        }
        self.dump_q.d.next = self.dump_word.val();
        self.dump_data.next = 0.into();
        if self.dump_q.q.val() == 1 {
            self.dump_data.next = self.sum.q.val();
        }
    }
}
