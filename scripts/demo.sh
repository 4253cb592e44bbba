#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds, fetches the data sets once and runs
# `frugal demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
bash scripts/fetch-data.sh mnist fashion brown
"${FRUGAL_BUILD:-build}/frugal" demo "$@"
