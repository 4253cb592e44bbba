#!/usr/bin/env bash
# GA3C's run-time tuners against a sweep of fixed settings (issue 13): every (agents, predictors,
# trainers) of agents 2/4/8/16 x predictors 1/2 x trainers 1/2 trains SWEEP frames of a game and
# reports trainings per second (TPS, the quantity GA3C's tuner maximizes); then each tuner (GA3C's
# random walk, ours) trains TUNE frames from 4/1/1 with WINDOW-second windows, and the last setting
# it kept (where it settled) trains SWEEP frames fixed, like the sweep's, so that "the tuner finds a configuration
# within 10 % of the best fixed one" compares like with like. Prints the sweep, the tuners' paths
# and one table. STARTS="4:1:1 16:2:2 2:1:1" runs each tuner from every one of these starting
# settings (agents:predictors:trainers; default 4:1:1 alone).
#
#   bash bench/rl_tuner.sh [FRUGAL_BINARY] [OUT_DIR] [ENV] [SWEEP_FRAMES] [TUNE_FRAMES] [WINDOW]
#   (defaults build/frugal rl-tuner breakout 300000 1500000 4)
set -euo pipefail
F=${1:-build/frugal}
OUT=${2:-rl-tuner}
ENV=${3:-breakout}
SWEEP=${4:-300000}
TUNE=${5:-1500000}
WIN=${6:-4}
mkdir -p "$OUT"
echo "command: STARTS=\"${STARTS:-4:1:1}\" bash bench/rl_tuner.sh $F $OUT $ENV $SWEEP $TUNE $WIN   ($(date -u '+%F %H:%M') UTC, $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
common=(--env "$ENV" --lr 1e-3 --quiet)
fixed() { # agents predictors trainers frames json
    "$F" rl train "${common[@]}" --agents "$1" --predictors "$2" --trainers "$3" --frames "$4" --json "$5" >/dev/null
}
for a in 2 4 8 16; do
    for pt in 1:1 1:2 2:1 2:2; do
        p=${pt%:*} t=${pt#*:}
        fixed "$a" "$p" "$t" "$SWEEP" "$OUT/sweep-$a-$p-$t.json"
    done
done
read -r -a starts <<<"${STARTS:-4:1:1}"
for start in "${starts[@]}"; do
  IFS=: read -r sa sp st <<<"$start"
  for tuner in ga3c ours; do
    tag="$tuner-$sa-$sp-$st"
    "$F" rl train "${common[@]}" --agents "$sa" --predictors "$sp" --trainers "$st" --tune --tuner "$tuner" \
        --tune-window "$WIN" --frames "$TUNE" --json "$OUT/tune-$tag.json" >/dev/null
    read -r a p t < <(/usr/bin/python3 - "$OUT/tune-$tag.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
kept = [s for s in r["tune_log"] if s["kept"]]  # the last setting the tuner kept: where it settled
s = kept[-1] if kept else {"agents": r["final_agents"], "predictors": r["final_predictors"], "trainers": r["final_trainers"]}
print(s["agents"], s["predictors"], s["trainers"])
PY
)
    fixed "$a" "$p" "$t" "$SWEEP" "$OUT/final-$tag.json"
  done
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "${starts[@]}" <<'PY'
import json, sys, glob, os
out, starts = sys.argv[1], [tuple(map(int, s.split(":"))) for s in sys.argv[2:]]
sweep = {}
for f in glob.glob(f"{out}/sweep-*.json"):
    a, p, t = map(int, os.path.basename(f)[6:-5].split("-"))
    sweep[(a, p, t)] = json.load(open(f))["tps"]
best = max(sweep, key=sweep.get)
print("sweep, TPS (agents \\ predictors, trainers):\n")
print("| agents | (1, 1) | (1, 2) | (2, 1) | (2, 2) |\n|---:|---:|---:|---:|---:|")
for a in (2, 4, 8, 16):
    cells = []
    for p, t in ((1, 1), (1, 2), (2, 1), (2, 2)):
        v = sweep[(a, p, t)]
        cells.append(f"**{v:,.0f}**" if (a, p, t) == best else f"{v:,.0f}")
    print(f"| {a} | " + " | ".join(cells) + " |")
print(f"\nbest fixed: {best[0]}/{best[1]}/{best[2]} at {sweep[best]:,.0f} TPS\n")
print("| tuner | start | whole-run TPS | settings tried (agents/predictors/trainers, window TPS, x = reverted) | settled on (last kept) | that setting fixed, TPS | vs best fixed |")
print("|---|---|---:|---|---|---:|---:|")
worst = {}
for start, tuner in [(s, t) for s in starts for t in ("ga3c", "ours")]:
    tag = f"{tuner}-{start[0]}-{start[1]}-{start[2]}"
    r = json.load(open(f"{out}/tune-{tag}.json"))
    path = ", ".join(f"{s['agents']}/{s['predictors']}/{s['trainers']} {s['tps']/1e3:.1f}k{'' if s['kept'] else ' x'}" for s in r["tune_log"])
    kept = [s for s in r["tune_log"] if s["kept"]]
    end = (kept[-1]["agents"], kept[-1]["predictors"], kept[-1]["trainers"]) if kept else (r["final_agents"], r["final_predictors"], r["final_trainers"])
    fin = json.load(open(f"{out}/final-{tag}.json"))["tps"]
    gap = 100 * (fin / sweep[best] - 1)
    worst[tuner] = min(worst.get(tuner, gap), gap)
    print(f"| {tuner} | {start[0]}/{start[1]}/{start[2]} | {r['tps']:,.0f} | {path} | {end[0]}/{end[1]}/{end[2]} | {fin:,.0f} | {gap:+.1f} % |")
print()
for tuner, g in worst.items():
    print(f"{tuner}: worst settled setting over {len(starts)} start(s) {g:+.1f} % against the best fixed one")
PY
