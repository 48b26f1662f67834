#!/usr/bin/python3
"""Helpers for the tests of readers and writers running at the same time.

Rasters are single-band Float32 in EPSG:3857 with 1 m cells and nodata -1, placed by grid
pixel: pixel (COL, ROW) of a store whose origin is (0, 0) covers x COL..COL+1, y -ROW-1..-ROW.

constant PATH COL ROW W H VALUE
    A raster of VALUE everywhere.
series DIR N COL ROW W H
    N rasters DIR/1.tif .. DIR/N.tif, raster k holding the value k everywhere.
mosaic DIR N SIZE STEP SEED
    N rasters DIR/r0.tif .. of SIZE x SIZE random values (poorly compressible, so
    ingesting them takes a while), four per row, STEP pixels apart (overlapping when STEP <
    SIZE).
values STORE COL ROW W H
    Prints the distinct values of a window of the store's band 1, comma-separated.
reader STORE STOP
    Prints READY once it has opened the store a first time (the "early" dataset, not read
    yet), then opens, reads and closes the store in a loop until the file STOP exists:
    each read takes the window 32,32 192x192 of the base level and the same area of
    overviews 0 and 1. The first dataset seen holding a state other than the initial one
    stays open ("held") with only its base window read (that read is not in "reads").
    At the end, the early dataset's and the held dataset's unread windows are read, and
    one JSON object is printed: {"reads": [[base, ov0, ov1], ...], "early": [...],
    "held": [...] or null}, each window given as the sorted list of its distinct values.
hold STORE LOCK_TIMEOUT
    Opens STORE in update mode (which takes the writer lock) and prints "READY <pid>", or
    "FAILED <message>" and exits 1. Then follows commands on stdin, answering each:
      write COL ROW W H VALUE  -> "written"  (into the session; the band's blocks are
                                             handed to the driver, nothing is committed)
      flush                    -> "flushed"  (a commit)
      close                    -> "closed"   (a commit, the lock released), then exits
"""
import json
import os
import sys
import time

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

NODATA = -1.0
WINDOW = (32, 32, 192, 192)


def create(path, col, row, w, h, data):
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, 1, gdal.GDT_Float32)
    ds.SetGeoTransform([col, 1.0, 0.0, -row, 0.0, -1.0])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3857)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(NODATA)
    band.WriteArray(data)
    ds = None


def constant(args):
    path, (col, row, w, h), value = args[0], map(int, args[1:5]), float(args[5])
    create(path, col, row, w, h, np.full((h, w), value, dtype=np.float32))


def series(args):
    folder, n, (col, row, w, h) = args[0], int(args[1]), map(int, args[2:6])
    for k in range(1, n + 1):
        create(os.path.join(folder, f"{k}.tif"), col, row, w, h,
               np.full((h, w), k, dtype=np.float32))


def mosaic(args):
    folder, (n, size, step, seed) = args[0], map(int, args[1:5])
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = rng.uniform(0, 1000, (size, size)).astype(np.float32)
        create(os.path.join(folder, f"r{i}.tif"), (i % 4) * step, (i // 4) * step, size, size,
               data)


def distinct(a):
    return sorted(float(v) for v in np.unique(a))


def values(args):
    ds = gdal.Open(args[0])
    col, row, w, h = map(int, args[1:5])
    print(",".join(f"{v:g}" for v in distinct(ds.GetRasterBand(1).ReadAsArray(col, row, w, h))))


def read_base(ds):
    return distinct(ds.GetRasterBand(1).ReadAsArray(*WINDOW))


def read_overviews(ds):
    band = ds.GetRasterBand(1)
    x, y, w, h = WINDOW
    out = []
    for i in (0, 1):
        f = 2 ** (i + 1)
        out.append(distinct(band.GetOverview(i).ReadAsArray(x // f, y // f, w // f, h // f)))
    return out


def reader(args):
    store, stop = args
    early = gdal.Open(store)
    print("READY", flush=True)
    reads, held, initial = [], None, None
    while True:
        # Checked before the read, so that the last read starts after the writer's last
        # commit.
        stopping = os.path.exists(stop)
        ds = gdal.Open(store)
        base = read_base(ds)
        if initial is None:
            initial = base
        if held is None and base != initial:
            held = (ds, base)
        else:
            reads.append([base] + read_overviews(ds))
        ds = None
        if stopping:
            break
        # A pause between reads leaves the writers some of the CPU.
        time.sleep(0.01)
    result = {"reads": reads, "early": [read_base(early)] + read_overviews(early), "held": None}
    if held is not None:
        result["held"] = [held[1]] + read_overviews(held[0])
    print(json.dumps(result))


def hold(args):
    store, timeout = args
    try:
        ds = gdal.OpenEx(store, gdal.OF_UPDATE | gdal.OF_RASTER,
                         open_options=[f"LOCK_TIMEOUT={timeout}"])
    except RuntimeError as e:
        print("FAILED", e, flush=True)
        sys.exit(1)
    print("READY", os.getpid(), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "write":
            col, row, w, h = map(int, words[1:5])
            band = ds.GetRasterBand(1)
            band.WriteArray(np.full((h, w), float(words[5]), dtype=np.float32), col, row)
            band.FlushCache()
            print("written", flush=True)
        elif words[0] == "flush":
            ds.FlushCache()
            print("flushed", flush=True)
        elif words[0] == "close":
            ds = None
            print("closed", flush=True)
            return
        else:
            raise SystemExit(f"unknown command {line!r}")
    # stdin closed without "close": the test is gone. Leave without committing.
    os._exit(3)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"constant": constant, "series": series, "mosaic": mosaic, "values": values,
     "reader": reader, "hold": hold}[cmd](rest)
