#!/usr/bin/env bash
# Shared preamble of the main job and the benchmarks: dependencies, the sample
# guests, and a release build of weft (and the given extra packages).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
bash scripts/install-deps.sh
bash functions/guests/build.sh >/dev/null
cargo build --release --quiet -p weft-cli "$@"
