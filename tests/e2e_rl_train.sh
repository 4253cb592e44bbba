#!/usr/bin/env bash
# End-to-end check of `frugal rl train` and `frugal rl play` (the GA3C runtime): a short CartPole
# run of each algorithm (ga3c, ga3c --vtrace, ga3c --tune, a3c) writes a JSON with the issue's
# fields (frames as asked or a little over, seconds, cpu_seconds, fps, pps, tps, mean_return_last100, the batch
# and lag histograms, the learning curve), the weights as safetensors, and the learning curve as a
# PNG when gnuplot is installed; --resume continues from such a file (weights and RMSProp state);
# play loads the weights and finishes its episode; bad options (unknown --algo, missing --env,
# --tune with a3c, weights of another game, --lockstep with --tune, a negative --grad-clip, a
# --delay past a minute) fail with a message naming the option and a non-zero exit; two
# --lockstep runs with one seed write the same weights, another seed others. A few seconds.
# Usage: e2e_rl_train.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

check_json() { # file frames algo
    python3 - "$1" "$2" "$3" <<'PY' || fail "json $1"
import json, os, sys
d = json.load(open(sys.argv[1]))
frames, algo = int(sys.argv[2]), sys.argv[3]
for k in ("frames", "seconds", "cpu_seconds", "fps", "pps", "tps", "mean_return_last100", "prediction_batch_hist",
          "training_batch_hist", "policy_lag_hist", "learning_curve"):
    assert k in d, "missing " + k
assert d["algo"] == algo, d["algo"]
assert frames <= d["frames"] <= frames + 64, d["frames"]
assert d["seconds"] > 0 and d["fps"] > 0 and d["pps"] > 0 and d["tps"] > 0
# the process's CPU over the run: some, and no more than every core busy all the time (+ slack)
assert 0 < d["cpu_seconds"] <= d["seconds"] * len(os.sched_getaffinity(0)) * 1.1 + 0.5, d["cpu_seconds"]
assert d["mean_return_last100"] >= 8, d["mean_return_last100"]  # CartPole's shortest episode
assert len(d["learning_curve"]) >= 1 and d["learning_curve"][-1]["frames"] == d["frames"]
assert sum(c for _, c in d["training_batch_hist"]) == d["updates"]
PY
}

for args in "--algo ga3c" "--algo ga3c --vtrace" "--algo ga3c --tune --tune-window 0.2" "--algo a3c --envs 4"; do
    algo=$(echo "$args" | awk '{print $2}')
    "$frugal" rl train --env cartpole $args --agents 2 --frames 20000 --lr 1e-3 --json run.json --save w.safetensors \
        --progress 0.5 >out.txt 2>&1 || fail "rl train $args exited $?"
    grep -q "FPS" out.txt || fail "rl train $args printed no FPS"
    check_json run.json 20000 "$algo"
    [[ -s w.safetensors ]] || fail "rl train $args wrote no weights"
done
# the optimizer's settings reach the run and its JSON
"$frugal" rl train --env cartpole --frames 5000 --quiet --rms-decay 0.999 --rms-eps 1e-4 --json rms.json >out.txt 2>&1 ||
    fail "rl train --rms-decay --rms-eps exited $?"
python3 -c "import json; d = json.load(open('rms.json')); assert abs(d['rmsprop_decay'] - 0.999) < 1e-6 and abs(d['rmsprop_eps'] - 1e-4) < 1e-9, d" ||
    fail "rms.json does not record the optimizer's settings"
# the annealed learning rate reaches the JSON; without --lr-final it equals --lr
"$frugal" rl train --env cartpole --frames 5000 --quiet --lr 2e-3 --lr-final 0 --json anneal.json >out.txt 2>&1 ||
    fail "rl train --lr-final exited $?"
python3 -c "import json; d = json.load(open('anneal.json')); assert abs(d['lr'] - 2e-3) < 1e-9 and d['lr_final'] == 0, d" ||
    fail "anneal.json does not record lr_final"
python3 -c "import json; d = json.load(open('rms.json')); assert d['lr_final'] == d['lr'], d" ||
    fail "rms.json: lr_final is not lr without --lr-final"
"$frugal" rl train --help >help.txt 2>&1 || true
grep -q -- "--lr-final" help.txt || fail "rl train --help does not list --lr-final"
grep -q -- "--lockstep" help.txt || fail "rl train --help does not list --lockstep"
# lambda-returns: recorded in the JSON (1 without --lambda), with the discount and the entropy bonus
"$frugal" rl train --env cartpole --frames 5000 --quiet --lambda 0.8 --discount 0.995 --beta 0.02 --json lam.json >out.txt 2>&1 ||
    fail "rl train --lambda exited $?"
python3 -c "import json; d = json.load(open('lam.json')); assert abs(d['gae_lambda'] - 0.8) < 1e-6 and abs(d['discount'] - 0.995) < 1e-6 and abs(d['beta'] - 0.02) < 1e-6, d" ||
    fail "lam.json does not record gae_lambda, discount and beta"
python3 -c "import json; d = json.load(open('rms.json')); assert d['gae_lambda'] == 1, d" ||
    fail "rms.json: gae_lambda is not 1 without --lambda"
