#!/usr/bin/env bash
# The sidecar's memory under a long stream of malformed Dubbo and Bolt frames
# (see bench/malformed.py): weft's gateway role with the captured interfaces
# routed to rpc-echo. Prints RSS after the first and the last round and their
# ratio. Usage: bash bench/malformed.sh [rounds] [connections-per-round]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
cargo build --release --quiet -p weft-bench
bin="$CARGO_TARGET_DIR/release"
source bench/lib.sh

"$bin/bare-hello" 127.0.0.1:0 > "$work/http" & pids+=($!)
"$bin/rpc-echo" 127.0.0.1:0 > "$work/echo" & pids+=($!)
wait_file "$work/http"; wait_file "$work/echo"
"$bin/gateway-to" "$(cat "$work/http")" 1 "$(cat "$work/echo")" > "$work/weft" & gw=$!; pids+=($gw)
wait_file "$work/weft"
echo "malformed RPC input against weft's gateway, $(date -u +%FT%TZ)"
python3 bench/malformed.py "$(cat "$work/weft")" "$gw" "${1:-10}" "${2:-600}"
