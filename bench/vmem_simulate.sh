#!/usr/bin/env bash
# The `frugal vmem simulate` figures of docs/BENCHMARKS.md ("vmem simulate"): the paper's
# networks on a roofline Titan X with PCIe 3, and VGG-16 at batch 256 on newer GPUs. Predictions
# (dry-run plans replayed on a model), deterministic; each line is prefixed with the arguments
# after --model. usage: bench/vmem_simulate.sh [FRUGAL_BINARY]   (default build/frugal); ~1 min
set -euo pipefail
F=${1:-build/frugal}
echo "# $0 $F ($(date -u +%F))"
while read -r args; do
    # shellcheck disable=SC2086
    "$F" vmem simulate --model $args | grep -E "^(memory needed|oracle|none |all |conv |dyn |plan )" |
        cut -c1-180 | sed "s/^/[$args] /"
done <<'LIST'
alexnet --batch 128
overfeat --batch 128
googlenet --batch 128
vgg16 --batch 128
vgg16 --batch 256
vgg16 --batch 256 --device-mem 16G
vgg16 --batch 256 --device-mem 8G
vgg16 --batch 256 --gpu v100 --link pcie3
vgg16 --batch 256 --gpu a100 --link pcie4
vgg16 --batch 256 --gpu h100 --link pcie5
LIST
