//! The exact per-key table bank: `dleft` counters (ExactCounter) and
//! `tewma-fast` decaying counts (ExactEwma), chosen per install by the
//! bank's mode register. `2^b` buckets of up to `W` slots, every way in its
//! own RAM so a bucket is read and written in one clock. A slot holds the
//! whole key (identity is the key, never a fingerprint), its length, an
//! occupied bit, the 64-bit value, the tick of its last write and its
//! insertion tick.
//!
//! ExactEwma decays the found slot's value by its age with the metric's
//! decay table (2048 Q1.16 factors, written through the configuration bus
//! at install) before adding `v << 24`; the table is a [`LutRam`] read in
//! the same clock the slot is found, so the read-modify-write stays one
//! stage and the forwarding register covers back-to-back ops.
//!
//! Slot layout (`SLOT_BITS` = 455): key `[0, 320)`, key length `[320, 326)`,
//! occupied `326`, value `[327, 391)`, tick `[391, 423)`, aux `[423, 455)`.
//!
//! Hazards and clears as in the detector bank: a forwarding register holds
//! the bucket written by the previous op, and `Clear` resets a per-bucket
//! valid bit vector in one clock.

use crate::lut_ram::LutRam;
use rust_hdl::prelude::*;

/// Bits of one slot.
pub const SLOT_BITS: usize = 455;

/// An exact-counter bank of at most `2^AB` buckets (`NB = 2^AB`) of at most
/// `W` ways (W ≤ 8).
///
/// Inputs: `hash_s2` (stage 2); in stage 3 `go`, `kind`, `hash`, `key`,
/// `key_len`, `value`, `ts`; the configuration bus; the dump port.
/// Outputs: `result`, `flags` (stage 3), `dump_data`.
#[derive(LogicBlock)]
pub struct ExactBank<const AB: usize, const NB: usize, const W: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Hash of the op in stage 2 (read address).
    pub hash_s2: Signal<In, Bits<64>>,
    /// Stage 3: apply the op to this bank.
    pub go: Signal<In, Bit>,
    /// Stage 3: effective op kind.
    pub kind: Signal<In, Bits<8>>,
    /// Stage 3: hash.
    pub hash: Signal<In, Bits<64>>,
    /// Stage 3: masked key.
    pub key: Signal<In, Bits<320>>,
    /// Stage 3: key length.
    pub key_len: Signal<In, Bits<8>>,
    /// Stage 3: increment.
    pub value: Signal<In, Bits<32>>,
    /// Stage 3: timestamp, ns.
    pub ts: Signal<In, Bits<64>>,
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
    /// Dump word address.
    pub dump_word: Signal<In, Bits<24>>,
    /// Dump data, one clock after `dump_word`.
    pub dump_data: Signal<Out, Bits<64>>,
    slots: [RAM<Bits<SLOT_BITS>, AB>; W],
    factors: LutRam<Bits<17>, 11>,
    ewma: DFF<Bit>,
    fwd: [DFF<Bits<SLOT_BITS>>; W],
    log2_buckets: DFF<Bits<6>>,
    ways: DFF<Bits<4>>,
    tick_shift: DFF<Bits<6>>,
    evictions: DFF<Bits<64>>,
    valid: DFF<Bits<NB>>,
    fwd_hit: DFF<Bit>,
    fwd_bucket: DFF<Bits<AB>>,
    dump_q: DFF<Bits<24>>,
    base: Constant<Bits<16>>,
    fac_page: Constant<Bits<5>>,
    one_slot: Constant<Bits<SLOT_BITS>>,
    ones64: Constant<Bits<64>>,
    no_buckets: Constant<Bits<NB>>,
    // Stage 3 locals.
    bucket: Signal<Local, Bits<AB>>,
    now: Signal<Local, Bits<32>>,
    slot: Signal<Local, Bits<SLOT_BITS>>,
    remaining: Signal<Local, Bits<4>>,
    found: Signal<Local, Bit>,
    free_any: Signal<Local, Bit>,
    hit_way: Signal<Local, Bits<8>>,
    free_way: Signal<Local, Bits<8>>,
    victim_way: Signal<Local, Bits<8>>,
    target_way: Signal<Local, Bits<8>>,
    age: Signal<Local, Bits<32>>,
    oldest: Signal<Local, Bits<32>>,
    old_value: Signal<Local, Bits<64>>,
    old_tick: Signal<Local, Bits<32>>,
    old_aux: Signal<Local, Bits<32>>,
    sum: Signal<Local, Bits<65>>,
    old_age: Signal<Local, Bits<32>>,
    factor: Signal<Local, Bits<17>>,
    decayed: Signal<Local, Bits<64>>,
    new_value: Signal<Local, Bits<64>>,
    new_tick: Signal<Local, Bits<32>>,
    new_slot: Signal<Local, Bits<SLOT_BITS>>,
    write: Signal<Local, Bit>,
    dump_way: Signal<Local, Bits<8>>,
    dump_slot: Signal<Local, Bits<SLOT_BITS>>,
}

