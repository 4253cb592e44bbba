#!/usr/bin/env bash
# End-to-end check of `frugal demo`'s rl part (issue 13): GA3C on Breakout through the library for
# a few seconds (--scale 0.1: about 6 s of training after one LeNet epoch), the "summary (rl)"
# block with frames, seconds, FPS, PPS, TPS (positive; every frame is predicted once, so PPS is
# FPS within the states still in flight) and the return at the start and at the end, no progress
# lines under --quiet, and the learning-curve PNG when gnuplot is installed ("not drawn" with the
# reason when it is not). The data of the LeNet part must have been fetched
# (scripts/fetch-data.sh). Usage: e2e_demo_rl.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

"$frugal" demo --epochs 1 --no-vmem --no-lstm --no-vit --scale 0.1 --threads 2 --quiet >out.txt 2>&1 ||
    fail "frugal demo exited $?"

grep -q '^summary (rl)' out.txt || fail "no rl summary"
grep -Eq '^ +[0-9.]+ s +[0-9]+ frames +FPS' out.txt && fail "--quiet printed progress lines"
num() { # the first number after the label at the start of a summary line
    grep -E "^  $1 " out.txt | head -1 | sed -E "s/^  $1 +([-0-9.]+).*/\1/"
}
frames=$(num frames) secs=$(grep -E '^  frames ' out.txt | sed -E 's/.* in ([0-9.]+) s.*/\1/')
fps=$(num FPS) pps=$(num PPS) tps=$(num TPS) r0=$(num 'return start') r1=$(num 'return end')
for v in frames secs fps pps tps r0 r1; do
    [[ "${!v}" =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || fail "summary value $v is not a number: '${!v}'"
done
awk -v f="$frames" -v s="$secs" -v a="$fps" -v p="$pps" -v t="$tps" 'BEGIN {
    exit !(f > 1000 && s > 0 && s < 60 && a > 0 && p > 0 && t > 0 && p >= 0.9 * a && p <= 1.1 * a + 100) }' ||
    fail "frames $frames, seconds $secs, FPS $fps, PPS $pps, TPS $tps out of range"
# Breakout's returns are 0 or more, and a random policy scores below 2
awk -v a="$r0" -v b="$r1" 'BEGIN { exit !(a >= 0 && a < 2 && b >= 0) }' || fail "returns start $r0 end $r1"
if command -v gnuplot >/dev/null; then
    grep -q '^  plot           demo-rl.png' out.txt || fail "the learning curve was not drawn"
    [[ "$(head -c 8 demo-rl.png | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] || fail "demo-rl.png is not a PNG"
else
    grep -q '^  plot           not drawn: ' out.txt || fail "gnuplot is missing and the summary does not say so"
    echo "gnuplot is not installed: the PNG check is skipped"
fi
grep -A8 '^summary (rl)' out.txt

# --no-plot draws nothing
rm -f demo-rl.png
"$frugal" demo --epochs 1 --no-vmem --no-lstm --no-vit --scale 0.02 --threads 2 --quiet --no-plot >out.txt 2>&1 ||
    fail "frugal demo --no-plot exited $?"
grep -q '^summary (rl)' out.txt || fail "no rl summary with --no-plot"
grep -q '^  plot ' out.txt && fail "--no-plot printed a plot line"
[[ ! -e demo-rl.png ]] || fail "--no-plot drew demo-rl.png"
echo "ok: frugal demo's rl part"
