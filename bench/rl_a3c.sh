#!/usr/bin/env bash
# GA3C against the plain A3C baseline (issue 13's acceptance: "frames per second and time to a
# fixed return, in docs; explain the ratio with 2 cores"). For each seed, the same `frugal rl
# train` run with --algo ga3c and with --algo a3c (same network, AGENTS agents or workers, learning
# rate LR, FRAMES frames of ENV), one after the other so that each has the machine to itself.
# Prints per run the FPS, the updates and the frames and seconds at which the mean return of the
# last 100 episodes first reached each of RETURNS (a learning-curve point every 2 s), then the
# mean over seeds per algorithm, and plots every curve against seconds and against frames in one
# PNG (gnuplot).
#
# usage: bench/rl_a3c.sh OUTDIR [SEED ...]   (default seeds 1 2 3)
#   env: FRUGAL (build/frugal) ENV (breakout) AGENTS (8) LR (1e-3) FRAMES (600000) RETURNS ("3 4 5")
set -euo pipefail
cd "$(dirname "$0")/.."
F=${FRUGAL:-build/frugal}
ENV=${ENV:-breakout}
AGENTS=${AGENTS:-8}
LR=${LR:-1e-3}
FRAMES=${FRAMES:-600000}
RETURNS=${RETURNS:-3 4 5}
out=${1:?usage: bench/rl_a3c.sh OUTDIR [SEED ...]}
shift
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2 3)
mkdir -p "$out"
echo "command: RETURNS=\"$RETURNS\" bench/rl_a3c.sh $out ${seeds[*]}  (ENV=$ENV AGENTS=$AGENTS LR=$LR FRAMES=$FRAMES)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
for s in "${seeds[@]}"; do
    for algo in ga3c a3c; do
        cmd="$F rl train --env $ENV --algo $algo --agents $AGENTS --lr $LR --frames $FRAMES --seed $s --progress 2 --quiet --json $out/$algo-s$s.json"
        echo "\$ $cmd"
        $cmd >/dev/null
    done
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" "$RETURNS" "${seeds[@]}" <<'PY'
import json, statistics as S, sys
out, rets, seeds = sys.argv[1], [float(x) for x in sys.argv[2].split()], sys.argv[3:]
def first(curve, r):
    for p in curve:
        if p["mean_return"] is not None and p["mean_return"] >= r:
            return p["frames"], p["seconds"]
    return None
print("\n| algo | seed | FPS | updates | " + " | ".join(f"return >= {r:g}" for r in rets) + " | mean return at the end |")
print("|---|---|---:|---:|" + "---|" * len(rets) + "---:|")
agg = {}
for algo in ("ga3c", "a3c"):
    for s in seeds:
        d = json.load(open(f"{out}/{algo}-s{s}.json"))
        cells = []
        for r in rets:
            h = first(d["learning_curve"], r)
            cells.append(f"{h[0]:,} frames, {h[1]:.0f} s" if h else "not reached")
            agg.setdefault((algo, r), []).append(h)
        agg.setdefault((algo, "fps"), []).append(d["fps"])
        print(f"| {algo} | {s} | {d['fps']:,.0f} | {d['updates']:,} | " + " | ".join(cells) + f" | {d['mean_return_last100']:.2f} |")
print(f"\nmean over {len(seeds)} seeds (runs that reached the return; n = how many did):\n")
print("| algo | FPS | " + " | ".join(f"return >= {r:g}: s (frames)" for r in rets) + " |")
print("|---|---:|" + "---|" * len(rets))
for algo in ("ga3c", "a3c"):
    cells = []
    for r in rets:
        hs = [h for h in agg[(algo, r)] if h]
        cells.append(f"{S.mean(h[1] for h in hs):.0f} s ({S.mean(h[0] for h in hs):,.0f}), n = {len(hs)}" if hs else "n = 0")
    print(f"| {algo} | {S.mean(agg[(algo, 'fps')]):,.0f} | " + " | ".join(cells) + " |")
PY
if command -v gnuplot >/dev/null; then
    for algo in ga3c a3c; do
        for s in "${seeds[@]}"; do
            /usr/bin/python3 -c '
import json, sys
for p in json.load(open(sys.argv[1]))["learning_curve"]:
    if p["mean_return"] is not None: print(p["seconds"], p["frames"], p["mean_return"])' "$out/$algo-s$s.json" >"$out/$algo-s$s.dat"
        done
    done
    plots_t="" plots_f=""
    for s in "${seeds[@]}"; do
        plots_t+="\"$out/ga3c-s$s.dat\" using 1:3 with lines lc 1 title \"ga3c seed $s\", \"$out/a3c-s$s.dat\" using 1:3 with lines lc 2 title \"a3c seed $s\", "
        plots_f+="\"$out/ga3c-s$s.dat\" using 2:3 with lines lc 1 notitle, \"$out/a3c-s$s.dat\" using 2:3 with lines lc 2 notitle, "
    done
    gnuplot <<GP
set terminal pngcairo size 1100,450
set output "$out/ga3c-a3c-$ENV.png"
set multiplot layout 1,2 title "GA3C against A3C on $ENV ($AGENTS agents, lr $LR, same network, 2 cores)"
set grid
set key bottom right
set ylabel "mean return, last 100 episodes"
set xlabel "seconds"
plot ${plots_t%, }
set xlabel "frames"
plot ${plots_f%, }
unset multiplot
GP
    echo "plot: $out/ga3c-a3c-$ENV.png"
fi
