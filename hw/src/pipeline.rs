//! The metric pipeline: op decoder, banks, result path. One op enters per
//! clock; its result leaves five clocks later.
//!
//! | stage | what happens |
//! |---|---|
//! | 1 | the 64-byte op record is registered |
//! | 2 | key masked and hashed (H3 unit); the op is checked (kind, metric id, key length, kind-for-metric, static gate rule); every bank issues its RAM read from the hash |
//! | 3 | RAM data (forwarded when the previous op wrote the same word); the gate of the previous op is applied; detector, exact and global banks compute and write back; decaying filters read their decay tables |
//! | 4 | decaying filters decay, take the minimum and write back; their result joins the result record |
//! | 5 | the 16-byte result record is registered on `out_result` |
//!
//! The `IF_NEW` gate depends on the previous op's detector result, which is
//! known in stage 3 of that op, one clock before this op reaches stage 3; so
//! the gate is a register and the pipeline never stalls.

use crate::decay_bank::DecayBank;
use crate::exact_bank::ExactBank;
use crate::global_bank::GlobalBank;
use crate::h3_unit::H3Unit;
use crate::regmap;
use crate::regs::RegBlock;
use crate::vd_bank::VdBank;
use rust_hdl::prelude::*;

/// The capability bitmap: bit `k` set if the hardware hosts
/// `MetricKind` code `k` (VariationDetector 1, DecayingFilter 2, Global 5,
/// ExactCounter 6, ExactEwma 7).
pub const CAPABILITIES: u64 = 1 << 1 | 1 << 2 | 1 << 5 | 1 << 6 | 1 << 7;

/// The capability bitmap of a pipeline whose exact banks carry no decay
/// table ([`Pipeline::with_exact_ewma`]`(false)`): ExactEwma cleared.
pub const CAPABILITIES_NO_EXACT_EWMA: u64 = CAPABILITIES & !(1 << 7);

/// Clocks from an op's input clock (counted) to its result on
/// `out_result`: five registered stages.
pub const LATENCY: u64 = 5;

/// The pipeline with `NV` detector banks of `2^VAB` blocks, `NE` exact banks
/// of `2^EAB` buckets × `EW` ways, `NG` global counters and `NF` decaying
/// filters of `FR` rows × `2^FAB` cells (`FNB = 2^FAB`).
///
/// Inputs: `in_valid`/`in_op` (the contract's 64-byte op record, byte `i`
/// in bits `8i..8i+8`), the configuration bus, the dump port.
/// Outputs: `out_valid`/`out_result` (the 16-byte result record), `caps`,
/// `dump_data`.
#[derive(LogicBlock)]
pub struct Pipeline<
    const NV: usize,
    const VAB: usize,
    const VNB: usize,
    const NE: usize,
    const EAB: usize,
    const ENB: usize,
    const EW: usize,
    const NG: usize,
    const NF: usize,
    const FAB: usize,
    const FNB: usize,
    const FR: usize,
> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// An op is on `in_op` this clock.
    pub in_valid: Signal<In, Bit>,
    /// The op record.
    pub in_op: Signal<In, Bits<512>>,
    /// A result is on `out_result`.
    pub out_valid: Signal<Out, Bit>,
    /// The result record.
    pub out_result: Signal<Out, Bits<128>>,
    /// Configuration write strobe.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address (`regmap`).
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<64>>,
    /// Dump mode (only while no op is in flight).
    pub dump_en: Signal<In, Bit>,
    /// Dump address: bank select `<< 24 | word`.
    pub dump_addr: Signal<In, Bits<32>>,
    /// Dump data, one clock after `dump_addr`.
    pub dump_data: Signal<Out, Bits<64>>,
    /// Capability bitmap ([`CAPABILITIES`]).
    pub caps: Signal<Out, Bits<16>>,
    regs: RegBlock,
    hasher: H3Unit,
    vd: [VdBank<VAB, VNB>; NV],
    exact: [ExactBank<EAB, ENB, EW>; NE],
    global: [GlobalBank; NG],
    decay: [DecayBank<FAB, FNB, FR>; NF],
    v1: DFF<Bit>,
    op1: DFF<Bits<512>>,
    v2: DFF<Bit>,
    metric2: DFF<Bits<16>>,
    kind2: DFF<Bits<8>>,
    flags2: DFF<Bits<8>>,
    len2: DFF<Bits<8>>,
    value2: DFF<Bits<32>>,
    ts2: DFF<Bits<64>>,
    key2: DFF<Bits<320>>,
    hash2: DFF<Bits<64>>,
    v3: DFF<Bit>,
    metric3: DFF<Bits<16>>,
    kind3: DFF<Bits<8>>,
    flags3: DFF<Bits<8>>,
    len3: DFF<Bits<8>>,
    value3: DFF<Bits<32>>,
    ts3: DFF<Bits<64>>,
    key3: DFF<Bits<320>>,
    hash3: DFF<Bits<64>>,
    pre3: DFF<Bits<8>>,
    gate_valid: DFF<Bit>,
    gate_open: DFF<Bit>,
    v4: DFF<Bit>,
    r4: DFF<Bits<128>>,
    out_v: DFF<Bit>,
    out_r: DFF<Bits<128>>,
    dump_sel: DFF<Bits<8>>,
    one16: Constant<Bits<16>>,
    cap_bits: Constant<Bits<16>>,
    entry2: Signal<Local, Bits<8>>,
    supported: Signal<Local, Bit>,
    pre: Signal<Local, Bits<8>>,
    entry3: Signal<Local, Bits<8>>,
    bank_sel: Signal<Local, Bits<16>>,
    status: Signal<Local, Bits<8>>,
    ok: Signal<Local, Bit>,
    gated: Signal<Local, Bit>,
    run: Signal<Local, Bit>,
    ekind: Signal<Local, Bits<8>>,
    value: Signal<Local, Bits<64>>,
    rflags: Signal<Local, Bits<8>>,
    dump_bank: Signal<Local, Bits<16>>,
    df_value: Signal<Local, Bits<64>>,
}

impl<
        const NV: usize,
        const VAB: usize,
        const VNB: usize,
        const NE: usize,
        const EAB: usize,
        const ENB: usize,
        const EW: usize,
        const NG: usize,
        const NF: usize,
        const FAB: usize,
        const FNB: usize,
        const FR: usize,
    > Pipeline<NV, VAB, VNB, NE, EAB, ENB, EW, NG, NF, FAB, FNB, FR>
{
    /// Builds the pipeline (all metrics uninstalled).
    pub fn new() -> Self {
        Self::with_exact_ewma(true)
    }

    /// Builds the pipeline; with `exact_ewma` false its exact banks are
    /// [`ExactBank::counters_only`] (no decay table: ExactCounter only) and
    /// `caps` lacks ExactEwma ([`CAPABILITIES_NO_EXACT_EWMA`]). For small
    /// FPGAs, where the table cannot be distributed RAM.
    pub fn with_exact_ewma(exact_ewma: bool) -> Self {
        assert!(
            NV <= 16 && NE <= regmap::MAX_EXACT_BANKS && NG <= 16 && NF <= 16,
            "at most 16 banks of a kind"
        );
        Pipeline {
            clock: Default::default(),
            in_valid: Default::default(),
            in_op: Default::default(),
            out_valid: Default::default(),
            out_result: Default::default(),
            cfg_we: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            dump_en: Default::default(),
            dump_addr: Default::default(),
            dump_data: Default::default(),
            caps: Default::default(),
            regs: RegBlock::new(),
            hasher: Default::default(),
            vd: std::array::from_fn(|i| VdBank::new(regmap::vd_bank(i))),
            exact: std::array::from_fn(|i| {
                if exact_ewma {
                    ExactBank::new(regmap::exact_bank(i), regmap::exact_page(i))
                } else {
                    ExactBank::counters_only(regmap::exact_bank(i), regmap::exact_page(i))
                }
            }),
            global: std::array::from_fn(|i| GlobalBank::new(regmap::global_bank(i))),
            decay: std::array::from_fn(|i| DecayBank::new(regmap::df_bank(i), regmap::df_page(i))),
            v1: Default::default(),
            op1: Default::default(),
            v2: Default::default(),
            metric2: Default::default(),
            kind2: Default::default(),
            flags2: Default::default(),
            len2: Default::default(),
            value2: Default::default(),
            ts2: Default::default(),
            key2: Default::default(),
            hash2: Default::default(),
            v3: Default::default(),
            metric3: Default::default(),
            kind3: Default::default(),
            flags3: Default::default(),
            len3: Default::default(),
            value3: Default::default(),
            ts3: Default::default(),
            key3: Default::default(),
            hash3: Default::default(),
            pre3: Default::default(),
            gate_valid: Default::default(),
            gate_open: Default::default(),
            v4: Default::default(),
            r4: Default::default(),
            out_v: Default::default(),
            out_r: Default::default(),
            dump_sel: Default::default(),
            one16: Constant::new(1u64.into()),
            cap_bits: Constant::new(
                if exact_ewma {
                    CAPABILITIES
                } else {
                    CAPABILITIES_NO_EXACT_EWMA
                }
                .into(),
            ),
            entry2: Default::default(),
            supported: Default::default(),
            pre: Default::default(),
            entry3: Default::default(),
            bank_sel: Default::default(),
            status: Default::default(),
            ok: Default::default(),
            gated: Default::default(),
            run: Default::default(),
            ekind: Default::default(),
            value: Default::default(),
            rflags: Default::default(),
            dump_bank: Default::default(),
            df_value: Default::default(),
        }
    }
}

