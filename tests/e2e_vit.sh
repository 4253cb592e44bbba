#!/usr/bin/env bash
# End-to-end check of `frugal vit train`, `vit eval` and `vit profile` (issue 14): a very short run of the
# ViT on a few hundred Fashion-MNIST images and of SegFormer-B0 on a few hundred digit scenes, 1
# epoch each: the JSON's fields are numbers (metrics in [0, 1], one history entry per epoch), the
# saved file loads by name (eval rebuilds the network from its metadata and prints the same test
# metric the training printed), a 2-step greedy profile writes numbers, starts all-on and its Pareto list
# is undominated, a 2-step profile with ToMe knobs (--tome) scores its front on the test split
# (--test), Ctrl-C exits 130 saying nothing was saved, and usage errors exit 2 naming what is wrong.
# Skipped (exit 77, which ctest reports as skipped) without the data files. ~20 s on 2 cores.
# Usage: e2e_vit.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

if [[ ! -f "$data/fashion-train-images-idx3-ubyte" && ! -f "$data/fashion-images-idx3-ubyte" ]] ||
   [[ ! -f "$data/mnist-images-idx3-ubyte" ]]; then
    echo "SKIP: no fashion / mnist data in $data (scripts/fetch-data.sh)"
    exit 77
fi

check_json() { # file metric epochs
    python3 - "$@" <<'PY' || fail "$1"
import json, math, sys
path, metric, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = json.load(open(path))
def bad(m):
    print("FAIL: %s: %s" % (path, m)); sys.exit(1)
def num(v): return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
for k in ["parameters", "flops_per_image", "epochs", "batch", "lr", "train_items", "val_items", "test_items",
          "test_metric", "seconds"]:
    if k not in d: bad("no field " + k)
    if not num(d[k]): bad(k + " is not a number: " + repr(d[k]))
if d["metric"] != metric: bad("metric %r, expected %r" % (d["metric"], metric))
if not 0 <= d["test_metric"] <= 1: bad("test_metric %r outside [0, 1]" % d["test_metric"])
if len(d["history"]) != epochs: bad("%d history entries, expected %d" % (len(d["history"]), epochs))
for e in d["history"]:
    for k in ["epoch", "loss", "train_metric", "val_metric", "seconds"]:
        if not num(e.get(k)): bad("history: " + k + " is not a number: " + repr(e.get(k)))
    if not (0 <= e["train_metric"] <= 1 and 0 <= e["val_metric"] <= 1): bad("history metric outside [0, 1]")
    if not e["loss"] > 0: bad("loss %r" % e["loss"])
PY
}

# the ViT classifier on Fashion-MNIST
"$frugal" vit train --model vit-tiny-28 --data fashion --epochs 1 --batch 32 --train-images 320 --val-images 96 \
    --test-images 200 --threads 2 --quiet --json vit.json --save vit.safetensors >out.txt 2>&1 ||
    fail "vit train (vit-tiny-28) exited $?"
grep -q "^epoch 1/1  loss" out.txt || fail "no epoch line"
train_line=$(grep "^test accuracy: " out.txt) || fail "no 'test accuracy' line"
check_json vit.json accuracy 1
"$frugal" vit eval --model vit.safetensors --test-images 200 >out.txt 2>&1 || fail "vit eval exited $?"
eval_line=$(grep "^test accuracy: " out.txt) || fail "eval printed no 'test accuracy' line"
[[ "$eval_line" == "$train_line" ]] || fail "eval says '$eval_line', training said '$train_line'"
# vit train --init: the weights come from the file, not the seed: at a rate too small to move them (1e-12, no
# decay, no warm-up) another seed's run scores what the saved model does
"$frugal" vit train --model vit-tiny-28 --data fashion --epochs 1 --batch 32 --train-images 320 --val-images 96 \
    --test-images 200 --threads 2 --quiet --init vit.safetensors --lr 1e-12 --weight-decay 0 --warmup 0 --seed 9 \
    --save init.safetensors >out.txt 2>&1 || fail "vit train --init exited $?"
init_line=$(grep "^test accuracy: " out.txt) || fail "vit train --init printed no 'test accuracy' line"
[[ "$init_line" == "$train_line" ]] || fail "vit train --init at lr 1e-12 says '$init_line', the saved model '$train_line'"

# vit profile: a short greedy search over the trained ViT's knobs
plot=()
command -v gnuplot >/dev/null && plot=(--plot prof.png)
"$frugal" vit profile --model vit.safetensors --val-images 64 --batch 32 --max-steps 2 --threads 2 --json prof.json \
    "${plot[@]}" >out.txt 2>&1 || fail "vit profile exited $?"
