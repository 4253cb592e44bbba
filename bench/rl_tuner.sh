#!/usr/bin/env bash
# GA3C's run-time tuners against a sweep of fixed settings (issue 13): every (agents, predictors,
# trainers) of agents 2/4/8/16/32 x predictors 1/2 x trainers 1/2 trains SWEEP frames of a game and
# reports trainings per second (TPS, the quantity GA3C's tuner maximizes); REPEAT=N runs the whole
# sweep N times, round-robin (so that the machine's drift touches every setting alike), and a
# setting's TPS is the mean of its runs. Then each tuner (GA3C's random walk, ours) trains TUNE
# frames from each start with WINDOW-second windows; the last setting it kept is where it settled.
# Last, the final round: the sweep's best setting and every tuner's settled one train SWEEP frames
# fixed, FINAL_REPEAT times each, round-robin. "The tuner finds a configuration within 10 % of the
# best fixed one" is judged in that round, where the best fixed setting is measured again beside
# the tuners' (the sweep's own figure for it is the largest of 20 noisy means, biased upwards);
# the table shows both. STARTS="4:1:1 16:2:2 2:1:1" (the default) lists the starting settings
# (agents:predictors:trainers).
#
#   bash bench/rl_tuner.sh [FRUGAL_BINARY] [OUT_DIR] [ENV] [SWEEP_FRAMES] [TUNE_FRAMES] [WINDOW]
#   (defaults build/frugal rl-tuner breakout 500000 3000000 4; REPEAT 2, FINAL_REPEAT 3)
set -euo pipefail
F=${1:-build/frugal}
OUT=${2:-rl-tuner}
ENV=${3:-breakout}
SWEEP=${4:-500000}
TUNE=${5:-3000000}
WIN=${6:-4}
REPEAT=${REPEAT:-2}
FINAL_REPEAT=${FINAL_REPEAT:-3}
STARTS=${STARTS:-4:1:1 16:2:2 2:1:1}
mkdir -p "$OUT"
echo "command: STARTS=\"$STARTS\" REPEAT=$REPEAT FINAL_REPEAT=$FINAL_REPEAT bash bench/rl_tuner.sh $F $OUT $ENV $SWEEP $TUNE $WIN   ($(date -u '+%F %H:%M') UTC, $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
common=(--env "$ENV" --lr 1e-3 --quiet)
fixed() { # agents predictors trainers frames json
    "$F" rl train "${common[@]}" --agents "$1" --predictors "$2" --trainers "$3" --frames "$4" --json "$5" >/dev/null
}
for ((rep = 1; rep <= REPEAT; rep++)); do
    for a in 2 4 8 16 32; do
        for pt in 1:1 1:2 2:1 2:2; do
            p=${pt%:*} t=${pt#*:}
            fixed "$a" "$p" "$t" "$SWEEP" "$OUT/sweep-$a-$p-$t-r$rep.json"
        done
    done
    echo "sweep pass $rep of $REPEAT done ($(date -u +%H:%M))" >&2
done
read -r -a starts <<<"$STARTS"
settled=()
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
    settled+=("$a-$p-$t")
    echo "tuner $tuner from $sa/$sp/$st settled on $a/$p/$t ($(date -u +%H:%M))" >&2
  done
done
best=$(/usr/bin/python3 - "$OUT" "$REPEAT" <<'PY'
import json, sys, statistics as S
out, rep = sys.argv[1], int(sys.argv[2])
m = {(a, p, t): S.mean(json.load(open(f"{out}/sweep-{a}-{p}-{t}-r{i}.json"))["tps"] for i in range(1, rep + 1))
     for a in (2, 4, 8, 16, 32) for p in (1, 2) for t in (1, 2)}
b = max(m, key=m.get)
print(f"{b[0]}-{b[1]}-{b[2]}")
PY
)
mapfile -t finals < <(printf '%s\n' "$best" "${settled[@]}" | awk '!seen[$0]++')
for ((rep = 1; rep <= FINAL_REPEAT; rep++)); do
    for s in "${finals[@]}"; do
        IFS=- read -r a p t <<<"$s"
        fixed "$a" "$p" "$t" "$SWEEP" "$OUT/final-$s-r$rep.json"
    done
    echo "final round $rep of $FINAL_REPEAT done ($(date -u +%H:%M))" >&2
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "$REPEAT" "$FINAL_REPEAT" "${starts[@]}" <<'PY'
import json, sys, glob, os, statistics as S
out, rep, frep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
starts = [tuple(map(int, s.split(":"))) for s in sys.argv[4:]]
def tps(prefix, n=rep):
    return [json.load(open(f"{prefix}-r{i}.json"))["tps"] for i in range(1, n + 1)]
sweep, runs = {}, {}
for a in (2, 4, 8, 16, 32):
    for p in (1, 2):
        for t in (1, 2):
            runs[(a, p, t)] = tps(f"{out}/sweep-{a}-{p}-{t}")
            sweep[(a, p, t)] = S.mean(runs[(a, p, t)])
best = max(sweep, key=sweep.get)
spread = [100 * (max(v) - min(v)) / S.mean(v) for v in runs.values()] if rep > 1 else []
print(f"sweep, TPS, mean of {rep} run(s) of each setting (agents \\ predictors, trainers):\n")
print("| agents | (1, 1) | (1, 2) | (2, 1) | (2, 2) |\n|---:|---:|---:|---:|---:|")
for a in (2, 4, 8, 16, 32):
    cells = []
    for p, t in ((1, 1), (1, 2), (2, 1), (2, 2)):
        v = sweep[(a, p, t)]
        cells.append(f"**{v:,.0f}**" if (a, p, t) == best else f"{v:,.0f}")
    print(f"| {a} | " + " | ".join(cells) + " |")
print(f"\nbest fixed: {best[0]}/{best[1]}/{best[2]} at {sweep[best]:,.0f} TPS")
if spread:
    print(f"run-to-run spread of one setting (max - min over mean): median {S.median(spread):.1f} %, largest {max(spread):.1f} %")
def final(s):
    return S.mean(tps(f"{out}/final-{s[0]}-{s[1]}-{s[2]}", frep))
bfin = final(best)
print(f"final round ({frep} runs of each setting, round-robin): the best fixed setting {best[0]}/{best[1]}/{best[2]} "
      f"measured {bfin:,.0f} TPS\n")
print("| tuner | start | whole-run TPS | windows (x = reverted) | settled on (last kept) | its sweep TPS | final round TPS | vs best fixed, final round | vs the sweep's best figure |")
print("|---|---|---:|---:|---|---:|---:|---:|---:|")
worst, paths = {}, []
for start, tuner in [(s, t) for s in starts for t in ("ga3c", "ours")]:
    tag = f"{tuner}-{start[0]}-{start[1]}-{start[2]}"
    r = json.load(open(f"{out}/tune-{tag}.json"))
    log = r["tune_log"]
    paths.append(f"- {tuner} from {start[0]}/{start[1]}/{start[2]}: " + ", ".join(
        f"{s['agents']}/{s['predictors']}/{s['trainers']} {s['tps']/1e3:.1f}k{'' if s['kept'] else ' x'}" for s in log))
    kept = [s for s in log if s["kept"]]
    end = (kept[-1]["agents"], kept[-1]["predictors"], kept[-1]["trainers"]) if kept else (r["final_agents"], r["final_predictors"], r["final_trainers"])
    fin = final(end)
    gap = 100 * (fin / bfin - 1)
    worst[tuner] = min(worst.get(tuner, gap), gap)
    nx = sum(1 for s in log if not s["kept"])
    sw = f"{sweep[end]:,.0f}" if end in sweep else "(not on the grid)"
    print(f"| {tuner} | {start[0]}/{start[1]}/{start[2]} | {r['tps']:,.0f} | {len(log)} ({nx} x) | {end[0]}/{end[1]}/{end[2]} | {sw} | {fin:,.0f} | {gap:+.1f} % | {100 * (fin / sweep[best] - 1):+.1f} % |")
print()
for tuner, g in worst.items():
    print(f"{tuner}: worst settled setting over {len(starts)} start(s) {g:+.1f} % against the best fixed one (final round)")
print("\nthe tuners' windows (agents/predictors/trainers, window TPS):\n")
print("\n".join(paths))
PY
