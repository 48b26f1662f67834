#!/usr/bin/python3
"""The time benchmark: a radar-like series appended and read, side by side with zappend.

The series: 1024 x 1024 Float32 maps of rain rate (mm/h), one every 5 minutes, 2,016 steps
(one week). Rain cells are born, drift with the wind, grow and decay; values are quantized
to 0.01 mm/h, below 0.1 mm/h is 0, and pixels outside the radar's disc are nodata (-9999).
Everything is drawn from one seed, so every run writes the same maps. Each step is written
once, as a GeoTIFF named RAD_%Y%m%d%H%M.tif, and every side takes its data from those files:

- gridstore: `gridstore append STORE RAD_*.tif --time-pattern ... --time-step PT5M
  --no-compact` (defaults: 512 x 512 tiles, ZSTD level 1 with predictor, levels), then
  `gridstore compact` (time blocks of every closed block of 128 steps), timed on its own;
- zappend: the same files opened with rioxarray (`open_rasterio`, raw values, the time from
  the file name), appended to Zarr (v2) with Zstd level 1 and zappend's default chunking,
  one step per chunk, written out as (1, 1024, 1024);
- series-chunked Zarr: zappend's Zarr copied into chunks of (288, 64, 64), Zstd level 1
  (untimed: it is the layout a series reader would keep beside the map-chunked one).

Measured in one run (medians of --runs, sides taking turns):

1. append one slice at step 10 and near the end (steps 10.. and N-16..), each slice in a
   fresh process: `gridstore append` timed as a whole command, zappend timed inside its
   process around the `zappend()` call (imports left out), and as a whole command; peak RSS;
2. size on disk;
3. a point's series over all steps from a fresh process: `gridstore series --pixel` as a
   command, against a fresh Python process per Zarr layout that opens the array and reads
   the pixel (timed from the open, imports left out); the three series must be equal;
   gridstore before and after `gridstore compact` (its time, peak RSS and size reported);
4. one step as a map through GDAL (open option TIME=), full 1024 x 1024 and 256 x 256 read
   from a level, against the same slice ingested into a store without time
   (`gdal_translate -of GRIDSTORE`) and against the map-chunked Zarr (no levels in Zarr: the
   256 x 256 is every 4th pixel of the full map);
5. a store of --long-steps steps (default 100,000, of 64 x 64 maps so that it fits on a
   disk: small maps, said in the table) against one of 10: open with TIME= and one map read,
   each in a fresh process, with a 90% bootstrap interval of the ratio.

The peers run in a virtualenv of their own (--venv, default target/bench/time-venv), with
zappend, zarr, numcodecs, xarray and rioxarray (which brings rasterio's wheel, with its own
GDAL, to read the GeoTIFFs) from PyPI; made once with:

    /usr/bin/python3 -m venv target/bench/time-venv
    target/bench/time-venv/bin/pip install zappend==0.8.0 'zarr<3' 'xarray==2025.1.2' \
        'pandas<3' rioxarray

The pins are zappend 0.8's world: it imports zarr 2's API (`zarr.convenience`), and with
the xarray of late 2026 its first append fails (a missing store is no longer reported as
FileNotFoundError). The run of docs/PERFORMANCE.md had zappend 0.8.0, zarr 2.18.7,
numcodecs 0.15.2, xarray 2025.1.2, pandas 2.3.3, numpy 2.4.6, rioxarray 0.19.0 and
rasterio 1.4.4.

This script itself runs on Debian's Python, with the system GDAL bindings and the plugin of
this checkout (target/release/gdalplugins).

Usage: bench/time.py [--steps N] [--runs N] [--long-steps N] [--work DIR] [--only PART...]
Writes DIR/time-results.md and prints it.
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"  # Debian's Python, with the system GDAL bindings
GRIDSTORE = os.path.join(ROOT, "target", "release", "gridstore")
PLUGINS = os.path.join(ROOT, "target", "release", "gdalplugins")

SIZE = 1024
NODATA = -9999.0
SEED = 17
START = datetime.datetime(2024, 6, 3, 0, 0)
STEP = datetime.timedelta(minutes=5)
PATTERN = "RAD_%Y%m%d%H%M.tif"
UNITS = "minutes since 2024-06-03 00:00:00"
LONG_SIZE = 64
LONG_BANDS = 1000  # steps per slice file of the long store
PIXEL = (700, 430)  # the series' pixel (column, row), inside the disc


# ---------------------------------------------------------------------------------------
# The radar-like series.

class Weather:
    """The rain cells of a whole run, drawn once from the seed. Each cell is born at a step,
    lives 12 to 96 steps (1 to 8 hours), drifts with a common wind plus its own jitter,
    and grows then decays (a half sine over its life). About 30 cells are alive at a time,
    some of them born before step 0, so that the first map has rain too."""

    MAX_LIFE = 96

    def __init__(self, steps, size, seed=SEED):
        rng = np.random.default_rng(seed)
        first = -self.MAX_LIFE
        births = rng.poisson(30 / 54, steps - first)
        self.birth = np.repeat(np.arange(first, steps), births)  # sorted
        n = len(self.birth)
        scale = size / 1024
        self.life = rng.integers(12, self.MAX_LIFE + 1, n)
        self.x0 = rng.uniform(-0.2 * size, 1.1 * size, n)
        self.y0 = rng.uniform(-0.1 * size, 1.1 * size, n)
        self.vx = (2.5 + rng.normal(0, 0.6, n)) * scale
        self.vy = (-0.8 + rng.normal(0, 0.6, n)) * scale
        self.peak = rng.gamma(2.0, 6.0, n)
        self.sigma = rng.uniform(6, 30, n) * scale
        self.size, self.seed = size, seed
        yy, xx = np.mgrid[0:size, 0:size]
        c = (size - 1) / 2
        self.outside = (xx - c) ** 2 + (yy - c) ** 2 > (0.49 * size) ** 2

    def rain(self, t):
        """The map of step t: Float32 mm/h, NODATA outside the disc."""
        size = self.size
        out = np.zeros((size, size), np.float64)
        lo = np.searchsorted(self.birth, t - self.MAX_LIFE, side="left")
        hi = np.searchsorted(self.birth, t, side="right")
        for i in range(lo, hi):
            age = t - self.birth[i]
            if age >= self.life[i]:
                continue
            strength = self.peak[i] * np.sin(np.pi * (age + 0.5) / self.life[i])
            cx, cy = self.x0[i] + self.vx[i] * age, self.y0[i] + self.vy[i] * age
            r = 3 * self.sigma[i]
            x1, x2 = max(int(cx - r), 0), min(int(cx + r) + 1, size)
            y1, y2 = max(int(cy - r), 0), min(int(cy + r) + 1, size)
            if x1 >= x2 or y1 >= y2:
                continue
            ys, xs = np.ogrid[y1:y2, x1:x2]
            d2 = (xs - cx) ** 2 + (ys - cy) ** 2
            out[y1:y2, x1:x2] += strength * np.exp(-d2 / (2 * self.sigma[i] ** 2))
        # Radar speckle: rain varies within a cell; seeded by the step, so any step can be
        # made alone.
        noise = np.random.default_rng([self.seed, t]).normal(1.0, 0.15, out.shape)
        out *= np.clip(noise, 0.3, None)
        out[out < 0.1] = 0.0
        out = np.round(out, 2).astype(np.float32)
        out[self.outside] = NODATA
        return out


def instant(t):
    return START + t * STEP


def slice_path(work, t):
    return os.path.join(work, "slices", instant(t).strftime(PATTERN))


def geo(size, cell):
    """Geotransform and CRS of the series (ETRS89 LAEA, the radar disc over central Europe)."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3035)
    return [4_000_000, cell, 0, 3_200_000, 0, -cell], srs.ExportToWkt()