impl<
        const NV: usize,
        const VAB: usize,
        const VNB: usize,
        const NE: usize,
        const EAB: usize,
        const ENB: usize,
        const EW: usize,
        const NG: usize,
        const NF: usize,
        const FAB: usize,
        const FNB: usize,
        const FR: usize,
    > Default for Pipeline<NV, VAB, VNB, NE, EAB, ENB, EW, NG, NF, FAB, FNB, FR>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<
        const NV: usize,
        const VAB: usize,
        const VNB: usize,
        const NE: usize,
        const EAB: usize,
        const ENB: usize,
        const EW: usize,
        const NG: usize,
        const NF: usize,
        const FAB: usize,
        const FNB: usize,
        const FR: usize,
    > Logic for Pipeline<NV, VAB, VNB, NE, EAB, ENB, EW, NG, NF, FAB, FNB, FR>
{
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, v1, op1, v2, metric2, kind2, flags2, len2, value2, ts2, key2, hash2, v3,
            metric3, kind3, flags3, len3, value3, ts3, key3, hash3, pre3, gate_valid, gate_open,
            v4, r4, out_v, out_r, dump_sel
        );
        self.regs.clock.next = self.clock.val();
        self.regs.cfg_we.next = self.cfg_we.val();
        self.regs.cfg_addr.next = self.cfg_addr.val();
        self.regs.cfg_data.next = self.cfg_data.val();
        self.caps.next = self.cap_bits.val();
        // Stage 1.
        self.v1.d.next = self.in_valid.val();
        self.op1.d.next = self.in_op.val();
        self.hasher.key.next = self.op1.q.val().get_bits::<320>(192);
        self.hasher.key_len.next = self.op1.q.val().get_bits::<8>(32);
        self.v2.d.next = self.v1.q.val();
        self.metric2.d.next = self.op1.q.val().get_bits::<16>(0);
        self.kind2.d.next = self.op1.q.val().get_bits::<8>(16);
        self.flags2.d.next = self.op1.q.val().get_bits::<8>(24);
        self.len2.d.next = self.op1.q.val().get_bits::<8>(32);
        self.value2.d.next = self.op1.q.val().get_bits::<32>(64);
        self.ts2.d.next = self.op1.q.val().get_bits::<64>(128);
        self.key2.d.next = self.hasher.masked_key.val();
        self.hash2.d.next = self.hasher.hash.val();
        // Stage 2: the contract's checks, in its order.
        self.entry2.next = self
            .regs
            .map
            .val()
            .get_bits::<8>((bit_cast::<10, 16>(self.metric2.q.val() & 15) << 3).index());
        self.supported.next = false;
        if self.entry2.val().get_bits::<4>(0) == 1 {
            self.supported.next =
                (self.kind2.q.val() > 0) && (self.kind2.q.val() < 4) || (self.kind2.q.val() == 8);
        }
        if (self.entry2.val().get_bits::<4>(0) == 2)
            | (self.entry2.val().get_bits::<4>(0) == 5)
            | (self.entry2.val().get_bits::<4>(0) == 6)
            | (self.entry2.val().get_bits::<4>(0) == 7)
        {
            self.supported.next = (self.kind2.q.val() > 3) && (self.kind2.q.val() < 9);
        }
        self.pre.next = 0.into();
        if (self.kind2.q.val() == 0) | (self.kind2.q.val() > 8) {
            self.pre.next = 5.into();
        } else if self.metric2.q.val() >= self.regs.n_metrics.val() {
            self.pre.next = 1.into();
        } else if self.len2.q.val() > 40 {
            self.pre.next = 2.into();
        } else if !self.supported.val() {
            self.pre.next = 3.into();
        } else if self.flags2.q.val().get_bit(0)
            && !((self.kind2.q.val() == 4) | (self.kind2.q.val() == 6))
        {
            self.pre.next = 4.into();
        }
        self.pre3.d.next = self.pre.val();
        self.v3.d.next = self.v2.q.val();
        self.metric3.d.next = self.metric2.q.val();
        self.kind3.d.next = self.kind2.q.val();
        self.flags3.d.next = self.flags2.q.val();
        self.len3.d.next = self.len2.q.val();
        self.value3.d.next = self.value2.q.val();
        self.ts3.d.next = self.ts2.q.val();
        self.key3.d.next = self.key2.q.val();
        self.hash3.d.next = self.hash2.q.val();
        // Stage 3: the gate, then the addressed bank.
        self.entry3.next = self
            .regs
            .map
            .val()
            .get_bits::<8>((bit_cast::<10, 16>(self.metric3.q.val() & 15) << 3).index());
        self.bank_sel.next = self.one16.val() << self.entry3.val().get_bits::<4>(4);
        self.status.next = self.pre3.q.val();
        if (self.pre3.q.val() == 0) && self.flags3.q.val().get_bit(0) && !self.gate_valid.q.val() {
            self.status.next = 4.into();
        }
        self.ok.next = self.v3.q.val() && (self.status.val() == 0);
        self.gated.next =
            self.ok.val() && self.flags3.q.val().get_bit(0) && !self.gate_open.q.val();
        self.ekind.next = self.kind3.q.val();
        if self.gated.val() && (self.kind3.q.val() == 6) {
            self.ekind.next = 5.into();
        }
        self.run.next = self.ok.val() && !(self.gated.val() && (self.kind3.q.val() == 4));
        self.value.next = 0.into();
        self.rflags.next = 0.into();
        for i in 0..NV {
            self.vd[i].clock.next = self.clock.val();
            self.vd[i].hash_s2.next = self.hash2.q.val();
            self.vd[i].hash.next = self.hash3.q.val();
            self.vd[i].kind.next = self.ekind.val();
            self.vd[i].go.next = self.run.val()
                && (self.entry3.val().get_bits::<4>(0) == 1)
                && self.bank_sel.val().get_bit(i);
            self.vd[i].cfg_we.next = self.cfg_we.val();
            self.vd[i].cfg_addr.next = self.cfg_addr.val();
            self.vd[i].cfg_data.next = self.cfg_data.val();
            self.vd[i].dump_en.next = self.dump_en.val();
            self.vd[i].dump_word.next = self.dump_addr.val().get_bits::<24>(0);
            if (self.entry3.val().get_bits::<4>(0) == 1) && self.bank_sel.val().get_bit(i) {
                self.value.next = self.vd[i].result.val();
                self.rflags.next = self.vd[i].flags.val();
            }
        }
        for i in 0..NE {
            self.exact[i].clock.next = self.clock.val();
            self.exact[i].hash_s2.next = self.hash2.q.val();
            self.exact[i].hash.next = self.hash3.q.val();
            self.exact[i].key.next = self.key3.q.val();
            self.exact[i].key_len.next = self.len3.q.val();
            self.exact[i].value.next = self.value3.q.val();
            self.exact[i].ts.next = self.ts3.q.val();
            self.exact[i].kind.next = self.ekind.val();
            self.exact[i].go.next = self.run.val()
                && ((self.entry3.val().get_bits::<4>(0) == 6)
                    | (self.entry3.val().get_bits::<4>(0) == 7))
                && self.bank_sel.val().get_bit(i);
            self.exact[i].cfg_we.next = self.cfg_we.val();
            self.exact[i].cfg_addr.next = self.cfg_addr.val();
            self.exact[i].cfg_data.next = self.cfg_data.val();
            self.exact[i].dump_en.next = self.dump_en.val();
            self.exact[i].dump_word.next = self.dump_addr.val().get_bits::<24>(0);
            if ((self.entry3.val().get_bits::<4>(0) == 6)
                | (self.entry3.val().get_bits::<4>(0) == 7))
                && self.bank_sel.val().get_bit(i)
            {
                self.value.next = self.exact[i].result.val();
                self.rflags.next = self.exact[i].flags.val();
            }
        }
        for i in 0..NG {
            self.global[i].clock.next = self.clock.val();
            self.global[i].value.next = self.value3.q.val();
            self.global[i].kind.next = self.ekind.val();
            self.global[i].go.next = self.run.val()
                && (self.entry3.val().get_bits::<4>(0) == 5)
                && self.bank_sel.val().get_bit(i);
            self.global[i].cfg_we.next = self.cfg_we.val();
            self.global[i].cfg_addr.next = self.cfg_addr.val();
            self.global[i].dump_word.next = self.dump_addr.val().get_bits::<24>(0);
            if (self.entry3.val().get_bits::<4>(0) == 5) && self.bank_sel.val().get_bit(i) {
                self.value.next = self.global[i].result.val();
            }
        }
        for i in 0..NF {
            self.decay[i].clock.next = self.clock.val();
            self.decay[i].hash_s2.next = self.hash2.q.val();
            self.decay[i].value.next = self.value3.q.val();
            self.decay[i].ts.next = self.ts3.q.val();
            self.decay[i].kind.next = self.ekind.val();
            self.decay[i].go.next = self.run.val()
                && (self.entry3.val().get_bits::<4>(0) == 2)
                && self.bank_sel.val().get_bit(i);
            self.decay[i].cfg_we.next = self.cfg_we.val();
            self.decay[i].cfg_addr.next = self.cfg_addr.val();
            self.decay[i].cfg_data.next = self.cfg_data.val();
            self.decay[i].dump_en.next = self.dump_en.val();
            self.decay[i].dump_word.next = self.dump_addr.val().get_bits::<24>(0);
        }
        if !self.ok.val() {
            self.value.next = 0.into();
            self.rflags.next = 0.into();
        }
        if self.gated.val() {
            self.rflags.next = self.rflags.val() | 4;
        }
        if self.gated.val() && (self.kind3.q.val() == 4) {
            self.value.next = 0.into();
        }
        if self.v3.q.val() {
            self.gate_valid.d.next =
                self.ok.val() && ((self.kind3.q.val() == 1) | (self.kind3.q.val() == 3));
            self.gate_open.d.next = self.value.val() == 0;
        }
        // Stage 4: a decaying filter's value joins the record (its bank
        // outputs zero unless it ran the op; other banks left value 0).
        self.v4.d.next = self.v3.q.val();
        self.r4.d.next = bit_cast::<128, 64>(self.value.val())
            | (bit_cast::<128, 16>(self.metric3.q.val()) << 64)
            | (bit_cast::<128, 8>(self.status.val()) << 80)
            | (bit_cast::<128, 8>(self.rflags.val()) << 88);
        self.df_value.next = 0.into();
        for i in 0..NF {
            self.df_value.next = self.df_value.val() | self.decay[i].result.val();
        }
        self.out_v.d.next = self.v4.q.val();
        self.out_r.d.next = self.r4.q.val() | bit_cast::<128, 64>(self.df_value.val());
        self.out_valid.next = self.out_v.q.val();
        self.out_result.next = self.out_r.q.val();
        // Dump data mux: bank select registered with the bank's read.
        self.dump_sel.d.next = self.dump_addr.val().get_bits::<8>(24);
        self.dump_bank.next = self.one16.val() << self.dump_sel.q.val().get_bits::<4>(0);
        self.dump_data.next = 0.into();
        for i in 0..NV {
            if (self.dump_sel.q.val().get_bits::<4>(4) == 0) && self.dump_bank.val().get_bit(i) {
                self.dump_data.next = self.vd[i].dump_data.val();
            }
        }
        for i in 0..NE {
            if (self.dump_sel.q.val().get_bits::<4>(4) == 1) && self.dump_bank.val().get_bit(i) {
                self.dump_data.next = self.exact[i].dump_data.val();
            }
        }
        for i in 0..NG {
            if (self.dump_sel.q.val().get_bits::<4>(4) == 2) && self.dump_bank.val().get_bit(i) {
                self.dump_data.next = self.global[i].dump_data.val();
            }
        }
        for i in 0..NF {
            if (self.dump_sel.q.val().get_bits::<4>(4) == 3) && self.dump_bank.val().get_bit(i) {
                self.dump_data.next = self.decay[i].dump_data.val();
            }
        }
    }
}
