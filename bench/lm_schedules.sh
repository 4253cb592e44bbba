#!/usr/bin/env bash
# Sparse LSTM language model: dense training against the three sparse schedules of `frugal lm train`
# (sparse-dense: sparse epochs then dense ones, the paper's mixed schedule; alternating; decaying),
# Zaremba's medium model (2 x H units, T 35, B 20, dropout 0.5) on the Brown corpus, the structured
# backward at drop D. The four runs go side by side, one thread each, so they share the machine
# alike; training time is reported as wall time and as the process's CPU time (the figure that
# other load on the cores inflates least). Validation perplexity on VAL chunks every half epoch (the
# learning curves), test perplexity on the whole test split. Prints a table and writes the curves of
# every run against CPU time and against epochs into one plot (gnuplot).
#
#   bash bench/lm_schedules.sh [FRUGAL_BINARY] [OUT_DIR] [EPOCHS] [CHUNKS_PER_EPOCH] [HIDDEN] [DROP] [DENSE_EPOCHS]
#   (defaults: build/frugal lm-schedules 6 0 650 0.8 2; CHUNKS 0 = the whole training split per epoch;
#    fewer chunks per epoch read successive windows of the split)
#
# RUNS may also name warmN-sparse-dense (--dense-first N: N dense epochs before the sparse ones,
# then the dense tail), and any sparse run as NAME@DROP to run it at another drop than D (e.g.
# RUNS="dense warm1-sparse-dense warm2-sparse-dense@0.5"); warmN-threshold is the same with the
# threshold variant (Zhu et al. 2016: |dG| < TAU zeroed, default TAU=4e-6; warmN-threshold@X at
# tau X) in place of the structured backward.
# REF_DENSE=FILE.json takes dense from an earlier run of this script with the same arguments (its
# FILE.csv beside it) instead of training it again; the table checks that the model, the epochs
# and every epoch's learning rate agree.
# BRANCH=1 trains the warm-up epochs once: dense writes a checkpoint after every epoch
# (OUT/dense-ck-N.safetensors) and each warmN-sparse-dense run starts when dense's epoch N is
# written, resuming from it (--resume: bit for bit the epochs a whole run would have trained, the
# first N reported with dense's own figures), so only the epochs after N run beside dense's.
# Each run's progress (a line every few seconds) and per-epoch lines go to OUT/RUN.log.
# NICE=N runs them at that nice level (e.g. -5 on a machine shared with other work).
# RUNS="dense sparse-dense" runs a subset (default: all four); DECAY_AFTER and LR_DECAY set the
# learning-rate schedule (defaults 4 and 1/1.2: Zaremba's factor); EVERY=N adds a validation point
# every N training chunks (default: half an epoch when CHUNKS_PER_EPOCH is given, else none).
# Needs the Brown corpus (bash scripts/fetch-data.sh brown); gnuplot for the plot.
set -euo pipefail
F=${1:-build/frugal}
OUT=${2:-lm-schedules}
E=${3:-6}
N=${4:-0}
H=${5:-650}
D=${6:-0.8}
DE=${7:-2}
VAL=${VAL:-40}
mkdir -p "$OUT"
bin="$OUT/frugal.bin" # a copy: a rebuild while the runs go on does not touch them
cp "$F" "$bin"
every=${EVERY:-$(( (N + 1) / 2 ))}

common=(--hidden "$H" --layers 2 --steps 35 --batch 20 --dropout 0.5 --epochs "$E" --decay-after "${DECAY_AFTER:-4}"
        --max-batches "$N" --eval-batches "$VAL" --test-batches 0 --threads 1)
[[ -n "${LR_DECAY:-}" ]] && common+=(--lr-decay "$LR_DECAY")
[[ "$every" -gt 0 ]] && common+=(--eval-every "$every")
echo "command: RUNS=\"${RUNS:-}\" REF_DENSE=${REF_DENSE:-} BRANCH=${BRANCH:-0} TAU=${TAU:-} VAL=$VAL EVERY=${EVERY:-} DECAY_AFTER=${DECAY_AFTER:-} LR_DECAY=${LR_DECAY:-} NICE=${NICE:-0} bash bench/lm_schedules.sh $F $OUT $E $N $H $D $DE   ($(date -u '+%F %H:%M') UTC, $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "frugal lm train ${common[*]} [--sparse $D --schedule S --dense-epochs $DE|1]"
declare -A extra=(
    [dense]=""
    [sparse-dense]="--sparse $D --schedule sparse-dense --dense-epochs $DE"
    [alternating]="--sparse $D --schedule alternating --dense-epochs 1"
    [decaying]="--sparse $D --schedule decaying --dense-epochs 1"
)
read -r -a runs <<<"${RUNS:-dense sparse-dense alternating decaying}"
[[ " ${runs[*]} " == *" dense "* ]] || { echo "RUNS must include dense (the reference)" >&2; exit 2; }
if [[ -n "${REF_DENSE:-}" ]]; then
    [[ -f "$REF_DENSE" && -f "${REF_DENSE%.json}.csv" ]] || { echo "REF_DENSE=$REF_DENSE: expected a dense.json with its .csv beside it" >&2; exit 2; }
    cp "$REF_DENSE" "$OUT/dense.json"
    cp "${REF_DENSE%.json}.csv" "$OUT/dense.csv"