def write_slices(work, steps):
    """The GeoTIFF of every step, written once and kept (a file is renamed into place
    whole, so an interrupted run leaves no half slice)."""
    os.makedirs(os.path.join(work, "slices"), exist_ok=True)
    paths = [slice_path(work, t) for t in range(steps)]
    missing = [t for t, p in enumerate(paths) if not os.path.exists(p)]
    if not missing:
        return paths
    print(f"writing {len(missing)} slices...", flush=True)
    weather = Weather(steps_for_weather(steps), SIZE)
    gt, wkt = geo(SIZE, 1000.0)
    drv = gdal.GetDriverByName("GTiff")
    for t in missing:
        part = paths[t] + ".part"
        ds = drv.Create(part, SIZE, SIZE, 1, gdal.GDT_Float32,
                        ["TILED=YES", "COMPRESS=ZSTD", "PREDICTOR=3"])
        ds.SetGeoTransform(gt)
        ds.SetProjection(wkt)
        band = ds.GetRasterBand(1)
        band.SetNoDataValue(NODATA)
        band.WriteArray(weather.rain(t))
        ds = None
        os.rename(part, paths[t])
    return paths


def steps_for_weather(steps):
    """The cells are drawn for the full week whatever --steps is, so that a reduced run
    writes the same first maps as the full one."""
    return max(steps, 2016)


# ---------------------------------------------------------------------------------------
# Running things.

def fresh_plugin():
    """Copies this checkout's build into PLUGINS when the copy there is missing or older, so
    that GDAL never measures a stale plugin."""
    lib = os.path.join(ROOT, "target", "release", "libgridstore.so")
    dst = os.path.join(PLUGINS, "gdal_GRIDSTORE.so")
    if os.path.exists(lib) and (not os.path.exists(dst)
                                or os.path.getmtime(lib) > os.path.getmtime(dst)):
        os.makedirs(PLUGINS, exist_ok=True)
        shutil.copy2(lib, dst)


def env():
    e = dict(os.environ, GDAL_PAM_ENABLED="NO")
    fresh_plugin()
    if os.path.exists(os.path.join(PLUGINS, "gdal_GRIDSTORE.so")):
        e["GDAL_DRIVER_PATH"] = PLUGINS
    return e


def timed(cmd, environ=None):
    """Runs a command under /usr/bin/time; returns (wall seconds, max RSS in MiB, stdout)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, env=environ or env(),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd[:8])} ...\n{out.stderr[-3000:]}")
    wall, rss = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss) / 1024, out.stdout


def clock(cmd, environ=None):
    """Wall seconds of a command, measured here (finer than /usr/bin/time's 10 ms)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, env=environ or env(), capture_output=True, text=True,
                         check=False)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd[:8])} ...\n{out.stderr[-3000:]}")
    return took, out.stdout


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def disk_bytes(path):
    return int(subprocess.check_output(["du", "-sb", path]).split()[0])


