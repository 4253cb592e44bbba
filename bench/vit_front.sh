#!/usr/bin/env bash
# The issue-14 resilience line from `frugal vit profile --test` JSON files: for each profile, its
# Pareto front (chosen on validation data) with the FLOPs saved against all-on and the TEST-split
# points lost, the entries that meet "at least 25% fewer FLOPs, at most 1.5 points lost", and a
# gnuplot chart of test points lost against FLOPs saved (one line per profile, the target region
# shaded). Usage: bench/vit_front.sh OUT.png LABEL=PROFILE.json [LABEL=PROFILE.json ...]
# (profiles written with `frugal vit profile ... --test --json PROFILE.json`).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 OUT.png LABEL=PROFILE.json [...]" >&2; exit 2; }
out="$1"; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "command: $0 $out $*"
plots=()
i=0
for arg in "$@"; do
    label="${arg%%=*}"; file="${arg#*=}"
    [[ -f "$file" ]] || { echo "$0: no profile '$file' (label '$label')" >&2; exit 2; }
    python3 - "$file" "$label" "$tmp/$i.dat" <<'PY'
import json, sys
path, label, dat = sys.argv[1:4]
d = json.load(open(path))
c = d["configurations"]
base = c[0]
if base["skip"] != "all-on" or "test_metric" not in base:
    sys.exit(f"{path}: the first configuration must be all-on with a test_metric (run vit profile with --test)")
print(f"\n{label}: {d['model']} on {d['data']}, {d['val_items']} validation / {d.get('test_items', '?')} test items, "
      f"{len(c)} configurations, ToMe knobs {'on' if d.get('tome') else 'off'}")
print(f"all-on: {base['flops'] / 1e6:.3f} MFLOP/item, validation {base['metric']:.4f}, test {base['test_metric']:.4f}")
print(f"{'MFLOP':>8} {'saved':>7} {'val':>7} {'test':>7} {'lost':>6}  {'meets':5}  skipped")
rows = sorted((e for e in d["pareto"] if "test_metric" in e), key=lambda e: -e["flops"])
with open(dat, "w") as f:
    f.write("0 0\n")
    for e in rows:
        saved = 100 * (1 - e["flops"] / base["flops"])
        lost = 100 * (base["test_metric"] - e["test_metric"])
        ok = saved >= 25 and lost <= 1.5
        print(f"{e['flops'] / 1e6:8.3f} {saved:6.1f}% {e['metric']:7.4f} {e['test_metric']:7.4f} {lost:+6.2f}  "
              f"{'YES' if ok else '':5}  {e['skip']}")
        f.write(f"{saved:.4f} {lost:.4f}\n")
PY
    plots+=("'$tmp/$i.dat' using 1:2 with linespoints lw 2 title '$label'")
    i=$((i + 1))
done
if command -v gnuplot >/dev/null; then
    {
        echo "set terminal pngcairo size 900,540"
        echo "set output '$out'"
        echo "set title 'Without retraining: test-split accuracy lost against FLOPs saved (Pareto fronts chosen on validation)'"
        echo "set xlabel 'FLOPs saved against the full model (%)'"
        echo "set ylabel 'test accuracy lost (points)'"
        echo "set grid"
        echo "set key top left"
        echo "set object 1 rect from 25,-5 to 100,1.5 fc rgb '#d0f0d0' fs solid 0.5 noborder behind"
        echo "set label 1 'target: >= 25% fewer FLOPs, <= 1.5 points lost' at 26,1.0"
        echo "set xrange [0:60]"
        echo "set yrange [-1:12]"
        (IFS=,; echo "plot ${plots[*]}")
    } | gnuplot
    echo "plot: $out"
else
    echo "gnuplot not found: no plot"
fi
