#!/usr/bin/env bash
# The environment acceptance measurements (issue 13): for every MinAtar game, `frugal rl
# bench-env` with a random policy (uniform over the 6 actions, sticky actions 0.1, ramping on,
# every step writing the next observation) and, when --minatar-src DIR points at a MinAtar
# checkout and /usr/bin/python3 imports numpy, the Python original in the same command with the
# same policy and episode count (bench/peer_minatar.py). Prints one table: steps per second per
# core of both (steps over CPU seconds of the stepping thread / the Python process) and the
# ratio; return mean/sd and length mean of both; whether the means agree within sampling error.
#
# Agreement: z = (mean_ours - mean_orig) / sqrt(sd_ours^2/n + sd_orig^2/n) (Welch's statistic;
# with n = 1000 episodes a side the normal approximation holds); "yes" when |z| < 3 for both the
# return and the length. With 10 comparisons (5 games x 2) a correct port fails one by chance
# with probability about 2.7%. Two constant samples (Freeway's lengths) agree when equal.
#
# The statistics come from one run of each with the same episode count. Steps per second come
# from separate speed runs (the statistics run of a short game is a millisecond of ours): about
# 2 million steps of ours and 500 thousand of the original's, alternating, three rounds, the best
# round of each kept, so that a moment of load from other jobs on the shared cores does not
# decide the ratio.
#
# usage: bench/rl_env.sh [--episodes N] [--seed S] [--rounds R] [--minatar-src DIR] [--frugal PATH]
#   (defaults 1000, 1, 3, none, build/frugal); ~3 min with the peer on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
F=build/frugal
N=1000
SEED=1
ROUNDS=3
SRC=
while [[ $# -gt 0 ]]; do
    case $1 in
    --episodes) N=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --minatar-src) SRC=$2; shift 2 ;;
    --frugal) F=$2; shift 2 ;;
    *) echo "usage: bench/rl_env.sh [--episodes N] [--seed S] [--rounds R] [--minatar-src DIR] [--frugal PATH]" >&2; exit 2 ;;
    esac
done
PEER=0
if [[ -n $SRC ]]; then
    if [[ ! -f $SRC/minatar/environment.py ]]; then
        echo "rl_env.sh: $SRC is not a MinAtar checkout (no minatar/environment.py)" >&2
        exit 2
    fi
    if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then PEER=1; else echo "rl_env.sh: numpy is not importable by /usr/bin/python3: no peer" >&2; fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "command: bench/rl_env.sh --episodes $N --seed $SEED --rounds $ROUNDS${SRC:+ --minatar-src $SRC}"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for g in breakout space_invaders freeway asterix seaquest; do
    "$F" rl bench-env --env "$g" --episodes "$N" --seed "$SEED" --quiet --json "$tmp/$g.ours.json" >/dev/null
    eps() { python3 -c "import json,math; d=json.load(open('$tmp/$g.ours.json')); print(math.ceil($1/d['length_mean']))"; }
    ours_eps=$(eps 2e6)
    peer_eps=$(eps 5e5)
    if [[ $PEER == 1 ]]; then
        /usr/bin/python3 bench/peer_minatar.py --minatar-src "$SRC" --env "$g" --episodes "$N" --seed "$SEED" >"$tmp/$g.peer.json"
    fi
    for r in $(seq 1 "$ROUNDS"); do
        "$F" rl bench-env --env "$g" --episodes "$ours_eps" --seed "$((SEED + r))" --quiet --json "$tmp/$g.speed.$r.json" >/dev/null
        if [[ $PEER == 1 ]]; then
            /usr/bin/python3 bench/peer_minatar.py --minatar-src "$SRC" --env "$g" --episodes "$peer_eps" \
                --seed "$((SEED + r))" >"$tmp/$g.peerspeed.$r.json"
        fi
    done
done
python3 - "$tmp" "$PEER" "$ROUNDS" <<'PY'
import json, math, os, sys
tmp, peer, rounds = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
def best(name):
    return max(json.load(open(os.path.join(tmp, "%s.%d.json" % (name, r))))["steps_per_second"] for r in range(1, rounds + 1))
games = ["breakout", "space_invaders", "freeway", "asterix", "seaquest"]
def z(m1, s1, n1, m2, s2, n2):
    se = math.sqrt(s1 * s1 / n1 + s2 * s2 / n2)
    return 0.0 if se == 0 and m1 == m2 else (math.inf if se == 0 else (m1 - m2) / se)
rows = []
if peer:
    print("| game | steps/s ours | steps/s MinAtar | ratio | return ours (mean ± sd) | return MinAtar | z | length ours (mean ± sd) | length MinAtar | z | agree |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
else:
    print("| game | steps/s ours | return ours (mean ± sd) | length ours (mean ± sd) |")
    print("|---|---:|---:|---:|")
worst = math.inf
all_agree = True
for g in games:
    o = json.load(open(os.path.join(tmp, g + ".ours.json")))
    sp = best(g + ".speed")
    if not peer:
        print("| %s | %.3g | %.3f ± %.3f | %.1f ± %.1f |" % (g, sp, o["return_mean"], o["return_sd"], o["length_mean"], o["length_sd"]))
        continue
    p = json.load(open(os.path.join(tmp, g + ".peer.json")))
    pp = best(g + ".peerspeed")
    ratio = sp / pp
    worst = min(worst, ratio)
    zr = z(o["return_mean"], o["return_sd"], o["episodes"], p["return_mean"], p["return_sd"], p["episodes"])
    zl = z(o["length_mean"], o["length_sd"], o["episodes"], p["length_mean"], p["length_sd"], p["episodes"])
    agree = abs(zr) < 3 and abs(zl) < 3
    all_agree = all_agree and agree
    print("| %s | %.3g | %.3g | %.0fx | %.3f ± %.3f | %.3f ± %.3f | %+.2f | %.1f ± %.1f | %.1f ± %.1f | %+.2f | %s |" % (
        g, sp, pp, ratio, o["return_mean"], o["return_sd"], p["return_mean"], p["return_sd"], zr,
        o["length_mean"], o["length_sd"], p["length_mean"], p["length_sd"], zl, "yes" if agree else "NO"))
if peer:
    print()
    print("smallest ratio %.0fx (target 100x per core); statistics %s" % (worst, "agree for every game (|z| < 3)" if all_agree else "DISAGREE somewhere (|z| >= 3)"))
PY
