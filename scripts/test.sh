#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests through the real GDAL tools,
# the GDAL Python bindings and Debian's rasterio, on generated and real sample rasters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/sample-data.sh
# The integration tests drive GDAL with the freshly built plugin (target/release).
cargo build --release
# Each test process copies the plugin into a folder of its own; drop those of earlier runs.
rm -rf target/release/test-gdalplugins-*
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --release --no-fail-fast "$@"
else
  cargo test --release --no-fail-fast "$@"
fi