if [[ ${#plot[@]} -gt 0 ]]; then
    [[ -s prof.png ]] || fail "vit profile --plot wrote no prof.png"
    head -c 8 prof.png | od -An -c | grep -q "P   N   G" || fail "prof.png is not a PNG"
fi
grep -q "on the Pareto front" out.txt || fail "vit profile printed no summary"
python3 - prof.json <<'PY' || fail "prof.json"
import json, math, sys
d = json.load(open(sys.argv[1]))
def bad(m):
    print("FAIL: prof.json: " + m); sys.exit(1)
c, p = d["configurations"], d["pareto"]
if d["metric"] != "accuracy" or not d["search"].startswith("greedy"): bad("metric / search")
if c[0]["skip"] != "all-on" or c[0]["greedy_path"] != 1: bad("the first configuration is not all-on")
for e in c:
    for k in ["flops", "seconds", "metric"]:
        if not isinstance(e[k], (int, float)) or not math.isfinite(e[k]): bad(k + " is not a number")
    if not (e["flops"] > 0 and e["seconds"] > 0 and 0 <= e["metric"] <= 1): bad("out of range: %r" % e)
    if e["flops"] > c[0]["flops"] * (1 + 1e-12): bad("a skip configuration costs more FLOPs than all-on")
if sum(e["greedy_path"] for e in c) != 3: bad("greedy path of %d configurations, expected 3" % sum(e["greedy_path"] for e in c))
if not p or len(p) != sum(e["pareto"] for e in c): bad("pareto list")
for a in p:
    for b in c:
        if b["flops"] <= a["flops"] and b["metric"] >= a["metric"] and (b["flops"] < a["flops"] or b["metric"] > a["metric"]):
            bad("pareto entry %r is dominated by %r" % (a["skip"], b["skip"]))
PY

# vit profile --tome --test: ToMe knobs in the search (the graph rebuilt per schedule), the front
# scored on the test split after it
"$frugal" vit profile --model vit.safetensors --val-images 64 --batch 32 --max-steps 2 --threads 2 --json tome.json \
    --tome --test --test-images 64 >out.txt 2>&1 || fail "vit profile --tome --test exited $?"
grep -q "with ToMe" out.txt || fail "vit profile --tome printed no ToMe summary"
python3 - tome.json <<'PY' || fail "tome.json"
import json, math, sys
d = json.load(open(sys.argv[1]))
def bad(m):
    print("FAIL: tome.json: " + m); sys.exit(1)
c, p = d["configurations"], d["pareto"]
if d["tome"] != 1 or d["test_items"] != 64: bad("tome / test_items")
if not any("tome" in e["skip"] for e in c): bad("no configuration merges tokens")
if "test_metric" not in c[0]: bad("all-on has no test metric")
for e in p:
    if not (0 <= e["test_metric"] <= 1): bad("pareto entry %r: test metric %r" % (e["skip"], e.get("test_metric")))
for e in c:
    if "tome" in e["skip"] and not e["flops"] < c[0]["flops"]: bad("%r does not save FLOPs" % e["skip"])
PY

# SegFormer-B0 on digit scenes (mIoU), the training scenes augmented
# (new scenes every epoch: the same first epoch as without, another second one)
seg_args=(vit train --model segformer-b0 --data scenes --epochs 2 --batch 16 --train-images 128 --val-images 32
    --test-images 32 --threads 2 --quiet --scene-scale 0.2 --scene-rotate 20)
"$frugal" "${seg_args[@]}" --json seg-fixed.json --save seg-fixed.safetensors >out.txt 2>&1 ||
    fail "vit train (segformer-b0, fixed scenes) exited $?"
"$frugal" "${seg_args[@]}" --scene-refresh --json seg.json --save seg.safetensors >out.txt 2>&1 ||
    fail "vit train (segformer-b0) exited $?"
train_line=$(grep "^test mIoU: " out.txt) || fail "no 'test mIoU' line"
check_json seg.json mIoU 2
python3 - <<'PY' || fail "scene augmentation or refresh not as asked"
import json, sys
d, f = json.load(open("seg.json")), json.load(open("seg-fixed.json"))
if not (d["scene_scale"] == 0.2 and d["scene_rotate"] == 20 and d["scene_refresh"] == 1 and f["scene_refresh"] == 0):
    sys.exit("the JSON does not record the augmentation")
if d["history"][0]["loss"] != f["history"][0]["loss"]: sys.exit("refresh changed the first epoch")
if d["history"][1]["loss"] == f["history"][1]["loss"]: sys.exit("refresh did not change the second epoch's scenes")
PY
"$frugal" vit eval --model seg.safetensors --test-images 32 --json eval.json >out.txt 2>&1 || fail "vit eval (seg) exited $?"
eval_line=$(grep "^test mIoU: " out.txt) || fail "eval printed no 'test mIoU' line"
[[ "$eval_line" == "$train_line" ]] || fail "eval says '$eval_line', training said '$train_line'"
python3 - <<'PY' || fail "eval.json"
import json, sys
d = json.load(open("eval.json"))
iou = [v for v in d["class_iou"] if v is not None]
if not (d["metric"] == "mIoU" and 0 <= d["test_metric"] <= 1 and len(d["class_iou"]) == 11 and iou):
    sys.exit("eval.json: metric, test_metric or class_iou (11 labels) wrong")
if not all(0 <= v <= 1 for v in iou) or not 0 <= d["item_iou"] <= 1: sys.exit("eval.json: an IoU outside [0, 1]")
if abs(sum(iou) / len(iou) - d["test_metric"]) > 1e-9: sys.exit("eval.json: mIoU is not the mean of class_iou")
PY
grep -q "^per class IoU (background, then digits 0-9):" out.txt || fail "eval printed no per-class IoU"
grep -q "^item IoU" out.txt || fail "eval printed no item IoU"
"$frugal" vit eval --model seg.safetensors --test-images 32 --scene-items 1 --json eval1.json >out.txt 2>&1 ||
    fail "vit eval --scene-items 1 exited $?"
python3 -c "import json,sys; d=json.load(open('eval1.json')); sys.exit(0 if 0<=d['test_metric']<=1 and d['test_items']==32 else 1)" ||
    fail "eval1.json"

# Ctrl-C stops training with exit 130 (CLI_EXIT_INTERRUPTED), saying that nothing was saved
"$frugal" vit train --model vit-tiny-28 --data fashion --epochs 50 --batch 32 --train-images 3200 --val-images 96 \
    --test-images 100 --threads 2 --quiet --save stopped.safetensors >out.txt 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "^epoch 1/50" out.txt && break; sleep 0.1; done # training (and the handler) started
kill -INT $pid 2>/dev/null || true # (unless the run ended already)
rc=0
wait $pid || rc=$?
[[ $rc == 130 ]] && grep -q "interrupted in epoch [0-9]*: nothing saved" out.txt ||
    fail "vit train interrupted exited $rc, expected 130 saying nothing was saved"
[[ ! -e stopped.safetensors ]] || fail "an interrupted vit train wrote --save"

# usage errors: exit 2 and a message naming the problem
usage() { # expected-substring args...
    local want="$1"; shift
    set +e
    "$frugal" "$@" >out.txt 2>&1
    local rc=$?
    set -e
    [[ $rc == 2 ]] || fail "'$*' exited $rc, expected 2"
    grep -q -- "$want" out.txt || fail "'$*' does not say '$want'"
}
usage "--model NAME is required" vit train --data fashion --save x.safetensors
usage "--save FILE is required" vit train --model vit-tiny-28 --data fashion
usage "unknown --data 'cifar'" vit train --model vit-tiny-28 --data cifar --save x.safetensors
usage "does not fit --data scenes" vit train --model vit-tiny-28 --data scenes --save x.safetensors
usage "224x224 DeiT preset" vit train --model deit-tiny --data fashion --save x.safetensors
usage "--epochs must be >= 1" vit train --model vit-tiny-28 --data fashion --epochs 0 --save x.safetensors
usage "--scene-scale must be in" vit train --model segformer-b0 --data scenes --scene-scale 1 --save x.safetensors
usage "--scene-rotate must be in" vit train --model segformer-b0 --data scenes --scene-rotate -5 --save x.safetensors
usage "apply to --data scenes only" vit train --model vit-tiny-28 --data fashion --scene-refresh --save x.safetensors
usage "--init vit.safetensors holds vit-tiny-28 trained on fashion, expected --model vit-tiny-28-p4" vit train --model vit-tiny-28-p4 --data fashion --init vit.safetensors --save x.safetensors
usage "--model FILE is required" vit eval --data fashion
usage "--scene-items must be 1 to 8" vit eval --model seg.safetensors --scene-items 9
usage "--scene-items must be 1 to 8" vit eval --model seg.safetensors --scene-items 0
usage "--scene-items applies to --data scenes only" vit eval --model vit.safetensors --scene-items 2
usage "unknown subcommand 'fly'" vit fly
usage "--json FILE is required" vit profile --model vit.safetensors
usage "built for the ViT, not SegFormer" vit profile --model seg.safetensors --json x.json --tome
set +e
"$frugal" vit eval --model missing.safetensors >out.txt 2>&1
rc=$?
set -e
[[ $rc == 1 ]] || fail "eval of a missing file exited $rc, expected 1"
grep -q "missing.safetensors" out.txt || fail "eval of a missing file does not name it"
echo "e2e_vit: ok"
