#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests through the real GDAL tools,
# the GDAL Python bindings and Debian's rasterio, on generated and real sample rasters.
# It runs twice: in release mode (what users run), then in a debug build, where overflow
# checks and debug assertions are on (a release-only run once hid an overflow).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/sample-data.sh

run_suite() { # $1: cargo profile flag ("--release" or "")
  # The integration tests drive GDAL with the freshly built plugin of the same profile.
  cargo build $1
  # Each test process copies the plugin into a folder of its own; drop those of earlier runs.
  rm -rf target/release/test-gdalplugins-* target/debug/test-gdalplugins-*
  if command -v cargo-nextest >/dev/null; then
    cargo nextest run $1 --no-fail-fast "${@:2}"
  else
    cargo test $1 --no-fail-fast "${@:2}"
  fi
  rm -rf target/release/test-gdalplugins-* target/debug/test-gdalplugins-*
}

echo "== Tests, release build"
run_suite --release "$@"
echo "== Tests, debug build (overflow checks and debug assertions on)"
run_suite "" "$@"
