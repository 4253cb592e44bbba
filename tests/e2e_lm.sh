#!/usr/bin/env bash
# End-to-end check of `frugal lm train` (the sparse LSTM system) on the real Brown corpus: a tiny
# model trains two short epochs, the first sparse and the last dense (the mixed schedule); the
# per-epoch lines, the test perplexity, the JSON (two epochs, sparse then dense, fewer backward
# GEMM FLOPs in the sparse one, finite perplexities below the vocabulary size, the learning curve
# with a mid-epoch validation), the CSV trace and the plot are there; a run resumed from the
# first epoch's checkpoint ends with the same perplexities, and a broken checkpoint is refused by
# name; lm eval of the last checkpoint prints the perplexities training printed, lm sample draws
# vocabulary words after the prime, the same for the same seed; bad options are usage errors, and
# a model larger than RAM is refused before it is built.
# ~20 s on 2 cores; the corpus must have been fetched (scripts/fetch-data.sh brown). Usage: e2e_lm.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

"$frugal" lm train --hidden 32 --layers 2 --steps 10 --batch 8 --epochs 2 --max-batches 40 --eval-batches 10 \
    --sparse 0.5 --block 8 --dense-epochs 1 --eval-every 20 --threads 2 --quiet --json run.json --plot ppl.png \
    --trace curve.csv --checkpoint 'ck-{epoch}.safetensors' >out.txt 2>&1 ||
    fail "frugal lm train exited $?"
grep -Eq '^corpus brown: [0-9]+ / [0-9]+ / [0-9]+ words \(train / valid / test\), vocabulary 10002$' out.txt ||
    fail "no corpus line with the Brown vocabulary"
grep -Eq ', 40 chunks per epoch \(limited by --max-batches\)$' out.txt ||
    fail "the model line does not give --max-batches 40 as the chunks per epoch"
grep -Eq '^epoch +1 +drop 0\.50 ' out.txt || fail "epoch 1 is not reported sparse at drop 0.50"
grep -Eq '^epoch +2 +dense ' out.txt || fail "epoch 2 is not reported dense"
grep -Eq '^test perplexity [0-9.]+ after 2 epochs' out.txt || fail "no test perplexity"
node -e '
const r = JSON.parse(require("fs").readFileSync("run.json", "utf8"));
const e = r.epochs;
const bad = (m) => { console.error("FAIL: run.json: " + m); process.exit(1); };
if (e.length !== 2) bad("expected 2 epochs, got " + e.length);
if (e[0].sparse !== 1 || e[1].sparse !== 0) bad("expected sparse then dense epochs");
if (!(e[0].lstm_backward_flops_kept < 0.95 && e[1].lstm_backward_flops_kept === 1)) bad("backward FLOPs kept " + e[0].lstm_backward_flops_kept + ", " + e[1].lstm_backward_flops_kept);
for (const x of e) if (!(x.valid_ppl > 1 && x.valid_ppl < 10002 && x.train_ppl > 1 && x.train_ppl < 10002)) bad("perplexity out of range");
if (!(r.test_ppl > 1 && r.test_ppl < 10002)) bad("test perplexity " + r.test_ppl);
if (e[0].drop !== 0.5 || e[1].drop !== 0) bad("drops " + e[0].drop + ", " + e[1].drop);
if (r.schedule !== "sparse-dense") bad("schedule " + r.schedule);
// validations at chunk 20 and at the end of each epoch: 4 points, increasing in time
const c = r.curve;
if (c.length !== 4) bad("expected 4 curve points, got " + c.length);
for (let i = 0; i < c.length; i++) {
  if (!(c[i].valid_ppl > 1 && c[i].valid_ppl < 10002)) bad("curve perplexity " + c[i].valid_ppl);
  if (i > 0 && !(c[i].train_seconds >= c[i - 1].train_seconds && c[i].epochs_done > c[i - 1].epochs_done)) bad("curve not increasing at " + i);
}
if (c[1].epochs_done !== 1 || c[1].valid_ppl !== e[0].valid_ppl || c[3].valid_ppl !== e[1].valid_ppl) bad("curve does not end the epochs at their validation perplexity");
if (!(Math.abs(r.train_seconds - (e[0].seconds + e[1].seconds)) < 1e-6)) bad("train_seconds is not the sum of the epochs");
if (!(e[1].train_ppl < e[0].train_ppl)) bad("training perplexity did not fall: " + e[0].train_ppl + " -> " + e[1].train_ppl);
' || fail "run.json"
[[ "$(head -1 curve.csv)" == "epochs_done,train_seconds,train_cpu_seconds,valid_ppl" && $(wc -l <curve.csv) == 5 ]] ||
    fail "curve.csv: expected a header and 4 rows"
