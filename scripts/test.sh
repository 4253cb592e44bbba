#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, builds and runs the test suite (ctest).
# The data sets are fetched too: the end-to-end tests train on MNIST, Fashion-MNIST and the Brown corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
bash scripts/fetch-data.sh mnist fashion brown
cd "${FRUGAL_BUILD:-build}" && ctest --output-on-failure -j1 "$@"
