#!/usr/bin/env bash
# Step-load scaling run with a plot (see bench/scaling.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh
python3 -c "import matplotlib" 2>/dev/null || pip install --quiet matplotlib
python3 bench/scaling.py
