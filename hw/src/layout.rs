//! The synthesis-time layouts: how many banks of each kind and their
//! maximum sizes. Runtime sizes (`log2_size`, k, ways) come from the
//! register block and must fit the bank.

use crate::pipeline::Pipeline;
use rust_hdl::prelude::*;

/// Bank counts and maximum sizes of one generated pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Name of the layout.
    pub name: &'static str,
    /// Detector banks.
    pub vd_banks: usize,
    /// log2 of the blocks per detector filter (max log2 bits = this + 9).
    pub vd_block_bits: usize,
    /// Exact banks.
    pub exact_banks: usize,
    /// log2 of the buckets per exact bank (maximum).
    pub exact_bucket_bits: usize,
    /// Ways per exact bank (maximum).
    pub exact_ways: usize,
    /// Global counter banks.
    pub global_banks: usize,
    /// Decaying-filter (`tewma`) banks.
    pub df_banks: usize,
    /// log2 of the cells per row of a decaying-filter bank (maximum).
    pub df_cell_bits: usize,
    /// Rows per decaying-filter bank (maximum).
    pub df_rows: usize,
}

/// The layout the Verilator model (`streamon-sim`) is built with, sized so
/// the shipped applications' hardware metrics fit (`apps/ddos.xml`,
/// `apps/conficker.xml`, `apps/p2p.xml`): 4 detectors of up to 2^20 bits
/// per filter (the language's default `size`) and 4 decaying filters of up
/// to 4 rows × 2^17 cells (the default `tewma`: `size` 17, `nhash` 4).
/// Decaying-filter cells sit in RAM with epoch tags (no flip-flop per
/// cell), so their size costs the model memory, not logic. Runtime sizes
/// may be smaller, so equivalence tests still install small structures
/// (collisions, swaps, evictions). The exact banks take 2^4 buckets × 4
/// ways, the smallest table the application language can declare (`size`
/// 4..=24): their slots are 455 bits wide and their per-bucket valid bits
/// flip-flops, and a dump reads every slot word, so they stay small.
pub type SimPipeline = Pipeline<4, 11, 2048, 3, 4, 16, 4, 1, 4, 17, 131072, 4>;
/// [`SimPipeline`]'s layout.
pub const SIM: Layout = Layout {
    name: "sim",
    vd_banks: 4,
    vd_block_bits: 11,
    exact_banks: 3,
    exact_bucket_bits: 4,
    exact_ways: 4,
    global_banks: 1,
    df_banks: 4,
    df_cell_bits: 17,
    df_rows: 4,
};

/// Layout for the iCE40 place-and-route figure (behind
/// [`crate::serial_top::SerialTop`]): one exact table of 2^7 buckets × 1 way
/// (its 455-bit slots fill 29 of the 32 `SB_RAM40_4K` of an HX8K)
/// and one global. No detector: a detector bank's k = 16 bit decoders over
/// a 512-bit block alone exceed an iCE40's logic (docs/hardware.md).
/// Its exact bank is built counters-only ([`Pipeline::with_exact_ewma`]
/// `(false)`: no ExactEwma decay table, which an iCE40 could only hold in
/// flip-flops).
pub type Ice40Pipeline = Pipeline<0, 1, 2, 1, 7, 128, 1, 1, 0, 4, 16, 1>;
/// [`Ice40Pipeline`]'s layout.
pub const ICE40: Layout = Layout {
    name: "ice40",
    vd_banks: 0,
    vd_block_bits: 1,
    exact_banks: 1,
    exact_bucket_bits: 7,
    exact_ways: 1,
    global_banks: 1,
    df_banks: 0,
    df_cell_bits: 4,
    df_rows: 1,
};

/// The "default 16-metric" layout for the synthesis report: 8 detectors of
/// 2^16 bits per filter, 6 exact tables of 2^10 buckets × 4 ways, 2 globals.
pub type SynthPipeline = Pipeline<8, 7, 128, 6, 10, 1024, 4, 2, 0, 4, 16, 1>;
/// [`SynthPipeline`]'s layout.
pub const SYNTH: Layout = Layout {
    name: "synth16",
    vd_banks: 8,
    vd_block_bits: 7,
    exact_banks: 6,
    exact_bucket_bits: 10,
    exact_ways: 4,
    global_banks: 2,
    df_banks: 0,
    df_cell_bits: 4,
    df_rows: 1,
};

/// Builds, connects, checks (`check_all`) and translates a pipeline; the
/// top module is named `top`.
///
/// # Panics
/// Panics with RustHDL's `CheckError` (naming the offending signal path)
/// if the design has open inputs, logic loops or writes to inputs.
pub fn verilog_of<
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
>() -> String {
    let mut p = Pipeline::<NV, VAB, VNB, NE, EAB, ENB, EW, NG, NF, FAB, FNB, FR>::new();
    connect_ports(&mut p);
    p.connect_all();
    check_all(&p).expect("pipeline passes RustHDL's checks");
    generate_verilog(&p)
}

/// [`verilog_of`] for [`Ice40Pipeline`], counters-only as inside the iCE40
/// top.
pub fn ice40_pipeline_verilog() -> String {
    let mut p = Ice40Pipeline::with_exact_ewma(false);
    connect_ports(&mut p);
    p.connect_all();
    check_all(&p).expect("pipeline passes RustHDL's checks");
    generate_verilog(&p)
}

/// Marks the pipeline's top-level inputs as driven (by the harness).
pub fn connect_ports<
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
>(
    p: &mut Pipeline<NV, VAB, VNB, NE, EAB, ENB, EW, NG, NF, FAB, FNB, FR>,
) {
    p.clock.connect();
    p.in_valid.connect();
    p.in_op.connect();
    p.cfg_we.connect();
    p.cfg_addr.connect();
    p.cfg_data.connect();
    p.dump_en.connect();
    p.dump_addr.connect();
}

/// Builds, connects, checks and translates the iCE40 top
/// ([`crate::serial_top::SerialTop`] around [`Ice40Pipeline`]).
pub fn ice40_top_verilog() -> String {
    let mut t = crate::serial_top::SerialTop::new();
    t.clock.connect();
    t.rx.connect();
    t.rx_valid.connect();
    t.cmd.connect();
    t.tx_shift.connect();
    t.connect_all();
    check_all(&t).expect("iCE40 top passes RustHDL's checks");
    generate_verilog(&t)
}

/// Verilog of a named layout: `sim`, `synth16`, `synth-one` (bare
/// pipelines), `ice40`
/// (the serialising top), `ice40-pipeline` (its pipeline, bare, counters-only
/// as in the top).
pub fn verilog_for(name: &str) -> Option<String> {
    Some(match name {
        "sim" => verilog_of::<4, 11, 2048, 3, 4, 16, 4, 1, 4, 17, 131072, 4>(),
        "ice40" => ice40_top_verilog(),
        "ice40-pipeline" => ice40_pipeline_verilog(),
        // One bank of each kind at synth16's sizes: the configuration the
        // report synthesises when synth16 itself does not finish in time.
        "synth-one" => verilog_of::<1, 7, 128, 1, 10, 1024, 4, 1, 0, 4, 16, 1>(),
        "synth16" => verilog_of::<8, 7, 128, 6, 10, 1024, 4, 2, 0, 4, 16, 1>(),
        _ => return None,
    })
}
