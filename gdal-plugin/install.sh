#!/usr/bin/env bash
# Installs the GRIDSTORE driver where GDAL finds its plugins.
#
# Usage: gdal-plugin/install.sh [PLUGIN_DIR]
# The plugin is the library cargo builds (target/release/libgridstore.so), named the way
# GDAL expects: gdal_GRIDSTORE.so. Without PLUGIN_DIR it goes to GDAL's own plugin folder
# (<libdir>/gdalplugins, e.g. /usr/lib/x86_64-linux-gnu/gdalplugins); elsewhere, point GDAL_DRIVER_PATH at the folder you choose.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=target/release/libgridstore.so
[ -f "$lib" ] || { echo "error: $lib is missing; build it with 'cargo build --release'" >&2; exit 1; }
# GDAL looks in <the directory it was installed to>/gdalplugins. gdal-config --libs names
# that directory (Debian's gdal.pc does not: its libdir lacks the multiarch part).
libdir=$(gdal-config --libs | tr ' ' '\n' | sed -n 's/^-L//p' | head -n 1)
[ -n "$libdir" ] || libdir=$(dirname "$(readlink -f "$(ldconfig -p | sed -n 's/.*libgdal\.so\.[0-9]* .*=> //p' | head -n 1)")")
dir=${1:-$libdir/gdalplugins}
sudo=""
if [ ! -w "$(dirname "$dir")" ] && [ "$(id -u)" != 0 ]; then sudo=sudo; fi
$sudo mkdir -p "$dir"
# Strip debug information: GDAL loads the plugin into every process that registers drivers.
tmp=$(mktemp)
objcopy --strip-debug "$lib" "$tmp"
$sudo install -m 0755 "$tmp" "$dir/gdal_GRIDSTORE.so"
rm -f "$tmp"
echo "installed $dir/gdal_GRIDSTORE.so"
