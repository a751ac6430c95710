#!/usr/bin/env bash
# Runs streamon's whole test suite on a Debian machine, installing the
# system packages the tests need first (Verilator for the RTL model, a C++
# compiler, ...). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(verilator yosys g++ make pkg-config libzmq3-dev redis-server redis-tools tcpreplay iproute2 chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

cargo test --workspace "$@"
