//! Writes the Verilog of the pipeline layouts to `hw/generated/<layout>.v`
//! (or to the directory given as the first argument), after RustHDL's
//! `check_all`. The top module is `top`.
//!
//! `cargo run -p streamon-hw --bin gen-verilog [DIR] [LAYOUT...]`
//! with layouts `sim` (default), `synth16`, `synth-one` (one bank of each
//! kind at synth16's sizes), `ice40` (the byte-serial top of
//! `serial_top`) and `ice40-pipeline` (its pipeline without the wrapper).

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("generated"));
    let mut layouts: Vec<String> = args.collect();
    if layouts.is_empty() {
        layouts.push("sim".into());
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gen-verilog: cannot create {}: {e}", dir.display());
        return std::process::ExitCode::from(2);
    }
    for name in &layouts {
        let Some(v) = streamon_hw::layout::verilog_for(name) else {
            eprintln!("gen-verilog: unknown layout {name} (sim, synth16, synth-one, ice40, ice40-pipeline)");
            return std::process::ExitCode::from(2);
        };
        let path = dir.join(format!("{name}.v"));
        if let Err(e) = std::fs::write(&path, v) {
            eprintln!("gen-verilog: cannot write {}: {e}", path.display());
            return std::process::ExitCode::from(2);
        }
        println!("{}", path.display());
    }
    std::process::ExitCode::SUCCESS
}
