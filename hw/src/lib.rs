//! streamon's FPGA metric pipeline, in RustHDL.
//!
//! One op per clock enters [`pipeline::Pipeline`]; each metric lives in its
//! own bank, so all metrics of a packet update in parallel banks. The blocks:
//!
//! * [`h3_unit`]: key masking and the H3 hash (XOR tree over the contract's
//!   constant matrix);
//! * [`regs`]: the register block (metric count, metric → kind/bank map);
//! * [`vd_bank`]: variation detectors (two blocked Bloom filters, swap rule);
//! * [`exact_bank`]: exact per-key counters (`dleft`) and decaying counts
//!   (`tewma-fast`), with [`lut_ram`] holding the decay table;
//! * [`global_bank`]: the global counter;
//! * [`decay_bank`]: time-decaying counting Bloom filters (`tewma`);
//! * [`pipeline`]: the op decoder, the `IF_NEW` gate and the result path;
//! * [`serial_top`]: a byte-serial top for small FPGAs (iCE40).
//!
//! Every op's result is the one `docs/metric-contract.md` defines; the
//! `streamon-sim` crate proves it against the software engine on the
//! Verilator model of the Verilog this crate generates ([`layout`]).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod decay_bank;
pub mod exact_bank;
pub mod global_bank;
pub mod h3_unit;
pub mod layout;
pub mod lut_ram;
pub mod pipeline;
pub mod regmap;
pub mod regs;
pub mod serial_top;
pub mod vd_bank;
