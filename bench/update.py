#!/usr/bin/python3
"""Benchmarks of adding data to an existing store, side by side with what COG users do.

1. Patch: update a 512x512 patch of the 8192x8192 Float32 surface (generate.py) in a store
   (`gdal_translate -of GRIDSTORE patch.tif store`), against a full ingest of the surface
   into a new store, and against what a COG user must do: rewrite the COG from a mosaic of
   the old data and the patch (gdalbuildvrt, then gdal_translate -of COG).
2. Bulk: ingest 64 generated 2048x2048 Float32 tiles (an 8x8 mosaic) with
   `gridstore ingest` on 1 thread and on all cores, against gdalbuildvrt + COG.
3. Scale: open a store and read one 128x128 window (64 tiles), for a store of about a million tiles
   (16384x16384 Byte in 16-pixel tiles, levels included) and one of about a hundred,
   each in a fresh process (timed inside it, so interpreter start-up is left out).

Every figure is the median of --runs runs, the formats taking turns; commands run as a
user would run them (fresh processes, files in the page cache).

Usage: bench/update.py [--runs N] [--work DIR] [--skip-scale]
Writes DIR/update-results.md and prints it.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
GRIDSTORE = os.path.join(ROOT, "target", "release", "gridstore")
COG = ["-of", "COG", "-co", "COMPRESS=ZSTD", "-co", "NUM_THREADS=ALL_CPUS",
       "-co", "RESAMPLING=AVERAGE"]


def run(cmd, env=None):
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, check=False)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    return took


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def median(values):
    return statistics.median(values)


def ratio_interval(a, b, resamples=4000, seed=1):
    """A 90% bootstrap interval of median(a) / median(b), each sample resampled on its own.
    For two stores that should cost the same, one that holds 1.00 says they cannot be told
    apart from the noise of this run; for a patch against a full ingest, it says how far
    the run's noise lets the ratio move."""
    rng = random.Random(seed)
    ratios = sorted(median(rng.choices(a, k=len(a))) / median(rng.choices(b, k=len(b)))
                    for _ in range(resamples))
    return ratios[int(0.05 * resamples)], ratios[int(0.95 * resamples) - 1]


def make_patch(surface, patch, at=2048):
    """The 512x512 window at (at, at) of the surface, raised by 1 m, as its own GeoTIFF."""
    code = f"""
from osgeo import gdal
gdal.UseExceptions()
src = gdal.Open({surface!r})
a = src.GetRasterBand(1).ReadAsArray({at}, {at}, 512, 512) + 1.0
gt = list(src.GetGeoTransform())
gt[0] += {at} * gt[1]; gt[3] += {at} * gt[5]
ds = gdal.GetDriverByName("GTiff").Create({patch!r}, 512, 512, 1, gdal.GDT_Float32)
ds.SetGeoTransform(gt); ds.SetProjection(src.GetProjection())
ds.GetRasterBand(1).WriteArray(a)
"""
    subprocess.run([PY, "-c", code], check=True)


def make_tiles(out, n=8, size=2048):
    """n x n adjacent Float32 tiles of a smooth surface with noise, UTM 33N, 10 m cells."""
    code = f"""
import os, numpy as np
from osgeo import gdal, osr
gdal.UseExceptions()
rng = np.random.default_rng(7)
srs = osr.SpatialReference(); srs.ImportFromEPSG(32633)
y, x = np.mgrid[0:{size}, 0:{size}].astype(np.float32)
for r in range({n}):
    for c in range({n}):
        path = os.path.join({out!r}, f"t{{r}}_{{c}}.tif")
        if os.path.exists(path):
            continue
        z = (np.sin((x + c * {size}) / 300.0) * 200 + np.cos((y + r * {size}) / 210.0) * 150
             + rng.normal(0, 0.5, x.shape)).astype(np.float32)
        ds = gdal.GetDriverByName("GTiff").Create(path + ".part", {size}, {size}, 1,
            gdal.GDT_Float32, ["TILED=YES"])
        ds.SetGeoTransform([400000 + c * {size} * 10, 10, 0, 5000000 - r * {size} * 10, 0, -10])
        ds.SetProjection(srs.ExportToWkt())
        ds.GetRasterBand(1).WriteArray(np.round(z, 2))
        ds = None
        os.rename(path + ".part", path)
"""
    os.makedirs(out, exist_ok=True)
    subprocess.run([PY, "-c", code], check=True)
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".tif"))


