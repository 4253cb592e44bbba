#!/usr/bin/env bash
# End-to-end checks of how the CLI writes its outputs and stops, across commands:
#  - reports, CSVs and plots are written to a new "<out>.tmp.<pid>" and renamed: a symbolic link
#    planted under the temporary name (the old "<out>.tmp", or this process's "<out>.tmp.<pid>")
#    is not written through, and someone else's "<out>.tmp" is not clobbered;
#  - an output naming a directory, a name ending in '/', a symbolic link or a pipe is a usage error
#    naming the option before any work (a rename would replace the link or the node itself);
#  - train: --save onto the file --resume keeps checkpointing to is refused (it replaced the
#    checkpoint with bare weights), --resume with no epochs left is refused, SIGTERM stops the run
#    as Ctrl-C does (exit 130, a checkpoint written, --save and --json said not written);
#  - usage errors raised deep in a command point at its own --help; numbers out of range say so;
#    a capacity of 0 and a --data-dir that is not a directory are usage errors;
#  - JSON: control bytes in strings are escaped, NaN numbers are null (strictly parsed by node).
# A pipe stands for a device: a rename over /dev/null by an unfixed build would replace it.
# ~30 s on 2 cores. Skipped (exit 77) without MNIST for the train part. Usage: e2e_cli_outputs.sh PATH/TO/frugal
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"
# expect EXIT TEXT ARGS...: frugal ARGS exits EXIT and prints TEXT (a fixed string; "" = anything)
expect() {
    local want_rc=$1 want=$2
    shift 2
    local rc=0
    timeout 60 "$frugal" "$@" >out.txt 2>&1 || rc=$?
    [[ $rc == "$want_rc" ]] || fail "'$*' exited $rc, expected $want_rc"
    [[ -z $want ]] || grep -qF -- "$want" out.txt || fail "'$*' does not say '$want'"
}
sim=(vmem simulate --model lenet --batch 8)

# temporary names: a link at the old one, someone's file at it, a link at this process's new one
echo precious >victim.txt
ln -s "$work/victim.txt" sim.json.tmp
echo keep >sim.csv.tmp
expect 0 "" "${sim[@]}" --json sim.json --steps sim.csv
[[ $(cat victim.txt) == precious ]] || fail "--json wrote through the symbolic link sim.json.tmp"
[[ $(cat sim.csv.tmp) == keep ]] || fail "--steps clobbered someone's sim.csv.tmp"
[[ -f sim.json && ! -L sim.json ]] && grep -q '"policy"' sim.json || fail "sim.json is not the report"
[[ -f sim.csv && ! -L sim.csv ]] && grep -q ',compute$' sim.csv || fail "sim.csv is not the steps CSV"
# exec keeps the pid, so the link is at the exact temporary name
bash -c 'ln -s "$1/victim.txt" "pid.json.tmp.$$" && exec "$2" vmem simulate --model lenet --batch 8 --json pid.json' \
    _ "$work" "$frugal" >out.txt 2>&1 || fail "vmem simulate with a link at pid.json.tmp.<pid> exited $?"
[[ $(cat victim.txt) == precious ]] || fail "--json wrote through the symbolic link pid.json.tmp.<pid>"
[[ -f pid.json && ! -L pid.json ]] && grep -q '"policy"' pid.json || fail "pid.json is not the report"
compgen -G "pid.json.tmp*" >/dev/null && fail "a temporary file or the planted link was left behind"
if command -v gnuplot >/dev/null; then
    # gnuplot opens its output by name: the temporary must be ours before it does
    bash -c 'ln -s "$1/victim.txt" "c.png.tmp.$$" && ln -s "$1/victim.txt" "c.png.tmp-$$" &&
             exec "$2" rl train --env cartpole --frames 2000 --quiet --plot c.png' _ "$work" "$frugal" >out.txt 2>&1 ||
        fail "rl train --plot with links at the temporary names exited $?"
    [[ $(cat victim.txt) == precious ]] || fail "gnuplot wrote the plot through a symbolic link at its temporary name"
    [[ -f c.png && ! -L c.png && "$(head -c 4 c.png | od -An -c | tr -d ' ')" == '211PNG' ]] ||
        fail "c.png is not a PNG"
fi

# outputs that are no regular file: refused before any work, naming the option
mkdir adir
ln -s victim.txt link.json
mkfifo fifo
expect 2 "--json: adir is a directory" "${sim[@]}" --json adir
expect 2 "--json: adir/: names a directory" "${sim[@]}" --json adir/
[[ -z $(ls -A adir) ]] || fail "--json adir/ left a file in adir"
expect 2 "--json: link.json is a symbolic link" "${sim[@]}" --json link.json
[[ -L link.json && $(cat victim.txt) == precious ]] || fail "--json link.json replaced the link or wrote its file"
expect 2 "--steps: fifo is a pipe" "${sim[@]}" --steps fifo
[[ -p fifo ]] || fail "--steps fifo replaced the pipe"

