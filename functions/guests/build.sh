#!/usr/bin/env bash
# Builds the sample guests from source into functions/guests/build/*.wasm, and
# the demos' guests into examples/<demo>/functions/build/*.wasm.
#
# Rust guests: with rustup's wasm32-wasip1 target when it is installed; otherwise
# with Debian's rustc-web and -Zbuild-std (rust-web-src), because this machine
# cannot download the rustup target. C guests: clang-14, Debian's wasi-libc and
# its wasm32 compiler-rt builtins (libclang-rt-14-dev-wasm32).
# The apt packages come from scripts/install-deps.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/build
target=$here/target
mkdir -p "$out"

# build_rust MANIFEST OUT GUEST...: builds a guest workspace, copies GUEST.wasm to OUT.
build_rust() {
  local manifest=$1 dest=$2
  shift 2
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    cargo build --quiet --release --target wasm32-wasip1 --manifest-path "$manifest" --target-dir "$target"
  else
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L native=/usr/lib/wasm32-wasi" \
      /usr/bin/cargo build --quiet --release --target wasm32-wasip1 \
      -Zbuild-std=std,panic_abort --manifest-path "$manifest" --target-dir "$target"
  fi
  mkdir -p "$dest"
  for g in "$@"; do cp "$target/wasm32-wasip1/release/$g.wasm" "$dest/$g.wasm"; done
}

build_c() {
  for g in echo stress; do
    clang-14 --target=wasm32-wasi --sysroot=/usr -Os -s -o "$out/$g.wasm" "$here/$g/$g.c"
  done
}

build_rust "$here/Cargo.toml" "$out" hello json fetch
build_c
ls -l "$out"

# The demos' guests (examples/*/functions), sharing the target dir so the
# standard library is built once.
examples=$here/../../examples
build_rust "$examples/data-pipeline/functions/Cargo.toml" "$examples/data-pipeline/functions/build" \
  validate enrich sessionize count
ls -l "$examples/data-pipeline/functions/build"
build_rust "$examples/mini-program/functions/Cargo.toml" "$examples/mini-program/functions/build" \
  web menu order notify loyalty audit
ls -l "$examples/mini-program/functions/build"
