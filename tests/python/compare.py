#!/usr/bin/python3
"""Compares two datasets pixel for pixel (all bands; NaN equals NaN), and their sizes,
geotransforms, nodata values, colour tables and band descriptions (for a step of a time
store, its time value instead of its description).
Usage: compare.py A B"""
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def main():
    a, b = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
    problems = []
    if (a.RasterXSize, a.RasterYSize, a.RasterCount) != (b.RasterXSize, b.RasterYSize, b.RasterCount):
        problems.append("size or band count differ")
    if not np.allclose(a.GetGeoTransform(), b.GetGeoTransform(), rtol=0, atol=1e-9):
        problems.append(f"geotransform {a.GetGeoTransform()} != {b.GetGeoTransform()}")
    sa, sb = a.GetSpatialRef(), b.GetSpatialRef()
    if (sa is None) != (sb is None) or (sa is not None and not sa.IsSame(sb)):
        problems.append("CRS differs")
    for i in range(1, min(a.RasterCount, b.RasterCount) + 1):
        ba, bb = a.GetRasterBand(i), b.GetRasterBand(i)
        if ba.DataType != bb.DataType:
            problems.append(f"band {i}: type {ba.DataType} != {bb.DataType}")
        na, nb = ba.GetNoDataValue(), bb.GetNoDataValue()
        if not (na == nb or (na is not None and nb is not None and np.isnan(na) and np.isnan(nb))):
            problems.append(f"band {i}: nodata {na} != {nb}")
        ta, tb = ba.GetMetadataItem("NETCDF_DIM_time"), bb.GetMetadataItem("NETCDF_DIM_time")
        if tb is not None:
            # B is a step of a time store: its description is its time, and its time
            # value must be A's.
            if ta is None or float(ta) != float(tb):
                problems.append(f"band {i}: time value {ta} != {tb}")
        elif ba.GetDescription() != bb.GetDescription():
            problems.append(f"band {i}: description {ba.GetDescription()!r} != {bb.GetDescription()!r}")
        ca, cb = ba.GetColorTable(), bb.GetColorTable()
        if (ca is None) != (cb is None) or (ca and [ca.GetColorEntry(k) for k in range(ca.GetCount())]
                                           != [cb.GetColorEntry(k) for k in range(cb.GetCount())]):
            problems.append(f"band {i}: colour tables differ")
        if ba.GetColorInterpretation() != bb.GetColorInterpretation():
            problems.append(f"band {i}: colour interpretation differs")
        xa, xb = ba.ReadAsArray(), bb.ReadAsArray()
        same = (xa == xb) | (np.isnan(xa) & np.isnan(xb)) if xa.dtype.kind == "f" else xa == xb
        if not same.all():
            problems.append(f"band {i}: {int((~same).sum())} pixels differ")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
