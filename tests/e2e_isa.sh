#!/usr/bin/env bash
# The default build runs on any x86-64-v3 (AVX2) machine (issue 11): libfrugal.so, libfrugal.a and
# the frugal binary hold AVX-512 instructions only in the run-time dispatched kernels (names with
# _avx512, src/ops/conv2d_direct.c), and frugal runs a convolution on each path. Not registered in
# a -DFRUGAL_NATIVE=ON build, which is allowed AVX-512 anywhere. Usage: e2e_isa.sh PATH/TO/frugal
set -euo pipefail
# Runs below set the caps themselves: the caller's (e.g. .ci/run's AVX2 pass) must not leak in.
unset ONEDNN_MAX_CPU_ISA FRUGAL_MAX_CPU_ISA
frugal="$1"
dir=$(dirname "$frugal")
src="${FRUGAL_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bash "$src/scripts/check-isa.sh" "$frugal" "$dir/libfrugal.so" "$dir/libfrugal.a"
# both paths of the implicit conv run from the CLI (LeNet, one tiny step on each)
for isa in AVX2 AVX512; do
    out=$(FRUGAL_MAX_CPU_ISA=$isa "$frugal" --version)
    echo "$out"
    grep -q "^cpu: " <<< "$out" || { echo "FAIL: frugal --version does not print the CPU"; exit 1; }
    if [[ $isa == AVX2 ]]; then
        grep -q "kernels avx2" <<< "$out" || { echo "FAIL: FRUGAL_MAX_CPU_ISA=AVX2 did not select the AVX2 kernels"; exit 1; }
    fi
done
# oneDNN 2.6 honours ONEDNN_MAX_CPU_ISA=AVX2 (what .ci/run's second pass relies on): its verbose log
# names the ISA and every executed primitive's implementation. On an AVX-512 CPU the uncapped run
# must show avx512 kernels, or the capped run's check would prove nothing.
"$frugal" vmem report --model lenet --batch 8 --iters 1 --policies none > /dev/null  # warm, and must work
capped=$(ONEDNN_MAX_CPU_ISA=AVX2 ONEDNN_VERBOSE=1 "$frugal" vmem report --model lenet --batch 8 --iters 1 --policies none 2>&1 |
    grep '^onednn_verbose' || true)
grep -q '^onednn_verbose,info,cpu,isa:Intel AVX2$' <<< "$capped" ||
    { echo "FAIL: ONEDNN_MAX_CPU_ISA=AVX2: oneDNN does not report 'isa:Intel AVX2'"; exit 1; }
grep -q '^onednn_verbose,exec,cpu,convolution,jit:avx2' <<< "$capped" ||
    { echo "FAIL: ONEDNN_MAX_CPU_ISA=AVX2: no convolution ran on jit:avx2"; exit 1; }
if grep -q '^onednn_verbose,exec,.*avx512' <<< "$capped"; then
    echo "FAIL: ONEDNN_MAX_CPU_ISA=AVX2 but oneDNN ran AVX-512 kernels:"; grep avx512 <<< "$capped" | head -3; exit 1
fi
if grep -q '^cpu: .*(avx512)' <<< "$out"; then
    free=$(ONEDNN_VERBOSE=1 "$frugal" vmem report --model lenet --batch 8 --iters 1 --policies none 2>&1 | grep '^onednn_verbose' || true)
    grep -q '^onednn_verbose,exec,cpu,convolution,jit:avx512' <<< "$free" ||
        { echo "FAIL: this CPU has AVX-512 but uncapped oneDNN ran none: the capped check proves nothing"; exit 1; }
fi
echo "oneDNN: ONEDNN_MAX_CPU_ISA=AVX2 honoured ($(grep -c '^onednn_verbose,exec' <<< "$capped") primitives ran, none on AVX-512)"
echo "ok: isa"
