#!/usr/bin/env bash
# Configures and builds frugal (Release) into ${FRUGAL_BUILD:-build}; extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${FRUGAL_BUILD:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