impl<const AB: usize, const NB: usize, const W: usize> ExactBank<AB, NB, W> {
    /// A bank answering configuration writes at `base`
    /// (`regmap::exact_bank`) and decay-table writes in page `page`
    /// (`regmap::exact_page`).
    pub fn new(base: usize, page: usize) -> Self {
        Self::with_table(base, page, true)
    }

    /// A bank for ExactCounter only: no decay table (its [`LutRam`] is
    /// [`LutRam::absent`], reading zero), so no 2048 × 17-bit memory and
    /// no decay logic after constant propagation. Installing it in
    /// ExactEwma mode gives wrong answers; a pipeline of such banks clears
    /// ExactEwma from its capability bitmap so hosts never do.
    pub fn counters_only(base: usize, page: usize) -> Self {
        Self::with_table(base, page, false)
    }

    fn with_table(base: usize, page: usize, table: bool) -> Self {
        assert_eq!(NB, 1 << AB, "NB must be 2^AB");
        assert!((1..=8).contains(&W), "1..=8 ways");
        ExactBank {
            clock: Default::default(),
            hash_s2: Default::default(),
            go: Default::default(),
            kind: Default::default(),
            hash: Default::default(),
            key: Default::default(),
            key_len: Default::default(),
            value: Default::default(),
            ts: Default::default(),
            result: Default::default(),
            flags: Default::default(),
            cfg_we: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            dump_en: Default::default(),
            dump_word: Default::default(),
            dump_data: Default::default(),
            slots: std::array::from_fn(|_| RAM::new(Default::default())),
            factors: if table {
                Default::default()
            } else {
                LutRam::absent()
            },
            ewma: Default::default(),
            fwd: std::array::from_fn(|_| Default::default()),
            log2_buckets: Default::default(),
            ways: Default::default(),
            tick_shift: Default::default(),
            evictions: Default::default(),
            valid: Default::default(),
            fwd_hit: Default::default(),
            fwd_bucket: Default::default(),
            dump_q: Default::default(),
            base: Constant::new((base as u64).into()),
            fac_page: Constant::new((page as u64).into()),
            one_slot: Constant::new(1u64.into()),
            ones64: Constant::new(u64::MAX.into()),
            no_buckets: Constant::new(0u64.into()),
            bucket: Default::default(),
            now: Default::default(),
            slot: Default::default(),
            remaining: Default::default(),
            found: Default::default(),
            free_any: Default::default(),
            hit_way: Default::default(),
            free_way: Default::default(),
            victim_way: Default::default(),
            target_way: Default::default(),
            age: Default::default(),
            oldest: Default::default(),
            old_value: Default::default(),
            old_tick: Default::default(),
            old_aux: Default::default(),
            sum: Default::default(),
            old_age: Default::default(),
            factor: Default::default(),
            decayed: Default::default(),
            new_value: Default::default(),
            new_tick: Default::default(),
            new_slot: Default::default(),
            write: Default::default(),
            dump_way: Default::default(),
            dump_slot: Default::default(),
        }
    }
}