fi
[[ "${BRANCH:-0}" == 1 && -n "${REF_DENSE:-}" ]] && { echo "BRANCH=1 needs dense trained in this run (no REF_DENSE)" >&2; exit 2; }
pids=()
started=()
dense_pid=
# dense first: with BRANCH=1 the warm-up runs wait for its checkpoints
for r in dense "${runs[@]/#dense/}"; do
    [[ -z $r ]] && continue
    [[ $r == dense && -n "${REF_DENSE:-}" ]] && continue
    name=${r%@*}
    resume=
    if [[ $name =~ ^warm([0-9]+)-(sparse-dense|threshold)$ ]]; then
        args="--dense-first ${BASH_REMATCH[1]} --sparse $D --schedule sparse-dense --dense-epochs $DE"
        [[ ${BASH_REMATCH[2]} == threshold ]] && args=${args/--sparse $D/--variant threshold --tau ${TAU:-4e-6}}
        [[ "${BRANCH:-0}" == 1 ]] && resume="$OUT/dense-ck-${BASH_REMATCH[1]}.safetensors"
    elif [[ $name == dense && "${BRANCH:-0}" == 1 ]]; then
        args="--checkpoint $OUT/dense-ck-{epoch}.safetensors"
    else
        [[ -n "${extra[$name]+x}" ]] || { echo "unknown run '$r' (expected ${!extra[*]}, warmN-sparse-dense or warmN-threshold, a sparse one optionally @DROP or @TAU)" >&2; exit 2; }
        args=${extra[$name]}
    fi
    [[ $r == *@* ]] && args=${args/--sparse $D/--sparse ${r#*@}} && args=${args/--tau ${TAU:-4e-6}/--tau ${r#*@}}
    if [[ -n $resume ]]; then
        (
            while [[ ! -f $resume ]]; do # written atomically: there means complete
                kill -0 "$dense_pid" 2>/dev/null || { echo "dense ended without writing $resume" >"$OUT/$r.log"; exit 1; }
                sleep 5
            done
            # shellcheck disable=SC2086
            exec nice -n "${NICE:-0}" "$bin" lm train "${common[@]}" $args --resume "$resume" --json "$OUT/$r.json" \
                --trace "$OUT/$r.csv" >"$OUT/$r.log" 2>&1
        ) &
    else
        # shellcheck disable=SC2086
        nice -n "${NICE:-0}" "$bin" lm train "${common[@]}" $args --json "$OUT/$r.json" --trace "$OUT/$r.csv" >"$OUT/$r.log" 2>&1 &
    fi
    pids+=($!)
    started+=("$r")
    [[ $r == dense ]] && dense_pid=$!
done
fail=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "run ${started[$i]} failed:"; tail -5 "$OUT/${started[$i]}.log"; fail=1; }
done
[[ $fail == 0 ]] || exit 1
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "${runs[@]}" <<'PY'
import json, sys
out, runs = sys.argv[1], sys.argv[2:]
R = {r: json.load(open(f"{out}/{r}.json")) for r in runs}
d = R["dense"]
for r in runs:  # a reference dense run from elsewhere must be the same model and learning-rate schedule
    x = R[r]
    same = all(x[k] == d[k] for k in ("data", "hidden", "layers", "steps", "batch", "dropout"))
    same = same and [e["lr"] for e in x["epochs"]] == [e["lr"] for e in d["epochs"]]
    if not same:
        sys.exit(f"run {r} and dense differ in the model, the epochs or the learning rates: not comparable")
print("| run | drops per epoch | test ppl | vs dense | final valid ppl | train wall s | train CPU s | CPU vs dense | LSTM backward s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in runs:
    x = R[r]
    drops = " ".join(f"tau {e['tau']:.2g} ({100*e['gate_sparsity']:.0f} % zeroed)" if e.get("tau", 0) > 0
                     else f"{e['drop']:.2f}" for e in x["epochs"])
    lstm = sum(e["lstm_backward_seconds"] for e in x["epochs"])
    if x.get("resumed_from"):
        drops += f" (first {sum(e.get('restored', 0) for e in x['epochs'])} from dense's checkpoint)"
    print(f"| {r} | {drops} | {x['test_ppl']:.2f} | {100*(x['test_ppl']/d['test_ppl']-1):+.1f} % | "
          f"{x['epochs'][-1]['valid_ppl']:.2f} | {x['train_seconds']:.0f} | {x['train_cpu_seconds']:.0f} | "
          f"{100*(x['train_cpu_seconds']/d['train_cpu_seconds']-1):+.1f} % | {lstm:.0f} |")
PY
if command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal pngcairo size 1100,500 noenhanced
set output "$OUT/curves.png"
set datafile separator ","
set multiplot layout 1,2 title "LSTM LM on Brown (2 x $H, T 35, B 20, dropout 0.5): validation perplexity"
set logscale y
set grid
set key bottom left
set xlabel "training CPU seconds (1 thread each)"
set ylabel "validation perplexity"
plot for [r in "${runs[*]}"] "$OUT/".r.".csv" using 3:4 skip 1 with linespoints title r
set xlabel "epochs"
plot for [r in "${runs[*]}"] "$OUT/".r.".csv" using 1:4 skip 1 with linespoints title r
unset multiplot
GP
    echo "plot: $OUT/curves.png"
fi