if command -v gnuplot >/dev/null; then
    [[ "$(head -c 8 ppl.png | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] || fail "ppl.png is not a PNG"
fi
# resumed after epoch 1: epoch 1 as the checkpoint had it, epoch 2 and the test perplexity bit for bit the whole run's
[[ -s ck-1.safetensors && -s ck-2.safetensors ]] || fail "no checkpoint per epoch (ck-1, ck-2.safetensors)"
"$frugal" lm train --hidden 32 --layers 2 --steps 10 --batch 8 --epochs 2 --max-batches 40 --eval-batches 10 \
    --sparse 0.5 --block 8 --dense-epochs 1 --threads 2 --quiet --json resumed.json --resume ck-1.safetensors \
    >out.txt 2>&1 || fail "frugal lm train --resume exited $?"
grep -Eq '^epoch +1 +drop 0\.50 .*\(from --resume\)$' out.txt || fail "epoch 1 is not reported as resumed"
node -e '
const fs = require("fs");
const a = JSON.parse(fs.readFileSync("run.json", "utf8")), b = JSON.parse(fs.readFileSync("resumed.json", "utf8"));
const bad = (m) => { console.error("FAIL: resumed.json: " + m); process.exit(1); };
if (b.epochs.length !== 2 || b.epochs[0].restored !== 1 || b.epochs[1].restored !== 0) bad("expected epoch 1 restored, epoch 2 trained");
for (const k of ["valid_ppl", "train_ppl", "lr", "drop", "seconds"])
  if (b.epochs[0][k] !== a.epochs[0][k]) bad("epoch 1 " + k + " " + b.epochs[0][k] + ", the checkpointed run had " + a.epochs[0][k]);
for (const k of ["valid_ppl", "train_ppl", "lr"])
  if (b.epochs[1][k] !== a.epochs[1][k]) bad("epoch 2 " + k + " " + b.epochs[1][k] + ", the whole run had " + a.epochs[1][k]);
if (b.test_ppl !== a.test_ppl) bad("test perplexity " + b.test_ppl + ", the whole run had " + a.test_ppl);
if (b.resumed_from !== "ck-1.safetensors") bad("resumed_from " + b.resumed_from);
' || fail "resumed.json"
head -c 200 ck-1.safetensors >broken.safetensors
set +e
"$frugal" lm train --hidden 32 --layers 2 --steps 10 --batch 8 --epochs 2 --max-batches 40 --eval-batches 10 \
    --quiet --resume broken.safetensors >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 1 ]] && grep -q 'broken.safetensors' bad.txt || { cat bad.txt; fail "broken checkpoint: exit $rc, expected 1 naming the file"; }
# the threshold variant: one epoch zeroing |dG| < 1e-4, the share zeroed reported and in the JSON
"$frugal" lm train --hidden 32 --layers 1 --steps 10 --batch 8 --epochs 1 --max-batches 20 --eval-batches 5 \
    --variant threshold --tau 1e-4 --threads 2 --quiet --json thr.json >thr.txt 2>&1 || { cat thr.txt; fail "threshold run exited $?"; }
grep -Eq '^epoch +1 +tau 0\.0001 .* 100\.0 % of its dense GEMM FLOPs, +[0-9.]+ % of dG zeroed$' thr.txt ||
    { cat thr.txt; fail "the threshold epoch is not reported with its tau, dense FLOPs and the share zeroed"; }