if command -v gnuplot >/dev/null; then
    "$frugal" rl train --env cartpole --frames 5000 --quiet --plot curve.png >out.txt 2>&1 || fail "rl train --plot"
    [[ -s curve.png ]] || fail "no curve.png"
fi

# lockstep: the same seed, the same weights, byte for byte; the JSON says lockstep
for k in 1 2; do
    "$frugal" rl train --env cartpole --lockstep --vtrace --agents 8 --min-train-batch 0 --frames 20000 --lr 1e-3 \
        --quiet --json ls$k.json --save ls$k.safetensors >out.txt 2>&1 || fail "rl train --lockstep exited $?"
done
"$frugal" rl train --env cartpole --lockstep --vtrace --agents 8 --min-train-batch 0 --frames 20000 --lr 1e-3 --seed 2 \
    --quiet --save ls3.safetensors >out.txt 2>&1 || fail "rl train --lockstep --seed 2 exited $?"
cmp -s ls1.safetensors ls2.safetensors || fail "two --lockstep runs with seed 1 wrote different weights"
cmp -s ls1.safetensors ls3.safetensors && fail "--lockstep runs with seeds 1 and 2 wrote the same weights"
check_json ls1.json 20000 ga3c
python3 -c "import json; d = json.load(open('ls1.json')); assert d['lockstep'] == 1 and d['frames'] == 20000, d" ||
    fail "ls1.json does not record lockstep or the exact frame budget"
python3 -c "import json; d = json.load(open('rms.json')); assert d['lockstep'] == 0, d" || fail "rms.json: lockstep is not 0"

"$frugal" rl train --env cartpole --frames 5000 --quiet --resume w.safetensors --save w2.safetensors >out.txt 2>&1 ||
    fail "rl train --resume exited $?"
[[ -s w2.safetensors ]] || fail "rl train --resume wrote no weights"
"$frugal" rl play --env cartpole --load w.safetensors --no-render >out.txt 2>&1 || fail "rl play exited $?"
grep -q "episode 1: return" out.txt || fail "rl play printed no episode"

expect_usage() { # description, then the command
    local what=$1
    shift
    set +e
    "$@" >out.txt 2>&1
    local rc=$?
    set -e
    [[ $rc -ne 0 ]] || fail "$what exited 0"
    grep -q "frugal" out.txt || fail "$what printed no message"
}
expect_usage "unknown --algo" "$frugal" rl train --env cartpole --algo dqn --frames 10
expect_usage "missing --env" "$frugal" rl train --frames 10
expect_usage "--tune with a3c" "$frugal" rl train --env cartpole --algo a3c --tune --frames 10
expect_usage "a negative --lr-final" "$frugal" rl train --env cartpole --lr-final -1 --frames 10
expect_usage "--lambda with a3c" "$frugal" rl train --env cartpole --algo a3c --lambda 0.8 --frames 10
expect_usage "--lambda with --vtrace" "$frugal" rl train --env cartpole --vtrace --lambda 0.8 --frames 10
expect_usage "--lambda above 1" "$frugal" rl train --env cartpole --lambda 1.5 --frames 10
expect_usage "a negative --rms-eps" "$frugal" rl train --env cartpole --rms-eps -1 --frames 10
expect_usage "--lockstep with --tune" "$frugal" rl train --env cartpole --lockstep --tune --frames 10
expect_usage "--lockstep with two trainers" "$frugal" rl train --env cartpole --lockstep --trainers 2 --frames 10
expect_usage "weights of another game" "$frugal" rl play --env breakout --load w.safetensors --no-render
grep -q "was trained on cartpole" out.txt || fail "playing breakout with cartpole's weights does not say which game they are"
expect_usage "resuming another game's run" "$frugal" rl train --env breakout --resume w.safetensors --frames 10
grep -q "was trained on cartpole, this run is breakout" out.txt || fail "resuming another game: $(cat out.txt)"
expect_usage "--predictors with a3c" "$frugal" rl train --env cartpole --algo a3c --predictors 2 --frames 10
expect_usage "--tuner without --tune" "$frugal" rl train --env cartpole --tuner ours --frames 10
expect_usage "a negative --grad-clip" "$frugal" rl train --env cartpole --grad-clip -1 --frames 10
grep -q -- "--grad-clip -1: expected a norm >= 0" out.txt || fail "--grad-clip -1: $(cat out.txt)"
# the library's range errors name the options, not its configuration's fields
for args in "--t-max 0" "--lambda 1.5" "--progress 0" "--envs 0" "--max-predict-batch 1"; do
    # shellcheck disable=SC2086
    expect_usage "$args" "$frugal" rl train --env cartpole $args --frames 10
    grep -q -- "${args%% *} is " out.txt || fail "'$args' does not name the option: $(cat out.txt)"
done
# a day between frames is a hang (and past time_t's range undefined): refused before playing
expect_usage "--delay 1e12" timeout 30 "$frugal" rl play --env cartpole --load w.safetensors --no-render --delay 1e12
grep -q -- "--delay 1e+12: expected 0 to 60 seconds" out.txt || fail "--delay 1e12: $(cat out.txt)"
"$frugal" rl --help >help.txt 2>&1 || true
grep -q train help.txt || fail "rl --help does not list train"
grep -q play help.txt || fail "rl --help does not list play"
echo "e2e_rl_train: ok"
