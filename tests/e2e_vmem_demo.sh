#!/usr/bin/env bash
# End-to-end check of `frugal demo`'s vmem part (issue 3) on the real Fashion-MNIST images: the
# budget sits below none's smallest budget, none is refused naming its smallest budget, the
# policy trains in it with a lower peak and average than none, the loss line and the plot are
# there. A short run (1 LeNet epoch, 30 vmem iterations, ~15 s on 2 cores); the data must have
# been fetched (scripts/fetch-data.sh). Usage: e2e_vmem_demo.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"

# the other parts have their own checks (e2e_demo_lstm, e2e_demo_rl, e2e_demo_vit)
"$frugal" demo --epochs 1 --vmem-iters 30 --no-lstm --no-rl --no-vit --threads 2 --quiet >out.txt 2>&1 ||
    fail "frugal demo exited $?"

grep -q '^test accuracy: ' out.txt || fail "the LeNet part's 'test accuracy:' line is missing"
grep -q '^summary (vmem)' out.txt || fail "no vmem summary"
# none is refused at the budget with the library's message naming its smallest budget
grep -Eq '^  none +does not fit, as expected: .*smallest budget that would work is' out.txt ||
    fail "none was not refused at the budget with the smallest budget named"
grep -Eq '^  budget +[0-9.]+ [KMG]iB; none needs [0-9.]+ [KMG]iB and does not fit' out.txt || fail "no budget line"
# the policy's peak and average are below none's: the reductions are negative percentages
for what in peak average; do
    line=$(grep -E "^  $what " out.txt) || fail "no $what line"
    red=$(sed -E 's/.*\(([-+][0-9.]+)%.*/\1/' <<<"$line")
    awk -v r="$red" 'BEGIN { exit !(r < -10) }' || fail "$what reduction $red% is not below -10%: $line"
done
grep -Eq '^  iteration +[0-9.]+ s under .* vs [0-9.]+ s for the oracle \([-+][0-9.]+%; medians\)' out.txt ||
    fail "no iteration-time line"
grep -Eq '^  loss +[0-9.]+ at the first iteration, [0-9.]+ over the last [0-9]+; the first [0-9]+ ' out.txt ||
    fail "no loss line"
if command -v gnuplot >/dev/null; then
    grep -q '^  plot           demo-vmem.png' out.txt || fail "the memory plot was not drawn"
    [[ "$(head -c 8 demo-vmem.png | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] || fail "demo-vmem.png is not a PNG"
else
    echo "gnuplot is not installed: the plot check is skipped"
fi
grep -E '^  (budget|none|peak|average|iteration|loss) ' out.txt
echo "ok: frugal demo's vmem part"