# numbers and help pointers
expect 2 "--seed: 99999999999999999999 is out of range" train --seed 99999999999999999999
expect 2 "--input '99999999999999999999x28': each side at most" model info lenet --input 99999999999999999999x28
expect 2 "run 'frugal train --help'" train --policy most
expect 2 "run 'frugal train --help'" train --trace t.csv
expect 2 "run 'frugal vmem report --help'" vmem report --model lenet --batch 8 --policies bogus
# a capacity of 0 stood for "unlimited" in train and "refused" in vmem simulate: refused everywhere
expect 2 "--device-mem: '0' is zero; a capacity must be > 0" train --device-mem 0
expect 2 "--host-mem: '0' is zero" vmem report --model lenet --batch 8 --host-mem 0
expect 2 "--device-mem: '0' is zero" "${sim[@]}" --device-mem 0
# a --data-dir that is not there was reported as every data set missing, exit 0
expect 2 "--data-dir $work/nowhere: No such file or directory" data --data-dir "$work/nowhere"
expect 2 "--data-dir victim.txt: not a directory" data --data-dir victim.txt
expect 0 "mnist    missing" data --data-dir adir
# a link paced to nothing never finished
report=(vmem report --model lenet --batch 8 --policies all)
expect 2 "--link-gbps 1e-300: expected 0 (unpaced) or 0.001" "${report[@]}" --link-gbps 1e-300
expect 2 "--link-latency-us 1e+12: expected 0 to 1e6" "${report[@]}" --link-gbps 1 --link-latency-us 1e12

# the JSON writer: control bytes in a string are \u00XX escapes (0x10-0x1f too), a number that is
# not finite is null (lstm bench with the dense variant only: the speedups over structured are NaN);
# JSON.parse refuses a raw control byte and a bare nan alike
ctl=$'ctl\x01\x10\x1f.json'
expect 0 "" lstm bench --hidden 16 --batch 2 --steps 2 --layers 1 --block 8 --drop 0.5 --iters 1 --warmup 0 \
    --threads 1 --variants dense --no-peer --json "$ctl"
node -e '
const path = process.argv[1];
const r = JSON.parse(require("fs").readFileSync(path, "utf8"));
const bad = (m) => { console.error("FAIL: lstm bench --json: " + m); process.exit(1); };
if (!r.command.endsWith(" --json " + path)) bad("command " + JSON.stringify(r.command));
for (const k of ["kept_fraction", "structured_backward_speedup", "meprop_backward_speedup"])
    if (r[k] !== null || r.sweep[0][k] !== null) bad(k + " is not null: " + r[k] + ", " + r.sweep[0][k]);
' "$ctl" || fail "the JSON of a file name with control bytes and of NaN numbers"

if [[ ! -f "$data/mnist-images-idx3-ubyte" && ! -f "$data/mnist-train-images-idx3-ubyte" ]]; then
    echo "SKIP: no mnist data in $data (scripts/fetch-data.sh)"
    exit 77
fi
train=(train --threads 2 --quiet)
# the reviewer's reproducer: a link at the report's old temporary name
ln -s "$work/victim.txt" o2.json.tmp
expect 0 "test accuracy" "${train[@]}" --epochs 0 --json o2.json
[[ $(cat victim.txt) == precious ]] || fail "train --json wrote through the symbolic link o2.json.tmp"
expect 2 "--save: adir/: names a directory" "${train[@]}" --epochs 0 --save adir/
grep -q "data:" out.txt && fail "--save adir/ was refused only after loading the data"
expect 2 "--plot: fifo is a pipe" "${train[@]}" --epochs 1 --policy all --plot fifo
[[ -p fifo ]] || fail "--plot fifo replaced the pipe"

# --resume X keeps checkpointing to X: --save X would replace the checkpoint with weights
expect 0 "" "${train[@]}" --epochs 1 --checkpoint rs.st
cp rs.st rs0.st
expect 2 "--save rs.st names the file --resume goes on checkpointing to" \
    "${train[@]}" --resume rs.st --epochs 2 --save rs.st
cmp -s rs.st rs0.st || fail "the refused --save changed the checkpoint"
expect 2 "rs.st has 1 epochs already: none left to train" "${train[@]}" --resume rs.st --epochs 1 --save w.st
[[ ! -e w.st ]] || fail "--resume with no epochs left wrote --save"
# --resume through a symbolic link: its checkpoints would replace the link, refused before training
ln -s rs.st rs-link.st
expect 2 "--resume: checkpoints go to the resumed file" "${train[@]}" --resume rs-link.st --epochs 2
grep -q "data:" out.txt && fail "--resume through a link was refused only after loading the data"
expect 0 "" "${train[@]}" --resume rs-link.st --epochs 2 --checkpoint rs2.st

# SIGTERM (timeout, docker stop, SLURM) stops the run as Ctrl-C does: a checkpoint, exit 130
"$frugal" "${train[@]}" --resume rs.st --epochs 30 --save w.st --json r.json >out.txt 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q '^epoch' out.txt && break; sleep 0.2; done
kill -TERM $pid 2>/dev/null || true # (unless the run ended already)
rc=0
wait $pid || rc=$?
[[ $rc == 130 ]] || fail "train stopped by SIGTERM exited $rc, expected 130"
grep -q "checkpoint written to rs.st" out.txt || fail "SIGTERM: no checkpoint written"
grep -q -- "--save and --json not written" out.txt || fail "SIGTERM: does not say --save and --json were not written"
cmp -s rs.st rs0.st && fail "SIGTERM: rs.st is still the first epoch's checkpoint"
[[ ! -e w.st && ! -e r.json ]] || fail "SIGTERM: --save or --json written for an unfinished run"
echo "ok: CLI outputs"
