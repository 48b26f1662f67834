#!/usr/bin/env bash
# Sets up gridstore on Debian 12 and runs the main job:
# installs the system packages, builds in release mode, installs the GDAL plugin, then
# ingests a sample raster with gdal_translate, prints gdalinfo with its overviews and writes
# a quick-look PNG of an overview; then appends an hourly rain series to a time store and
# reads one point's history back (all in target/example/).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo

echo "== Installing system packages"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  gdal-bin libgdal-dev libclang-dev clang pkg-config python3-gdal python3-rasterio \
  python3-numpy python3-cftime python3-xarray python3-netcdf4 python3-zarr python3-pyproj python3-pip \
  python3-venv python3-jsonschema nginx-light binutils curl ca-certificates \
  postgresql postgresql-15-postgis-3 >/dev/null
# rioxarray, on Debian's xarray and rasterio (so on the system GDAL and its plugins), for
# the checks of how xarray sees a time store (tests/time_view.rs); 0.15 runs on Debian 12's
# xarray 2023.01 and rasterio 1.3. --no-deps: pip must not bring a rasterio of its own.
/usr/bin/python3 -m pip install -q --user --no-deps --break-system-packages rioxarray==0.15.0
# Debian's nginx and postgresql packages may start system-wide servers; the tests run
# their own (PostgreSQL + PostGIS in a temporary data directory, for the catalog).
$sudo sh -c 'service nginx stop' >/dev/null 2>&1 || true
$sudo sh -c 'service postgresql stop' >/dev/null 2>&1 || true
# moto's S3 server and nginx (above), which the tests of stores on the network start on
# 127.0.0.1 and stop (tests/remote.rs, tests/object_storage.rs); moto in a virtualenv of
# its own.
[ -x target/moto-venv/bin/moto_server ] || {
  /usr/bin/python3 -m venv target/moto-venv
  target/moto-venv/bin/pip install -q 'moto[server]==5.2.1'
}
# A Google Cloud Storage emulator, for the tests that read stores on /vsigs/ (it honours no
# write preconditions, so stores there stay read-only and only reads are tested).
[ -x target/gcs-venv/bin/gcp-storage-emulator ] || {
  /usr/bin/python3 -m venv target/gcs-venv
  target/gcs-venv/bin/pip install -q 'gcp-storage-emulator==2026.7.19'
}
# Azurite, Azure Blob Storage's emulator, for the tests of stores on /vsiaz/ (started on
# 127.0.0.1 by the tests, like moto), from npm into target/azurite. 3.35.0 is the last
# release that runs on Debian 12's nodejs (18); later ones need node 21 or 22.
command -v npm >/dev/null || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  nodejs npm >/dev/null
[ -x target/azurite/node_modules/.bin/azurite-blob ] ||
  npm install --prefix target/azurite --no-audit --no-fund --silent azurite@3.35.0
if ! command -v cargo >/dev/null; then
  echo "== Installing Rust (rustup)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  . "$HOME/.cargo/env"
fi

echo "== Building (release)"
cargo build --release

echo "== Installing the GDAL plugin"
gdal-plugin/install.sh
gdalinfo --format GRIDSTORE | sed -n 1,3p

echo "== Main job: a Landsat scene into a store"
scripts/sample-data.sh
out=target/example
mkdir -p "$out"
rm -rf "$out/landsat.gridstore"
gdal_translate -of GRIDSTORE -co BLOCKSIZE=64 target/sample-data/L7_ETMs.tif "$out/landsat.gridstore"
gdalinfo "$out/landsat.gridstore"
# Level 1 (half resolution) as a true-colour quick look.
gdal_translate -q -of PNG -ovr 0 -b 3 -b 2 -b 1 -scale 0 120 0 255 \
  "$out/landsat.gridstore" "$out/quicklook.png"
target/release/gridstore info "$out/landsat.gridstore"

echo "== Main job, part 2: an hourly rain series appended, and one point read back"
rm -rf "$out/rain.gridstore"
target/release/gridstore append "$out/rain.gridstore" target/sample-data/test_stageiv_xyt.nc \
  --time-step PT1H
target/release/gridstore info "$out/rain.gridstore"
target/release/gridstore series "$out/rain.gridstore" 40 60 --pixel \
  --from 2018-09-14T06:00:00 --to 2018-09-14T12:00:00
echo "== Done: quick look written to $out/quicklook.png; the rain store is $out/rain.gridstore"