# Times gdal.Translate inside one Python process, GDAL already loaded: the cost of the
# operation itself, without process start-up (GDAL registering its drivers, loading the
# plugin), which is the same for every command and dominates small updates.
IN_PROCESS = """
import sys, time
from osgeo import gdal
gdal.UseExceptions()
gdal.AllRegister()
src, dst = sys.argv[1], sys.argv[2]
# Loads the source driver and PROJ, as any earlier work in the process would: opening a
# GeoTIFF does not look up its CRS yet, and the first lookup of a process opens PROJ's
# database, which is start-up, not the operation.
gdal.Open(src).GetSpatialRef()
t0 = time.perf_counter()
gdal.Translate(dst, src, format="GRIDSTORE")
print(time.perf_counter() - t0)
"""


def in_process(src, dst, env):
    out = subprocess.run([PY, "-c", IN_PROCESS, src, dst], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.split()[-1])


PROBE = """
import sys, time
t0 = time.perf_counter()
from osgeo import gdal
gdal.UseExceptions()
t1 = time.perf_counter()
ds = gdal.Open(sys.argv[1])
b = ds.GetRasterBand(1)
w, h = ds.RasterXSize, ds.RasterYSize
t2 = time.perf_counter()
# Aligned on the 16-pixel tiles, so that every window reads 64 tiles.
x, y = int(sys.argv[2]) % (w - 128) // 16 * 16, int(sys.argv[3]) % (h - 128) // 16 * 16
b.ReadRaster(x, y, 128, 128)
t3 = time.perf_counter()
print(f"{t2 - t1} {t3 - t2}")
"""


def probe(path, i, env):
    out = subprocess.run([PY, "-c", PROBE, path, str(i * 7919), str(i * 104729)], env=env,
                         check=True, capture_output=True, text=True)
    open_s, read_s = map(float, out.stdout.split())
    return open_s, read_s


def stored_tiles(path):
    """The stored-tile count `gridstore info` reports for a store, or None if it cannot open it."""
    info = subprocess.run([GRIDSTORE, "info", path], capture_output=True, text=True,
                          check=False)
    if info.returncode != 0:
        return None
    stored = next(l for l in info.stdout.splitlines() if l.startswith("Stored:"))
    return stored.split()[1]


def current_format(path):
    """Whether the store is written the way this build writes stores: manifest format 4,
    version 4 or 5 index nodes and version 3 chunks (the first in a pack). A store kept from an older build would
    measure the older format (one of a newer build does not even open)."""
    with open(os.path.join(path, "gridstore.json")) as f:
        manifest = json.load(f)
    if manifest["format_version"] != 4:
        return False
    root = manifest["index"]["root"]
    if root is None:
        return True
    with open(os.path.join(path, "index", str(root["seq"]), str(root["id"])), "rb") as f:
        if f.read(5)[4] not in (4, 5):
            return False
    # The first chunk found, walking down the chunk directories.
    at = os.path.join(path, "chunks")
    while os.path.isdir(at):
        at = os.path.join(at, sorted(os.listdir(at))[0])
    with open(at, "rb") as f:
        return f.read(5)[4] == 3