def median(values):
    return statistics.median(values)


def ratio_interval(a, b, resamples=4000, seed=1):
    """A 90% bootstrap interval of median(a) / median(b), each sample resampled on its own:
    one that holds 1.00 says the two cannot be told apart in this run's noise."""
    rng = random.Random(seed)
    ratios = sorted(median(rng.choices(a, k=len(a))) / median(rng.choices(b, k=len(b)))
                    for _ in range(resamples))
    return ratios[int(0.05 * resamples)], ratios[int(0.95 * resamples) - 1]


# ---------------------------------------------------------------------------------------
# The peers, run by the virtualenv's Python. Each snippet prints its timing (and data) as
# JSON on its last line.

PEER_COMMON = f"""
import json, sys, time, datetime
import numcodecs
import numpy as np
NODATA = {NODATA!r}
UNITS = {UNITS!r}

def open_slice(path):
    # A GeoTIFF slice as a dataset of one step: raw values (the nodata value kept as it is,
    # as in the GeoTIFF and in gridstore), the time from the file name.
    import os, rioxarray
    da = rioxarray.open_rasterio(path, mask_and_scale=False)
    da.attrs.pop("_FillValue", None)
    t = datetime.datetime.strptime(os.path.basename(path), {PATTERN!r})
    da = da.squeeze("band", drop=True).expand_dims(time=[np.datetime64(t, "ns")])
    # The compressor goes in the variable's encoding: zappend 0.8's configuration schema
    # refuses a compressor given in the configuration (it expects an array there).
    da.encoding["compressor"] = numcodecs.Zstd(level=1)
    return da.to_dataset(name="rain")

def config(target, size):
    return {{
        "target_dir": target,
        "append_dim": "time",
        "append_step": "5m",
        "variables": {{
            "rain": {{"encoding": {{"dtype": "float32", "fill_value": NODATA,
                                  "chunks": [1, size, size]}}}},
            "time": {{"encoding": {{"units": UNITS, "calendar": "proleptic_gregorian",
                                  "dtype": "int64"}}}},
        }},
        "slice_source": open_slice,
    }}
"""

# zappend of the slices argv[3:] to the Zarr argv[1] (map size argv[2]); the call timed.
PEER_APPEND = PEER_COMMON + """
from zappend.api import zappend
import rioxarray, xarray, zarr  # noqa: F401  (imported before the clock starts)
target, size, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
t0 = time.perf_counter()
zappend(paths, config=config(target, size))
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

# zappend's Zarr argv[1] copied into a Zarr argv[2] chunked (288, 64, 64) for series.
PEER_RECHUNK = """
import sys, numcodecs, zarr
src = zarr.open_group(sys.argv[1], mode="r")
dst = zarr.open_group(sys.argv[2], mode="w")
rain = src["rain"]
n, h, w = rain.shape
out = dst.create_dataset("rain", shape=rain.shape, chunks=(288, 64, 64), dtype="f4",
                         fill_value=rain.fill_value, compressor=numcodecs.Zstd(level=1))
out.attrs.update(rain.attrs.asdict())
for t in range(0, n, 288):
    out[t:t + 288] = rain[t:t + 288]
dst.create_dataset("time", data=src["time"][:], chunks=(n,))
dst["time"].attrs.update(src["time"].attrs.asdict())
zarr.consolidate_metadata(sys.argv[2])
"""

# The series of pixel (argv[2], argv[3]) of the Zarr argv[1], timed from the open.
PEER_SERIES = """
import json, sys, time
import zarr
path, x, y = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
rain = zarr.open_array(path + "/rain", mode="r")
v = rain[:, y, x]
took = time.perf_counter() - t0
print(json.dumps({"seconds": took, "values": [float(a) for a in v]}))
"""

# Step argv[2] of the Zarr argv[1] as a map, full or every 4th pixel, timed from the open.
PEER_MAP = """
import json, sys, time
import zarr
path, t, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
rain = zarr.open_array(path + "/rain", mode="r")
a = rain[t]
if how == "level":
    a = a[::4, ::4]
took = time.perf_counter() - t0
print(json.dumps({"seconds": took, "sum": float(a[a != -9999].sum())}))
"""

# One map of a GDAL dataset, timed from the open: argv[1] the path, argv[2] the open
# options as JSON, argv[3] the read's output size (the full size, or less to read a level).
GDAL_MAP = """
import json, sys, time
from osgeo import gdal
gdal.UseExceptions()
gdal.AllRegister()
path, options, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
ds = gdal.OpenEx(path, gdal.OF_RASTER, open_options=options)
band = ds.GetRasterBand(1)
t1 = time.perf_counter()
data = band.ReadRaster(0, 0, ds.RasterXSize, ds.RasterYSize, out, out)
t2 = time.perf_counter()
print(json.dumps({"open": t1 - t0, "read": t2 - t1, "seconds": t2 - t0,
                  "bands": ds.RasterCount}))
