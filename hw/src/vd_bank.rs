//! The variation detector bank: StreaMon's `BloomPair` (ITC'14 §III) as two
//! blocked Bloom filters of 512-bit blocks, both read and written in the same
//! clock, one op per clock.
//!
//! * Reads are issued in stage 2 (the hash is known), data arrive in stage 3,
//!   where the op is applied and the block written back. Back-to-back ops on
//!   the same block would read stale data (the RAM is read-first), so the
//!   last written block of each filter is kept in a forwarding register.
//! * Clearing a filter (a swap, or a `Clear` op) is a per-block valid bit
//!   (a one-bit epoch per block, in flip-flops) reset in one clock: a block
//!   whose bit is clear reads as zero, and its first write rewrites the
//!   whole block. No op ever stalls.
//! * The swap threshold adapts with the contract's `SWAP_FACTORS` ROM and a
//!   multiplication split into 16×16 limb products.

use rust_hdl::prelude::*;
use streamon_contract::fixed::SWAP_FACTORS;

/// Effective op kinds seen by banks (the contract's `OpKind` codes).
pub mod kinds {
    /// `VdGet`.
    pub const VD_GET: u64 = 1;
    /// `VdSet`.
    pub const VD_SET: u64 = 2;
    /// `VdGetSet`.
    pub const VD_GET_SET: u64 = 3;
    /// `Add`.
    pub const ADD: u64 = 4;
    /// `Get`.
    pub const GET: u64 = 5;
    /// `AddGet`.
    pub const ADD_GET: u64 = 6;
    /// `ResetKey`.
    pub const RESET_KEY: u64 = 7;
    /// `Clear`.
    pub const CLEAR: u64 = 8;
}

/// A variation-detector bank of at most `2^AB` blocks (`2^(AB+9)` bits) per
/// filter; `NB` must be `2^AB`.
///
/// Inputs: `hash_s2` (stage 2, addresses the read), and in stage 3 `go`,
/// `kind`, `hash`; the configuration bus; the dump port.
/// Outputs: `result`, `flags` (stage 3, combinational), `dump_data`.
#[derive(LogicBlock)]
pub struct VdBank<const AB: usize, const NB: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Hash of the op in stage 2 (read address).
    pub hash_s2: Signal<In, Bits<64>>,
    /// Stage 3: apply the op to this bank.
    pub go: Signal<In, Bit>,
    /// Stage 3: effective op kind.
    pub kind: Signal<In, Bits<8>>,
    /// Stage 3: hash of the op.
    pub hash: Signal<In, Bits<64>>,
    /// Stage 3 result value.
    pub result: Signal<Out, Bits<64>>,
    /// Stage 3 result flags.
    pub flags: Signal<Out, Bits<8>>,
    /// Configuration write strobe.
    pub cfg_we: Signal<In, Bit>,
    /// Configuration address.
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<64>>,
    /// Dump mode: RAM reads come from `dump_word`.
    pub dump_en: Signal<In, Bit>,
    /// Dump word address (see `regmap`).
    pub dump_word: Signal<In, Bits<24>>,
    /// Dump data, one clock after `dump_word`.
    pub dump_data: Signal<Out, Bits<64>>,
    filter0: RAM<Bits<512>, AB>,
    filter1: RAM<Bits<512>, AB>,
    swap_rom: ROM<Bits<24>, 10>,
    log2_bits: DFF<Bits<6>>,
    hashes: DFF<Bits<5>>,
    learning: DFF<Bit>,
    zeros0: DFF<Bits<32>>,
    zeros1: DFF<Bits<32>>,
    threshold: DFF<Bits<32>>,
    threshold_init: DFF<Bits<32>>,
    swaps: DFF<Bits<64>>,
    valid0: DFF<Bits<NB>>,
    valid1: DFF<Bits<NB>>,
    fwd_hit: DFF<Bit>,
    fwd_block: DFF<Bits<AB>>,
    fwd0: DFF<Bits<512>>,
    fwd1: DFF<Bits<512>>,
    dump_q: DFF<Bits<24>>,
    base: Constant<Bits<16>>,
    one512: Constant<Bits<512>>,
    one32: Constant<Bits<32>>,
    no_blocks: Constant<Bits<NB>>,
    // Stage 3 locals.
    block: Signal<Local, Bits<AB>>,
    eff0: Signal<Local, Bits<512>>,
    eff1: Signal<Local, Bits<512>>,
    gi: Signal<Local, Bits<32>>,
    stride: Signal<Local, Bits<32>>,
    remaining: Signal<Local, Bits<5>>,
    mask: Signal<Local, Bits<512>>,
    missing: Signal<Local, Bit>,
    // Bits newly set per filter: at most 16 (k ≤ 16), so 5 bits; as 32-bit
    // counters they were 16 conditional 32-bit adders each (≈ 4k LUTs).
    new0: Signal<Local, Bits<5>>,
    new1: Signal<Local, Bits<5>>,
    z0: Signal<Local, Bits<32>>,
    z1: Signal<Local, Bits<32>>,
    m: Signal<Local, Bits<32>>,
    dd: Signal<Local, Bits<32>>,
    idx: Signal<Local, Bits<48>>,
    factor: Signal<Local, Bits<32>>,
    adapted: Signal<Local, Bits<64>>,
    floor: Signal<Local, Bits<64>>,
    ceiling: Signal<Local, Bits<64>>,
    reset_state: Signal<Local, Bit>,
    dump_block: Signal<Local, Bits<AB>>,
    dump_eff: Signal<Local, Bits<512>>,
}

