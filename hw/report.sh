#!/usr/bin/env bash
# Reproduces the hardware figures of docs/hardware.md:
#   cycles per op, II and latency (Verilator model), Verilator speed,
#   yosys synth_xilinx resources (LUT, FF, BRAM) for a layout,
#   yosys synth_ice40 + nextpnr-ice40 fmax for the tiny iCE40 layout.
# Usage: hw/report.sh [XILINX_LAYOUT]   (default synth16; `sim` is quicker)
# Needs: apt-get install -y verilator yosys nextpnr-ice40 fpga-icestorm
# Output: hw/report/ (logs) and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-hw}"
layout="${1:-synth16}"
out=hw/report
mkdir -p "$out"
echo "date: $(date -u +%Y-%m-%d)"
echo "tools: $(verilator --version | head -1); $(yosys -V); $(nextpnr-ice40 --version 2>&1 | head -1); $(rustc --version)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

cargo run -q --release -p streamon-hw --bin gen-verilog -- "$out" sim ice40 "$layout" >/dev/null

# Cycle figures and simulation speed (release build of the test).
cargo test -q --release -p streamon-sim --test timing -- --nocapture --test-threads 1 2>/dev/null \
    | grep FIGURE | sed 's/^FIGURE /  /'

# Xilinx resources.
start=$(date +%s)
timeout 3000 yosys -q -l "$out/xilinx-$layout.log" -p "read_verilog $out/$layout.v; synth_xilinx -top top -flatten; stat" >/dev/null || echo "  yosys synth_xilinx on $layout did not finish"
secs=$(( $(date +%s) - start ))
echo "  synth_xilinx $layout (${secs} s):"
awk '/Printing statistics/{p=1} p' "$out/xilinx-$layout.log" \
    | grep -E "^\s+(LUT[1-6]|FD[A-Z]*|RAMB[0-9A-Z_]*|RAM[0-9A-Z_]*|CARRY[0-9]|DSP48E1|MUXF[78])\s" \
    | awk '{n[$1]+=$2} END {for (k in n) print "    " k, n[k]}' | sort

# iCE40: synthesis, place and route, timing.
yosys -q -l "$out/ice40-synth.log" -p "read_verilog $out/ice40.v; synth_ice40 -top top -json $out/ice40.json" >/dev/null
nextpnr-ice40 --up5k --package sg48 --json "$out/ice40.json" --asc "$out/ice40.asc" --pcf-allow-unconstrained \
    --freq 12 --timing-allow-fail -l "$out/ice40-pnr.log" >/dev/null 2>&1 || true
echo "  iCE40 UP5K (layout ice40):"
grep -E "ICESTORM_LC|ICESTORM_RAM|SB_IO" "$out/ice40-pnr.log" | tail -3 | sed 's/^Info: */    /'
grep -E "Max frequency for clock" "$out/ice40-pnr.log" | tail -1 | sed 's/^Info: */    /'
