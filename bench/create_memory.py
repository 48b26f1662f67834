#!/usr/bin/python3
"""Peak memory of making a 16384 x 16384 Float32 store through GDAL's Create, next to
gdal_translate ingest of the same data and the same Create writing a GTiff.

1. create -> store: a Python process (GDAL bindings) makes the store with Driver.Create,
   sets the geotransform and CRS, then writes the raster in strips of --strip-rows rows
   with WriteArray, and closes it (the commit and every level happen at close).
2. gdal_translate -> store: `gdal_translate -of GRIDSTORE` of the same pixels, read from a
   tiled, ZSTD-compressed GTiff written first by the same writer (source-SIZE.tif).
3. create -> GTiff: the writer of 1, writing a tiled, ZSTD-compressed GTiff (no levels), for
   reference.
4. Python baseline: the writer's interpreter with GDAL and numpy loaded and one strip
   computed, nothing written: what 1 and 3 pay before writing anything.

Peak memory is the maximum resident set size of the process (`/usr/bin/time -f %M`). Every
run has the same GDAL_CACHEMAX (printed), the plugin of target/release, and a fresh
process; the cases take turns run by run. Figures are medians of --runs runs. A second
table repeats 1, 3 and 4 at a quarter and a half of the size, to show whether a writer's
peak grows with the raster or stays bounded. Nothing is asserted: the tables are for
docs/PERFORMANCE.md.

Usage: bench/create_memory.py [--runs N] [--work DIR] [--size N] [--cachemax MB] [--no-sizes]
       bench/create_memory.py write PATH SIZE [--strip-rows N] [--baseline]   (one writer)
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
PLUGIN = os.path.join(ROOT, "target", "release", "libgridstore.so")
GTIFF_OPTIONS = ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=ZSTD",
                 "PREDICTOR=3", "NUM_THREADS=ALL_CPUS"]


# ---- the writer (run in its own process) -----------------------------------------------

def strip_values(np, n, row, rows):
    """A smooth surface with detail, heights rounded to 1 cm: the same for every writer."""
    x = np.arange(n, dtype=np.float64)[None, :]
    y = np.arange(row, row + rows, dtype=np.float64)[:, None]
    z = (1000 + 300 * np.sin(x / 700) * np.cos(y / 900) + 20 * np.sin(x / 37 + y / 53)
         + 3 * np.cos(x / 5.3) * np.sin(y / 7.1))
    return np.round(z, 2).astype(np.float32)


def write(args):
    p = argparse.ArgumentParser(prog="create_memory.py write")
    p.add_argument("path")
    p.add_argument("size", type=int)
    p.add_argument("--strip-rows", type=int, default=256)
    p.add_argument("--baseline", action="store_true",
                   help="load GDAL and numpy and compute one strip, write nothing")
    a = p.parse_args(args)
    import numpy as np
    from osgeo import gdal, osr
    gdal.UseExceptions()
    n = a.size
    if a.baseline:
        strip_values(np, n, 0, a.strip_rows)
        return
    store = a.path.endswith(".gridstore")
    driver = gdal.GetDriverByName("GRIDSTORE" if store else "GTiff")
    ds = driver.Create(a.path, n, n, 1, gdal.GDT_Float32, [] if store else GTIFF_OPTIONS)
    ds.SetGeoTransform([500000, 10, 0, 6000000, 0, -10])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    for row in range(0, n, a.strip_rows):
        rows = min(a.strip_rows, n - row)
        band.WriteArray(strip_values(np, n, row, rows), 0, row)
    ds = None


# ---- the benchmark ---------------------------------------------------------------------

def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def measured(cmd, env):
    """Runs a command under /usr/bin/time; returns (seconds, max RSS in KiB)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    seconds, rss = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def environment(cachemax, plugins):
    env = dict(os.environ)
    env.update({"GDAL_CACHEMAX": str(cachemax), "GDAL_DRIVER_PATH": plugins,
                "GDAL_PAM_ENABLED": "NO"})
    env.pop("CPL_DEBUG", None)
    return env


