#!/usr/bin/env bash
# Type-checks the fuzz targets (fuzz/fuzz_targets/*.rs) against the gateway library on stable,
# without cargo-fuzz or libfuzzer-sys: each target is copied into a throw-away crate where
# `fuzz_target!` is a plain function. Run it after narrowing `pub` (tests/tools/narrow-pub.py):
# the fuzz crate is its own workspace, so `cargo clippy --workspace` does not see what it uses.
# Usage: tests/tools/fuzz-api-check.sh   (reuses ./target; prints cargo's verdict)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
cat >"$tmp/Cargo.toml" <<TOML
[package]
name = "fuzz-api-check"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
gateway = { path = "$root/gateway" }
firmware = { path = "$root/firmware", features = ["std"] }
influxdb-line-protocol = "2"
toml = "1"
TOML
{
  echo '#![allow(dead_code, unused)]'
  echo 'macro_rules! fuzz_target { (|$d:ident: &[u8]| $body:block) => { pub fn run($d: &[u8]) $body }; }'
  for f in "$root"/fuzz/fuzz_targets/*.rs; do
    n=$(basename "$f" .rs)
    echo "mod $n;"
    sed -e '/#!\[no_main\]/d' -e '/use libfuzzer_sys::fuzz_target;/d' "$f" >"$tmp/src/$n.rs"
  done
} >"$tmp/src/lib.rs"
cp "$root/Cargo.lock" "$tmp/"
cd "$tmp"
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target} cargo check --offline
