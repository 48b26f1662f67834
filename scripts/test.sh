#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests through the real GDAL tools,
# the GDAL Python bindings and Debian's rasterio, on generated and real sample rasters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/sample-data.sh
# The integration tests drive GDAL with the freshly built plugin (target/release).
cargo build --release
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --release --no-fail-fast "$@"
else
  cargo test --release --no-fail-fast "$@"
fi