node -e '
const r = JSON.parse(require("fs").readFileSync("thr.json", "utf8"));
const e = r.epochs[0];
if (r.sparse_variant !== "threshold" || Math.abs(r.sparse_tau - 1e-4) > 1e-9 || !e.sparse ||
    Math.abs(e.tau - 1e-4) > 1e-9 || !(e.gate_sparsity > 0 && e.gate_sparsity < 1) || e.lstm_backward_flops_kept !== 1) {
  console.error("FAIL: thr.json: " + JSON.stringify(r).slice(0, 400)); process.exit(1);
}' || fail "thr.json"
# lm eval: epoch 2's checkpoint scores what training printed (validation and test, 10 chunks each), bit for bit
"$frugal" lm eval --model ck-2.safetensors --split valid --max-batches 10 --threads 2 --json ev.json >ev.txt 2>&1 ||
    { cat ev.txt; fail "lm eval --split valid exited $?"; }
grep -Eq '^model ck-2.safetensors: embedding 32, 2 x LSTM 32, vocabulary 10002; 2 epochs trained' ev.txt ||
    { cat ev.txt; fail "lm eval does not describe the model"; }
"$frugal" lm eval --model ck-2.safetensors --max-batches 10 --threads 2 --json et.json >et.txt 2>&1 ||
    { cat et.txt; fail "lm eval exited $?"; }
grep -Eq '^test perplexity [0-9.]+ \(800 words in 10 chunks of 10 steps x 8 streams\)$' et.txt ||
    { cat et.txt; fail "lm eval: no test perplexity line"; }
node -e '
const fs = require("fs");
const r = JSON.parse(fs.readFileSync("run.json", "utf8")), v = JSON.parse(fs.readFileSync("ev.json", "utf8")),
      t = JSON.parse(fs.readFileSync("et.json", "utf8"));
const bad = (m) => { console.error("FAIL: lm eval: " + m); process.exit(1); };
if (v.split !== "valid" || v.perplexity !== r.epochs[1].valid_ppl) bad("valid " + v.perplexity + ", training had " + r.epochs[1].valid_ppl);
if (t.split !== "test" || t.perplexity !== r.test_ppl) bad("test " + t.perplexity + ", training had " + r.test_ppl);
if (t.words !== 800 || t.epochs !== 2 || t.steps !== 10 || t.batch !== 8) bad(JSON.stringify(t));
' || fail "lm eval JSON"
# lm sample: the prime first, then the words drawn (a sentence end as a line break, never "<eos>"); the same
# seed the same text, another seed another
"$frugal" lm sample --model ck-2.safetensors --words 40 --seed 3 --prime "the jury said" >s1.txt 2>&1 || { cat s1.txt; fail "lm sample exited $?"; }
"$frugal" lm sample --model ck-2.safetensors --words 40 --seed 3 --prime "the jury said" >s2.txt 2>&1
"$frugal" lm sample --model ck-2.safetensors --words 40 --seed 4 --prime "the jury said" >s3.txt 2>&1
cmp -s s1.txt s2.txt || fail "lm sample: the same seed gave two texts"
cmp -s s1.txt s3.txt && fail "lm sample: seeds 3 and 4 gave the same text"
first=$(head -1 s1.txt)
[[ $first == "the jury said" || $first == "the jury said "* ]] ||
    { cat s1.txt; fail "lm sample: the text does not start with the prime and a space or a line break"; }
n=$(wc -w <s1.txt)
(( n > 3 && n <= 43 )) || { cat s1.txt; fail "lm sample: $n words, expected the 3 of the prime and up to 40 drawn"; }
grep -q '<eos>' s1.txt && { cat s1.txt; fail "lm sample printed <eos> as a word, not as a line break"; }
"$frugal" lm sample --model ck-2.safetensors --words 20 --temperature 0 --seed 5 >g1.txt 2>&1 || fail "lm sample --temperature 0 exited $?"
"$frugal" lm sample --model ck-2.safetensors --words 20 --temperature 0 --seed 6 >g2.txt 2>&1
cmp -s g1.txt g2.txt || fail "lm sample --temperature 0: the seed changed the most likely words"
for bad_args in "--words 0|--words 0" "--temperature -1|--temperature -1" "|--model FILE is required"; do
    set +e
    if [[ -n ${bad_args%%|*} ]]; then "$frugal" lm sample --model ck-2.safetensors ${bad_args%%|*} >bad.txt 2>&1
    else "$frugal" lm sample >bad.txt 2>&1; fi
    rc=$?
    set -e
    [[ $rc == 2 ]] && grep -q -- "${bad_args#*|}" bad.txt || { cat bad.txt; fail "lm sample ${bad_args%%|*}: exit $rc, expected 2 saying '${bad_args#*|}'"; }
