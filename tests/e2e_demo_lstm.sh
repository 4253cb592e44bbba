#!/usr/bin/env bash
# End-to-end check of `frugal demo`'s sparse LSTM part on the real Brown corpus, shortened
# (--scale 0.1: 6 chunks per run): the dense and structured rows, the structured backward issuing
# a fifth of the dense backward GEMM FLOPs, the speedup and perplexity lines, and the plot. The
# LeNet part runs one epoch first; vmem, GA3C and ViT are skipped. The data must have been fetched
# (scripts/fetch-data.sh mnist fashion brown). Usage: e2e_demo_lstm.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

"$frugal" demo --epochs 1 --no-vmem --no-rl --no-vit --scale 0.1 --threads 2 --quiet >out.txt 2>&1 ||
    fail "frugal demo exited $?"
grep -q '^summary (lstm)' out.txt || fail "no lstm summary"
dense=$(grep -E '^  dense +[0-9.]+ +[0-9.]+ +[0-9.]+% +[0-9.]+ +[0-9.]+$' out.txt) || fail "no dense row"
sparse=$(grep -E '^  structured +[0-9.]+ +[0-9.]+ +[0-9.]+% +[0-9.]+ +[0-9.]+$' out.txt) || fail "no structured row"
# FLOPs: dense 100 %, structured drop 0.8 of 41 blocks of 16 units (650 units: 40 of 16 and one of 10)
awk '{ exit !($4 == "100.0%") }' <<<"$dense" || fail "dense backward FLOPs are not 100 %: $dense"
awk '{ f = $4; sub(/%/, "", f); exit !(f > 15 && f < 25) }' <<<"$sparse" || fail "structured FLOPs not near 20 %: $sparse"
# perplexities finite and below the vocabulary size
for row in "$dense" "$sparse"; do
    awk '{ exit !($5 > 1 && $5 < 10002 && $6 > 1 && $6 < 10002) }' <<<"$row" || fail "perplexity out of range: $row"
done
grep -Eq '^  LSTM backward  [0-9.]+x faster structured' out.txt || fail "no backward speedup line"
grep -Eq '^  perplexity     valid [0-9.]+ structured against [0-9.]+ dense' out.txt || fail "no perplexity line"
if command -v gnuplot >/dev/null; then
    grep -q '^  plot           demo-lstm.png' out.txt || fail "the plot was not drawn"
    [[ "$(head -c 8 demo-lstm.png | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] || fail "demo-lstm.png is not a PNG"
fi
sed -n '/^summary (lstm)/,$p' out.txt
echo "ok: frugal demo's sparse LSTM part"
