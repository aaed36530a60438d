#!/usr/bin/env bash
# Cold-start benchmark (see bench/coldstart.py). Usage: bash bench/coldstart.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh
python3 bench/coldstart.py "$@"
