#!/usr/bin/env bash
# The event bus, measured in one run (release builds, loopback, shared cores):
#   latency  end to end (POST -> log -> trigger -> subscriber) at a fixed rate;
#            baseline: the same driver posting straight to its subscriber
#   ingest   durable ingest through a real `weft up` broker ingress, keep-alive
#            POSTs: single events (binary mode) and batches of 100; baseline: the
#            same driver against a bare hyper server (no parsing, no log)
#   for the embedded log and for a Kafka broker (tansu), and
#   kafka    weft's Kafka EventLog vs raw rdkafka through the same broker
# Usage: bash bench/eventbus.sh [seconds] [rate] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weft-target}"
secs="${1:-10}"
rate="${2:-5000}"
conns="${3:-64}"

bash scripts/build-release.sh -p weft-bench
bin="$CARGO_TARGET_DIR/release"
tansu_bin="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"
source bench/lib.sh

kafka_port=$(free_port)
"$tansu_bin" broker --listener-url "tcp://127.0.0.1:$kafka_port" --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 & pids+=($!)
"$bin/bare-hello" 127.0.0.1:0 > "$work/bare.addr" & pids+=($!)
WEFT_LOG=warn "$bin/weft" up --state "$work/state" --gateway 127.0.0.1:0 --api 127.0.0.1:0 --events 127.0.0.1:0 --dns 127.0.0.1:0 \
  --kafka-bootstrap "127.0.0.1:$kafka_port" 2>"$work/up.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$work/state/runtime.json" ] && [ -s "$work/bare.addr" ] && break; sleep 0.1; done
events=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['events'])" "$work/state/runtime.json")
sub_embedded=$(free_port)
sub_kafka=$(free_port)
sub_direct=$(free_port)
cat > "$work/bus.yaml" <<YAML
apiVersion: eventing.weft.dev/v1alpha1
kind: Broker
metadata: {name: embedded}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Broker
metadata: {name: kafka}
spec: {backend: kafka}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Broker
metadata: {name: ingest-embedded}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Broker
metadata: {name: ingest-kafka}
spec: {backend: kafka}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata: {name: latency-embedded}
spec:
  broker: embedded
  filters: [{exact: {type: bench.event}}]
  subscriber: {uri: "http://127.0.0.1:$sub_embedded/"}
---
apiVersion: eventing.weft.dev/v1alpha1
kind: Trigger
metadata: {name: latency-kafka}
spec:
  broker: kafka
  filters: [{exact: {type: bench.event}}]
  subscriber: {uri: "http://127.0.0.1:$sub_kafka/"}
YAML
"$bin/weft" --state "$work/state" apply -f "$work/bus.yaml" >/dev/null

printf '\n%-34s %s\n' "series" "result"
row() { printf '%-34s %s\n' "$1" "$2"; }
# Latency first, on empty logs; ingest then fills other brokers' logs.
row "latency direct @${rate}/s" "$("$bin/event-bench" latency "http://127.0.0.1:$sub_direct/" "$rate" "$secs" "127.0.0.1:$sub_direct")"
row "latency embedded @${rate}/s" "$("$bin/event-bench" latency "http://$events/default/embedded" "$rate" "$secs" "127.0.0.1:$sub_embedded")"
row "latency kafka @${rate}/s" "$("$bin/event-bench" latency "http://$events/default/kafka" "$rate" "$secs" "127.0.0.1:$sub_kafka")"
bare=$("$bin/event-bench" ingest "http://$(cat "$work/bare.addr")/" "$secs" "$conns" 1); row "baseline: bare hyper, single" "$bare"
for b in embedded kafka; do
  row "ingest $b, single" "$("$bin/event-bench" ingest "http://$events/default/ingest-$b" "$secs" "$conns" 1)"
  row "ingest $b, batch 100" "$("$bin/event-bench" ingest "http://$events/default/ingest-$b" "$secs" 8 100)"
done
echo
"$bin/event-bench" kafka "127.0.0.1:$kafka_port" 200000