impl<const AB: usize, const NB: usize, const W: usize> Logic for ExactBank<AB, NB, W> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            log2_buckets,
            ways,
            tick_shift,
            evictions,
            valid,
            fwd_hit,
            fwd_bucket,
            dump_q,
            ewma
        );
        self.factors.write_clock.next = self.clock.val();
        self.factors.write_enable.next =
            self.cfg_we.val() && (self.cfg_addr.val().get_bits::<5>(11) == self.fac_page.val());
        self.factors.write_address.next = self.cfg_addr.val().get_bits::<11>(0);
        self.factors.write_data.next = self.cfg_data.val().get_bits::<17>(0);
        // Stage 2: bucket = g(0) >> (32 - b), or the dump address.
        self.bucket.next = bit_cast::<AB, 32>(
            self.hash.val().get_bits::<32>(0) >> (32 - self.log2_buckets.q.val()),
        );
        for w in 0..W {
            self.slots[w].read_clock.next = self.clock.val();
            self.slots[w].write_clock.next = self.clock.val();
            self.fwd[w].clock.next = self.clock.val();
            self.fwd[w].d.next = self.fwd[w].q.val();
            if self.dump_en.val() {
                self.slots[w].read_address.next = self.dump_word.val().get_bits::<AB>(7);
            } else {
                self.slots[w].read_address.next = bit_cast::<AB, 32>(
                    self.hash_s2.val().get_bits::<32>(0) >> (32 - self.log2_buckets.q.val()),
                );
            }
        }
        // Stage 3.
        self.now.next = bit_cast::<32, 64>(self.ts.val() >> self.tick_shift.q.val());
        // Every read of `age` follows a write on its path; the default only
        // keeps synthesis from inferring a latch (yosys did, in each bank).
        self.age.next = 0.into();
        self.remaining.next = self.ways.q.val();
        self.found.next = false;
        self.free_any.next = false;
        self.hit_way.next = 0.into();
        self.free_way.next = 0.into();
        self.victim_way.next = 1.into();
        self.oldest.next = 0.into();
        self.old_value.next = 0.into();
        self.old_tick.next = 0.into();
        self.old_aux.next = 0.into();
        for w in 0..W {
            self.slot.next = self.slots[w].read_data.val();
            if self.fwd_hit.q.val() && self.fwd_bucket.q.val() == self.bucket.val() {
                self.slot.next = self.fwd[w].q.val();
            }
            if !self.valid.q.val().get_bit(self.bucket.val().index()) {
                self.slot.next = 0.into();
            }
            if self.remaining.val().any() {
                if self.slot.val().get_bit(326) {
                    if !self.found.val()
                        && self.slot.val().get_bits::<320>(0) == self.key.val()
                        && self.slot.val().get_bits::<6>(320) == self.key_len.val().get_bits::<6>(0)
                    {
                        self.found.next = true;
                        self.hit_way.next = self.hit_way.val().replace_bit(w, true);
                        self.old_value.next = self.slot.val().get_bits::<64>(327);
                        self.old_tick.next = self.slot.val().get_bits::<32>(391);
                        self.old_aux.next = self.slot.val().get_bits::<32>(423);
                    }
                    self.age.next = self.now.val() - self.slot.val().get_bits::<32>(391);
                    if self.age.val().get_bit(31) {
                        self.age.next = 0.into();
                    }
                    if self.age.val() > self.oldest.val() {
                        self.oldest.next = self.age.val();
                        self.victim_way.next = 0.into();
                        self.victim_way.next = self.victim_way.val().replace_bit(w, true);
                    }
                } else if !self.free_any.val() {
                    self.free_any.next = true;
                    self.free_way.next = self.free_way.val().replace_bit(w, true);
                }
                self.remaining.next = self.remaining.val() - 1;
            }
        }
        // Add: the found slot, else the first free way, else the oldest.
        self.target_way.next = self.victim_way.val();
        if self.free_any.val() {
            self.target_way.next = self.free_way.val();
        }
        if self.found.val() {
            self.target_way.next = self.hit_way.val();
            self.new_tick.next = self.now.val();
            self.age.next = self.now.val() - self.old_tick.val();
            if self.age.val().get_bit(31) {
                self.new_tick.next = self.old_tick.val();
            }
        } else {
            self.new_tick.next = self.now.val();
            self.old_aux.next = self.now.val();
        }
        // ExactEwma: the found value decayed by its age (0 when absent,
        // since old_value is then 0), as in the decaying-filter rows.
        self.old_age.next = self.now.val() - self.old_tick.val();
        if self.old_age.val().get_bit(31) {
            self.old_age.next = 0.into();
        }
        self.factors.read_address.next = self.old_age.val().get_bits::<11>(0);
        self.factor.next = self.factors.read_data.val();
        if self.old_age.val().get_bits::<21>(11).any() {
            self.factor.next = 0.into();
        }
        self.decayed.next = (bit_cast::<64, 32>(
            self.old_value.val().get_bits::<16>(0) * self.factor.val().get_bits::<16>(0),
        ) >> 16)
            + bit_cast::<64, 32>(
                self.old_value.val().get_bits::<16>(16) * self.factor.val().get_bits::<16>(0),
            )
            + (bit_cast::<64, 32>(
                self.old_value.val().get_bits::<16>(32) * self.factor.val().get_bits::<16>(0),
            ) << 16)
            + (bit_cast::<64, 32>(
                self.old_value.val().get_bits::<16>(48) * self.factor.val().get_bits::<16>(0),
            ) << 32);
        if self.factor.val().get_bit(16) {
            self.decayed.next = self.old_value.val();
        }
        self.sum.next =
            bit_cast::<65, 64>(self.old_value.val()) + bit_cast::<65, 32>(self.value.val());
        if self.ewma.q.val() {
            self.sum.next = bit_cast::<65, 64>(self.decayed.val())
                + (bit_cast::<65, 32>(self.value.val()) << 24);
        }
        self.new_value.next = self.sum.val().get_bits::<64>(0);
        if self.sum.val().get_bit(64) {
            self.new_value.next = self.ones64.val();
        }
        self.new_slot.next = bit_cast::<SLOT_BITS, 320>(self.key.val())
            | (bit_cast::<SLOT_BITS, 6>(self.key_len.val().get_bits::<6>(0)) << 320)
            | (self.one_slot.val() << 326)
            | (bit_cast::<SLOT_BITS, 64>(self.new_value.val()) << 327)
            | (bit_cast::<SLOT_BITS, 32>(self.new_tick.val()) << 391)
            | (bit_cast::<SLOT_BITS, 32>(self.old_aux.val()) << 423);
        self.result.next = 0.into();
        self.flags.next = 0.into();
        self.write.next = false;
        if self.go.val() {
            if self.kind.val() == 5 {
                self.result.next = self.old_value.val();
                if self.ewma.q.val() {
                    self.result.next = self.decayed.val();
                }
            }
            if (self.kind.val() == 4) | (self.kind.val() == 6) {
                self.write.next = true;
                self.result.next = self.new_value.val();
                if !self.found.val() {
                    self.flags.next = 8.into();
                    if !self.free_any.val() {
                        self.flags.next = 10.into();
                        self.evictions.d.next = self.evictions.q.val() + 1;
                    }
                }
            }
            if self.kind.val() == 7 {
                self.write.next = true;
                self.target_way.next = self.hit_way.val();
                self.new_slot.next = 0.into();
            }
            if self.kind.val() == 8 {
                self.valid.d.next = self.no_buckets.val();
                self.evictions.d.next = 0.into();
            }
        }
        self.fwd_hit.d.next = self.write.val();
        self.fwd_bucket.d.next = self.bucket.val();
        if self.write.val() {
            self.valid.d.next = self
                .valid
                .q
                .val()
                .replace_bit(self.bucket.val().index(), true);
        }
        for w in 0..W {
            self.slot.next = self.slots[w].read_data.val();
            if self.fwd_hit.q.val() && self.fwd_bucket.q.val() == self.bucket.val() {
                self.slot.next = self.fwd[w].q.val();
            }
            if !self.valid.q.val().get_bit(self.bucket.val().index()) {
                self.slot.next = 0.into();
            }
            if self.target_way.val().get_bit(w) {
                self.slot.next = self.new_slot.val();
            }
            self.slots[w].write_address.next = self.bucket.val();
            self.slots[w].write_data.next = self.slot.val();
            self.slots[w].write_enable.next = self.write.val();
            if self.write.val() {
                self.fwd[w].d.next = self.slot.val();
            }
        }
        // Configuration: log2 buckets, ways, mode, tick shift (which installs).
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() {
            self.log2_buckets.d.next = self.cfg_data.val().get_bits::<6>(0);
        }
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() + 1 {
            self.ways.d.next = self.cfg_data.val().get_bits::<4>(0);
        }
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() + 3 {
            self.ewma.d.next = self.cfg_data.val().get_bit(0);
        }
        if self.cfg_we.val() && self.cfg_addr.val() == self.base.val() + 2 {
            self.tick_shift.d.next = self.cfg_data.val().get_bits::<6>(0);
            self.valid.d.next = self.no_buckets.val();
            self.evictions.d.next = 0.into();
            self.fwd_hit.d.next = false;
        }
        // Dump: word 0 = evictions; slot words at MEM | bucket<<7 | way<<4 | j.
        self.dump_q.d.next = self.dump_word.val();
        self.dump_way.next = 0.into();
        self.dump_way.next = self
            .dump_way
            .val()
            .replace_bit(self.dump_q.q.val().get_bits::<3>(4).index(), true);
        self.dump_slot.next = 0.into();
        for w in 0..W {
            if self.dump_way.val().get_bit(w) {
                self.dump_slot.next = self.slots[w].read_data.val();
            }
        }
        if !self
            .valid
            .q
            .val()
            .get_bit(self.dump_q.q.val().get_bits::<AB>(7).index())
        {
            self.dump_slot.next = 0.into();
        }
        self.dump_data.next = 0.into();
        if self.dump_q.q.val().get_bit(23) {
            if self.dump_q.q.val().get_bits::<4>(0) < 5 {
                self.dump_data.next = self.dump_slot.val().get_bits::<64>(
                    (bit_cast::<10, 4>(self.dump_q.q.val().get_bits::<4>(0)) << 6).index(),
                );
            }
            if self.dump_q.q.val().get_bits::<4>(0) == 5 {
                self.dump_data.next = bit_cast::<64, 1>(self.dump_slot.val().get_bit(326).into())
                    | (bit_cast::<64, 6>(self.dump_slot.val().get_bits::<6>(320)) << 8);
            }
            if self.dump_q.q.val().get_bits::<4>(0) == 6 {
                self.dump_data.next = self.dump_slot.val().get_bits::<64>(327);
            }
            if self.dump_q.q.val().get_bits::<4>(0) == 7 {
                self.dump_data.next = bit_cast::<64, 32>(self.dump_slot.val().get_bits::<32>(391));
            }
            if self.dump_q.q.val().get_bits::<4>(0) == 8 {
                self.dump_data.next = bit_cast::<64, 32>(self.dump_slot.val().get_bits::<32>(423));
            }
        } else if self.dump_q.q.val().get_bits::<3>(0) == 0 {
            self.dump_data.next = self.evictions.q.val();
        }
    }
}
