#!/usr/bin/env bash
# Dubbo and Bolt through weft vs direct, with the proxy on a core of its own:
# rpc-load and rpc-echo share one core, weft's gateway role (1 worker) has the
# other. bench/proxy.sh runs everything on shared cores, where a third busy
# process costs the client and server CPU; this isolates what the proxy can
# carry. Rounds interleave direct and proxied runs, and alternate the cores
# (client and server on core 0 and weft on core 1, then the other way round):
# on a shared host one virtual core can be slower than the other for minutes,
# and only the proxied runs use the second core. The medians, their ratio and
# the median of the per-round ratios are printed. Needs 2 cores. Usage:
#   bash bench/rpc_pinned.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
secs="${1:-5}"
rounds="${2:-5}"
cargo build --release --quiet -p weft-bench
bin="$CARGO_TARGET_DIR/release"
source bench/lib.sh

"$bin/bare-hello" 127.0.0.1:0 > "$work/http" & pids+=($!)
wait_file "$work/http"
# echo$c: the server on core c; weft$c: weft on the other core, in front of it.
for c in 0 1; do
  taskset -c "$c" "$bin/rpc-echo" 127.0.0.1:0 > "$work/echo$c" & pids+=($!)
  wait_file "$work/echo$c"
  taskset -c "$((1 - c))" "$bin/gateway-to" "$(cat "$work/http")" 1 "$(cat "$work/echo$c")" > "$work/weft$c" & pids+=($!)
  wait_file "$work/weft$c"
done
# load PROTOCOL ADDR CORE
load() { taskset -c "$3" "$bin/rpc-load" "$1" "$2" 8 32 "$secs" | grep -o 'rps=[0-9]*' | cut -d= -f2; }

echo "RPC through weft (own core) vs direct: ${secs}s x $rounds rounds, $(date -u +%FT%TZ)"
for r in $(seq "$rounds"); do
  c=$(((r - 1) % 2)) # the client's and the server's core this round
  for p in dubbo bolt; do
    echo "$p-direct $(load "$p" "$(cat "$work/echo$c")" "$c")" >> "$work/results"
    echo "$p-weft $(load "$p" "$(cat "$work/weft$c")" "$c")" >> "$work/results"
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case, rps = line.split()
    rows.setdefault(case, []).append(float(rps))
med = {k: statistics.median(v) for k, v in rows.items()}
for k, v in rows.items():
    print(f"{k:13} median {med[k]:10.0f} req/s   runs {' '.join(f'{x:.0f}' for x in v)}")
# Each round runs direct and through weft back to back, so a per-round ratio
# cancels the host's slow drifts in speed; its median is the steadier figure.
for p in ("dubbo", "bolt"):
    rounds = [w / d for w, d in zip(rows[p + "-weft"], rows[p + "-direct"])]
    print(f"{p}-weft/{p}-direct = {med[p + '-weft'] / med[p + '-direct']:.2f}  (target >= 0.8)"
          f"   per-round median {statistics.median(rounds):.2f}, rounds {' '.join(f'{x:.2f}' for x in rounds)}")
PY
