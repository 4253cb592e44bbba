#!/usr/bin/env bash
# End-to-end check of `frugal rl bench-env` (the RL environments): a short random-policy run of
# every game writes a JSON whose fields exist and are numbers in range (steps per second > 0,
# episodes as asked, length mean >= 1, sds >= 0; Freeway's every episode is 2501 steps, CartPole's
# return equals its length); the summary is printed; an unknown environment, a missing --env, a
# bad --policy and a --sticky outside [0, 1] fail with a clear message and a non-zero exit. ~1 s.
# Usage: e2e_rl_env.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

for env in breakout space_invaders freeway asterix seaquest cartpole; do
    eps=50
    [[ $env == freeway ]] && eps=4
    "$frugal" rl bench-env --env "$env" --episodes "$eps" --seed 3 --json "$env.json" >out.txt 2>&1 ||
        fail "frugal rl bench-env --env $env exited $?"
    grep -q "^$env: $eps episodes" out.txt || fail "$env: no summary line"
    grep -q "steps/s per core" out.txt || fail "$env: no steps/s line"
    python3 - "$env.json" "$env" "$eps" <<'PY' || fail "$env.json"
import json, math, sys
path, env, eps = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = json.load(open(path))
def bad(m):
    print("FAIL: %s: %s" % (path, m)); sys.exit(1)
for k in ["steps_per_second", "return_mean", "return_sd", "length_mean", "length_sd", "episodes", "steps"]:
    if k not in d: bad("no field " + k)
    if not isinstance(d[k], (int, float)) or isinstance(d[k], bool) or not math.isfinite(d[k]): bad(k + " is not a number: " + repr(d[k]))
if d["env"] != env: bad("env " + repr(d["env"]))
if d["episodes"] != eps: bad("episodes %r" % d["episodes"])
if not d["steps_per_second"] > 0: bad("steps_per_second %r" % d["steps_per_second"])
if not (d["length_mean"] >= 1 and d["length_sd"] >= 0 and d["return_sd"] >= 0 and d["return_mean"] >= 0): bad("statistics out of range")
if env == "freeway" and not (d["length_mean"] == 2501 and d["length_sd"] == 0): bad("freeway episodes are 2501 steps")
if env == "cartpole" and abs(d["return_mean"] - d["length_mean"]) > 1e-9: bad("cartpole return != length")
PY
done

# the options: f32 observations, the minimal action set (3 for breakout), no sticky actions, no ramping
"$frugal" rl bench-env --env breakout --episodes 20 --obs f32 --minimal --sticky 0 --no-ramping --envs 4 \
    --json opt.json >out.txt 2>&1 || fail "bench-env with options exited $?"
grep -q "random policy over 3 actions" out.txt || fail "--minimal: not 3 actions"
python3 -c '
import json, sys
d = json.load(open("opt.json"))
if d["obs_dtype"] != "f32" or d["num_actions"] != 3 or d["envs"] != 4 or d["episodes"] != 20: print("FAIL: opt.json", d); sys.exit(1)
' || fail "opt.json"
set +e
"$frugal" rl bench-env --env cartpole --obs u8 --episodes 3 >bad.txt 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "cartpole --obs u8 exited $rc, expected 1"
grep -q "float vector" bad.txt || fail "cartpole --obs u8: no clear message: $(cat bad.txt)"

# the same seed gives the same statistics
"$frugal" rl bench-env --env seaquest --episodes 30 --seed 9 --json a.json >/dev/null 2>&1 || fail "seaquest seed 9"
"$frugal" rl bench-env --env seaquest --episodes 30 --seed 9 --json b.json >/dev/null 2>&1 || fail "seaquest seed 9 again"
python3 -c '
import json, sys
a, b = json.load(open("a.json")), json.load(open("b.json"))
for k in ["return_mean", "return_sd", "length_mean", "length_sd", "steps"]:
    if a[k] != b[k]: print("FAIL: seed 9 twice: %s %r vs %r" % (k, a[k], b[k])); sys.exit(1)
' || fail "determinism"

# errors: non-zero exit and a message that says what is wrong
set +e
"$frugal" rl bench-env --env pong --episodes 3 >bad.txt 2>&1
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "unknown env exited 0"
grep -q "unknown environment 'pong'" bad.txt || fail "unknown env: no clear message: $(cat bad.txt)"
grep -q "breakout" bad.txt || fail "unknown env: the valid names are not listed"
set +e
"$frugal" rl bench-env --episodes 3 >bad.txt 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "missing --env exited $rc, expected 2"
grep -q -- "--env is required" bad.txt || fail "missing --env: no clear message"
set +e
"$frugal" rl bench-env --env breakout --policy greedy >bad.txt 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "bad policy exited $rc, expected 2"
set +e
"$frugal" rl bench-env --env cartpole --sticky -5 --episodes 3 >bad.txt 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q -- "--sticky -5: expected a probability in \[0, 1\]" bad.txt ||
    fail "--sticky -5 exited $rc, expected 2 naming the range: $(cat bad.txt)"
set +e
"$frugal" rl frobnicate >bad.txt 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "unknown rl subcommand exited $rc, expected 2"
"$frugal" rl --help >help.txt 2>&1 || true
grep -q bench-env help.txt || fail "rl --help does not list bench-env"
echo "e2e_rl_env: ok"
