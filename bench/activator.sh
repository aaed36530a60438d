#!/usr/bin/env bash
# Activator always in the path vs the direct path (see bench/activator.py).
# Usage: bash bench/activator.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh
python3 bench/activator.py "$@"
