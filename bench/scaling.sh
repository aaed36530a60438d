#!/usr/bin/env bash
# Step-load scaling run with a plot (see bench/scaling.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
bash scripts/install-deps.sh
bash functions/guests/build.sh >/dev/null
cargo build --release --quiet -p weft-cli
python3 -c "import matplotlib" 2>/dev/null || pip install --quiet matplotlib
python3 bench/scaling.py
