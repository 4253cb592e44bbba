#!/usr/bin/env bash
# Sparse LSTM language model, one epoch of N chunks on the Brown corpus: frugal dense, frugal with
# the sparsified LSTM backward at drop 0.5 and 0.8 (blocks of 16 units), and PyTorch 1.13 dense
# (bench/peer_lm.py: the same model, data, batching and optimizer), measured in the same run.
# Prints a table: ms per chunk (frugal's includes its first chunks, the peer's skips 5 warm-up
# chunks), words/s, the LSTM backwards' ms per chunk and their share of the dense backward GEMM
# FLOPs (frugal), training perplexity over the chunks and validation perplexity on 50 chunks.
#
#   bash bench/lm_sparse.sh [FRUGAL_BINARY] [HIDDEN] [CHUNKS]    (default build/frugal 650 200)
#
# Needs the Brown corpus (bash scripts/fetch-data.sh brown) and, for the peer, PyTorch
# (scripts/bootstrap.sh --bench); the peer's row is left out when torch is missing.
set -euo pipefail
F=${1:-build/frugal}
H=${2:-650}
N=${3:-200}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--hidden "$H" --layers 2 --steps 35 --batch 20 --epochs 1 --max-batches "$N" --eval-batches 50 --threads 2
        --quiet)
echo "command: bash bench/lm_sparse.sh $F $H $N   ($(date -u +%F), $(nproc) cores)"
echo "frugal lm train ${common[*]} [--sparse D --block 16]"

rows=()
frugal_row() { # name json
    /usr/bin/python3 - "$1" "$2" "$N" <<'EOF'
import json, sys
name, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = json.load(open(path))
e = r["epochs"][0]
words = n * r["steps"] * r["batch"]
print(f"| {name} | {1e3 * e['seconds'] / n:.1f} | {words / e['seconds']:.0f} | "
      f"{1e3 * e['lstm_backward_seconds'] / n:.1f} | {100 * e['lstm_backward_flops_kept']:.1f} % | "
      f"{e['train_ppl']:.1f} | {e['valid_ppl']:.1f} |")
EOF
}
"$F" lm train "${common[@]}" --json "$tmp/dense.json" >/dev/null
rows+=("$(frugal_row "frugal dense" "$tmp/dense.json")")
for d in 0.5 0.8; do
    "$F" lm train "${common[@]}" --sparse "$d" --block 16 --json "$tmp/s$d.json" >/dev/null
    rows+=("$(frugal_row "frugal sparse drop $d" "$tmp/s$d.json")")
done
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    line=$(OPENBLAS_CORETYPE=COOPERLAKE OMP_NUM_THREADS=2 /usr/bin/python3 "$here/peer_lm.py" --hidden "$H" --layers 2 \
        --steps 35 --batch 20 --max-batches "$N" --eval-batches 50 --threads 2 | grep '^peer ')
    rows+=("$(echo "$line" | sed -E 's/peer words_per_s=([0-9.]+) ms_per_batch=([0-9.]+) train_ppl=([0-9.]+) valid_ppl=([0-9.]+)/| PyTorch 1.13 dense | \2 | \1 | - | - | \3 | \4 |/')")
else
    rows+=("| PyTorch 1.13 dense | (torch missing) | | | | | |")
fi
echo
echo "| run (H $H, 2 layers, T 35, B 20, $N chunks) | ms/chunk | words/s | LSTM backward ms/chunk | backward GEMM FLOPs | train ppl | valid ppl |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
