#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/fuzz_*.c) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs each for SECONDS (default 30).
#
#   scripts/fuzz.sh [SECONDS]        (FRUGAL_FUZZ_BUILD overrides the build dir, default build-fuzz)
#
# The library itself is compiled with -fsanitize=fuzzer-no-link so libFuzzer sees coverage in
# the parsers, not only in the harness. Seeds come from fuzz/corpus/<name>/ (name without the
# fuzz_ prefix, written by fuzz/corpus/gen_seeds.py) and are never modified: new inputs go to
# <build>/fuzz-corpus/<harness>/, crash inputs to <build>/fuzz-artifacts/. Prints the executions
# of each harness and exits non-zero if any harness crashed (or failed to build).
set -euo pipefail

secs=${1:-30}
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FRUGAL_FUZZ_BUILD:-$root/build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)" >&2; exit 1; }

san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CC=clang cmake -S "$root" -B "$build" -DFRUGAL_FUZZ=ON -DFRUGAL_TESTS=OFF -DFRUGAL_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="$san" >/dev/null

harnesses=()
for src in "$root"/fuzz/fuzz_*.c; do
    harnesses+=("$(basename "$src" .c)")
done
[ ${#harnesses[@]} -gt 0 ] || { echo "fuzz: no harnesses in $root/fuzz" >&2; exit 1; }
if ! cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target "${harnesses[@]}" >"$build/fuzz-build.log" 2>&1; then
    tail -n 40 "$build/fuzz-build.log" >&2
    echo "fuzz: build failed (full log: $build/fuzz-build.log)" >&2
    exit 1
fi

mkdir -p "$build/fuzz-artifacts"
failed=0
summary=()
for h in "${harnesses[@]}"; do
    name=${h#fuzz_}
    work="$build/fuzz-corpus/$h"
    mkdir -p "$work"
    args=(-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10
          -artifact_prefix="$build/fuzz-artifacts/$h-")
    [ -f "$root/fuzz/corpus/$name.dict" ] && args+=(-dict="$root/fuzz/corpus/$name.dict")
    dirs=("$work")
    [ -d "$root/fuzz/corpus/$name" ] && dirs+=("$root/fuzz/corpus/$name")
    log="$build/fuzz-artifacts/$h.log"
    echo "fuzz: running $h for ${secs}s (log: $log)"
    rc=0
    "$build/$h" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    corpus=$(ls "$work" | wc -l)
    if [ "$rc" -ne 0 ]; then
        failed=1
        summary+=("$(printf '%-18s CRASH (exit %d) after %s executions; see %s and %s' "$h" "$rc" "${execs:-?}" "$log" "$build/fuzz-artifacts/")")
        grep -E "ERROR:|runtime error|broken promise|Test unit written" "$log" | head -n 5 >&2 || true
    else
        summary+=("$(printf '%-18s ok: %s executions (%s/s), %s new corpus files' "$h" "${execs:-?}" "${rate:-?}" "$corpus")")
    fi
done
echo "fuzz summary (${secs}s each):"
for line in "${summary[@]}"; do echo "  $line"; done
exit $failed
