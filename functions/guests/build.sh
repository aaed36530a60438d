#!/usr/bin/env bash
# Builds the sample guests from source into functions/guests/build/*.wasm.
#
# Rust guests: with rustup's wasm32-wasip1 target when it is installed; otherwise
# with Debian's rustc-web and -Zbuild-std (rust-web-src), because this machine
# cannot download the rustup target. C guests: clang-14 and Debian's wasi-libc.
# The apt packages come from scripts/install-deps.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/build
target=$here/target
mkdir -p "$out"

build_rust() {
  local manifest=$here/Cargo.toml
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    cargo build --quiet --release --target wasm32-wasip1 --manifest-path "$manifest" --target-dir "$target"
  else
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L native=/usr/lib/wasm32-wasi" \
      /usr/bin/cargo build --quiet --release --target wasm32-wasip1 \
      -Zbuild-std=std,panic_abort --manifest-path "$manifest" --target-dir "$target"
  fi
  for g in hello json; do cp "$target/wasm32-wasip1/release/$g.wasm" "$out/$g.wasm"; done
}

build_c() {
  for g in echo stress; do
    clang-14 --target=wasm32-wasi --sysroot=/usr -Os -s -o "$out/$g.wasm" "$here/$g/$g.c"
  done
}

build_rust
build_c
ls -l "$out"
