#!/usr/bin/env bash
# Configures and builds stockade into build/ (override with BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTOCKADE_TESTS=ON "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
