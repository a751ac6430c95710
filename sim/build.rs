//! Builds the Verilator model of the metric pipeline.
//!
//! 1. Generates the Verilog of the `sim` layout through `streamon-hw`
//!    (RustHDL's `check_all` runs first).
//! 2. Runs `verilator --cc` on it (Debian's Verilator 5.006 works; no Rust
//!    Verilator crate is used: `marlin` needs ≥ 5.025 and `verilator` 0.1.6
//!    expects files Verilator 5 no longer writes).
//! 3. Compiles the generated C++, `verilated.cpp`, `verilated_threads.cpp`
//!    and `src/shim.cpp` (the `extern "C"` surface) with the `cc` crate.

use std::path::{Path, PathBuf};
use std::process::Command;

fn verilator() -> PathBuf {
    let exe = std::env::var_os("VERILATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "verilator".into());
    match Command::new(&exe).arg("--version").output() {
        Ok(o) if o.status.success() => exe,
        _ => panic!("verilator not found: apt-get install -y verilator (and a C++ compiler: g++)"),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VERILATOR");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let exe = verilator();
    let verilog = streamon_hw::layout::verilog_for("sim").expect("sim layout");
    let top = out.join("top.v");
    std::fs::write(&top, verilog).expect("write top.v");
    let mdir = out.join("obj");
    let _ = std::fs::remove_dir_all(&mdir);
    let status = Command::new(&exe)
        .args(["--cc", "-O3", "--x-assign", "0", "--x-initial", "0"])
        .args([
            "--default-language",
            "1364-2005",
            "-Wno-fatal",
            "-Wno-lint",
            "-Wno-style",
        ])
        .args(["--prefix", "Vtop", "--top-module", "top", "--Mdir"])
        .arg(&mdir)
        .arg(&top)
        .status()
        .expect("run verilator");
    assert!(status.success(), "verilator failed on {}", top.display());
    let root = Command::new(&exe)
        .args(["--getenv", "VERILATOR_ROOT"])
        .output()
        .expect("verilator --getenv");
    let root = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim().to_string());
    let include = root.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .debug(false)
        .warnings(false)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-faligned-new")
        .include(&mdir)
        .include(&include)
        .include(include.join("vltstd"))
        .file(include.join("verilated.cpp"))
        .file(include.join("verilated_threads.cpp"))
        .file("src/shim.cpp");
    for entry in std::fs::read_dir(&mdir).expect("read obj dir") {
        let p = entry.expect("dir entry").path();
        if p.extension().is_some_and(|e| e == "cpp") && is_model_source(&p) {
            build.file(p);
        }
    }
    build.compile("vtop");
    println!("cargo:rustc-link-lib=pthread");
}

fn is_model_source(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("Vtop"))
}
