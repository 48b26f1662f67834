#!/usr/bin/python3
"""What transactions and history (rollback, gc, repair, ingest checkpoints, LOCK_TIMEOUT)
cost on reads: open time and one-window read time of the GDAL plugin built from the commit
before that work (--before, 3fc4724 by default) against the current build, on the same stores.

- BEFORE is built in its own git worktree, target/bench/before-src (made with
  `git worktree add --detach`, reused when it exists), by `cargo build --release` there, with
  the worktree's own target folder. AFTER is this checkout's target/release/libgridstore.so,
  which must be newer than the sources (run `cargo build --release` first). Each library is
  copied as gdal_GRIDSTORE.so into a folder of its own (target/bench/plugins-before,
  target/bench/plugins-after) that child processes get as GDAL_DRIVER_PATH, so each loads
  that build and no other plugin; a check process confirms which file GDAL mapped.
- The stores are made like the two of bench/update.py's scale part (its `scale_stores`): a
  16384x16384 Byte store in 16-pixel tiles (about 1.4 million stored tiles with its levels,
  built once and kept in target/bench as history-million.gridstore) and a 160x160 one (139
  tiles). The BEFORE build writes them, in the format it knows; the AFTER build reads that
  format too (later builds write a newer one, which BEFORE cannot read), so both builds open
  the same bytes.
- Every figure comes from a fresh process, timed inside it (interpreter start-up, loading
  GDAL and the plugin are left out), as in bench/update.py: open is `gdal.Open`, first band,
  size; a read is one window (128x128, 64 tiles, aligned on the tile grid) at the base level
  or at the first overview (on an overview too small for that, the largest whole number of
  tiles that leaves a tile of room: 64x64 on the small store), at a different place for each
  window; or the 64 tiles of such a window at the base level read one by one with ReadBlock
  (the block path gdal_translate and QGIS's renderer use). Each window is first read once by
  a process whose figures are dropped (so chunk files are in the page cache for both builds), then by both
  builds, the order swapping window by window (AB, BA, AB, ...), so drift hits both.
- --runs N rounds of --windows K windows per store and read kind: medians of N*K fresh
  processes per build (2*N*K for open), after/before ratios of the medians, and a 90%
  bootstrap interval of each ratio (pairs resampled): an interval holding 1.00 is within noise.

Usage: bench/history_cost.py [--runs N] [--windows K] [--before REV] [--work DIR]
Writes DIR/history-cost-results.md and prints it.
"""
import argparse
import datetime
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # importing update.py leaves no __pycache__ in bench/
import update  # noqa: E402  (bench/update.py: the stores of its scale part)

PY = update.PY
DEFAULT_BEFORE = "3fc4724"
DEFAULT_WINDOWS = 10
AFTER_LIB = os.path.join(ROOT, "target", "release", "libgridstore.so")
SOURCES = ["src", "cpp-shim", "build.rs", "Cargo.toml", "Cargo.lock"]

# Timed inside a fresh process: GDAL and the plugin are loaded before the clock starts.
PROBE = """
import sys, time
from osgeo import gdal
gdal.UseExceptions()
path, kind, sx, sy = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
ds = gdal.Open(path)
b = ds.GetRasterBand(1)
w, h = ds.RasterXSize, ds.RasterYSize
t1 = time.perf_counter()
if kind == "overview":
    b = b.GetOverview(0)
    w, h = b.XSize, b.YSize
bs = b.GetBlockSize()[0]
n = 128 if min(w, h) >= 128 + bs else (min(w, h) // bs - 1) * bs
x = (sx % ((w - n) // bs + 1)) * bs
y = (sy % ((h - n) // bs + 1)) * bs
t2 = time.perf_counter()
if kind == "blocks":
    # Block by block, as gdal_translate and QGIS's renderer read: one tile per call.
    for by in range(y // bs, (y + n) // bs):
        for bx in range(x // bs, (x + n) // bs):
            b.ReadBlock(bx, by)
else:
    b.ReadRaster(x, y, n, n)
t3 = time.perf_counter()
print(t1 - t0, t3 - t2, n, w, h, bs)
"""

