#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, test and run frugal; does nothing when
# everything is present. Usage: scripts/bootstrap.sh [--bench]   (--bench adds PyTorch, the
# peer of the benchmarks and the generator of test fixtures; the tests themselves never need it)
set -euo pipefail

# libomp-14-dev: clang's OpenMP (omp.h, libomp), which the fuzz build needs and clang does not pull
# in; python3: the e2e tests' JSON checks (Debian's npm brings it, another npm may not)
pkgs=(cmake make gcc clang libclang-rt-14-dev libomp-14-dev libdnnl-dev nodejs npm gnuplot-nox pkg-config
      ca-certificates python3)
# libopenblas0-openmp: without it (--no-install-recommends) PyTorch's BLAS is the netlib reference
# implementation (libblas3), 3-4 GFLOP/s, and every peer matmul (LSTM, linear layers) is 50x slow;
# the peers set OPENBLAS_CORETYPE=COOPERLAKE, since OpenBLAS 0.3.21 mis-detects this CPU
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(python3-torch libopenblas0-openmp); fi

missing=()
for p in "${pkgs[@]}"; do
    # nodejs may come from another repository that bundles npm: accept any working npm
    if [[ "$p" == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
    if [[ "$p" == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done

if ((${#missing[@]} == 0)); then
    echo "bootstrap: all dependencies present"
    exit 0
fi

echo "bootstrap: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "bootstrap: done"
