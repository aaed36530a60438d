# Sourced by the demos' `run` scripts: installs what a demo needs on a fresh
# machine (the guest toolchains, matplotlib for the plot), builds the wasm
# guests, and picks the weft binary ($WEFT_BIN, else a release build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"

bash "$root/scripts/install-deps.sh" guests >&2
if ! python3 -c "import matplotlib" >/dev/null 2>&1; then
  echo "installing matplotlib (pip), for the report's plot" >&2
  python3 -m pip install -q matplotlib >&2
fi
bash "$root/functions/guests/build.sh" >/dev/null
if [ -z "${WEFT_BIN:-}" ]; then
  echo "building weft (release; the first build takes several minutes)" >&2
  (cd "$root" && cargo build --release -q -p weft-cli)
  export WEFT_BIN="$CARGO_TARGET_DIR/release/weft"
fi