def cases(work, size, strip_rows, source):
    """(label, command, output to remove before each run) of every case."""
    me = os.path.abspath(__file__)
    writer = [PY, me, "write"]
    strips = ["--strip-rows", str(strip_rows)]
    created = os.path.join(work, "created.gridstore")
    translated = os.path.join(work, "translated.gridstore")
    gtiff = os.path.join(work, "created.tif")
    return [
        ("create -> store", writer + [created, str(size)] + strips, created),
        ("gdal_translate -> store",
         ["gdal_translate", "-q", "-of", "GRIDSTORE", source, translated], translated),
        ("create -> GTiff", writer + [gtiff, str(size)] + strips, gtiff),
        ("Python baseline", writer + [gtiff, str(size), "--baseline"] + strips, None),
    ]


def measure_all(all_cases, runs, env):
    """Every case once per run, in turns; returns {label: [(seconds, KiB), ...]}."""
    results = {label: [] for label, _, _ in all_cases}
    for run in range(runs):
        for label, command, output in all_cases:
            if output:
                remove(output)
            results[label].append(measured(command, env))
            seconds, rss = results[label][-1]
            print(f"run {run + 1}: {label}: {rss / 1024:.0f} MiB, {seconds:.1f} s",
                  file=sys.stderr)
    return results


def show(command):
    """A command as a user would type it: paths relative to the project when inside it."""
    return " ".join(os.path.relpath(w, ROOT) if w.startswith(ROOT) else w for w in command)


def median_mib(measurements):
    return statistics.median(m for _, m in measurements) / 1024


def source_for(work, size, strip_rows, env):
    """The tiled, compressed GTiff gdal_translate reads, written once by the writer."""
    source = os.path.join(work, f"source-{size}.tif")
    if not os.path.exists(source):
        subprocess.run([PY, os.path.abspath(__file__), "write", source + ".part.tif",
                        str(size), "--strip-rows", str(strip_rows)], env=env, check=True)
        os.rename(source + ".part.tif", source)
    return source


def print_main_table(a, all_cases, results):
    print(f"{a.size} x {a.size} Float32, GDAL_CACHEMAX={a.cachemax} MB, strips of "
          f"{a.strip_rows} rows, median of {a.runs} runs\n")
    print("| case | peak RSS MiB | wall s | command |")
    print("|---|---:|---:|---|")
    for label, command, _ in all_cases:
        seconds = statistics.median(t for t, _ in results[label])
        print(f"| {label} | {median_mib(results[label]):.0f} | {seconds:.1f} | "
              f"`{show(command)}` |")


def print_size_table(by_size):
    """Whether the Create writers' peak grows with the raster: smaller sizes beside the
    main one."""
    labels = ["create -> store", "create -> GTiff", "Python baseline"]
    print("\nPeak RSS MiB by raster size (same cache, strips and runs):\n")
    print("| size | " + " | ".join(labels) + " |")
    print("|---:|" + "---:|" * len(labels))
    for size in sorted(by_size):
        cells = " | ".join(f"{median_mib(by_size[size][label]):.0f}" for label in labels)
        print(f"| {size} | {cells} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", default=os.path.join(ROOT, "target", "bench-create"))
    p.add_argument("--size", type=int, default=16384)
    p.add_argument("--cachemax", type=int, default=256, help="GDAL_CACHEMAX, in MB")
    p.add_argument("--strip-rows", type=int, default=256)
    p.add_argument("--no-sizes", action="store_true",
                   help="skip the Create writers at a quarter and half of --size")
    a = p.parse_args()
    if not os.path.exists(PLUGIN):
        raise SystemExit(f"{PLUGIN} is missing: run `cargo build --release` first")
    os.makedirs(a.work, exist_ok=True)
    plugins = tempfile.mkdtemp(prefix="gdalplugins-", dir=a.work)
    shutil.copy(PLUGIN, os.path.join(plugins, "gdal_GRIDSTORE.so"))
    env = environment(a.cachemax, plugins)
    try:
        source = source_for(a.work, a.size, a.strip_rows, env)
        all_cases = cases(a.work, a.size, a.strip_rows, source)
        results = measure_all(all_cases, a.runs, env)
        by_size = {a.size: results}
        for size in ([] if a.no_sizes else [a.size // 4, a.size // 2]):
            writers = [c for c in cases(a.work, size, a.strip_rows, source)
                       if not c[0].startswith("gdal_translate")]
            by_size[size] = measure_all(writers, a.runs, env)
    finally:
        shutil.rmtree(plugins)
    print_main_table(a, all_cases, results)
    print_size_table(by_size)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "write":
        write(sys.argv[2:])
    else:
        main()
