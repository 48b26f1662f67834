#!/usr/bin/python3
"""Helpers for the tests that add data to existing stores.

make PATH X0 Y0 W H VALUE [--cell C] [--epsg N] [--type T] [--nodata V] [--hole]
    A north-up raster whose pixels are VALUE plus column/row patterns (so a misplaced pixel
    shows), with the top-left quarter set to nodata when --hole is given.
probe DATASET X Y [X Y ...]
    Prints "value mask" of band 1 at each georeferenced point.
same-grid-compare STORE REFERENCE
    Reads the part of STORE that REFERENCE covers (same CRS and cell size, aligned) and
    compares it with REFERENCE pixel for pixel, where REFERENCE holds data; exits 1 on any
    difference. Prints the number of pixels compared.
rasterio-write STORE COL ROW W H VALUE
    Opens STORE in r+ mode with rasterio and writes a window of band 1.
gdal-write-overview STORE
    Tries to write to an overview band through GDAL; prints the error the write raises.
"""
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

TYPES = {"Byte": gdal.GDT_Byte, "Int16": gdal.GDT_Int16, "UInt16": gdal.GDT_UInt16,
         "Int32": gdal.GDT_Int32, "Float32": gdal.GDT_Float32, "Float64": gdal.GDT_Float64}


def make(args):
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("path")
    for n in ("x0", "y0"):
        p.add_argument(n, type=float)
    for n in ("w", "h"):
        p.add_argument(n, type=int)
    p.add_argument("value", type=float)
    p.add_argument("--cell", type=float, default=10.0)
    p.add_argument("--epsg", type=int, default=32631)
    p.add_argument("--type", default="Float32")
    p.add_argument("--nodata", type=float)
    p.add_argument("--hole", action="store_true")
    p.add_argument("--bands", type=int, default=1)
    a = p.parse_args(args)
    ds = gdal.GetDriverByName("GTiff").Create(a.path, a.w, a.h, a.bands, TYPES[a.type])
    ds.SetGeoTransform([a.x0, a.cell, 0, a.y0, 0, -a.cell])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(a.epsg)
    ds.SetProjection(srs.ExportToWkt())
    y, x = np.mgrid[0:a.h, 0:a.w]
    for b in range(1, a.bands + 1):
        v = a.value + (x % 7) + (y % 5) * 10 + b
        if a.hole and a.nodata is not None:
            v[: a.h // 2, : a.w // 2] = a.nodata
        band = ds.GetRasterBand(b)
        if a.nodata is not None:
            band.SetNoDataValue(a.nodata)
        band.WriteArray(v)
    ds = None


def probe(args):
    ds = gdal.Open(args[0])
    gt = ds.GetGeoTransform()
    band = ds.GetRasterBand(1)
    mask = band.GetMaskBand()
    pts = [float(v) for v in args[1:]]
    for gx, gy in zip(pts[0::2], pts[1::2]):
        col = int((gx - gt[0]) // gt[1])
        row = int((gy - gt[3]) // gt[5])
        if not (0 <= col < ds.RasterXSize and 0 <= row < ds.RasterYSize):
            print("outside 0")
            continue
        v = band.ReadAsArray(col, row, 1, 1)[0, 0]
        m = mask.ReadAsArray(col, row, 1, 1)[0, 0]
        print(f"{v:g} {m}")


def same_grid_compare(args):
    store, ref = gdal.Open(args[0]), gdal.Open(args[1])
    sg, rg = store.GetGeoTransform(), ref.GetGeoTransform()
    assert abs(sg[1] - rg[1]) < 1e-9 * abs(sg[1]) and abs(sg[5] - rg[5]) < 1e-9 * abs(sg[5])
    fx, fy = (rg[0] - sg[0]) / sg[1], (rg[3] - sg[3]) / sg[5]
    assert abs(fx - round(fx)) < 1e-6 and abs(fy - round(fy)) < 1e-6, (fx, fy)
    # The reference's pixel (0, 0) is the store's (x0, y0); they overlap on [sx0, sx1) x ...
    x0, y0 = int(round(fx)), int(round(fy))
    w, h = ref.RasterXSize, ref.RasterYSize
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + w, store.RasterXSize), min(y0 + h, store.RasterYSize)
    compared = 0
    for b in range(1, ref.RasterCount + 1):
        rb, sb = ref.GetRasterBand(b), store.GetRasterBand(b)
        r = rb.ReadAsArray()
        rmask = rb.GetMaskBand().ReadAsArray() > 0
        inside = np.zeros_like(rmask)
        inside[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = True
        if (rmask & ~inside).any():
            print(f"band {b}: the reference has data outside the store's extent")
            sys.exit(1)
        r, rmask = r[inside].reshape(sy1 - sy0, sx1 - sx0), rmask[inside].reshape(sy1 - sy0, sx1 - sx0)
        s = sb.ReadAsArray(sx0, sy0, sx1 - sx0, sy1 - sy0)
        smask = sb.GetMaskBand().ReadAsArray(sx0, sy0, sx1 - sx0, sy1 - sy0) > 0
        if not np.array_equal(rmask, smask):
            print(f"band {b}: {np.count_nonzero(rmask != smask)} pixels differ in validity "
                  f"(reference {rmask.sum()}, store {smask.sum()})")
            sys.exit(1)
        diff = (r != s) & rmask
        if diff.any():
            yy, xx = np.argwhere(diff)[0]
            print(f"band {b}: {np.count_nonzero(diff)} pixels differ, first at ({xx},{yy}): "
                  f"store {s[yy, xx]} reference {r[yy, xx]}")
            sys.exit(1)
        compared += int(rmask.sum())
    print(compared)


def rasterio_write(args):
    import rasterio
    from rasterio.windows import Window
    store, col, row, w, h, value = args[0], *map(int, args[1:5]), float(args[5])
    with rasterio.open(store, "r+") as ds:
        data = np.full((h, w), value, dtype=ds.dtypes[0])
        ds.write(data, 1, window=Window(col, row, w, h))


def gdal_write_overview(args):
    ds = gdal.Open(args[0], gdal.GA_Update)
    ov = ds.GetRasterBand(1).GetOverview(0)
    # The write itself must fail, not a later flush of GDAL's block cache.
    try:
        ov.WriteArray(np.zeros((4, 4), dtype=np.float32), 0, 0)
        print("no error")
    except RuntimeError as e:
        print(e)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"make": make, "probe": probe, "same-grid-compare": same_grid_compare,
     "rasterio-write": rasterio_write, "gdal-write-overview": gdal_write_overview}[cmd](rest)