"""


# The series of pixel (argv[2], argv[3]) of a time store through GDAL (every step a band,
# one read of a 1 x 1 window over all bands), timed from the open, as the Zarr readers are.
GDAL_SERIES = """
import json, struct, sys, time
from osgeo import gdal
gdal.UseExceptions()
gdal.AllRegister()
path, x, y = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
ds = gdal.OpenEx(path, gdal.OF_RASTER)
raw = ds.ReadRaster(x, y, 1, 1, buf_type=gdal.GDT_Float32)
took = time.perf_counter() - t0
print(json.dumps({"seconds": took, "values": list(struct.unpack(f"{ds.RasterCount}f", raw))}))
"""


def peer(venv, code, args):
    """Runs a peer snippet in a fresh process of the virtualenv; returns (wall seconds of
    the process, peak RSS MiB, the JSON it printed)."""
    wall, rss, out = timed([os.path.join(venv, "bin", "python"), "-c", code] + args)
    return wall, rss, json.loads(out.strip().splitlines()[-1])


def gdal_map(path, options, out):
    _, _, text = timed([PY, "-c", GDAL_MAP, path, json.dumps(options), str(out)])
    return json.loads(text.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# 1 and 2: building both stores, timing single-slice appends along the way.

def append_cmd(store, paths):
    # --no-compact: a timed append is the slice alone, and the series is measured before
    # and after the compaction (part "compact", timed on its own).
    return [GRIDSTORE, "append", "-q", store] + paths + [
        "--time-pattern", PATTERN, "--time-step", "PT5M", "--no-compact"]


def build(work, venv, paths, runs):
    """Appends every slice to a new gridstore store and a new zappend Zarr. The slices of
    the two timed windows (from step 10, and from 16 steps before the end) are appended one
    per process, the two sides taking turns (which goes first alternates); the rest in
    batches (one gridstore command, one zappend call), untimed."""
    store = os.path.join(work, "time.gridstore")
    zarr_maps = os.path.join(work, "zappend.zarr")
    remove(store)
    remove(zarr_maps)
    n = len(paths)
    early = list(range(10, 10 + runs))
    late = list(range(n - 16, n - 16 + runs))
    timed_steps = set(early + late)
    result = {"early": early[0], "late": late[0], "gridstore": {}, "zappend": {}}
    t = 0
    while t < n:
        if t in timed_steps:
            sides = [("gridstore", lambda: timed(append_cmd(store, [paths[t]]))),
                     ("zappend", lambda: peer(venv, PEER_APPEND, [zarr_maps, str(SIZE),
                                                                  paths[t]]))]
            if t % 2:
                sides.reverse()
            for name, go in sides:
                got = go()
                window = "early" if t in early else "late"
                result[name].setdefault(window, []).append(got)
            t += 1
            continue
        end = min([s for s in timed_steps if s > t] + [n])
        batch = paths[t:end]
        print(f"appending steps {t} to {end - 1}...", flush=True)
        timed(append_cmd(store, batch))
        peer(venv, PEER_APPEND, [zarr_maps, str(SIZE)] + batch)
        t = end
    return store, zarr_maps, result


def append_rows(r):
    """Medians of the timed appends: gridstore command; zappend call and command."""
    rows = {}
    for window in ("early", "late"):
        g = r["gridstore"][window]
        z = r["zappend"][window]
        rows[window] = {
            "gridstore_s": median([w for w, _, _ in g]),
            "gridstore_rss": median([m for _, m, _ in g]),
            "zappend_call_s": median([j["seconds"] for _, _, j in z]),
            "zappend_cmd_s": median([w for w, _, _ in z]),
            "zappend_rss": median([m for _, m, _ in z]),
        }
    return rows


def chunk_bytes(store):
    """Bytes of a store's chunk files by level: [level 0, levels above], from the chunk
    names (`<z>.<row>.<col>`, docs/FORMAT.md section 1)."""
    by_level = [0, 0]
    for folder, _, files in os.walk(os.path.join(store, "chunks")):
        for f in files:
            by_level[f.split(".")[0] != "0"] += os.path.getsize(os.path.join(folder, f))
    return by_level


def sizes(work, store, zarr_maps, zarr_series, paths, variant_steps=100):
    """Size on disk of each side, gridstore's split into level 0, its levels and the rest
    (tile index, manifests and step records, with the history of every commit); and, on the
    first `variant_steps` slices, a store without the predictor, to tell what the
    floating-point predictor does to this data."""
    variant_steps = min(variant_steps, len(paths))
    level0, levels = chunk_bytes(store)
    rows = {
        "gridstore, all of it (every snapshot kept)": disk_bytes(store),
        "gridstore, level-0 chunks": level0,
        "gridstore, level chunks (1 and up)": levels,
        "Zarr, map chunks (zappend)": disk_bytes(zarr_maps),
        "Zarr, series chunks": disk_bytes(zarr_series),
        "the GeoTIFF slices (ZSTD, predictor 3, 256² tiles)": sum(map(os.path.getsize, paths)),
    }
    first = {}
    for name, extra in (("default", []), ("PREDICTOR=NO", ["--co", "PREDICTOR=NO"])):
        path = os.path.join(work, f"first-{variant_steps}.gridstore")
        remove(path)
        timed(append_cmd(path, paths[:variant_steps]) + extra)
        first[name] = chunk_bytes(path)
        remove(path)
    zarr_first = sum(os.path.getsize(os.path.join(zarr_maps, "rain", f"{t}.0.0"))
                     for t in range(variant_steps))
    return {"rows": rows, "first": first, "zarr_first": zarr_first, "steps": variant_steps}


def without_fsync(store, paths, runs):
    """What the durable commit costs an append: the last slice deleted (`gridstore
    delete-time`, untimed) and appended again, as it is and under eatmydata (which makes
    fsync and syncfs do nothing), taking turns. Not a way to run gridstore: a crash there
    could lose a commit; it shows what the fsyncs take of the command's time."""
    if not shutil.which("eatmydata"):
        print("(eatmydata not installed: no append without fsync)", flush=True)
        return None
    last = len(paths) - 1
    got = {"with": [], "without": []}
    for i in range(runs):
        for mode in (("with", "without") if i % 2 == 0 else ("without", "with")):
            timed([GRIDSTORE, "delete-time", store, iso(last)])
            prefix = ["eatmydata"] if mode == "without" else []
            got[mode].append(timed(prefix + append_cmd(store, [paths[last]]))[0])
    return {"step": last, "with": median(got["with"]), "without": median(got["without"])}


