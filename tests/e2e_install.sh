#!/usr/bin/env bash
# End-to-end check of the library as a user gets it: `cmake --install` of this build into a fresh
# prefix, then the programs in examples/ compiled against the installed headers and library with
# nothing but `pkg-config --cflags --libs frugal` (with -Werror; spirals also statically, with
# frugal-static, and with the OpenMP start-up hook), and run: spirals trains an MLP
# to >= 95 % and reloads its weights into an inference graph with the same predictions;
# lm_sample reads a checkpoint that `frugal lm train` wrote (the Brown corpus must have been
# fetched) and prints the prime and the words it drew, and names the file when it is not an LSTM
# language model. ~15 s. Usage: e2e_install.sh PATH/TO/frugal (in the build directory).
set -euo pipefail
src=${FRUGAL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"
build=$(dirname "$frugal")
command -v pkg-config >/dev/null || fail "pkg-config is needed (scripts/bootstrap.sh installs it)"

cmake --install "$build" --prefix "$work/prefix" >out.txt 2>&1 || fail "cmake --install exited $?"
pc=$(find "$work/prefix" -name frugal.pc | head -1)
[[ -n $pc && -f "$work/prefix/include/frugal/frugal.h" ]] || fail "no frugal.pc or frugal.h under the prefix"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir frugal)
ls "$libdir"/libfrugal.so* >/dev/null 2>&1 || fail "no shared library in $libdir"
for ex in spirals lm_sample; do
    # shellcheck disable=SC2046  # pkg-config's words are separate arguments
    cc -std=c11 -O2 -Wall -Wextra -Werror "$src/examples/$ex.c" $(pkg-config --cflags --libs frugal) -lm \
        -Wl,-rpath,"$libdir" -o "$ex" >out.txt 2>&1 || fail "examples/$ex.c does not build against the installed library"
done
ldd ./spirals >out.txt 2>&1 || fail "ldd ./spirals exited $?"
grep -q "$libdir/libfrugal.so" out.txt || fail "spirals does not load the installed libfrugal.so"
# statically: frugal-static.pc links libfrugal.a with its OpenMP start-up hook
# shellcheck disable=SC2046
cc -std=c11 -O2 -Wall -Wextra -Werror "$src/examples/spirals.c" $(pkg-config --cflags --libs frugal-static) \
    -o spirals_static >out.txt 2>&1 || fail "examples/spirals.c does not build with pkg-config --libs frugal-static"
ldd ./spirals_static >out.txt 2>&1 || true
! grep -q "libfrugal.so" out.txt || fail "spirals_static loads libfrugal.so"
nm ./spirals_static >out.txt 2>&1 || fail "nm ./spirals_static exited $?"
grep -q " fg_omp_preinit_state$" out.txt || fail "spirals_static lacks the OpenMP start-up hook"
./spirals_static ws.safetensors >out.txt 2>&1 || fail "spirals_static exited $?"
grep -Eq '^training accuracy (0\.9[5-9]|1\.0)' out.txt || fail "spirals_static: training accuracy below 0.95"

./spirals w.safetensors >out.txt 2>&1 || fail "spirals exited $?"
grep -Eq '^training accuracy (0\.9[5-9]|1\.0)' out.txt || fail "spirals: training accuracy below 0.95"
grep -q 'the same predictions' out.txt || fail "spirals: the reloaded weights predict differently"

"$frugal" lm train --hidden 16 --layers 1 --steps 10 --batch 4 --epochs 1 --max-batches 20 --eval-batches 2 \
    --threads 1 --quiet --save lm.safetensors >out.txt 2>&1 || fail "frugal lm train exited $?"
grep -q '^model: lm.safetensors ' out.txt || fail "lm train --save does not name the model it wrote"
./lm_sample lm.safetensors 12 the jury >out.txt 2>&1 || fail "lm_sample exited $?"
[[ "$(head -c 9 out.txt)" == "the jury " ]] || fail "lm_sample does not start with the prime"
n=$(wc -w <out.txt)
(( n > 2 && n <= 14 )) || fail "lm_sample printed $n words, expected the prime's 2 and up to 12 drawn"
set +e
./lm_sample w.safetensors >out.txt 2>&1
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "w.safetensors: no tensor 'embed.weight'" out.txt || fail "lm_sample on spirals' weights: exit $rc, expected 1 naming the file and the tensor"
echo "ok: installed library, examples built with pkg-config and run"