impl<const AB: usize, const NB: usize> VdBank<AB, NB> {
    /// A bank answering configuration writes at `base` (`regmap::vd_bank`).
    pub fn new(base: usize) -> Self {
        assert_eq!(NB, 1 << AB, "NB must be 2^AB");
        let rom = SWAP_FACTORS
            .iter()
            .enumerate()
            .map(|(i, &f)| (Bits::<10>::from(i as u64), Bits::<24>::from(f as u64)))
            .collect();
        VdBank {
            clock: Default::default(),
            hash_s2: Default::default(),
            go: Default::default(),
            kind: Default::default(),
            hash: Default::default(),
            result: Default::default(),
            flags: Default::default(),
            cfg_we: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            dump_en: Default::default(),
            dump_word: Default::default(),
            dump_data: Default::default(),
            filter0: RAM::new(Default::default()),
            filter1: RAM::new(Default::default()),
            swap_rom: ROM::new(rom),
            log2_bits: Default::default(),
            hashes: Default::default(),
            learning: Default::default(),
            zeros0: Default::default(),
            zeros1: Default::default(),
            threshold: Default::default(),
            threshold_init: Default::default(),
            swaps: Default::default(),
            valid0: Default::default(),
            valid1: Default::default(),
            fwd_hit: Default::default(),
            fwd_block: Default::default(),
            fwd0: Default::default(),
            fwd1: Default::default(),
            dump_q: Default::default(),
            base: Constant::new((base as u64).into()),
            one512: Constant::new(1u64.into()),
            one32: Constant::new(1u64.into()),
            no_blocks: Constant::new(0u64.into()),
            block: Default::default(),
            eff0: Default::default(),
            eff1: Default::default(),
            gi: Default::default(),
            stride: Default::default(),
            remaining: Default::default(),
            mask: Default::default(),
            missing: Default::default(),
            new0: Default::default(),
            new1: Default::default(),
            z0: Default::default(),
            z1: Default::default(),
            m: Default::default(),
            dd: Default::default(),
            idx: Default::default(),
            factor: Default::default(),
            adapted: Default::default(),
            floor: Default::default(),
            ceiling: Default::default(),
            reset_state: Default::default(),
            dump_block: Default::default(),
            dump_eff: Default::default(),
        }
    }
}