# ---------------------------------------------------------------------------------------
# 3: point series.

def series(venv, store, zarr_maps, zarr_series, runs):
    x, y = PIXEL
    got = {"gridstore": [], "gdal": [], "zarr_maps": [], "zarr_series": [], "gridstore_rss": []}
    first = {}
    for i in range(runs):
        order = [("gridstore", None), ("gdal", store), ("zarr_maps", zarr_maps),
                 ("zarr_series", zarr_series)]
        order = order[i % 4:] + order[:i % 4]
        for name, path in order:
            if name == "gridstore":
                took, out = clock([GRIDSTORE, "series", store, str(x), str(y), "--pixel"])
                got[name].append(took)
                values = [float(line.split(",")[1]) for line in out.strip().splitlines()[1:]]
            elif name == "gdal":
                _, _, text = timed([PY, "-c", GDAL_SERIES, path, str(x), str(y)])
                j = json.loads(text.strip().splitlines()[-1])
                got[name].append(j["seconds"])
                values = j["values"]
            else:
                _, _, j = peer(venv, PEER_SERIES, [path, str(x), str(y)])
                got[name].append(j["seconds"])
                values = j["values"]
            first.setdefault(name, values)
    _, rss_all, _ = timed([GRIDSTORE, "series", store, str(x), str(y), "--pixel"])
    _, rss_ten, _ = timed([GRIDSTORE, "series", store, str(x), str(y), "--pixel",
                           "--to", instant(9).strftime("%Y-%m-%dT%H:%M:%SZ")])
    same = (np.array(first["gridstore"], np.float32).tolist()
            == np.array(first["gdal"], np.float32).tolist()
            == np.array(first["zarr_maps"], np.float32).tolist()
            == np.array(first["zarr_series"], np.float32).tolist())
    rained = sum(1 for v in first["gridstore"] if v > 0)
    return {k: median(v) for k, v in got.items() if v} | {
        "rss_all": rss_all, "rss_ten": rss_ten, "same": same, "steps": len(first["gridstore"]),
        "rained": rained}


def time_block_bytes(store):
    """Bytes of a store's time blocks (chunk folders of pyramid 255, docs/FORMAT.md §8)."""
    total = 0
    for folder, _, files in os.walk(os.path.join(store, "chunks")):
        if ".255." in os.path.basename(folder):
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total


def compact(store):
    """`gridstore compact` of the store as appended: its time and peak memory, and the
    bytes it adds (time blocks of every closed block of series_block steps)."""
    before = disk_bytes(store)
    wall, rss, out = timed([GRIDSTORE, "compact", store])
    return {"seconds": wall, "rss": rss, "said": out.strip(), "before": before,
            "after": disk_bytes(store), "time_blocks": time_block_bytes(store)}


# ---------------------------------------------------------------------------------------
# 4: one step as a map, through GDAL (needs the time view of the driver: open option TIME=).

# The sum of the valid pixels of band 1 of a GDAL dataset (argv[1], open options argv[2] as
# JSON) and its band count: to check that a view holds the step it names.
GDAL_SUM = """
import json, sys
from osgeo import gdal
gdal.UseExceptions()
ds = gdal.OpenEx(sys.argv[1], gdal.OF_RASTER, open_options=json.loads(sys.argv[2]))
band = ds.GetRasterBand(1)
a = band.ReadAsArray().astype("float64")
nodata = band.GetNoDataValue()
print(json.dumps({"bands": ds.RasterCount,
                  "sum": float(a[a != nodata].sum() if nodata is not None else a.sum())}))
"""


def gdal_sum(path, options):
    _, _, text = timed([PY, "-c", GDAL_SUM, path, json.dumps(options)])
    return json.loads(text.strip().splitlines()[-1])


def slice_sum(path):
    ds = gdal.Open(path)  # kept: a band does not keep its dataset alive
    band = ds.GetRasterBand(1)
    a = band.ReadAsArray().astype("float64")
    return float(a[a != band.GetNoDataValue()].sum())


