#!/usr/bin/env bash
# End-to-end check of `frugal demo`'s dynamic-ViT part (issue 14) at scale 0.1: it trains vit-tiny-28
# briefly, measures its ladder of skip configurations, runs the governor on a stream under a swinging
# budget and prints a "summary (vit)" block: the lines are there with numbers in range (percentages
# in [0, 100], accuracies in [0, 1]), the table runs from fewer to more MFLOP with the full model's
# 4.951, the budget swings between 40 % and 100 %, and the plot is a PNG. Deadline hit rates depend
# on the machine's load and are not asserted. ~40 s on 2 cores (most of it the LeNet part's epoch).
# Skipped (exit 77, which ctest reports as skipped) without the data. Usage: e2e_demo_vit.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

if [[ ! -f "$data/fashion-train-images-idx3-ubyte" && ! -f "$data/fashion-images-idx3-ubyte" ]]; then
    echo "SKIP: no fashion data in $data (scripts/fetch-data.sh)"
    exit 77
fi

"$frugal" demo --epochs 1 --no-vmem --no-lstm --no-rl --scale 0.1 --threads 2 --quiet >out.txt 2>&1 ||
    fail "frugal demo exited $?"
grep -q '^summary (vit)' out.txt || fail "no 'summary (vit)' block"
grep -Eq '^  model +vit-tiny-28 trained 2 epochs on 1200 fashion images in [0-9.]+ s: test accuracy (0|1)\.[0-9]{4}$' out.txt ||
    fail "no model line"
grep -Eq '^  table +[2-7] configurations from 0\.111 to 4\.951 MFLOP, validation accuracy [01]\.[0-9]{4} to [01]\.[0-9]{4}$' out.txt ||
    fail "no table line (from the cheapest, every block skipped, to the full model)"
grep -Eq '^  budget +300 frames, jumping every 50 frames between 40% and 100% of the full model.s [0-9.]+ ms$' out.txt ||
    fail "no budget line"
for who in governor "full model"; do
    line=$(grep -E "^  $who +" out.txt) || fail "no '$who' line"
    [[ "$line" =~ ([0-9.]+)%\ of\ deadlines\ met,\ accuracy\ ([0-9.]+)$ ]] || fail "bad '$who' line: $line"
    awk -v p="${BASH_REMATCH[1]}" -v a="${BASH_REMATCH[2]}" 'BEGIN { exit !(p >= 0 && p <= 100 && a >= 0 && a <= 1) }' ||
        fail "'$who' out of range: $line"
done
grep -Eq '^  best static +(none of the [0-9]+ configurations meets 99% of deadlines|[0-9.]+% of deadlines met, accuracy [01]\.[0-9]{4} \(.*\))$' out.txt ||
    fail "no best-static line"
grep -Eq '^  cost +pick [0-9.]+ us, switch [0-9.]+ us per frame; inference [0-9.]+ us on average$' out.txt || fail "no cost line"
if command -v gnuplot >/dev/null; then
    grep -q '^  plot           demo-vit.png' out.txt || fail "the plot was not drawn"
    [[ "$(head -c 8 demo-vit.png | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] || fail "demo-vit.png is not a PNG"
else
    echo "gnuplot is not installed: the plot check is skipped"
fi
sed -n '/^summary (vit)/,$p' out.txt
echo "ok: frugal demo's vit part"
