#!/usr/bin/env bash
# Builds stockade and runs the default test suite: unit tests, and as root the tests that use
# real namespaces on this kernel. Slow tests are left out (run them with: scripts/test.sh --slow).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# House style is part of the build: a formatting diff fails the run.
if command -v clang-format >/dev/null 2>&1; then
  git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run -Werror
else
  echo "test: clang-format not installed: formatting not checked" >&2
fi
labels=(-LE slow)
[ "${1:-}" = "--slow" ] && labels=()
if [ "$(id -u)" -ne 0 ]; then
  echo "test: not root: the [root] tests will skip and say so" >&2
fi
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure "${labels[@]}"