def time_view_available(store, paths):
    """Whether this build's driver shows a store's time steps (bands = steps, TIME= opens
    one step): the map reads need it. A driver without it opens a time store some other
    way, or ignores the option, so the check looks at what it reads."""
    t = len(paths) // 2
    try:
        every = gdal_sum(store, [])
        one = gdal_sum(store, [f"TIME={iso(t)}"])
    except SystemExit as e:
        print(f"(no map reads through GDAL: {str(e).strip()[-300:]})", flush=True)
        return False
    ok = every["bands"] == len(paths) and one["bands"] == 1 and \
        abs(one["sum"] - slice_sum(paths[t])) <= 1e-6 * max(1.0, abs(one["sum"]))
    if not ok:
        print(f"(no map reads through GDAL: this build's driver opens the {len(paths)}-step "
              f"store as {every['bands']} band(s), and TIME={iso(t)} as {one['bands']} "
              f"band(s) of another sum than the slice's)", flush=True)
    return ok


def iso(t):
    return instant(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def maps(venv, work, store, zarr_maps, zarr_series, paths, runs):
    """The map of one step (the middle one): full size and 256 x 256 (from level 2 where
    there are levels), each read in a fresh process, timed from the open."""
    t = len(paths) // 2
    plain = os.path.join(work, "no-time.gridstore")
    remove(plain)
    timed(["gdal_translate", "-q", "-of", "GRIDSTORE", paths[t], plain])
    if abs(gdal_sum(plain, [])["sum"] - slice_sum(paths[t])) > 1e-6 * abs(slice_sum(paths[t])):
        raise SystemExit(f"{plain}: its map does not hold the pixels of {paths[t]}")

    def zarr_map(path, out):
        how = "full" if out == SIZE else "level"
        return peer(venv, PEER_MAP, [path, str(t), how])[2]["seconds"]

    sides = {
        "gridstore, TIME=": lambda out: gdal_map(store, [f"TIME={iso(t)}"], out)["seconds"],
        "gridstore without time": lambda out: gdal_map(plain, [], out)["seconds"],
        "Zarr, map chunks (zappend)": lambda out: zarr_map(zarr_maps, out),
        "Zarr, series chunks": lambda out: zarr_map(zarr_series, out),
    }
    got = {(name, out): [] for name in sides for out in (SIZE, 256)}
    for i in range(4 * runs + 1):
        for out in (SIZE, 256):
            names = list(sides)
            names = names[i % len(names):] + names[:i % len(names)]
            for name in names:
                got[(name, out)].append(sides[name](out))
    return {k: median(v) for k, v in got.items()}


# ---------------------------------------------------------------------------------------
# 5: a long axis against a short one.

def write_long_slices(work, steps):
    """Slices of LONG_BANDS steps each (LONG_SIZE maps, one band per step, the step's time
    in the netCDF convention: `NETCDF_DIM_time` per band, `time#units`), so that a store of
    100,000 steps takes 100 appends. Kept between runs."""
    folder = os.path.join(work, f"long-slices-{steps}")
    os.makedirs(folder, exist_ok=True)
    weather = None
    gt, wkt = geo(LONG_SIZE, 16000.0)
    paths = []
    for first in range(0, steps, LONG_BANDS):
        count = min(LONG_BANDS, steps - first)
        path = os.path.join(folder, f"steps-{first:07d}.tif")
        paths.append(path)
        if os.path.exists(path):
            continue
        weather = weather or Weather(steps, LONG_SIZE)
        part = path + ".part"
        ds = gdal.GetDriverByName("GTiff").Create(
            part, LONG_SIZE, LONG_SIZE, count, gdal.GDT_Float32,
            ["COMPRESS=ZSTD", "PREDICTOR=3", "INTERLEAVE=BAND"])
        ds.SetGeoTransform(gt)
        ds.SetProjection(wkt)
        ds.SetMetadataItem("time#units", UNITS)
        ds.SetMetadataItem("time#calendar", "proleptic_gregorian")
        for b in range(count):
            band = ds.GetRasterBand(b + 1)
            band.SetNoDataValue(NODATA)
            band.SetMetadataItem("NETCDF_DIM_time", str((first + b) * 5))
            band.WriteArray(weather.rain(first + b))
        ds = None
        os.rename(part, path)
    return paths


def long_store(work, steps):
    """The store of `steps` steps, built once and kept (rebuilt if it does not hold them)."""
    store = os.path.join(work, f"long-{steps}.gridstore")
    if os.path.exists(store):
        info = subprocess.run([GRIDSTORE, "info", store], capture_output=True, text=True,
                              env=env(), check=False).stdout
        held = re.search(r"^Time: .*?(\d+) step", info, re.M)
        if held and int(held.group(1)) == steps:
            return store, None
        remove(store)
    paths = write_long_slices(work, steps)
    print(f"building the {steps}-step store...", flush=True)
    wall, rss, _ = timed([GRIDSTORE, "append", "-q", store] + paths + ["--time-step", "PT5M"])
    return store, wall


def long_axis(work, long_steps, runs):
    """Open with TIME= and one map read, in fresh processes, the long store's and the short
    store's taking turns, each at a different step (spread over the axis)."""
    big, built = long_store(work, long_steps)
    small, _ = long_store(work, 10)
    got = {big: ([], []), small: ([], [])}
    n = 4 * runs + 1
    for i in range(n):
        for path, steps in ((big, long_steps), (small, 10)):
            t = (i * 7919) % steps
            j = gdal_map(path, [f"TIME={iso(t)}"], LONG_SIZE)
            got[path][0].append(j["open"])
            got[path][1].append(j["read"])
    return {
        "built": built, "samples": n,
        "open": (median(got[big][0]), median(got[small][0]),
                 ratio_interval(got[big][0], got[small][0])),
        "read": (median(got[big][1]), median(got[small][1]),
                 ratio_interval(got[big][1], got[small][1])),
    }


# ---------------------------------------------------------------------------------------
# The table.

def report(a, parts):
    gdal_version = gdal.VersionInfo("RELEASE_NAME")
    lines = [f"Machine: {os.cpu_count()} cores, {platform.machine()}, GDAL {gdal_version}; "
             f"{a.steps} steps of {SIZE}x{SIZE} Float32; medians of {a.runs} runs "
             f"({4 * a.runs + 1} for map reads); {time.strftime('%Y-%m-%d %H:%M')}", ""]
    if "append" in parts:
        rows = parts["append"]
        e, l_ = rows["early"], rows["late"]
        lines += [
            "| append one slice | gridstore command s | zappend call s | zappend command s "
            "| zappend call / gridstore | gridstore peak MiB | zappend peak MiB |",
            "|---|---:|---:|---:|---:|---:|---:|"]
        for label, r in ((f"at step {parts['append_steps'][0]}", e),
                         (f"at step {parts['append_steps'][1]}", l_)):
            lines.append(
                f"| {label} | {r['gridstore_s']:.3f} | {r['zappend_call_s']:.3f} | "
                f"{r['zappend_cmd_s']:.2f} | {r['zappend_call_s'] / r['gridstore_s']:.1f}x | "
                f"{r['gridstore_rss']:.0f} | {r['zappend_rss']:.0f} |")
        lines += ["", f"gridstore late / early: {l_['gridstore_s'] / e['gridstore_s']:.2f}; "
                  f"zappend late / early: {l_['zappend_call_s'] / e['zappend_call_s']:.2f}", ""]
    if parts.get("fsync"):
        f = parts["fsync"]
        lines += [f"Append at step {f['step']} (after a delete-time of it): "
                  f"{f['with']:.3f} s as it is, {f['without']:.3f} s with fsync made a no-op "
                  f"(eatmydata): the durable commit takes {f['with'] - f['without']:.3f} s.", ""]
    if "size" in parts:
        s = parts["size"]
        lines += ["| store | size MB |", "|---|---:|"]
        for name, b in s["rows"].items():
            lines.append(f"| {name} | {b / 1e6:.1f} |")
        d, n = s["first"]["default"], s["first"]["PREDICTOR=NO"]
        lines += ["", f"First {s['steps']} steps, chunk MB (level 0 + levels): gridstore "
                  f"{d[0] / 1e6:.1f} + {d[1] / 1e6:.1f}, with PREDICTOR=NO {n[0] / 1e6:.1f} + "
                  f"{n[1] / 1e6:.1f}; zappend's chunks {s['zarr_first'] / 1e6:.1f}", ""]
    if "series" in parts:
        s = parts["series"]
        lines += [
            f"Point series over all {s['steps']} steps ({s['rained']} with rain), "
            f"pixel {PIXEL}, fresh process each; equal values on all four: {s['same']}",
            "",
            "| reader | median ms | / gridstore |", "|---|---:|---:|",
            f"| gridstore series (command) | {1000 * s['gridstore']:.1f} | 1.00 |",
            f"| gridstore through GDAL (all steps as bands, a 1 x 1 read), from the open | "
            f"{1000 * s['gdal']:.1f} | {s['gdal'] / s['gridstore']:.2f} |",
            f"| Zarr, map chunks (zappend), from the open | {1000 * s['zarr_maps']:.1f} | "
            f"{s['zarr_maps'] / s['gridstore']:.1f} |",
            f"| Zarr, series chunks (288x64x64), from the open | {1000 * s['zarr_series']:.1f}"
            f" | {s['zarr_series'] / s['gridstore']:.2f} |",
            "",
            f"gridstore series peak RSS: {s['rss_all']:.0f} MiB over all steps, "
            f"{s['rss_ten']:.0f} MiB over the first 10.", ""]
    if "compact" in parts:
        c = parts["compact"]
        lines += [f"gridstore compact: {c['seconds']:.1f} s, peak {c['rss']:.0f} MiB ({c['said']}); "
                  f"time blocks {c['time_blocks'] / 1e6:.1f} MB, the store "
                  f"{c['before'] / 1e6:.1f} MB before, {c['after'] / 1e6:.1f} MB after.", ""]
    if "series_compacted" in parts:
        s, b = parts["series_compacted"], parts.get("series")
        lines += [
            f"Point series after the compaction (equal values on all four: {s['same']})", "",
            "| reader | median ms | / gridstore after |", "|---|---:|---:|",
            f"| gridstore series after compaction | {1000 * s['gridstore']:.1f} | 1.00 |",
            f"| gridstore through GDAL after compaction, from the open | "
            f"{1000 * s['gdal']:.1f} | {s['gdal'] / s['gridstore']:.2f} |"]
        if b:
            lines.append(f"| gridstore series before compaction | {1000 * b['gridstore']:.1f} | "
                         f"{b['gridstore'] / s['gridstore']:.2f} |")
        lines += [
            f"| Zarr, map chunks (zappend), from the open | {1000 * s['zarr_maps']:.1f} | "
            f"{s['zarr_maps'] / s['gridstore']:.1f} |",
            f"| Zarr, series chunks (288x64x64), from the open | {1000 * s['zarr_series']:.1f}"
            f" | {s['zarr_series'] / s['gridstore']:.2f} |", "",
            f"gridstore series peak RSS after compaction: {s['rss_all']:.0f} MiB.", ""]
    if "maps" in parts:
        m = parts["maps"]
        lines += ["| one step as a map, from the open | full 1024² ms | 256² (level) ms |",
                  "|---|---:|---:|"]
        for name in dict.fromkeys(k for k, _ in m):
            lines.append(f"| {name} | {1000 * m[(name, SIZE)]:.1f} | {1000 * m[(name, 256)]:.1f} |")
        lines.append("")
    if "long" in parts:
        g = parts["long"]
        lines += [f"Long axis: {a.long_steps} steps against 10, {LONG_SIZE}x{LONG_SIZE} maps, "
                  f"TIME= open and one map read, {g['samples']} fresh processes each"
                  + (f" (the long store was built in {g['built']:.0f} s)" if g["built"] else ""),
                  "", "| measure | long ms | 10 steps ms | long / 10 | 90% interval |",
                  "|---|---:|---:|---:|---:|"]
        for key in ("open", "read"):
            lo_v, sh_v, (lo, hi) = g[key]
            lines.append(f"| {key} | {1000 * lo_v:.2f} | {1000 * sh_v:.2f} | "
                         f"{lo_v / sh_v:.2f} | {lo:.2f} to {hi:.2f} |")
        lines.append("")
    return "\n".join(lines)


VENV = os.path.join(ROOT, "target", "bench", "time-venv")
PARTS = ["append", "size", "fsync", "series", "compact", "maps", "long"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2016)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--long-steps", type=int, default=100_000)
    p.add_argument("--work", default=os.path.join(ROOT, "target", "bench", "time"))
    p.add_argument("--venv", default=VENV)
    p.add_argument("--only", nargs="+", choices=PARTS,
                   help="parts to run (append builds the stores the others read)")
    a = p.parse_args()
    if a.steps < 16 + 10 + a.runs or not 1 <= a.runs <= 16:
        p.error("--steps must be at least 26 + --runs, and --runs 1 to 16")
    if not os.path.exists(os.path.join(a.venv, "bin", "python")):
        p.error(f"no virtualenv at {a.venv}: make it as the docstring of bench/time.py says "
                "(python3 -m venv, then pip install zappend==0.8.0 'zarr<3' "
                "'xarray==2025.1.2' 'pandas<3' rioxarray), or give --venv")
    want = lambda part: not a.only or part in a.only  # noqa: E731
    work = os.path.join(a.work, str(a.steps))
    os.makedirs(work, exist_ok=True)
    paths = write_slices(a.work, a.steps)
    store = os.path.join(work, "time.gridstore")
    zarr_maps = os.path.join(work, "zappend.zarr")
    zarr_series = os.path.join(work, "series.zarr")
    parts = {}
    if want("append"):
        store, zarr_maps, r = build(work, a.venv, paths, a.runs)
        parts["append"] = append_rows(r)
        parts["append_steps"] = (r["early"], r["late"])
        remove(zarr_series)
        timed([os.path.join(a.venv, "bin", "python"), "-c", PEER_RECHUNK, zarr_maps,
               zarr_series])
        print(report(a, parts), flush=True)
    if want("size"):
        parts["size"] = sizes(work, store, zarr_maps, zarr_series, paths)
        print(report(a, {"size": parts["size"]}), flush=True)
    if want("fsync"):
        parts["fsync"] = without_fsync(store, paths, a.runs)
        print(report(a, {"fsync": parts["fsync"]}), flush=True)
    if want("series"):
        parts["series"] = series(a.venv, store, zarr_maps, zarr_series, a.runs)
        print(report(a, {"series": parts["series"]}), flush=True)
    if want("compact"):
        parts["compact"] = compact(store)
        if want("series"):
            parts["series_compacted"] = series(a.venv, store, zarr_maps, zarr_series, a.runs)
        print(report(a, {k: parts[k] for k in ("compact", "series_compacted") if k in parts}),
              flush=True)
    view = (want("maps") or want("long")) and time_view_available(store, paths)
    if want("maps") and view:
        parts["maps"] = maps(a.venv, work, store, zarr_maps, zarr_series, paths, a.runs)
        print(report(a, {"maps": parts["maps"]}), flush=True)
    if want("long") and view:
        parts["long"] = long_axis(a.work, a.long_steps, a.runs)
    table = report(a, parts)
    print(table)
    with open(os.path.join(work, "time-results.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
