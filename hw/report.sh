#!/usr/bin/env bash
# Produces every hardware figure of docs/hardware.md, with the date, the
# commit, the tool versions and the machine load:
#   * Verilator model (release build of sim/tests/timing.rs): clocks per op
#     in steady state and on worst-case same-address bursts (II), latency,
#     simulation speed in ops/s;
#   * yosys synth_xilinx (hierarchical): LUT, flip-flop and block-RAM counts
#     of synth16, the default 16-metric layout, in total and per bank;
#   * yosys synth_ice40 of the iCE40 top (hw/src/serial_top.rs around the
#     `ice40` layout) and nextpnr-ice40 place and route on an HX8K (ct256) and
#     a UP5K (sg48): logic cells, block RAMs, I/O and maximum frequency.
#
# How synth16 is counted. RustHDL writes one Verilog module per bank
# instance (top$vd$0 .. top$vd$7, ...); instances of one bank kind differ
# only in two localparams (the bank's configuration address `base` and, in
# exact banks, its decay-table page `fac_page`; the script checks this and
# stops if anything else differs). synth_xilinx keeps the hierarchy, so the
# design's count is the sum of its modules' counts; the script points every
# instance of a kind at instance 0's module and lets yosys' `stat` multiply
# (its "design hierarchy" total counts a module once per instance). The
# whole pipeline shell (decoder, stage registers, result and dump muxes
# over all 16 banks), the H3 unit and the register block are synthesized as
# they are. Set XILINX_DEDUP=0 to synthesize every instance (about 6 times
# the CPU time).
#
# Usage:   hw/report.sh
# Options (environment):
#   XILINX_LAYOUTS="synth16"             layouts for synth_xilinx (also synth-one)
#   XILINX_DEDUP=1                       one module per bank kind (see above)
#   SYNTH_TIMEOUT=5400                   seconds per synth_xilinx run
#   SKIP_TIMING=1 / SKIP_XILINX=1 / SKIP_ICE40=1   leave a part out
# Needs:   apt-get install -y verilator g++ yosys nextpnr-ice40 fpga-icestorm
#          python3
# Output:  hw/report/ (Verilog, logs) and hw/report/summary.txt (also stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
out=hw/report
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
xilinx_layouts="${XILINX_LAYOUTS:-synth16}"
timeout_s="${SYNTH_TIMEOUT:-5400}"
dedup="${XILINX_DEDUP:-1}"

say "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- hw || echo ' (hw/ modified)')"
say "tools: $(verilator --version | head -1); $(yosys -V); $(nextpnr-ice40 --version 2>&1 | head -1); $(rustc --version)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load at start:$(uptime | sed 's/.*load average://')"

cargo run -q --release -p streamon-hw --bin gen-verilog -- "$out" ice40 $xilinx_layouts >/dev/null

if [ -z "${SKIP_TIMING:-}" ]; then
    say "Verilator model (sim layout, release build):"
    cargo test -q --release -p streamon-sim --test timing -- --nocapture --test-threads 1 2>/dev/null \
        | grep FIGURE | sed 's/^\.*FIGURE /  /' | tee -a "$summary"
    say "  load after:$(uptime | sed 's/.*load average://')"
fi

# Cell counts of the last `stat` in a yosys log or stat file: its
# design-hierarchy total (each module counted once per instance) when the
# design kept its hierarchy, else the (flat) top module's.
cells() {
    awk '/Printing statistics/{b=""} {b=b $0 "\n"} END{printf "%s", b}' "$1" \
        | awk '/=== design hierarchy ===/{b=""} {b=b $0 "\n"} END{printf "%s", b}' >"$1.cells"
    grep -E "^\s+(LUT[1-6]|FD[A-Z]*|RAMB[0-9A-Z_]*|RAM[0-9]+[A-Z0-9_]*|CARRY[0-9]|DSP48E1|MUXF[78]|SB_[A-Z0-9_]+)\s+[0-9]+$" "$1.cells" \
        | awk '{n[$1]+=$2} END {for (k in n) print k, n[k]}' | sort
}