# Which plugin file GDAL loaded, and whether it knows the LOCK_TIMEOUT open option.
CHECK = """
from osgeo import gdal
d = gdal.GetDriverByName("GRIDSTORE")
assert d is not None, "GDAL did not load a GRIDSTORE driver"
maps = [l.split()[-1] for l in open("/proc/self/maps") if l.rstrip().endswith("gdal_GRIDSTORE.so")]
print(sorted(set(maps))[0] if maps else "?")
print("LOCK_TIMEOUT" in (d.GetMetadataItem("DMD_OPENOPTIONLIST") or ""))
print(gdal.VersionInfo("RELEASE_NAME"))
"""


def git(*args, cwd=ROOT):
    return subprocess.run(["git"] + list(args), cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def before_library(work, rev):
    """The plugin library of commit rev, built in a worktree of its own (reused if there)."""
    src = os.path.join(work, "before-src")
    want = git("rev-parse", f"{rev}^{{commit}}")
    if not os.path.exists(os.path.join(src, ".git")):
        subprocess.run(["git", "worktree", "add", "--detach", src, want], cwd=ROOT, check=True)
    elif git("rev-parse", "HEAD", cwd=src) != want:
        subprocess.run(["git", "checkout", "-q", "--detach", want], cwd=src, check=True)
    print(f"building {rev} in {os.path.relpath(src, ROOT)} (cargo build --release)", flush=True)
    subprocess.run(["cargo", "build", "--release", "--lib"], cwd=src, check=True)
    return os.path.join(src, "target", "release", "libgridstore.so"), want


def newest_source_time():
    newest = 0.0
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isfile(path):
            newest = max(newest, os.path.getmtime(path))
        for top, _, files in os.walk(path):
            for f in files:
                newest = max(newest, os.path.getmtime(os.path.join(top, f)))
    return newest


def plugin_env(work, name, lib):
    """A GDAL_DRIVER_PATH folder holding a copy of lib as gdal_GRIDSTORE.so, and its env."""
    folder = os.path.join(work, f"plugins-{name}")
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(lib, os.path.join(folder, "gdal_GRIDSTORE.so"))
    env = dict(os.environ, GDAL_DRIVER_PATH=folder, GDAL_PAM_ENABLED="NO")
    env.pop("CPL_DEBUG", None)
    out = subprocess.run([PY, "-c", CHECK], env=env, check=True, capture_output=True,
                         text=True).stdout.split("\n")
    loaded = os.path.realpath(out[0])
    if loaded != os.path.realpath(os.path.join(folder, "gdal_GRIDSTORE.so")):
        raise SystemExit(f"{name}: GDAL loaded {loaded}, not the copy in {folder}")
    return env, out[1] == "True", out[2]


def probe(path, kind, j, env):
    out = subprocess.run([PY, "-c", PROBE, path, kind, str(j * 7919), str(j * 104729)],
                         env=env, check=True, capture_output=True, text=True)
    open_s, read_s, n, w, h, bs = out.stdout.split()
    return float(open_s), float(read_s), (int(n), int(w), int(h), int(bs))


def median(values):
    return update.median(values)


def ratio_interval(before, after, rng, draws=2000):
    """90% bootstrap interval of median(after) / median(before), the pairs resampled."""
    idx = range(len(before))
    ratios = []
    for _ in range(draws):
        pick = [rng.choice(idx) for _ in idx]
        ratios.append(median([after[i] for i in pick]) / median([before[i] for i in pick]))
    ratios.sort()
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--windows", type=int, default=DEFAULT_WINDOWS,
                   help="windows per run, store and read kind")
    p.add_argument("--before", default=DEFAULT_BEFORE, help="commit of the BEFORE build")
    p.add_argument("--work", default=os.path.join(ROOT, "target", "bench"))
    a = p.parse_args()
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)

    if not os.path.exists(AFTER_LIB):
        raise SystemExit("target/release/libgridstore.so is missing: run cargo build --release")
    if os.path.getmtime(AFTER_LIB) < newest_source_time():
        raise SystemExit("target/release/libgridstore.so is older than the sources: "
                         "run cargo build --release")
    before_lib, before_sha = before_library(work, a.before)
    env_b, lock_b, gdal_version = plugin_env(work, "before", before_lib)
    env_a, lock_a, _ = plugin_env(work, "after", AFTER_LIB)
    envs = {"before": env_b, "after": env_a}
    changed = git("status", "--porcelain", "--", *SOURCES)
    after_name = git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if changed else "")
    before_name = before_sha[:7]
    print(f"BEFORE {before_name} (LOCK_TIMEOUT open option: {lock_b}); "
          f"AFTER {after_name} (LOCK_TIMEOUT open option: {lock_a})", flush=True)

    # The stores, made by the BEFORE build: both builds read its format.
    (big, small), counts = update.scale_stores(
        work, env_b, names=("history-million.gridstore", "history-hundred.gridstore"),
        this_build=False)
    stores = [(big, "16384x16384"), (small, "160x160")]
    kinds = ["base", "overview", "blocks"]
    load_start = os.getloadavg()
    started = datetime.datetime.now()

    # samples[(store, kind)][build] = [(open_s, read_s), ...], paired by position.
    samples = {(s, k): {"before": [], "after": []} for s, _ in stores for k in kinds}
    shape = {}
    builds = ["before", "after"]
    j = 0
    for r in range(a.runs):
        for path, _ in stores:
            for kind in kinds:
                for _ in range(a.windows):
                    probe(path, kind, j, envs[builds[j % 2]])  # page cache; dropped
                    for name in (builds if j % 2 == 0 else builds[::-1]):
                        o, rd, shp = probe(path, kind, j, envs[name])
                        samples[(path, kind)][name].append((o, rd))
                        shape[(path, kind)] = shp
                    j += 1
        print(f"run {r + 1}/{a.runs} done", flush=True)
    load_end = os.getloadavg()
    took = (datetime.datetime.now() - started).total_seconds()

    rng = random.Random(1)
    rows = []
    for path, label in stores:
        opens = {b: [o for k in kinds for o, _ in samples[(path, k)][b]] for b in builds}
        lines = [("open", opens)]
        for kind in kinds:
            n, w, h, bs = shape[(path, kind)]
            if kind == "blocks":
                what = f"{(n // bs) ** 2} tiles of a {n}x{n} window read one by one (ReadBlock)"
            else:
                where = "base level" if kind == "base" else f"first overview ({w}x{h})"
                what = f"{n}x{n} window read, {where}, {(n // bs) ** 2} tiles"
            lines.append((what, {b: [rd for _, rd in samples[(path, kind)][b]] for b in builds}))
        for what, values in lines:
            mb, ma = median(values["before"]), median(values["after"])
            lo, hi = ratio_interval(values["before"], values["after"], rng)
            rows.append(f"| {label} ({counts[path]} tiles) | {what} | {1000 * mb:.3f} | "
                        f"{1000 * ma:.3f} | {ma / mb:.2f} | {lo:.2f} to {hi:.2f} |")

    command = f"/usr/bin/python3 bench/history_cost.py --runs {a.runs}"
    if a.windows != DEFAULT_WINDOWS:
        command += f" --windows {a.windows}"
    if a.before != DEFAULT_BEFORE:
        command += f" --before {a.before}"
    per = a.runs * a.windows
    block = [
        "Command:",
        "",
        f"    {command}",
        "",
        f"Run of {started:%Y-%m-%d}, {os.cpu_count()} cores, GDAL {gdal_version}; before = "
        f"{before_name}, after = {after_name}; load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end ({took / 60:.1f} minutes of measuring). Medians of "
        f"{per} fresh processes per build and row ({2 * per} for open), the builds taking "
        f"turns window by window.",
        "",
        "| store | measure | before ms | after ms | after / before | 90% interval |",
        "|---|---|---:|---:|---:|---:|",
    ] + rows + [""]
    with open(os.path.join(work, "history-cost-results.md"), "w") as f:
        f.write("\n".join(block) + "\n")
    print("\n".join(block), flush=True)


if __name__ == "__main__":
    sys.exit(main())
