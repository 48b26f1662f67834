#!/usr/bin/python3
"""What recording the sources costs a write (docs/FORMAT.md §12), on rasters with nodata.

Each write records the rasters it read, with their valid-data footprints; the footprint is
made of the cells the write marked while it laid the pixels, so it needs no second read.
This times, with and without `--no-sources`, the formats taking turns:

1. one 8192 x 8192 Float32 radar-like raster (valid data in a disc, nodata around it)
   ingested into an empty store (`gridstore ingest`);
2. 16 rasters of 2048 x 2048 with holes of nodata, ingested in one run;
3. for scale: `gridstore catalog add` of the large raster, which reads its mask again to
   make the same footprint (what a record would cost made that way), and
   `gridstore catalog add --store` of the store (indexing the recorded sources).

Usage: bench/sources.py [--runs N] [--work DIR]
Writes DIR/sources-results.md and prints it.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
GRIDSTORE = os.path.join(ROOT, "target", "release", "gridstore")

MAKE = """
import os, sys, numpy as np
from osgeo import gdal, osr
gdal.UseExceptions()
out = sys.argv[1]
srs = osr.SpatialReference(); srs.ImportFromEPSG(32633)
rng = np.random.default_rng(11)

def write(path, a, x0, y0):
    if os.path.exists(path):
        return
    ds = gdal.GetDriverByName("GTiff").Create(path + ".part", a.shape[1], a.shape[0], 1,
        gdal.GDT_Float32, ["TILED=YES", "COMPRESS=ZSTD"])
    ds.SetGeoTransform([x0, 10, 0, y0, 0, -10])
    ds.SetProjection(srs.ExportToWkt())
    b = ds.GetRasterBand(1)
    b.SetNoDataValue(-1)
    b.WriteArray(a)
    ds = None
    os.rename(path + ".part", path)

n = 8192
y, x = np.ogrid[0:n, 0:n]
r = np.hypot(x - n / 2, y - n / 2)
rain = (np.abs(np.sin(x / 97.0) * np.cos(y / 131.0)) * 20).astype(np.float32)
rain[r > n / 2 - 8] = -1
write(os.path.join(out, "radar.tif"), rain, 400000, 5000000)
del rain
m = 2048
y, x = np.mgrid[0:m, 0:m].astype(np.float32)
for i in range(16):
    a = (np.sin((x + i * 50) / 300.0) * 200 + rng.normal(0, 0.5, x.shape)).astype(np.float32)
    for _ in range(6):
        cx, cy, rad = rng.integers(0, m, 2).tolist() + [int(rng.integers(50, 300))]
        a[(x - cx) ** 2 + (y - cy) ** 2 < rad * rad] = -1
    write(os.path.join(out, f"t{i:02d}.tif"), a, 400000 + (i % 4) * m * 10,
          5000000 - (i // 4) * m * 10)
"""

GRID = ["--crs", "EPSG:32633", "--origin", "400000", "5000000", "--cell-size", "10",
        "--nodata", "-1"]


def run(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         check=False)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    return took


def fresh_store(path):
    shutil.rmtree(path, ignore_errors=True)
    run([GRIDSTORE, "create", path] + GRID)


def ingest(work, files, flags):
    store = os.path.join(work, "s.gridstore")
    fresh_store(store)
    return run([GRIDSTORE, "ingest", "-q", store] + files + flags)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "bench", "sources"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    subprocess.run([PY, "-c", MAKE, args.work], check=True)
    radar = [os.path.join(args.work, "radar.tif")]
    tiles = sorted(os.path.join(args.work, f) for f in os.listdir(args.work)
                   if f.startswith("t") and f.endswith(".tif"))
    times = {k: [] for k in ["radar", "radar_no", "tiles", "tiles_no", "add", "add_store"]}
    for i in range(args.runs):
        # Alternate which goes first, so that drift hits both alike.
        order = [("radar", radar, []), ("radar_no", radar, ["--no-sources"]),
                 ("tiles", tiles, []), ("tiles_no", tiles, ["--no-sources"])]
        if i % 2:
            order = [order[1], order[0], order[3], order[2]]
        for key, files, flags in order:
            times[key].append(ingest(args.work, files, flags))
        cat = os.path.join(args.work, "c.sqlite")
        for p in [cat]:
            if os.path.exists(p):
                os.remove(p)
        run([GRIDSTORE, "catalog", "init", cat])
        times["add"].append(run([GRIDSTORE, "catalog", "add", cat, "--time", "2024-01-01",
                                 radar[0]]))
        store = os.path.join(args.work, "s.gridstore")  # the tiles, with their sources
        times["add_store"].append(run([GRIDSTORE, "catalog", "add", cat, "--store", store]))
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"Medians of {args.runs} runs, seconds (`bench/sources.py --runs {args.runs}`).",
        "",
        "| write | recording sources | `--no-sources` | cost of recording |",
        "|---|---:|---:|---:|",
        f"| ingest of one 8192 x 8192 Float32 raster with nodata | {med['radar']:.2f} | "
        f"{med['radar_no']:.2f} | {100 * (med['radar'] / med['radar_no'] - 1):+.1f}% |",
        f"| ingest of 16 rasters of 2048 x 2048 with nodata holes | {med['tiles']:.2f} | "
        f"{med['tiles_no']:.2f} | {100 * (med['tiles'] / med['tiles_no'] - 1):+.1f}% |",
        "",
        "| for scale | median s |",
        "|---|---:|",
        f"| `catalog add` of the 8192 x 8192 raster (reads its mask again) | {med['add']:.2f} |",
        f"| `catalog add --store` of the 16-raster store | {med['add_store']:.2f} |",
    ]
    text = "\n".join(lines)
    with open(os.path.join(args.work, "sources-results.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    print("all samples:", times, file=sys.stderr)


if __name__ == "__main__":
    main()
