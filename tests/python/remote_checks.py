#!/usr/bin/python3
"""Helpers for the tests of stores read over the network (tests/remote.rs), run with
Debian's Python so that GDAL and rasterio load this build's plugin. The network
configuration (AWS_*) comes from the environment.

Usage:
  remote_checks.py upload DIR VSI_DIR      copy a local store's files to VSI_DIR
  remote_checks.py keys VSI_DIR            print the keys under VSI_DIR, sorted
  remote_checks.py same LOCAL REMOTE [KEY=VALUE...]
      GDAL and rasterio read every band, mask and overview of both (with the open options
      given) and find them equal, and the metadata GDAL reports equal
  remote_checks.py reopen REMOTE NEW_DIR VSI_DIR
      open REMOTE, upload NEW_DIR (a later state of the same store) to VSI_DIR, open REMOTE
      again in the same process: the second open must see the new state (NEW_DIR's)
"""
import os
import subprocess
import sys

import numpy as np
import rasterio
from osgeo import gdal

gdal.UseExceptions()


def upload(src, dst):
    for d, _, files in os.walk(src):
        for f in sorted(files):
            path = os.path.join(d, f)
            key = dst.rstrip("/") + "/" + os.path.relpath(path, src)
            with open(path, "rb") as fh:
                data = fh.read()
            fp = gdal.VSIFOpenL(key, "wb")
            assert fp is not None, key
            assert gdal.VSIFWriteL(data, 1, len(data), fp) == len(data), key
            assert gdal.VSIFCloseL(fp) == 0, key


def arrays(ds):
    """Every band, its mask and every overview of `ds`, as arrays."""
    out = []
    for i in range(1, ds.RasterCount + 1):
        b = ds.GetRasterBand(i)
        out.append(b.ReadAsArray())
        out.append(b.GetMaskBand().ReadAsArray())
        for o in range(b.GetOverviewCount()):
            out.append(b.GetOverview(o).ReadAsArray())
    return out


def same_arrays(a, b, what):
    assert len(a) == len(b), (what, len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape and x.dtype == y.dtype, (what, i, x.shape, y.shape)
        equal = (x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" else x == y
        assert equal.all(), (what, i, int((~equal).sum()))


def same(local, remote, options):
    opts = dict(o.split("=", 1) for o in options)
    a = gdal.OpenEx(local, gdal.OF_RASTER, open_options=options)
    b = gdal.OpenEx(remote, gdal.OF_RASTER, open_options=options)
    assert b.GetDriver().ShortName == "GRIDSTORE", b.GetDriver().ShortName
    assert (a.RasterXSize, a.RasterYSize, a.RasterCount) == (b.RasterXSize, b.RasterYSize, b.RasterCount)
    assert a.GetGeoTransform() == b.GetGeoTransform()
    assert a.GetProjection() == b.GetProjection()
    assert a.GetMetadata() == b.GetMetadata(), (a.GetMetadata(), b.GetMetadata())
    for i in range(1, a.RasterCount + 1):
        assert a.GetRasterBand(i).GetMetadata() == b.GetRasterBand(i).GetMetadata()
        assert a.GetRasterBand(i).GetDescription() == b.GetRasterBand(i).GetDescription()
    same_arrays(arrays(a), arrays(b), "GDAL")
    with rasterio.open(local, **opts) as x, rasterio.open(remote, **opts) as y:
        assert y.driver == "GRIDSTORE"
        same_arrays([x.read(), x.read_masks()], [y.read(), y.read_masks()], "rasterio")
        assert y.overviews(1) == x.overviews(1)
    print(f"equal: {a.RasterCount} bands")


def reopen(remote, new_dir, vsi_dir):
    before = gdal.OpenEx(remote, gdal.OF_RASTER)
    old = arrays(before)
    # Uploaded by another process: this one's writes would drop its own cached copies.
    subprocess.run([sys.executable, __file__, "upload", new_dir, vsi_dir], check=True)
    after = gdal.OpenEx(remote, gdal.OF_RASTER)
    new = arrays(after)
    fresh = arrays(gdal.OpenEx(new_dir, gdal.OF_RASTER))
    same_arrays(new, fresh, "second open against the new state")
    assert any(x.shape != y.shape or not (x == y).all() for x, y in zip(old, new)), \
        "the new state reads as the old one: the test needs a change"
    print("the second open sees the new state")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "upload":
        upload(args[0], args[1])
    elif cmd == "keys":
        for k in sorted(gdal.ReadDirRecursive(args[0]) or []):
            print(k)
    elif cmd == "same":
        same(args[0], args[1], args[2:])
    elif cmd == "reopen":
        reopen(args[0], args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
