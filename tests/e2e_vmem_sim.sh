#!/usr/bin/env bash
# End-to-end checks of `frugal vmem simulate` (issue 3): on LeNet at batch 8 with a budget between
# what the offload policies need and what the network-wide baseline (none) needs, none does not
# fit and says what it needs, every other policy fits, the table and the JSON have one row/record
# per policy; bad --gpu/--link values are usage errors naming the valid ones; --steps writes the
# per-step roofline; a write past the file-size limit fails with a message and keeps the old file.
# Nothing is trained, so this takes about a second.
# The budget is derived on this machine, from an unconstrained run: what each policy needs includes
# oneDNN's convolution workspaces, which depend on the kernels oneDNN picks for this CPU (measured:
# none needs 2.00 MiB with AVX-512, 1.63 MiB under ONEDNN_MAX_CPU_ISA=AVX2; a fixed 1.9 MiB budget
# failed on an AVX2-only EPYC). Usage: e2e_vmem_sim.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

"$frugal" vmem simulate --help > "$work/help.out" || fail "--help exited $?"
grep -q -- "--gpu" "$work/help.out" || fail "--help does not list --gpu"

# min_device_bytes of POLICY in a simulate JSON file
min_of() { awk -v p="\"$2\"" '$1 == "\"policy\":" && $2 ~ p { f = 1 } f && $1 == "\"min_device_bytes\":" { v = $2; sub(/,$/, "", v); print v; exit }' "$1"; }
"$frugal" vmem simulate --model lenet --batch 8 --json "$work/free.json" > /dev/null || fail "unconstrained simulate failed"
need_none=$(min_of "$work/free.json" none)
need_most=0
for p in all conv dyn plan; do
    v=$(min_of "$work/free.json" $p)
    [[ "$v" =~ ^[0-9]+$ ]] || fail "no min_device_bytes for $p in the JSON"
    ((v > need_most)) && need_most=$v
done
[[ "$need_none" =~ ^[0-9]+$ ]] || fail "no min_device_bytes for none in the JSON"
grep -q "\"none_min_device_bytes\": $need_none," "$work/free.json" || fail "JSON: none_min_device_bytes is not none's min_device_bytes"
((need_most < need_none)) || fail "every offload policy should need less than none ($need_most >= $need_none bytes)"
budget=$(((need_none + need_most) / 2))
echo "derived here: none needs $need_none bytes, the offload policies at most $need_most: budget $budget"
rc=0
"$frugal" vmem simulate --model lenet --batch 8 --device-mem "$budget" --gpu titanx --link pcie3 \
    --json "$work/sim.json" --steps "$work/steps.csv" > "$work/sim.out" 2> "$work/sim.err" || rc=$?
cat "$work/sim.out"
[[ $rc -eq 0 ]] || { cat "$work/sim.err"; fail "simulate exited $rc"; }
grep -q '^frugal vmem simulate --model lenet' "$work/sim.out" || fail "the command line is not printed"
grep -q '^GPU titanx' "$work/sim.out" || fail "the GPU's assumptions are not printed"
grep -q '^none   no: needs ' "$work/sim.out" || fail "none should not fit $budget bytes and say what it needs"
for p in all conv dyn plan; do
    grep -q "^$p *yes " "$work/sim.out" || fail "$p should fit $budget bytes"
done
n=$(grep -c '"policy":' "$work/sim.json")
[[ $n -eq 5 ]] || fail "JSON has $n policy records, expected 5"
grep -A1 '"policy": "none"' "$work/sim.json" | grep -q '"fits": 0' || fail "JSON: none should have fits 0"
grep -A1 '"policy": "all"' "$work/sim.json" | grep -q '"fits": 1' || fail "JSON: all should have fits 1"
grep -q "\"none_min_device_bytes\": $need_none," "$work/sim.json" || fail "JSON: none_min_device_bytes is not $need_none"
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
# a file-size limit (as a full disk looks to the writer): exit 1 naming the file, the old file
# kept, no temporary left; the command substitution reads through a pipe, which the limit spares
echo old > "$work/limited.json"
out=$( (ulimit -f 1; "$frugal" vmem simulate --model lenet --batch 8 --json "$work/limited.json" 2>&1 > /dev/null
        echo "rc=$?") )
grep -q '^rc=1$' <<< "$out" || fail "a write past the file-size limit: $out (expected exit 1)"
grep -q 'limited.json.tmp.[0-9]* failed: File too large' <<< "$out" || fail "the message does not name the file: $out"
[[ "$(cat "$work/limited.json")" == old ]] || fail "the old limited.json was not kept"
compgen -G "$work/limited.json.tmp*" > /dev/null && fail "a temporary file was left behind"
echo "ok: vmem simulate"