# One line of Xilinx totals from `cells` output: LUTs (logic), LUT RAM
# primitives, flip-flops, block RAMs, DSPs.
xsum() {
    awk '/^LUT[1-6] /{l+=$2} /^RAM(32|64|128|256)/{r+=$2} /^FD/{f+=$2}
         /^RAMB36/{b36+=$2} /^RAMB18/{b18+=$2} /^DSP/{d+=$2}
         END{printf "LUTs %d, LUT-RAM primitives %d, flip-flops %d, RAMB36 %d, RAMB18 %d, DSP48E1 %d\n", l, r, f, b36, b18, d}'
}

if [ -z "${SKIP_XILINX:-}" ]; then
    for layout in $xilinx_layouts; do
        src="$out/$layout.v"
        how="every instance synthesized"
        if [ "$dedup" = 1 ]; then
            src="$out/$layout-dedup.v"
            inst=$(python3 hw/scripts/dedup_banks.py "$out/$layout.v" "$src")
            how="one module per bank kind, counted per instance: $inst"
        fi
        stats=""
        for m in top '$hasher' '$vd$0' '$exact$0' '$global$0' '$decay$0'; do
            [ "$m" = top ] && mod=top || mod="top$m"
            grep -q "^module $mod(" "$src" || continue
            stats="$stats; tee -q -o $out/xilinx-$layout.stat.${m//\$/_} stat -top $mod"
        done
        start=$(date +%s)
        rc=0
        nice -n 10 timeout "$timeout_s" yosys -q -l "$out/xilinx-$layout.log" \
            -p "read_verilog $src; synth_xilinx -top top$stats" >/dev/null 2>&1 || rc=$?
        secs=$(( $(date +%s) - start ))
        if [ "$rc" -ne 0 ]; then
            say "synth_xilinx $layout: did not finish (exit $rc after ${secs} s, limit ${timeout_s} s; log $out/xilinx-$layout.log)"
            continue
        fi
        say "synth_xilinx $layout (${secs} s, hierarchical, $how; load:$(uptime | sed 's/.*load average://')):"
        c=$(cells "$out/xilinx-$layout.stat.top")
        say "  total: $(echo "$c" | xsum)"
        echo "$c" | sed 's/^/    /' | tee -a "$summary"
        for f in "$out/xilinx-$layout.stat._"*; do
            [ -e "$f" ] || continue
            [ "${f##*.cells}" = "" ] && continue
            say "  one ${f##*.stat._} module (with its submodules): $(cells "$f" | xsum)"
        done
    done
fi

if [ -z "${SKIP_ICE40:-}" ]; then
    start=$(date +%s)
    nice -n 10 yosys -q -l "$out/ice40-synth.log" \
        -p "read_verilog $out/ice40.v; synth_ice40 -top top -json $out/ice40.json" >/dev/null 2>&1
    say "synth_ice40 ice40 top ($(( $(date +%s) - start )) s):"
    cells "$out/ice40-synth.log" | grep -E "^SB_(LUT4|CARRY|RAM40_4K|DFF[A-Z]*) " | sed 's/^/    /' | tee -a "$summary"
    for dev in "hx8k ct256" "up5k sg48"; do
        set -- $dev
        log="$out/ice40-pnr-$1.log"
        nice -n 10 nextpnr-ice40 "--$1" --package "$2" --json "$out/ice40.json" \
            --asc "$out/ice40-$1.asc" --freq 12 --timing-allow-fail -l "$log" >/dev/null 2>&1 || true
        say "nextpnr-ice40 --$1 --package $2:"
        grep -E "^Info:\s+(ICESTORM_LC|ICESTORM_RAM|SB_IO):" "$log" | tail -3 | sed 's/^Info: */    /' | tee -a "$summary"
        # No fmax when the design does not fit (grep fails: not an error).
        fmax=$(grep -E "Max frequency for clock" "$log" | tail -1 | sed 's/^Info: *//' || true)
        say "    ${fmax:-no fmax: see $log}"
    done
fi
say "load at end:$(uptime | sed 's/.*load average://')"
