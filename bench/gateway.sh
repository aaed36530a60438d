#!/usr/bin/env bash
# Warm request throughput and latency, measured in one run with wrk on loopback:
#   bare      a bare hyper hello-world server (the baseline)
#   gw-bare   weft's gateway role routing to that bare server (the gateway's own cost)
#   nginx     nginx proxying to that bare server, 2 workers, upstream keep-alive
#             (a reference proxy on the same machine)
#   instance  straight to a `weft instance` running the hello guest (proxy + wasm)
#   gateway   the full path: `weft up`'s gateway to that instance
# and the ratios between them. Release builds; wrk, servers and proxies share
# the machine's cores. Usage:
#   bash bench/gateway.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
duration="${1:-10}"
conns="${2:-32}"

bash scripts/build-release.sh -p weft-bench
dpkg -s nginx >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
bin="$CARGO_TARGET_DIR/release"
source bench/lib.sh

"$bin/bare-hello" 127.0.0.1:0 > "$work/bare.addr" & pids+=($!)
for _ in $(seq 50); do [ -s "$work/bare.addr" ] && break; sleep 0.1; done
"$bin/gateway-to" "$(cat "$work/bare.addr")" > "$work/gwbare.addr" & pids+=($!)
nginx_port=$(free_port)
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream bare { server $(cat "$work/bare.addr"); keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://bare; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
WEFT_LOG=info "$bin/weft" up --state "$work/state" --gateway 127.0.0.1:0 --api 127.0.0.1:0 --events 127.0.0.1:0 --dns 127.0.0.1:0 2>"$work/up.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/state/runtime.json" ] && [ -s "$work/bare.addr" ] && break; sleep 0.1; done
"$bin/weft" --state "$work/state" apply -f examples/hello/function.yaml >/dev/null 2>&1
gateway=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['gateway'])" "$work/state/runtime.json")
instance=$(grep -h "instance ready.* function=hello " "$work"/state/logs/hosts/*.log | grep -o "serving=[0-9.:]*" | tail -1 | cut -d= -f2)
bare=$(cat "$work/bare.addr")

run() { # name url
  wrk -t2 -c"$conns" -d"${duration}s" --latency "$2" > "$work/$1.wrk"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.wrk")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$work/$1.wrk" | tr '\n' ' ')
  printf '%-9s %12s %10s %10s  %s\n' "$1" "$rps" "$p50" "$p99" "$errs"
  echo "$1 $rps" >> "$work/rps"
}

echo "weft gateway benchmark: wrk -t2 -c$conns -d${duration}s, $(nproc) cores, $(date -u +%FT%TZ)"
printf '%-9s %12s %10s %10s\n' target req/s p50 p99
run bare "http://$bare/"
run gw-bare "http://$(cat "$work/gwbare.addr")/default/hello/"
run nginx "http://127.0.0.1:$nginx_port/"
run instance "http://$instance/"
run gateway "http://$gateway/default/hello/"
python3 - "$work/rps" <<'PY'
import sys
r = dict(l.split() for l in open(sys.argv[1]))
r = {k: float(v) for k, v in r.items()}
print(f"gw-bare/bare     = {r['gw-bare']/r['bare']:.2f}   gateway role vs bare server (target >= 0.70)")
print(f"nginx/bare       = {r['nginx']/r['bare']:.2f}   reference proxy vs bare server")
print(f"gw-bare/nginx    = {r['gw-bare']/r['nginx']:.2f}   weft gateway vs nginx, same upstream")
print(f"gateway/instance = {r['gateway']/r['instance']:.2f}   full path vs straight to the instance")
print(f"gateway/bare     = {r['gateway']/r['bare']:.2f}   full path (wasm function) vs bare hello-world")
print(f"instance/bare    = {r['instance']/r['bare']:.2f}")
PY