def scale_stores(work, env, names=("million.gridstore", "hundred.gridstore"), this_build=True):
    """The two stores of the scale part, in work: a 16384x16384 Byte store in 16-pixel tiles
    (about 1.4 million stored tiles with its levels) and a 160x160 one (139 tiles), made with
    gdal_translate from generated rasters, by the plugin `env` loads, under `names`. The big
    one takes minutes to build, so it is kept and reused (rebuilt if it does not open, e.g.
    after an interrupted build, or, if `this_build`, if it is not in this build's format); the
    small one is rebuilt. Returns ((big, small), {path: stored tiles})."""
    big_src = os.path.join(work, "big-byte.tif")
    small_src = os.path.join(work, "small-byte.tif")
    if not os.path.exists(big_src):
        run(["gdal_create", "-q", "-outsize", "16384", "16384", "-ot", "Byte", "-burn", "7",
             "-a_srs", "EPSG:32633", "-a_ullr", "0", "163840", "163840", "0",
             "-co", "TILED=YES", big_src], env)
    if not os.path.exists(small_src):
        run(["gdal_translate", "-q", "-srcwin", "0", "0", "160", "160", big_src, small_src],
            env)
    big, small = (os.path.join(work, n) for n in names)
    if os.path.exists(big) and (stored_tiles(big) is None
                                or (this_build and not current_format(big))):
        remove(big)
    if not os.path.exists(big):
        build = run(["gdal_translate", "-q", "-of", "GRIDSTORE", "-co", "BLOCKSIZE=16",
                     big_src, big], env)
        print(f"(built the million-tile store in {build:.0f} s)", flush=True)
    remove(small)
    run(["gdal_translate", "-q", "-of", "GRIDSTORE", "-co", "BLOCKSIZE=16", small_src,
         small], env)
    return (big, small), {path: stored_tiles(path) for path in (big, small)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--work", default=os.path.join(ROOT, "target", "bench"))
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--only", choices=["patch", "bulk", "scale"])
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, GDAL_PAM_ENABLED="NO")
    subprocess.run([PY, os.path.join(HERE, "generate.py"), a.work], check=True)
    surface = os.path.join(a.work, "surface.tif")
    lines = []

    # 1. Patch update.
    want = lambda part: a.only in (None, part)  # noqa: E731
    if want("patch"):
        patch = os.path.join(a.work, "patch.tif")
        make_patch(surface, patch)
        store = os.path.join(a.work, "patched.gridstore")
        full_store = os.path.join(a.work, "full.gridstore")
        cog = os.path.join(a.work, "patched.tif")
        vrt = os.path.join(a.work, "mosaic.vrt")
        remove(store)
        run(["gdal_translate", "-q", "-of", "GRIDSTORE", surface, store], env)
        copy = os.path.join(a.work, "patch-copy.tif")
        full, update, rewrite, full_in, update_in, floor = [], [], [], [], [], []
        for _ in range(a.runs):
            remove(full_store)
            full.append(run(["gdal_translate", "-q", "-of", "GRIDSTORE", surface, full_store], env))
            update.append(run(["gdal_translate", "-q", "-of", "GRIDSTORE", patch, store], env))
            remove(full_store)
            full_in.append(in_process(surface, full_store, env))
            update_in.append(in_process(patch, store, env))
            remove(cog)
            remove(vrt)
            rewrite.append(run(["gdalbuildvrt", "-q", vrt, surface, patch], env)
                           + run(["gdal_translate", "-q"] + COG + [vrt, cog], env))
            # What any command costs before it does anything: the patch copied to a plain
            # GeoTIFF, mostly GDAL starting up.
            remove(copy)
            floor.append(run(["gdal_translate", "-q", patch, copy], env))
        f, u, r, c = median(full), median(update), median(rewrite), median(floor)
        fi, ui = median(full_in), median(update_in)
        lo, hi = ratio_interval(update_in, full_in)
        lines += [
            "### Updating a 512x512 patch of the 8192x8192 Float32 store",
            "",
            "| operation | command, median s | in-process, median s |",
            "|---|---:|---:|",
            f"| GRIDSTORE: full ingest into a new store | {f:.3f} | {fi:.3f} |",
            f"| GRIDSTORE: patch into the store (levels included, committed) | {u:.3f} | {ui:.4f} |",
            f"| COG: rewrite (gdalbuildvrt old + patch, gdal_translate -of COG) | {r:.2f} | |",
            f"| GTiff: the patch copied to a new GeoTIFF (a command's start-up) | {c:.3f} | |",
            "",
            f"Patch / full ingest: {100 * u / f:.1f}% as commands, {100 * ui / fi:.1f}% in-process "
            f"(90% interval {100 * lo:.2f}% to {100 * hi:.2f}%). "
            f"COG rewrite / patch: {r / u:.0f}x (commands). A command's start-up alone: "
            f"{100 * c / f:.1f}% of a full ingest.",
            "",
        ]
        print("\n".join(lines), flush=True)

    # 2. Bulk ingest of 64 tiles.
    if want("bulk"):
        tiles = make_tiles(os.path.join(a.work, "tiles"))
        bulk = os.path.join(a.work, "bulk.gridstore")
        bulk_cog = os.path.join(a.work, "bulk.tif")
        bulk_vrt = os.path.join(a.work, "bulk.vrt")
        one, two, peer = [], [], []
        create = [GRIDSTORE, "create", bulk, "--crs", "EPSG:32633", "--origin", "400000",
                  "5000000", "--cell-size", "10"]
        for _ in range(a.runs):
            for threads, into in ((1, one), (os.cpu_count(), two)):
                remove(bulk)
                run(create, env)
                into.append(run([GRIDSTORE, "ingest", "-q", "--threads", str(threads), bulk]
                                + tiles, env))
            remove(bulk_cog)
            remove(bulk_vrt)
            peer.append(run(["gdalbuildvrt", "-q", bulk_vrt] + tiles, env)
                        + run(["gdal_translate", "-q"] + COG + [bulk_vrt, bulk_cog], env))
        o, t, c = median(one), median(two), median(peer)
        block = [
            f"### Bulk ingest of 64 tiles of 2048x2048 Float32 ({len(tiles)} files)",
            "",
            "| operation | median s |",
            "|---|---:|",
            f"| gridstore ingest, 1 thread | {o:.2f} |",
            f"| gridstore ingest, {os.cpu_count()} threads | {t:.2f} |",
            f"| gdalbuildvrt + gdal_translate -of COG | {c:.2f} |",
            "",
            f"Speed-up from threads: {o / t:.2f}x. COG / gridstore ({os.cpu_count()} threads): "
            f"{c / t:.1f}x.",
            "",
        ]
        lines += block
        print("\n".join(block), flush=True)

    # 3. Open and read cost against store size.
    if want("scale") and not a.skip_scale:
        (big, small), counts = scale_stores(a.work, env)
        # Each window is read twice, in two fresh processes: the first finds the chunk files
        # outside the page cache (on a million-file store, mostly), the second inside it, as
        # for the small store, whose few files stay cached. Both are reported.
        times = {big: ([], [], []), small: ([], [], [])}
        for i in range(4 * a.runs + 1):
            for path in (big, small):
                _, cold = probe(path, i, env)
                o_s, r_s = probe(path, i, env)
                times[path][0].append(o_s)
                times[path][1].append(r_s)
                times[path][2].append(cold)
        block = [
            "### Open and one 128x128 window read (64 tiles) against store size (16-pixel tiles)",
            "",
            "| store | stored tiles | open ms | window read ms | first read of a window ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for path, label in ((big, "16384x16384"), (small, "160x160")):
            block.append(f"| {label} | {counts[path]} | {1000 * median(times[path][0]):.2f} | "
                         f"{1000 * median(times[path][1]):.2f} | "
                         f"{1000 * median(times[path][2]):.2f} |")
        ob, os_ = median(times[big][0]), median(times[small][0])
        rb, rs = median(times[big][1]), median(times[small][1])
        (olo, ohi), (rlo, rhi) = (ratio_interval(times[big][0], times[small][0]),
                                  ratio_interval(times[big][1], times[small][1]))
        block += ["", f"Million / hundred: open {ob / os_:.2f}x (90% interval {olo:.2f} to "
                  f"{ohi:.2f}), window read {rb / rs:.2f}x (90% interval {rlo:.2f} to "
                  f"{rhi:.2f}); medians of {4 * a.runs + 1} fresh processes each.", ""]
        lines += block
        print("\n".join(block), flush=True)

    with open(os.path.join(a.work, "update-results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
