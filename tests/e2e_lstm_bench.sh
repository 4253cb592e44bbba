#!/usr/bin/env bash
# End-to-end check of `frugal lstm bench` (the sparse LSTM system's backward variants) at tiny
# sizes without the PyTorch peer: the table and the command line are printed, the JSON has every
# documented field as a number (the two speedups, the kept fraction, per variant forward_ms,
# backward_ms, backward_gflops), the structured backward issues fewer GEMM FLOPs than dense and
# about the kept fraction of them; a sweep over drops (--drop 0.5,0.75) times each variant at each
# drop, its FLOPs fall with the drop, the JSON's "sweep" has an entry per drop and --plot writes a
# PNG; bad options are usage errors (exit 2) naming the option, buffers larger than RAM too.
# No wall-clock assertion. A few seconds. Usage: e2e_lstm_bench.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

"$frugal" lstm bench --hidden 48 --batch 4 --steps 6 --drop 0.5 --block 8 --layers 2 --iters 2 --warmup 1 \
    --threads 2 --no-peer --json run.json >out.txt 2>&1 || fail "frugal lstm bench exited $?"
grep -q '^command: frugal lstm bench --hidden 48' out.txt || fail "no command line"
for v in dense step structured meprop threshold; do
    grep -Eq "^\| $v \| ([0-9.]+|-) \| [0-9.]+ % \|" out.txt || fail "no table row for $v"
done
grep -q 'not run: --no-peer' out.txt || fail "the peer row does not say it was not run"
node -e '
const r = JSON.parse(require("fs").readFileSync("run.json", "utf8"));
const bad = (m) => { console.error("FAIL: run.json: " + m); process.exit(1); };
const num = (x) => typeof x === "number" && isFinite(x);
for (const k of ["structured_backward_speedup", "meprop_backward_speedup", "kept_fraction", "hidden", "batch", "steps", "drop"])
    if (!num(r[k])) bad(k + " is not a number: " + r[k]);
if (r.layers !== 2 || r.hidden !== 48) bad("layers/hidden " + r.layers + "/" + r.hidden);
const names = r.variants.map((v) => v.name).join(",");
if (names !== "dense,step,structured,meprop,threshold") bad("variants " + names);
for (const v of r.variants)
    for (const k of ["forward_ms", "backward_ms", "backward_gflops", "kept_fraction"])
        if (!num(v[k]) || v[k] < 0) bad(v.name + "." + k + " = " + v[k]);
const d = r.variants[0], s = r.variants[2];
if (!(s.backward_gflops < d.backward_gflops)) bad("structured issues " + s.backward_gflops + " GFLOP, dense " + d.backward_gflops);
if (Math.abs(s.backward_gflops / d.backward_gflops - s.kept_fraction) > 1e-9) bad("structured FLOPs are not the kept fraction of dense");
if (Math.abs(r.kept_fraction - 0.5) > 1e-9) bad("kept_fraction " + r.kept_fraction + " at drop 0.5, 6 blocks");
if ("peer" in r) bad("a peer entry with --no-peer");
if (r.sweep.length !== 1 || r.sweep[0].drop !== 0.5 || r.sweep[0].structured_backward_speedup !== r.structured_backward_speedup)
    bad("sweep of one drop " + JSON.stringify(r.sweep));
' || fail "run.json"

# a sweep: two drops, two variants (in the order given), a plot; 8 blocks of 8, so drop 0.75 keeps 2
plot=()
command -v gnuplot >/dev/null && plot=(--plot sweep.png)
"$frugal" lstm bench --hidden 64 --batch 4 --steps 6 --drop 0.5,0.75 --block 8 --layers 2 --iters 1 --warmup 0 \
    --variants meprop,structured --threads 2 --no-peer --json sweep.json "${plot[@]}" >out.txt 2>&1 \
    || fail "frugal lstm bench (sweep) exited $?"
grep -Eq '^\| structured \| 0\.75 \| 25\.0 % \|' out.txt || fail "no structured row at drop 0.75"
grep -q '^drop 0.75: structured backward speedup over dense' out.txt || fail "no summary line for drop 0.75"
if [[ ${#plot[@]} -gt 0 ]]; then
    [[ "$(head -c 4 sweep.png | od -An -c | tr -d ' ')" == '211PNG' ]] || fail "sweep.png is not a PNG"
fi
node -e '
const r = JSON.parse(require("fs").readFileSync("sweep.json", "utf8"));
const bad = (m) => { console.error("FAIL: sweep.json: " + m); process.exit(1); };
const seen = r.variants.map((v) => v.name + "@" + v.drop).join(",");
if (seen !== "dense@0,meprop@0.5,structured@0.5,meprop@0.75,structured@0.75") bad("configurations " + seen);
if (r.drop !== 0.5 || r.sweep.length !== 2 || r.sweep[1].drop !== 0.75) bad("drops " + JSON.stringify(r.sweep));
for (const e of r.sweep)
    for (const k of ["kept_fraction", "structured_backward_speedup", "meprop_backward_speedup"])
        if (!(typeof e[k] === "number" && e[k] > 0)) bad("sweep drop " + e.drop + " " + k + " = " + e[k]);
const s5 = r.variants[2], s75 = r.variants[4];
if (!(s75.backward_gflops < s5.backward_gflops)) bad("structured FLOPs do not fall with the drop");
if (Math.abs(r.sweep[1].kept_fraction - 0.25) > 1e-9) bad("kept at 0.75 " + r.sweep[1].kept_fraction);
' || fail "sweep.json"
# usage errors exit 2 and name the option
set +e
for args in "--drop 1" "--drop 0.5,x" "--drop 0.5,0.5" "--drop ," "--plot x.png --variants dense,threshold" "--block 0" "--layers 9" "--variants dense,sorted" "--iters 0" "--tau -1"; do
    "$frugal" lstm bench $args --no-peer >bad.txt 2>&1
    rc=$?
    opt=${args%% *}
    [[ $rc == 2 ]] || { cat bad.txt; echo "FAIL: '$args' exited $rc, expected 2"; exit 1; }
    grep -q -- "${opt}" bad.txt || { cat bad.txt; echo "FAIL: '$args' message does not name ${opt}"; exit 1; }
done
"$frugal" lstm frobnicate >bad.txt 2>&1
[[ $? == 2 ]] || { echo "FAIL: unknown subcommand not a usage error"; exit 1; }
# buffers larger than RAM: refused with the size before any is allocated (they were filled even
# after an earlier one failed); ulimit keeps an unfixed build from taking the machine
(ulimit -v 8000000
 timeout 120 "$frugal" lstm bench --hidden 65536 --batch 65536 --steps 65536 --iters 1 --no-peer >bad.txt 2>&1)
rc=$?
[[ $rc == 2 ]] && grep -q "the stack's buffers needs .* more than this machine's .* of RAM" bad.txt ||
    { cat bad.txt; echo "FAIL: a stack larger than RAM exited $rc, expected 2 naming the sizes"; exit 1; }
set -e
echo "e2e_lstm_bench: ok"
