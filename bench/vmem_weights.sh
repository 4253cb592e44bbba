#!/usr/bin/env bash
# vmem with weight offload (issue 3, the totals of line 2): `frugal vmem report --offload-weights`
# for AlexNet, OverFeat (also with vDNN's memory-optimal convs, (m)), GoogLeNet and VGG-16 without
# a budget: every policy but none keeps params, their gradients and the inputs in host memory
# between uses, so all's average device memory against none's counts everything, weights included.
# usage: bench/vmem_weights.sh [FRUGAL_BINARY]   (default build/frugal); takes ~20 min on 2 cores
set -euo pipefail
F=${1:-build/frugal}
run() { echo; "$F" vmem report --offload-weights "$@"; }
run --model alexnet --batch 128 --iters 4 --policies none,all,conv,dyn,plan
run --model overfeat --batch 128 --iters 4 --policies none,all,conv,dyn,plan
run --model overfeat --batch 128 --iters 2 --policies none,all --conv-algo implicit
run --model googlenet --batch 64 --iters 4 --policies none,all,dyn,plan
run --model vgg16 --batch 32 --iters 4 --policies none,all,dyn,plan
