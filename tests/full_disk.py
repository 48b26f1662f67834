#!/usr/bin/python3
"""A store on a nearly full file system: writes that cannot fit fail cleanly.

Mounts a small tmpfs (so it must run as root of a private mount namespace: `unshare -rm`),
makes a store on it that fits, then tries writes that do not fit, with the file system
pre-filled to different levels so that the failure comes at every step of a write: taking
the lock, writing chunks, index nodes, the snapshot manifest, and the replace of
gridstore.json. After every failure:
  - the writer exited with an error (no crash) that says the device has no space left,
  - the store opens (gdalinfo) and reads with the checksums of its last commit,
  - `gridstore verify` passes and its content digest is that of the last commit,
  - nothing of the failed write is left: no chunks/<id+1>, index/<id+1>,
    snapshots/<id+1>.json, temporary file or writer.lock (the store's files are exactly
    those before the write),
  - once the filler is gone, a write succeeds.

Usage: full_disk.py --gridstore EXE --work DIR [--size 6m]
GDAL must find the plugin (GDAL_DRIVER_PATH). Prints a line for each failed write of 12 MiB
and each new kind of failure of the one-tile writes, then a summary; exit status 0 when
every check held, 1 with the first failure explained.
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

TILE = 32
NO_SPACE = "No space left on device"
# Where a write stands when it fails, told by the object its error names, in the order a
# write goes through them.
PHASES = [
    ("taking the lock", re.compile(r"/writer\.lock: ")),
    ("writing chunks", re.compile(r"/chunks/\d+/")),
    ("writing index nodes", re.compile(r"/index/\d+/")),
    ("writing the source list", re.compile(r"/sources/\d+/")),
    ("writing the snapshot manifest", re.compile(r"/snapshots/\d+\.json")),
    ("replacing gridstore.json", re.compile(r"/gridstore\.json: ")),
]


def fail(message):
    print(f"FAILED: {message}", flush=True)
    sys.exit(1)


def run(args):
    return subprocess.run(args, capture_output=True, text=True)


def run_ok(args):
    out = run(args)
    if out.returncode != 0:
        fail(f"{' '.join(args)} exited with {out.returncode}:\n{out.stdout}{out.stderr}")
    return out.stdout


def make_raster(path, col, row, w, h, kind, seed=1):
    """A Float32 raster on the store grid (EPSG:3857, 1 m cells, origin 0 0) whose top-left
    pixel is grid pixel (col, row). `random` data barely compresses; `smooth` does."""
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, 1, gdal.GDT_Float32)
    ds.SetGeoTransform([float(col), 1.0, 0.0, -float(row), 0.0, -1.0])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3857)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(seed)
    if kind == "random":
        v = rng.random((h, w)) * 1000.0
    else:
        y, x = np.mgrid[0:h, 0:w]
        v = x * 0.5 + y * 0.25 + seed * 100.0
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-1)
    band.WriteArray(v.astype(np.float32))
    ds = None


class Disk:
    """The small file system and a filler file that leaves a chosen amount free."""

    def __init__(self, mount, size):
        self.mount = mount
        self.filler = os.path.join(mount, "filler")
        os.makedirs(mount, exist_ok=True)
        out = run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mount])
        if out.returncode != 0:
            fail(f"cannot mount a tmpfs at {mount}: {out.stderr.strip()}")
        # tmpfs gives space by the memory page: every file takes whole pages.
        self.page = os.statvfs(mount).f_frsize

    def free(self):
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def leave_free(self, free):
        self.empty()
        extra = self.free() - free
        if extra < 0:
            fail(f"only {self.free()} bytes free, {free} wanted")
        with open(self.filler, "wb") as f:
            f.write(b"\0" * extra)
        if self.free() != free:
            fail(f"the filler left {self.free()} bytes free, not {free}")

    def empty(self):
        if os.path.exists(self.filler):
            os.remove(self.filler)


class Store:
    def __init__(self, exe, path):
        self.exe = exe
        self.path = path

    def files(self):
        out = set()
        for d, _, names in os.walk(self.path):
            for n in names:
                out.add(os.path.relpath(os.path.join(d, n), self.path))
        return out

    def state(self):
        """What a reader sees of the committed state, and every file of the store."""
        info = run_ok(["gdalinfo", "-checksum", self.path])
        checksums = [
            line.strip()
            for line in info.splitlines()
            if line.strip().startswith(("Checksum=", "Overviews checksum:"))
        ]
        verify = run([self.exe, "verify", self.path])
        if verify.returncode != 0 or "no problems" not in verify.stdout:
            fail(f"verify found problems:\n{verify.stdout}{verify.stderr}")
        digest = re.search(r"content digest: (\w+)", verify.stdout).group(1)
        snapshot = int(re.search(r"checked snapshot (\d+)", verify.stdout).group(1))
        return {
            "snapshot": snapshot,
            "digest": digest,
            "checksums": checksums,
            "files": self.files(),
        }


def writers(store, source):
    """The two ways to add a raster to a store: the CLI and GDAL."""
    return {
        "gridstore ingest": [store.exe, "ingest", "-q", store.path, source],
        "gdal_translate": ["gdal_translate", "-q", "-of", "GRIDSTORE", source, store.path],
    }


def few(names, shown=6):
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def check_failed(out, store, before, what):
    """Checks that a write failed for lack of space and left the store as it was. Returns
    the step it failed in."""
    if out.returncode <= 0:
        how = "succeeded" if out.returncode == 0 else f"was killed by signal {-out.returncode}"
        fail(f"{what} {how} on a full file system:\n{out.stdout}{out.stderr}")
    err = out.stderr
    if NO_SPACE not in err or "panicked" in err:
        fail(f"{what}: the message does not say the device is full:\n{err}")
    phase = next((name for name, pattern in PHASES if pattern.search(err)), None)
    if phase is None:
        fail(f"{what}: the message names no object of the write:\n{err}")
    after = store.state()
    debris = sorted(after["files"] - before["files"])
    lost = sorted(before["files"] - after["files"])
    if debris:
        fail(f"{what} failed {phase} and left {len(debris)} file(s): {few(debris)} (the write "
             f"was snapshot {before['snapshot'] + 1})")
    if lost:
        fail(f"{what} failed {phase} and removed {len(lost)} committed object(s): {few(lost)}")
    for key in ("snapshot", "digest", "checksums"):
        if after[key] != before[key]:
            fail(f"{what} failed {phase}, and the store's {key} changed: "
                 f"{before[key]} -> {after[key]}")
    return phase


def check_committed(out, store, before, what):
    if out.returncode != 0:
        fail(f"{what} failed:\n{out.stdout}{out.stderr}")
    after = store.state()
    if after["snapshot"] != before["snapshot"] + 1 or after["digest"] == before["digest"]:
        fail(f"{what} succeeded but committed no new state: snapshot {before['snapshot']} "
             f"-> {after['snapshot']}")
    leftovers = [f for f in after["files"] if f == "writer.lock" or f.startswith(".")]
    if leftovers:
        fail(f"{what} left {leftovers}")
    return after


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gridstore", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--size", default="6m")
    a = p.parse_args()

    # Sources live on the ordinary disk; only the stores go on the small file system.
    def src(name):
        return os.path.join(a.work, name)

    make_raster(src("base.tif"), 0, 0, 256, 256, "smooth")
    # Random Float32 over 2048 x 1536 pixels: 12 MiB, twice the whole file system and four
    # times the most it will find free.
    make_raster(src("big.tif"), 0, 0, 2048, 1536, "random")
    # One tile of random data: a write of a few objects, each a page or two.
    make_raster(src("tile.tif"), 3 * TILE, 3 * TILE, TILE, TILE, "random", seed=2)

    disk = Disk(os.path.join(a.work, "mnt"), a.size)
    store = Store(a.gridstore, os.path.join(disk.mount, "s.gridstore"))
    run_ok([a.gridstore, "create", store.path, "--crs", "EPSG:3857", "--origin", "0", "0",
            "--cell-size", "1", "--nodata", "-1", "--tile-size", str(TILE),
            "--type", "Float32"])
    run_ok([a.gridstore, "ingest", "-q", store.path, src("base.tif")])
    state = store.state()
    failures = 0

    # Writes several times the free space, at several fill levels; after each, a small
    # write once the filler is gone.
    for i, free in enumerate([3 << 20, 1 << 20, 3 * disk.page]):
        disk.leave_free(free)
        name, args = list(writers(store, src("big.tif")).items())[i % 2]
        phase = check_failed(run(args), store, state, f"{name} of big.tif")
        failures += 1
        print(f"{free} bytes free: {name} of 12 MiB failed {phase}; store unchanged "
              f"(snapshot {state['snapshot']})", flush=True)
        disk.empty()
        small = src(f"small{i}.tif")
        make_raster(small, 40 * i, 16, 24, 24, "smooth", seed=i + 3)
        state = check_committed(run([a.gridstore, "ingest", "-q", store.path, small]), store,
                                state, f"ingest of {small} after the filler was removed")

    # A store created on a full file system: nothing of it may stay behind.
    disk.leave_free(16 * disk.page)
    new = os.path.join(disk.mount, "new.gridstore")
    out = run(["gdal_translate", "-q", "-of", "GRIDSTORE", "-co", f"BLOCKSIZE={TILE}",
               src("big.tif"), new])
    if out.returncode <= 0 or NO_SPACE not in out.stderr:
        fail(f"creating a store on a full disk: exit status {out.returncode}\n"
             f"{out.stdout}{out.stderr}")
    if os.path.exists(new):
        fail(f"a failed creation left {sorted(os.listdir(new))}")
    failures += 1
    print(f"{16 * disk.page} bytes free: creating a store with gdal_translate failed; "
          "nothing left of it", flush=True)

    # One page more free space at each try, until the write fits: the failure moves through
    # every step of the write.
    for name in ["gridstore ingest", "gdal_translate"]:
        args = writers(store, src("tile.tif"))[name]
        what = f"{name} of one tile"
        seen = []
        pages = 0
        while True:
            disk.leave_free(pages * disk.page)
            out = run(args)
            if out.returncode == 0:
                break
            phase = check_failed(out, store, state, what)
            failures += 1
            if phase not in seen:
                seen.append(phase)
                print(f"{pages} page(s) free: {what} failed {phase}; store unchanged "
                      f"(snapshot {state['snapshot']})", flush=True)
            pages += 1
            if pages > 64:
                fail(f"{what} still fails with {pages} pages free")
        state = check_committed(out, store, state, f"{what} with {pages} pages free")
        print(f"{pages} page(s) free: {what} committed snapshot {state['snapshot']}",
              flush=True)
        missing = [n for n, _ in PHASES if n not in seen]
        if missing:
            fail(f"{what}: no failure came while {', '.join(missing)} (seen: {seen})")
        # Back to the state before, so the other writer's sweep writes the same objects.
        disk.empty()
        run_ok([a.gridstore, "rollback", store.path, "--to", str(state["snapshot"] - 1)])
        state = store.state()

    print(f"full disk: {failures} failed write(s), each left the store as it was")


if __name__ == "__main__":
    main()
