#!/usr/bin/env bash
# Issue 12's speed lines in one run: `frugal lstm bench` (2 layers, T 35, drop D, blocks of 16) at
# H 650 and 1500, B 20 and 64, every backward variant and PyTorch's nn.LSTM (when /usr/bin/python3
# has torch), then one table: the structured backward's speedup over dense and over meProp at the
# same kept fraction, and frugal's dense forward+backward against PyTorch's and against the floor
# its GEMMs set (bench/sgemm_peak: every GEMM of the step timed alone, summed; when it was built).
#
#   bash bench/lstm_acceptance.sh [FRUGAL_BINARY] [OUT_DIR] [DROP] [ITERS]   (defaults build/frugal lstm-bench 0.8 5)
set -euo pipefail
F=${1:-build/frugal}
OUT=${2:-lstm-bench}
D=${3:-0.8}
N=${4:-5}
mkdir -p "$OUT"
export FRUGAL_SOURCE_DIR=${FRUGAL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
echo "command: bash bench/lstm_acceptance.sh $F $OUT $D $N   ($(date -u '+%F %H:%M') UTC, $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
sizes=(650:20 650:64 1500:20 1500:64)
for hb in "${sizes[@]}"; do
    H=${hb%:*} B=${hb#*:}
    it=$N; [[ $H -ge 1500 ]] && it=$(( (N + 1) / 2 ))
    echo "== $F lstm bench --hidden $H --batch $B --steps 35 --layers 2 --drop $D --variants dense,structured,meprop,step --iters $it --warmup 1 --json $OUT/h${H}b${B}.json"
    "$F" lstm bench --hidden "$H" --batch "$B" --steps 35 --layers 2 --drop "$D" --variants dense,structured,meprop,step \
        --iters "$it" --warmup 1 --json "$OUT/h${H}b${B}.json"
    peak=$(dirname "$F")/bench/sgemm_peak
    if [[ -x $peak ]]; then
        echo "== $peak --hidden $H --batch $B --steps 35 --layers 2"
        "$peak" --hidden "$H" --batch "$B" --steps 35 --layers 2 | tee "$OUT/h${H}b${B}.floor.txt"
    fi
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "${sizes[@]}" <<'PY'
import json, os, re, sys
out, sizes = sys.argv[1], sys.argv[2:]
print("| H | B | kept | dense fwd+bwd ms | its GEMMs alone ms | structured bwd vs dense | structured bwd vs meprop | PyTorch fwd+bwd ms | frugal dense vs PyTorch |")
print("|---|---|---|---|---|---|---|---|---|")
for hb in sizes:
    h, b = hb.split(":")
    r = json.load(open(f"{out}/h{h}b{b}.json"))
    v = {x["name"]: x for x in r["variants"]}
    d = v["dense"]
    peer = r.get("peer")
    pm = f"{peer['forward_ms'] + peer['backward_ms']:.1f}" if peer else "-"
    ps = f"{r['dense_vs_peer_speedup']:.2f}x" if peer else "-"
    floor, fp = "-", f"{out}/h{h}b{b}.floor.txt"
    if os.path.exists(fp):
        m = re.search(r"= ([0-9.]+) ms \(", open(fp).read())
        floor = m.group(1) if m else "-"
    print(f"| {h} | {b} | {100*r['kept_fraction']:.1f} % | {d['forward_ms'] + d['backward_ms']:.1f} | {floor} | "
          f"{r['structured_backward_speedup']:.2f}x | {r['meprop_backward_speedup']:.2f}x | {pm} | {ps} |")
PY
