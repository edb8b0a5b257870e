#!/usr/bin/env bash
# Builds stockade and runs the default test suite: unit tests, and as root the tests that use
# real namespaces on this kernel; then every test that needs no root again under AddressSanitizer
# and UBSan (build-asan/). Slow tests are left out.
# Usage: scripts/test.sh [--slow] [--no-asan]
set -euo pipefail
cd "$(dirname "$0")/.."
labels=(-LE slow)
asan=1
for arg in "$@"; do
  case $arg in
    --slow) labels=() ;;
    --no-asan) asan=0 ;;
    *) echo "test: unknown option '$arg' (use --slow, --no-asan)" >&2; exit 2 ;;
  esac
done
scripts/build.sh
# House style is part of the build: a formatting diff fails the run.
if command -v clang-format >/dev/null 2>&1; then
  git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run -Werror
else
  echo "test: clang-format not installed: formatting not checked" >&2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test: not root: the [root] tests will skip and say so" >&2
fi
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure "${labels[@]}"
if [ "$asan" = 1 ]; then
  echo "test: the tests that need no root, under ASan and UBSan (build-asan/)" >&2
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTOCKADE_SANITIZE=ON -DSTOCKADE_TESTS=ON \
    >/dev/null
  cmake --build build-asan -j"$(nproc)" >/dev/null
  ctest --test-dir build-asan --output-on-failure -L unit
fi
