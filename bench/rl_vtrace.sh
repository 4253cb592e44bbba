#!/usr/bin/env bash
# V-trace at large policy lag (issue 13's acceptance: "with V-trace on, a run with deliberately
# large policy lag (many agents, min training batch 0) is more stable than without (both
# curves)"). For each seed, the same run of `frugal rl train` without V-trace, with --vtrace (the
# recursion ends with the behaviour's V(x_n), the default) and with --vtrace --vtrace-boot current
# (IMPALA's: V(x_n) from the trainer's own forward): AGENTS
# agents, --min-train-batch 0 (every segment is an update of at most t_max rows, so an action is
# trained tens of updates after it was sampled), learning rate LR, FRAMES frames on ENV. Prints
# the commands, a table per run (bench/rl_curves.py: FPS, mean policy lag, return at the end,
# best point, mean of the second half, V-trace's mean truncated weight) and plots every curve in
# one PNG (one colour per variant).
#
# usage: bench/rl_vtrace.sh OUTDIR [SEED ...]   (default seeds 1 2 3)
#   env: FRUGAL (build/frugal) ENV (cartpole) AGENTS (32) LR (1e-3) FRAMES (400000) EXTRA ("")
#   about 30 s per run on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
F=${FRUGAL:-build/frugal}
ENV=${ENV:-cartpole}
AGENTS=${AGENTS:-32}
LR=${LR:-1e-3}
FRAMES=${FRAMES:-400000}
EXTRA=${EXTRA:-}
out=${1:?usage: bench/rl_vtrace.sh OUTDIR [SEED ...]}
shift
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2 3)
mkdir -p "$out"
args=()
for s in "${seeds[@]}"; do
    for mode in off on current; do
        case $mode in
        off) vt= label=without ;;
        on) vt=--vtrace label=V-trace ;;
        current) vt="--vtrace --vtrace-boot current" label="V-trace, IMPALA's bootstrap" ;;
        esac
        cmd="$F rl train --env $ENV --agents $AGENTS --min-train-batch 0 --lr $LR --frames $FRAMES --seed $s --progress 0.5 --quiet $EXTRA $vt --json $out/$mode-s$s.json"
        echo "\$ $cmd"
        $cmd
        args+=("$label=$out/$mode-s$s.json")
    done
done
echo
echo "command: bench/rl_vtrace.sh $out ${seeds[*]}  (ENV=$ENV AGENTS=$AGENTS LR=$LR FRAMES=$FRAMES EXTRA='$EXTRA')"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), load: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
python3 bench/rl_curves.py --png "$out/vtrace-$ENV.png" \
    --title "GA3C on $ENV, $AGENTS agents, min training batch 0, lr $LR: V-trace and without" "${args[@]}"
