#!/usr/bin/env bash
# Fuzzes the policy loader (fuzz/policy_fuzz.cpp) or the audit assembly path
# (fuzz/audit_fuzz.cpp) with libFuzzer for SECONDS (default 600).
# Usage: scripts/fuzz.sh [SECONDS] [policy|audit]
# Builds into build-fuzz/ (BUILD_DIR overrides) with clang 16: clang 14 cannot compile
# std::expected from libstdc++ 12 (it lacks P0848, conditionally trivial destructors), and clang
# 16 still reports __cpp_concepts 201907, which hides <expected>, hence the -D below. The corpus,
# crash inputs and temp files stay in the build dir. Not part of the default test run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
target=${2:-policy}
case $target in policy | audit) ;; *) echo "fuzz: unknown target '$target' (policy, audit)" >&2; exit 2 ;; esac
build_dir=${BUILD_DIR:-build-fuzz}
cc=${FUZZ_CC:-clang-16}
cxx=${FUZZ_CXX:-clang++-16}
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz: $cxx not found; install it with scripts/install-deps.sh --fuzz" >&2
  exit 1
fi
flags="-fsanitize=fuzzer-no-link -fsanitize-ignorelist=$PWD/fuzz/ignorelist.txt"
flags+=" -U__cpp_concepts -D__cpp_concepts=202002L"
CC=$cc CXX=$cxx cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTOCKADE_TESTS=OFF -DSTOCKADE_FUZZ=ON -DSTOCKADE_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target "${target}_fuzz"

# The seeds are copied, so the fuzzer's new inputs never land in the repo.
corpus=$build_dir/corpus-$target
mkdir -p "$corpus" "$build_dir/artifacts" "$build_dir/tmp"
if [ "$target" = policy ]; then
  cp examples/*.toml tests/policies/good/*.toml "$corpus/"
else
  # One seed per recorded event, and the whole log.
  cp tests/audit/*.log "$corpus/"
  awk -v d="$corpus" '{ print > (d "/event-" NR) }' tests/audit/recorded.log
fi
echo "fuzz: running ${target}_fuzz for ${seconds}s (corpus $corpus)" >&2
status=0
symbolizer=$(command -v llvm-symbolizer-16 llvm-symbolizer-14 llvm-symbolizer | head -n1 || true)
export UBSAN_OPTIONS=print_stacktrace=1${symbolizer:+:external_symbolizer_path=$symbolizer}
export ASAN_OPTIONS=${symbolizer:+external_symbolizer_path=$symbolizer}
export LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp
TMPDIR=$PWD/$build_dir/tmp "$build_dir/fuzz/${target}_fuzz" "$corpus" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$build_dir/artifacts/" 2>&1 | tee "$build_dir/fuzz.log" || status=$?
if ls "$build_dir"/artifacts/* >/dev/null 2>&1; then
  echo "fuzz: FAILED: inputs kept in $build_dir/artifacts/:" >&2
  ls -l "$build_dir/artifacts/" >&2
  exit 1
fi
echo "fuzz: no crash, hang or leak in ${seconds}s; log in $build_dir/fuzz.log" >&2
exit "$status"
