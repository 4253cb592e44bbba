#!/usr/bin/env bash
# Checks that binaries hold no AVX-512 instruction outside the run-time dispatched kernels (functions
# whose name contains _avx512, src/ops/conv2d_direct.c built with FG_CONV2D_DIRECT_AVX512), so that
# the default build runs on any x86-64-v3 (AVX2) machine. An AVX-512 instruction is recognised by
# its encoding, not its registers: an EVEX prefix (first opcode byte 0x62 in 64-bit mode, after
# at most segment/address-size prefixes) covers zmm, mask registers, xmm16-31 and EVEX-encoded
# xmm/ymm forms alike. The check also requires that some EVEX code be found in the _avx512
# functions, so that it cannot pass by failing to see any.
# Usage: scripts/check-isa.sh FILE...   (exit 0: clean; 1: AVX-512 outside dispatch; 2: usage)
set -euo pipefail
(($# > 0)) || { echo "usage: $0 FILE..." >&2; exit 2; }
command -v objdump >/dev/null || { echo "check-isa: objdump (binutils) is needed" >&2; exit 2; }
status=0
for f in "$@"; do
    [[ -f "$f" ]] || { echo "check-isa: $f: no such file" >&2; exit 2; }
    # objdump -d -w: one line per instruction, "addr:<TAB>bytes<TAB>mnemonic operands"
    report=$(objdump -d -w "$f" | awk -F'\t' '
        /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
        NF >= 3 {
            n = split($2, b, " "); i = 1
            while (i <= n && b[i] ~ /^(26|2e|36|3e|64|65|67)$/) i++
            if (i <= n && b[i] == "62") evex[fn]++
        }
        END { for (g in evex) print evex[g] "\t" g }' | sort -t$'\t' -k2)
    inside=$(awk -F'\t' '$2 ~ /_avx512/' <<< "$report" | wc -l)
    outside=$(awk -F'\t' '$2 !~ /_avx512/' <<< "$report")
    if [[ -n "$outside" ]]; then
        echo "FAIL: $f: AVX-512 (EVEX) instructions outside run-time dispatched functions:"
        awk -F'\t' '{ printf "  %6d  %s\n", $1, $2 }' <<< "$outside"
        status=1
    elif ((inside == 0)); then
        echo "FAIL: $f: no EVEX instruction found even in the *_avx512 kernels: the check sees nothing"
        status=1
    else
        echo "ok: $f: AVX-512 only in $inside dispatched functions:"
        awk -F'\t' '{ printf "  %6d  %s\n", $1, $2 }' <<< "$report"
    fi
done
exit $status
