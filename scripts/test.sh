#!/usr/bin/env bash
# The test command: installs what the tests need, builds the sample guests from
# source, then runs format, lint, every test (unit and end-to-end) and the
# demos in their short mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "install dependencies"
bash scripts/install-deps.sh

step "build the sample guests (functions/guests)"
bash functions/guests/build.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

# The demos double as end-to-end tests: short runs on the debug weft the tests
# just built, asserting on their reports (examples/*/README.md).
demo_out="${TMPDIR:-/tmp}/weft-demos"
rm -rf "$demo_out"
step "demo: examples/data-pipeline (short, embedded and Kafka)"
WEFT_BIN="$CARGO_TARGET_DIR/debug/weft" python3 examples/data-pipeline/pipeline.py --short --backend kafka \
  --out "$demo_out/data-pipeline"
step "demo: examples/mini-program (short)"
if [ ! -d examples/mini-program/legacy/node_modules/sofa-rpc-node ]; then
  (cd examples/mini-program/legacy && npm install --no-audit --no-fund --loglevel=error)
fi
WEFT_BIN="$CARGO_TARGET_DIR/debug/weft" python3 examples/mini-program/shop.py --short \
  --out "$demo_out/mini-program"
