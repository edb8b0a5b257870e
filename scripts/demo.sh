#!/usr/bin/env bash
# Builds stockade and runs the demo (examples/demo.sh): what a jailed program can and cannot do.
# Needs root. BUILD_DIR chooses the build directory (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec examples/demo.sh
