#!/usr/bin/env bash
# OpenMP wait policy on an idle and on a loaded machine (issue 11). Runs two workloads of ours,
# each with libgomp's default (spinning: OMP_WAIT_POLICY unset, GOMP_SPINCOUNT=300000, what a
# program without frugal's start-up hook gets), with a short spin (GOMP_SPINCOUNT=10000) and with
# passive waiting (OMP_WAIT_POLICY=PASSIVE, frugal's default), first on the idle machine, then with
# a second process spinning on one core (a shell busy loop pinned with taskset to the last core).
#   - lenet: `frugal train` LeNet-5, one MNIST epoch at batch 64 (many small parallel regions)
#   - alexnet: bench/train_step alexnet:16, no peer (large oneDNN convolutions and GEMMs)
# Prints a table of wall seconds (the median of REPS runs) and the command.
# Usage: bench/omp_wait.sh [BUILD_DIR] [REPS]   (default build, 3)
set -euo pipefail
build="${1:-build}"
reps="${2:-3}"
frugal="$build/frugal"
step="$build/bench/train_step"
[[ -x "$frugal" && -x "$step" ]] || { echo "omp_wait: build first (bash scripts/build.sh)" >&2; exit 2; }
last=$(($(nproc) - 1))

workload() {
    case "$1" in
    lenet) "$frugal" train --model lenet --data mnist --epochs 1 --threads 2 --quiet > /dev/null 2>&1 ;;
    alexnet) "$step" --no-peer --iters 3 --warmup 1 --threads 2 alexnet:16 > /dev/null 2>&1 ;;
    esac
}
# median wall seconds of REPS runs of workload $1 under environment assignments $2
timed() {
    local ts=()
    for ((r = 0; r < reps; r++)); do
        local t0 t1
        t0=$(date +%s.%N)
        env $2 bash -c "$(declare -f workload); frugal=$frugal step=$step; workload $1"
        t1=$(date +%s.%N)
        ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    done
    printf '%s\n' "${ts[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A res
settings=("GOMP_SPINCOUNT=300000" "GOMP_SPINCOUNT=10000" "OMP_WAIT_POLICY=PASSIVE")
names=("libgomp default (spin 300k)" "short spin (10k)" "passive (frugal default)")
for load in idle loaded; do
    spinner=""
    if [[ $load == loaded ]]; then
        taskset -c "$last" bash -c 'while :; do :; done' &
        spinner=$!
        sleep 1
    fi
    for w in lenet alexnet; do
        for i in "${!settings[@]}"; do
            echo "omp_wait: $w, $load, ${names[$i]}..." >&2
            res[$w,$load,$i]=$(timed $w "${settings[$i]}")
        done
    done
    [[ -n "$spinner" ]] && { kill "$spinner"; wait "$spinner" 2>/dev/null || true; }
done

echo "command: bench/omp_wait.sh $build $reps"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; median of $reps runs, wall seconds"
echo "loaded: a second process spinning on core $last"
echo
echo "| workload | wait policy | idle s | loaded s | loaded / idle |"
echo "|---|---|---|---|---|"
for w in lenet alexnet; do
    for i in "${!settings[@]}"; do
        a=${res[$w,idle,$i]} b=${res[$w,loaded,$i]}
        printf '| %s | %s | %s | %s | %s |\n' "$w" "${names[$i]}" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", b / a }')"
    done
done
