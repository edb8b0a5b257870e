#!/usr/bin/env bash
# Installs every Debian package stockade needs to build, test and benchmark.
# Usage: scripts/install-deps.sh [--build-only | --fuzz]   (--fuzz adds clang 16 for scripts/fuzz.sh)
set -euo pipefail
build_pkgs=(g++ cmake make pkg-config libseccomp-dev libcap-dev libaudit-dev libauparse-dev
  libcap-ng-dev libmd-dev libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev libtomlplusplus-dev libcli11-dev
  nlohmann-json3-dev libfmt-dev catch2 clang-format)
test_pkgs=(iproute2 nftables auditd iperf3 hyperfine bubblewrap firejail socat strace python3
  procps util-linux)
# Only scripts/fuzz.sh needs these (clang 14 cannot compile std::expected from libstdc++ 12).
fuzz_pkgs=(clang-16 libclang-rt-16-dev)
pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--build-only" ] || pkgs+=("${test_pkgs[@]}")
[ "${1:-}" = "--fuzz" ] && pkgs+=("${fuzz_pkgs[@]}")
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: needs root to run apt-get; run it with sudo" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${pkgs[@]}"
