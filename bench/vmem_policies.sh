#!/usr/bin/env bash
# The vmem acceptance measurements (issue 3): for AlexNet, OverFeat, VGG-16 and GoogLeNet at
# 224x224 (OverFeat 231x231), `frugal vmem report` without a budget (average memory of each
# policy against none, overheads against the oracle) and at a budget that forces dyn to offload
# or change algorithms (dyn against plan). Each report prints its command and table.
# usage: bench/vmem_policies.sh [FRUGAL_BINARY]   (default build/frugal); takes ~25 min on 2 cores
set -euo pipefail
F=${1:-build/frugal}
run() { echo; "$F" vmem report "$@"; }
run --model alexnet --batch 128 --iters 4
run --model alexnet --batch 128 --iters 4 --device-mem 1.2G --policies dyn,plan
run --model overfeat --batch 128 --iters 4
run --model overfeat --batch 128 --iters 4 --device-mem 1.7G --policies dyn,plan
run --model vgg16 --batch 32 --iters 4
run --model vgg16 --batch 32 --iters 4 --device-mem 2.4G --policies dyn,plan
run --model googlenet --batch 64 --iters 4
run --model googlenet --batch 64 --iters 4 --device-mem 1G --policies dyn,plan