impl<const AB: usize, const NB: usize> Logic for VdBank<AB, NB> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            log2_bits,
            hashes,
            learning,
            zeros0,
            zeros1,
            threshold,
            threshold_init,
            swaps,
            valid0,
            valid1,
            fwd_hit,
            fwd_block,
            fwd0,
            fwd1,
            dump_q
        );
        self.filter0.read_clock.next = self.clock.val();
        self.filter0.write_clock.next = self.clock.val();
        self.filter1.read_clock.next = self.clock.val();
        self.filter1.write_clock.next = self.clock.val();
        self.m.next = self.one32.val() << self.log2_bits.q.val();
        // Stage 2: block = hi >> (32 - (n - 9)), or the dump address.
        if self.dump_en.val() {
            self.filter0.read_address.next = self.dump_word.val().get_bits::<AB>(3);
        } else {
            self.filter0.read_address.next = bit_cast::<AB, 32>(
                self.hash_s2.val().get_bits::<32>(32) >> (41 - self.log2_bits.q.val()),
            );
        }
        if self.dump_en.val() {
            self.filter1.read_address.next = self.dump_word.val().get_bits::<AB>(3);
        } else {
            self.filter1.read_address.next = bit_cast::<AB, 32>(
                self.hash_s2.val().get_bits::<32>(32) >> (41 - self.log2_bits.q.val()),
            );
        }
        // Stage 3: the block, forwarded if the previous op wrote it, masked
        // by its valid bit.
        self.block.next =
            bit_cast::<AB, 32>(self.hash.val().get_bits::<32>(32) >> (41 - self.log2_bits.q.val()));
        self.eff0.next = self.filter0.read_data.val();
        self.eff1.next = self.filter1.read_data.val();
        if self.fwd_hit.q.val() && self.fwd_block.q.val() == self.block.val() {
            self.eff0.next = self.fwd0.q.val();
            self.eff1.next = self.fwd1.q.val();
        }
        if !self.valid0.q.val().get_bit(self.block.val().index()) {
            self.eff0.next = 0.into();
        }
        if !self.valid1.q.val().get_bit(self.block.val().index()) {
            self.eff1.next = 0.into();
        }
        // The key's k bits g(i) & 511, g(i) = lo + i * (hi | 1).
        self.stride.next = self.hash.val().get_bits::<32>(32) | 1;
        self.gi.next = self.hash.val().get_bits::<32>(0);
        self.remaining.next = self.hashes.q.val();
        self.mask.next = 0.into();
        self.missing.next = false;
        self.new0.next = 0.into();
        self.new1.next = 0.into();
        for _i in 0..16 {
            if self.remaining.val().any() {
                self.mask.next =
                    self.mask.val() | (self.one512.val() << self.gi.val().get_bits::<9>(0));
                if !self
                    .eff0
                    .val()
                    .get_bit(self.gi.val().get_bits::<9>(0).index())
                {
                    self.new0.next = self.new0.val() + 1;
                    if self.learning.q.val() {
                        self.missing.next = true;
                    }
                }
                if !self
                    .eff1
                    .val()
                    .get_bit(self.gi.val().get_bits::<9>(0).index())
                {
                    self.new1.next = self.new1.val() + 1;
                    if !self.learning.q.val() {
                        self.missing.next = true;
                    }
                }
                self.remaining.next = self.remaining.val() - 1;
            }
            self.gi.next = self.gi.val() + self.stride.val();
        }
        self.z0.next = self.zeros0.q.val() - bit_cast::<32, 5>(self.new0.val());
        self.z1.next = self.zeros1.q.val() - bit_cast::<32, 5>(self.new1.val());
        // Swap: dd = zeros of the detecting filter after the insert.
        if self.learning.q.val() {
            self.dd.next = self.z0.val();
        } else {
            self.dd.next = self.z1.val();
        }
        self.idx.next = (bit_cast::<48, 32>(self.dd.val()) << 10) >> self.log2_bits.q.val();
        if self.idx.val() > 1023 {
            self.idx.next = 1023.into();
        }
        self.swap_rom.address.next = bit_cast::<10, 48>(self.idx.val());
        self.factor.next = bit_cast::<32, 24>(self.swap_rom.data.val());
        // floor(threshold * factor / 2^16) from four 16x16 limb products.
        self.adapted.next = (bit_cast::<64, 32>(
            self.threshold.q.val().get_bits::<16>(0) * self.factor.val().get_bits::<16>(0),
        ) >> 16)
            + bit_cast::<64, 32>(
                self.threshold.q.val().get_bits::<16>(0) * self.factor.val().get_bits::<16>(16),
            )
            + bit_cast::<64, 32>(
                self.threshold.q.val().get_bits::<16>(16) * self.factor.val().get_bits::<16>(0),
            )
            + (bit_cast::<64, 32>(
                self.threshold.q.val().get_bits::<16>(16) * self.factor.val().get_bits::<16>(16),
            ) << 16);
        self.floor.next = bit_cast::<64, 32>(self.m.val()) >> 4;
        self.ceiling.next = bit_cast::<64, 32>(self.m.val()) - self.floor.val();
        if self.adapted.val() < self.floor.val() {
            self.adapted.next = self.floor.val();
        }
        if self.adapted.val() > self.ceiling.val() {
            self.adapted.next = self.ceiling.val();
        }
        // Apply.
        self.result.next = 0.into();
        self.flags.next = 0.into();
        self.filter0.write_enable.next = false;
        self.filter1.write_enable.next = false;
        self.filter0.write_address.next = self.block.val();
        self.filter1.write_address.next = self.block.val();
        self.filter0.write_data.next = self.eff0.val() | self.mask.val();
        self.filter1.write_data.next = self.eff1.val() | self.mask.val();
        self.fwd_hit.d.next = false;
        self.fwd_block.d.next = self.block.val();
        self.fwd0.d.next = self.eff0.val() | self.mask.val();
        self.fwd1.d.next = self.eff1.val() | self.mask.val();
        self.reset_state.next = false;
        if self.go.val() {
            if ((self.kind.val() == 1) | (self.kind.val() == 3)) && !self.missing.val() {
                self.result.next = 1.into();
            }
            if (self.kind.val() == 2) | (self.kind.val() == 3) {
                self.filter0.write_enable.next = true;
                self.filter1.write_enable.next = true;
                self.fwd_hit.d.next = true;
                self.valid0.d.next = self
                    .valid0
                    .q
                    .val()
                    .replace_bit(self.block.val().index(), true);
                self.valid1.d.next = self
                    .valid1
                    .q
                    .val()
                    .replace_bit(self.block.val().index(), true);
                self.zeros0.d.next = self.z0.val();
                self.zeros1.d.next = self.z1.val();
                if (self.learning.q.val() && (self.z1.val() < self.threshold.q.val()))
                    || (!self.learning.q.val() && (self.z0.val() < self.threshold.q.val()))
                {
                    // The detecting filter is cleared and learns.
                    self.flags.next = 1.into();
                    self.swaps.d.next = self.swaps.q.val() + 1;
                    self.learning.d.next = !self.learning.q.val();
                    self.threshold.d.next = bit_cast::<32, 64>(self.adapted.val());
                    if self.learning.q.val() {
                        self.valid0.d.next = self.no_blocks.val();
                        self.zeros0.d.next = self.m.val();
                    } else {
                        self.valid1.d.next = self.no_blocks.val();
                        self.zeros1.d.next = self.m.val();
                    }
                }
            }
            if self.kind.val() == 8 {
                self.reset_state.next = true;
            }
        }
        // Configuration: log2 bits, k, initial threshold (which installs).
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() {
            self.log2_bits.d.next = self.cfg_data.val().get_bits::<6>(0);
        }
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() + 1 {
            self.hashes.d.next = self.cfg_data.val().get_bits::<5>(0);
        }
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() + 2 {
            self.threshold_init.d.next = self.cfg_data.val().get_bits::<32>(0);
            self.threshold.d.next = self.cfg_data.val().get_bits::<32>(0);
            self.reset_state.next = true;
        }
        if self.reset_state.val() {
            self.learning.d.next = false;
            self.zeros0.d.next = self.m.val();
            self.zeros1.d.next = self.m.val();
            self.swaps.d.next = 0.into();
            self.valid0.d.next = self.no_blocks.val();
            self.valid1.d.next = self.no_blocks.val();
            self.fwd_hit.d.next = false;
            if !self.cfg_we.val() {
                self.threshold.d.next = self.threshold_init.q.val();
            }
        }
        // Dump: registers, then filter f's block b word j at MEM | f<<22 | b<<3 | j.
        self.dump_q.d.next = self.dump_word.val();
        self.dump_block.next = self.dump_q.q.val().get_bits::<AB>(3);
        if self.dump_q.q.val().get_bit(22) {
            self.dump_eff.next = self.filter1.read_data.val();
            if !self.valid1.q.val().get_bit(self.dump_block.val().index()) {
                self.dump_eff.next = 0.into();
            }
        } else {
            self.dump_eff.next = self.filter0.read_data.val();
            if !self.valid0.q.val().get_bit(self.dump_block.val().index()) {
                self.dump_eff.next = 0.into();
            }
        }
        if self.dump_q.q.val().get_bit(23) {
            self.dump_data.next = self.dump_eff.val().get_bits::<64>(
                (bit_cast::<9, 3>(self.dump_q.q.val().get_bits::<3>(0)) << 6).index(),
            );
        } else {
            self.dump_data.next = 0.into();
            if self.dump_q.q.val().get_bits::<3>(0) == 0 {
                self.dump_data.next = self.swaps.q.val();
            }
            if self.dump_q.q.val().get_bits::<3>(0) == 1 {
                self.dump_data.next = bit_cast::<64, 1>(self.learning.q.val().into());
            }
            if self.dump_q.q.val().get_bits::<3>(0) == 2 {
                self.dump_data.next = bit_cast::<64, 32>(self.zeros0.q.val());
            }
            if self.dump_q.q.val().get_bits::<3>(0) == 3 {
                self.dump_data.next = bit_cast::<64, 32>(self.zeros1.q.val());
            }
            if self.dump_q.q.val().get_bits::<3>(0) == 4 {
                self.dump_data.next = bit_cast::<64, 32>(self.threshold.q.val());
            }
        }
    }
}
