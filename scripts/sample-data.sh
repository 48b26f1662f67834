#!/usr/bin/env bash
# Puts the real sample rasters the tests and the example use into target/sample-data.
#
# They come from the folder ../shared/data beside the project when it exists, otherwise from
# Debian's r-cran-stars and r-cran-terra packages (downloaded, unpacked, never installed).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/sample-data
files=(L7_ETMs.tif olinda_dem_utm25s.tif lc.tif elev.tif bcsd_obs_1999.nc test_stageiv_xyt.nc)

have_all() { for f in "${files[@]}"; do [ -s "$1/$f" ] || return 1; done; }

have_all "$dest" 2>/dev/null && exit 0
mkdir -p "$dest"
if have_all ../shared/data 2>/dev/null; then
  for f in "${files[@]}"; do cp ../shared/data/"$f" "$dest/"; done
  exit 0
fi
echo "Fetching sample rasters from Debian's r-cran-stars and r-cran-terra packages..."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download r-cran-stars r-cran-terra >/dev/null 2>&1) || {
  echo "error: could not download r-cran-stars/r-cran-terra (run 'apt-get update' first)" >&2
  exit 1
}
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
lib="$work/root/usr/lib/R/site-library"
cp "$lib"/stars/tif/{L7_ETMs.tif,olinda_dem_utm25s.tif,lc.tif} "$dest/"
cp "$lib"/stars/nc/{bcsd_obs_1999.nc,test_stageiv_xyt.nc} "$dest/"
cp "$lib"/terra/ex/elev.tif "$dest/"
have_all "$dest" || { echo "error: sample rasters missing after unpacking" >&2; exit 1; }
