#!/usr/bin/env bash
# End-to-end checks of `frugal vmem simulate` (issue 3): on LeNet at batch 8 with a 1.9 MiB budget,
# the network-wide baseline (none, 2.00 MiB with the ReLU masks and max-pool argmaxes) does not fit and says what it needs, every other
# policy fits, the table and the JSON have one row/record per policy; bad --gpu/--link values are
# usage errors naming the valid ones; --steps writes the per-step roofline. Nothing is trained, so
# this takes about a second. Usage: e2e_vmem_sim.sh PATH/TO/frugal
set -euo pipefail
frugal="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$frugal" vmem simulate --help > "$work/help.out" || fail "--help exited $?"
grep -q -- "--gpu" "$work/help.out" || fail "--help does not list --gpu"

rc=0
"$frugal" vmem simulate --model lenet --batch 8 --device-mem 1900K --gpu titanx --link pcie3 \
    --json "$work/sim.json" --steps "$work/steps.csv" > "$work/sim.out" 2> "$work/sim.err" || rc=$?
cat "$work/sim.out"
[[ $rc -eq 0 ]] || { cat "$work/sim.err"; fail "simulate exited $rc"; }
grep -q '^frugal vmem simulate --model lenet' "$work/sim.out" || fail "the command line is not printed"
grep -q '^GPU titanx' "$work/sim.out" || fail "the GPU's assumptions are not printed"
grep -q '^none   no: needs 2.00 MiB' "$work/sim.out" || fail "none should not fit 1.9 MiB and name 2.00 MiB"
for p in all conv dyn plan; do
    grep -q "^$p *yes " "$work/sim.out" || fail "$p should fit 1.9 MiB"
done
n=$(grep -c '"policy":' "$work/sim.json")
[[ $n -eq 5 ]] || fail "JSON has $n policy records, expected 5"
grep -A1 '"policy": "none"' "$work/sim.json" | grep -q '"fits": 0' || fail "JSON: none should have fits 0"
grep -A1 '"policy": "all"' "$work/sim.json" | grep -q '"fits": 1' || fail "JSON: all should have fits 1"
grep -q '"none_min_device_bytes": 2093568' "$work/sim.json" || fail "JSON: none_min_device_bytes is not 2093568"
# the overheads of the fitting policies against the oracle are never negative
awk -F': ' '/"overhead_vs_oracle"/ { v = $2; sub(/,$/, "", v); if (v != "null" && v + 0 < -1e-9) bad = 1 }
            END { exit bad }' "$work/sim.json" || fail "JSON: a negative overhead against the oracle"
lines=$(wc -l < "$work/steps.csv")
[[ $lines -eq 25 ]] || fail "steps CSV has $lines lines, expected 1 + 2 x 12 nodes"
grep -q '^20,3,conv2,conv2d,backward,.*,compute$' "$work/steps.csv" || fail "conv2's backward should be compute-bound"

for bad in "--gpu k80:titanx, v100, a100 or h100" "--link nvlink:pcie3, pcie4 or pcie5"; do
    opt=${bad%%:*}
    want=${bad#*:}
    rc=0
    # shellcheck disable=SC2086
    "$frugal" vmem simulate --model lenet --batch 8 $opt 2> "$work/bad.err" > /dev/null || rc=$?
    [[ $rc -eq 2 ]] || fail "'$opt' exited $rc, expected 2 (usage error)"
    grep -q "$want" "$work/bad.err" || fail "'$opt': the message does not name '$want': $(cat "$work/bad.err")"
done
rc=0
"$frugal" vmem simulate --batch 8 2> /dev/null > /dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "a missing --model exited $rc, expected 2"
echo "ok: vmem simulate"
