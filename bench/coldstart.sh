#!/usr/bin/env bash
# Cold-start benchmark (see bench/coldstart.py). Usage: bash bench/coldstart.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
bash scripts/install-deps.sh
bash functions/guests/build.sh >/dev/null
cargo build --release --quiet -p weft-cli
python3 bench/coldstart.py "$@"
