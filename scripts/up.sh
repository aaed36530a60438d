#!/usr/bin/env bash
# The main job: builds weft and the sample guests, starts the local platform
# (`weft up`) on its embedded defaults, deploys the hello function, calls it,
# sends it an event through a broker and traces it, runs a legacy Bolt service
# as a process function and calls it by interface name (directly, and through
# weft's DNS), and stays in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"

bash scripts/build-release.sh
weft="$CARGO_TARGET_DIR/release/weft"
state="${WEFT_STATE:-.weft}"

"$weft" up --state "$state" &
up_pid=$!
trap 'kill -INT $up_pid 2>/dev/null; wait $up_pid' INT TERM
for _ in $(seq 100); do [ -f "$state/runtime.json" ] && break; sleep 0.1; done

"$weft" --state "$state" apply -f examples/hello/function.yaml
echo
echo "\$ curl http://hello.default.localhost:8080/"
curl -s http://hello.default.localhost:8080/ || true
echo "\$ curl http://127.0.0.1:8080/default/hello/"
curl -s http://127.0.0.1:8080/default/hello/ || true
echo "\$ weft invoke hello --data '{\"name\":\"weft\"}'"
"$weft" --state "$state" invoke hello --data '{"name":"weft"}' || true
echo
echo "\$ weft apply -f examples/events/broker.yaml   # a Broker, a Trigger to hello, a PingSource"
"$weft" --state "$state" apply -f examples/events/broker.yaml || true
echo "\$ weft send --type com.example.greeting --data '{\"name\":\"Ada\"}'"
id=$("$weft" --state "$state" send --type com.example.greeting --data '{"name":"Ada"}' || true)
echo "$id"
sleep 0.5
echo "\$ weft events trace $id"
[ -n "$id" ] && "$weft" --state "$state" events trace "$id" || true
echo
echo "\$ weft apply -f examples/legacy-rpc/users.yaml   # a SOFARPC (Bolt) service as a process function"
"$weft" --state "$state" apply -f examples/legacy-rpc/users.yaml || true
echo "\$ node sidecar/interop/bolt-client.js 127.0.0.1:8080 com.example.UserService 3"
node sidecar/interop/bolt-client.js 127.0.0.1:8080 com.example.UserService 3 || true
echo "\$ WEFT_DNS=127.0.0.1:8053 node sidecar/interop/bolt-client.js com.example.UserService:8080 com.example.UserService 3"
WEFT_DNS=127.0.0.1:8053 node sidecar/interop/bolt-client.js com.example.UserService:8080 com.example.UserService 3 || true
echo
echo "weft is running (binary: $weft). Ctrl-C stops it."
wait $up_pid
