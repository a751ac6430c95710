//! The H3 hash unit: key masking and the 64-bit H3 hash of one key per clock.
//!
//! H3 (Carter & Wegman's universal class) is an XOR of one constant 64-bit
//! row per set key bit plus a row per key length (`streamon_contract::h3`).
//! In hardware every output bit is the parity of the masked key ANDed with a
//! 320-bit column constant, so the whole hash is 64 parity trees in parallel
//! (one LUT level per 6 inputs, about six levels deep): all k positions of
//! every structure are then cut from this one hash in the banks.
//!
//! This is a leaf block written as generated Verilog (like RustHDL's RAM and
//! ROM leaves): the 384 matrix rows are synthesis-time constants taken from
//! the contract crate, and its `update` is the simulation model. Its test
//! bench holds it to `streamon_contract::h3::h3`.

use rust_hdl::prelude::*;
use streamon_contract::h3::{H3_LEN_ROWS, H3_ROWS};
use streamon_contract::KEY_MAX;

/// Key bits.
pub const KEY_BITS: usize = KEY_MAX * 8;

/// Combinational H3 hash.
///
/// Inputs: `key` (320 bits, byte `i` in bits `8i..8i+8`), `key_len` (bytes).
/// Outputs: `masked_key` (bytes at and past `key_len` zeroed; all kept when
/// `key_len > 40`, an op the decoder rejects anyway) and `hash`.
#[derive(LogicBlock, Default)]
pub struct H3Unit {
    /// Raw key bytes of the op.
    pub key: Signal<In, Bits<KEY_BITS>>,
    /// Key length in bytes.
    pub key_len: Signal<In, Bits<8>>,
    /// The key with bytes at and beyond `key_len` forced to zero.
    pub masked_key: Signal<Out, Bits<KEY_BITS>>,
    /// `h3(masked key[..key_len])`.
    pub hash: Signal<Out, Bits<64>>,
}

/// The software model of the unit (also what its Verilog computes).
pub fn h3_model(key: &[u8; KEY_MAX], key_len: u8) -> ([u8; KEY_MAX], u64) {
    let mut k = *key;
    let len = key_len as usize;
    if len <= KEY_MAX {
        k[len..].iter_mut().for_each(|b| *b = 0);
    }
    let mut h = H3_LEN_ROWS.get(len).copied().unwrap_or(0);
    for (i, &byte) in k.iter().enumerate() {
        for b in 0..8 {
            if byte >> b & 1 == 1 {
                h ^= H3_ROWS[i * 8 + b];
            }
        }
    }
    (k, h)
}

fn bits_to_bytes(v: Bits<KEY_BITS>) -> [u8; KEY_MAX] {
    let mut out = [0u8; KEY_MAX];
    for (i, o) in out.iter_mut().enumerate() {
        *o = v.get_bits::<8>(i * 8).to_u8();
    }
    out
}

fn bytes_to_bits(b: &[u8; KEY_MAX]) -> Bits<KEY_BITS> {
    let mut v = Bits::<KEY_BITS>::default();
    for (i, &x) in b.iter().enumerate() {
        v.set_bits::<8>(i * 8, (x as u64).into());
    }
    v
}

impl Logic for H3Unit {
    fn update(&mut self) {
        let (k, h) = h3_model(&bits_to_bytes(self.key.val()), self.key_len.val().to_u8());
        self.masked_key.next = bytes_to_bits(&k);
        self.hash.next = h.into();
    }

    fn connect(&mut self) {
        self.masked_key.connect();
        self.hash.connect();
    }

    fn hdl(&self) -> Verilog {
        let mut v = String::new();
        v.push_str(&format!(
            "reg [{}:0] keep;\nreg [63:0] len_row;\n",
            KEY_BITS - 1
        ));
        v.push_str("always @(*) begin\n");
        v.push_str(&format!(
            "   if (key_len > {KEY_MAX}) keep = {{{KEY_BITS}{{1'b1}}}};\n   else keep = ~({{{KEY_BITS}{{1'b1}}}} << (key_len * 8));\n"
        ));
        v.push_str("   masked_key = key & keep;\n   case (key_len)\n");
        for (l, row) in H3_LEN_ROWS.iter().enumerate() {
            v.push_str(&format!("      8'd{l}: len_row = 64'h{row:016x};\n"));
        }
        v.push_str("      default: len_row = 64'h0;\n   endcase\n");
        for j in 0..64 {
            // Column j of the matrix as a 320-bit constant, bit 8i+b first.
            let mut col = [0u8; KEY_BITS / 4];
            for (r, row) in H3_ROWS.iter().enumerate() {
                if row >> j & 1 == 1 {
                    col[r / 4] |= 1 << (r % 4);
                }
            }
            let hex: String = col.iter().rev().map(|d| format!("{d:x}")).collect();
            v.push_str(&format!(
                "   hash[{j}] = len_row[{j}] ^ (^(masked_key & {KEY_BITS}'h{hex}));\n"
            ));
        }
        v.push_str("end\n");
        Verilog::Custom(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(LogicBlock, Default)]
    struct Bench {
        clock: Signal<In, Clock>,
        unit: H3Unit,
    }

    impl Logic for Bench {
        #[hdl_gen]
        fn update(&mut self) {}
    }

    fn bench() -> Bench {
        let mut b = Bench::default();
        b.unit.key.connect();
        b.unit.key_len.connect();
        b.connect_all();
        b
    }

    #[test]
    fn h3_unit_is_synthesizable() {
        let b = bench();
        yosys_validate("h3_unit", &generate_verilog(&b)).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Clocked test bench: the unit's hash equals the contract's
        /// bit-serial H3 of the key's first `key_len` bytes.
        #[test]
        fn h3_unit_matches_contract(keys in proptest::collection::vec((proptest::array::uniform32(any::<u8>()), 0u8..=42), 1..8)) {
            let mut sim = Simulation::new();
            sim.add_clock(5, |x: &mut Box<Bench>| x.clock.next = !x.clock.val());
            let cases = keys.clone();
            sim.add_testbench(move |mut sim: Sim<Bench>| {
                let mut x = sim.init()?;
                for (raw, len) in &cases {
                    let mut key = [0u8; KEY_MAX];
                    key[..32].copy_from_slice(raw);
                    key[32..].copy_from_slice(&raw[..8]);
                    x.unit.key.next = bytes_to_bits(&key);
                    x.unit.key_len.next = (*len as u64).into();
                    wait_clock_cycle!(sim, clock, x);
                    let l = (*len as usize).min(KEY_MAX);
                    let want = streamon_contract::h3::h3_reference(&key[..l]);
                    if *len as usize <= KEY_MAX {
                        sim_assert_eq!(sim, x.unit.hash.val(), Bits::<64>::from(want), x);
                        let mut masked = [0u8; KEY_MAX];
                        masked[..l].copy_from_slice(&key[..l]);
                        sim_assert_eq!(sim, x.unit.masked_key.val(), bytes_to_bits(&masked), x);
                    }
                }
                sim.done(x)
            });
            sim.run(Box::new(bench()), 1000).unwrap();
        }
    }
}