done
set +e
"$frugal" lm train --save a.safetensors --checkpoint b.safetensors >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--save with --checkpoint' bad.txt || { cat bad.txt; fail "--save with --checkpoint: exit $rc, expected 2"; }
set +e
"$frugal" lm eval --model ck-2.safetensors --split dev >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--split dev' bad.txt || { cat bad.txt; fail "lm eval --split dev: exit $rc, expected 2"; }
set +e
"$frugal" lm eval --model broken.safetensors >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 1 ]] && grep -q 'broken.safetensors' bad.txt || { cat bad.txt; fail "lm eval of a broken file: exit $rc, expected 1 naming it"; }
# usage errors exit 2 and name the option
set +e
"$frugal" lm train --variant threshold --sparse 0.5 >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--sparse 0.5 with --variant threshold' bad.txt || { cat bad.txt; fail "--sparse with threshold: exit $rc, expected 2"; }
set +e
"$frugal" lm train --tau 1e-4 >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--tau 0.0001 with --variant structured' bad.txt || { cat bad.txt; fail "--tau without threshold: exit $rc, expected 2"; }
for args in "--lr 0" "--lr-decay 0" "--hidden -1" "--decay-after -1" "--dropout 1"; do
    set +e
    # shellcheck disable=SC2086
    "$frugal" lm train $args >bad.txt 2>&1
    rc=$?
    set -e
    [[ $rc == 2 ]] && grep -q -- "${args%% *}" bad.txt || { cat bad.txt; fail "lm train $args: exit $rc, expected 2 naming the option"; }
done
# options the library took (or refused only after loading the corpus): a tiny run, should one start
for bad_args in "--threads -3|--threads -3: expected >= 0" "--epochs -1|--epochs -1: expected >= 1" \
                "--sparse 0.5 --block 0|--block 0: expected 1..hidden" \
                "--variant threshold --tau 0.1 --block 0|--block 0: expected 1..hidden"; do
    set +e
    # shellcheck disable=SC2086
    timeout 120 "$frugal" lm train --hidden 16 --layers 1 --steps 5 --batch 4 --epochs 1 --max-batches 2 \
        --eval-batches 2 --quiet ${bad_args%%|*} >bad.txt 2>&1
    rc=$?
    set -e
    [[ $rc == 2 ]] && grep -q -- "${bad_args#*|}" bad.txt ||
        { cat bad.txt; fail "lm train ${bad_args%%|*}: exit $rc, expected 2 saying '${bad_args#*|}'"; }
done
# a model larger than RAM is refused with its estimate before it is built (the pool grew for ever);
# ulimit and timeout keep an unfixed build from taking the machine
set +e
(ulimit -v 8000000
 timeout 120 "$frugal" lm train --hidden 100000 --layers 1 --steps 10 --batch 8 --epochs 1 >bad.txt 2>&1)
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- "lm train: the model .* (estimated) needs .* more than this machine's .* of RAM" bad.txt ||
    { cat bad.txt; fail "--hidden 100000: exit $rc, expected 2 with the estimate and the RAM"; }
set +e
"$frugal" lm train --sparse 1 >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--sparse 1' bad.txt || { cat bad.txt; fail "--sparse 1: exit $rc, expected 2 naming the option"; }
set +e
"$frugal" lm train --sparse 0.5 --schedule sometimes >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--schedule sometimes' bad.txt || { cat bad.txt; fail "--schedule sometimes: exit $rc, expected 2"; }
set +e
"$frugal" lm train --epochs 3 --dense-epochs 2 --dense-first 2 >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 2 ]] && grep -q -- '--dense-first 2' bad.txt || { cat bad.txt; fail "--dense-first 2 of 3 epochs with 2 dense at the end: exit $rc, expected 2"; }
set +e
"$frugal" lm train --data no-such-corpus --data-dir "$work" >bad.txt 2>&1
rc=$?
set -e
[[ $rc == 1 ]] && grep -q 'no-such-corpus.train.txt' bad.txt || { cat bad.txt; fail "missing corpus: exit $rc, expected 1 naming the file"; }
grep -E '^(epoch|test perplexity)' out.txt
echo "ok: frugal lm train"
