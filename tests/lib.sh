# Sourced by the end-to-end scripts (tests/e2e_*.sh), after `set -euo pipefail`:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"
# Sets `frugal` to the absolute path of the binary given as $1 (the scripts cd away), `data` to the
# data directory the CLI reads by default, makes a scratch directory `work` (removed on exit) and
# changes into it. fail MESSAGE prints it and the last command's output (out.txt), and exits 1.
[[ $# -ge 1 && -n $1 ]] || { echo "usage: ${0##*/} PATH/TO/frugal" >&2; exit 2; }
frugal="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
data="${FRUGAL_DATA:-$HOME/.cache/frugal}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; echo "--- output:"; cat out.txt 2>/dev/null || true; exit 1; }
