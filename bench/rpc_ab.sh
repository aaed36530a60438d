#!/usr/bin/env bash
# Two builds of weft's gateway role compared on the same RPC load, the way
# bench/rpc_pinned.sh runs it (client and server on core 0, the gateway on
# core 1): req/s and the gateway's CPU per request, rounds alternating A and
# B, per-round B/A ratios and their medians printed. For a change to the RPC
# path, copy `gateway-to` from a build before it (A) and after it (B):
#   bash bench/rpc_ab.sh A_BINARY B_BINARY [dubbo|bolt] [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
usage="usage: bash bench/rpc_ab.sh A_BINARY B_BINARY [dubbo|bolt] [rounds] [seconds]"
a="${1:?$usage}"
b="${2:?$usage}"
protocol="${3:-dubbo}"
rounds="${4:-6}"
secs="${5:-4}"
cargo build --release --quiet -p weft-bench
bin="$CARGO_TARGET_DIR/release"
source bench/lib.sh

"$bin/bare-hello" 127.0.0.1:0 > "$work/http" & pids+=($!)
taskset -c 0 "$bin/rpc-echo" 127.0.0.1:0 > "$work/echo" & pids+=($!)
wait_file "$work/http"; wait_file "$work/echo"
declare -A pid
for v in A B; do
  exe=$a; [ "$v" = B ] && exe=$b
  taskset -c 1 "$exe" "$(cat "$work/http")" 1 "$(cat "$work/echo")" > "$work/$v" & pids+=($!)
  pid[$v]=$!
  wait_file "$work/$v"
done

echo "$protocol through A=$a and B=$b: ${secs}s x $rounds rounds, $(date -u +%FT%TZ)"
for _ in $(seq "$rounds"); do
  for v in A B; do
    t0=$(ticks "${pid[$v]}")
    n=$(taskset -c 0 "$bin/rpc-load" "$protocol" "$(cat "$work/$v")" 8 32 "$secs" | grep -o 'requests=[0-9]*' | cut -d= -f2)
    t1=$(ticks "${pid[$v]}")
    echo "$v $n $((t1 - t0))" >> "$work/results"
  done
done
python3 - "$work/results" "$secs" "$hz" <<'PY'
import statistics, sys
secs, hz = float(sys.argv[2]), float(sys.argv[3])
rps, cpu = {}, {}
for line in open(sys.argv[1]):
    v, n, t = line.split()
    rps.setdefault(v, []).append(int(n) / secs)
    cpu.setdefault(v, []).append(int(t) / hz / int(n) * 1e6)  # µs per request
for name, d, f in (("req/s", rps, ".0f"), ("CPU µs/request", cpu, ".3f")):
    ratios = [b / a for a, b in zip(d["A"], d["B"])]
    print(f"{name:15} A median {statistics.median(d['A']):10{f}}  B median {statistics.median(d['B']):10{f}}"
          f"  B/A per round {' '.join(f'{r:.2f}' for r in ratios)}  median {statistics.median(ratios):.2f}")
PY
