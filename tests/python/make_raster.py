#!/usr/bin/python3
"""Writes a test GeoTIFF: a smooth surface plus noise covering the type's whole range.

Usage: make_raster.py PATH TYPE WIDTH HEIGHT BANDS [--nodata V] [--holes] [--checkerboard]
                      [--nan] [--colortable] [--alpha] [--classes N] [--epsg N] [--seed N]
--holes writes the nodata value (or, with --alpha, transparent pixels) into some areas;
--checkerboard into every other pixel, as the black squares of a checkerboard.
"""
import argparse

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

TYPES = {
    "Byte": (gdal.GDT_Byte, np.uint8), "UInt16": (gdal.GDT_UInt16, np.uint16),
    "Int16": (gdal.GDT_Int16, np.int16), "UInt32": (gdal.GDT_UInt32, np.uint32),
    "Int32": (gdal.GDT_Int32, np.int32), "Float32": (gdal.GDT_Float32, np.float32),
    "Float64": (gdal.GDT_Float64, np.float64),
}


def band_values(kind, w, h, rng, classes):
    gtype, dtype = TYPES[kind]
    y, x = np.mgrid[0:h, 0:w]
    if classes:
        return rng.integers(0, classes, (h, w)).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        v = np.sin(x / 17.0) * 1000 + y * 0.25 + rng.normal(0, 1, (h, w))
        v[rng.random((h, w)) < 0.01] = np.finfo(dtype).max / 2  # extremes
        v[rng.random((h, w)) < 0.01] = -np.finfo(dtype).max / 2
        return v.astype(dtype)
    info = np.iinfo(dtype)
    smooth = (np.sin(x / 13.0) + np.cos(y / 7.0) + 2) / 4 * (float(info.max) - float(info.min)) + float(info.min)
    v = smooth.astype(np.float64)
    v[rng.random((h, w)) < 0.02] = info.max
    v[rng.random((h, w)) < 0.02] = info.min
    return np.clip(v, info.min, info.max).astype(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("type", choices=TYPES)
    ap.add_argument("width", type=int)
    ap.add_argument("height", type=int)
    ap.add_argument("bands", type=int)
    ap.add_argument("--nodata", type=float)
    ap.add_argument("--holes", action="store_true")
    ap.add_argument("--checkerboard", action="store_true")
    ap.add_argument("--nan", action="store_true")
    ap.add_argument("--colortable", action="store_true")
    ap.add_argument("--alpha", action="store_true")
    ap.add_argument("--classes", type=int, default=0)
    ap.add_argument("--epsg", type=int, default=32633)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nogeo", action="store_true", help="no geotransform and no CRS")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    gtype, dtype = TYPES[a.type]
    nbands = a.bands + (1 if a.alpha else 0)
    ds = gdal.GetDriverByName("GTiff").Create(a.path, a.width, a.height, nbands, gtype)
    if not a.nogeo:
        ds.SetGeoTransform([440720.0, 30.0, 0.0, 3751320.0, 0.0, -30.0])
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(a.epsg)
        ds.SetProjection(srs.ExportToWkt())
    holes = np.zeros((a.height, a.width), bool)
    if a.holes:
        holes[a.height // 4: a.height // 2, a.width // 5: a.width // 2] = True
        holes[rng.random((a.height, a.width)) < 0.05] = True
    if a.checkerboard:
        y, x = np.mgrid[0:a.height, 0:a.width]
        holes[(x + y) % 2 == 1] = True
    for b in range(a.bands):
        v = band_values(a.type, a.width, a.height, rng, a.classes)
        if a.nan:
            v[rng.random(v.shape) < 0.03] = np.nan
        band = ds.GetRasterBand(b + 1)
        if a.nodata is not None:
            band.SetNoDataValue(a.nodata)
            v[holes] = a.nodata
        band.WriteArray(v)
        band.SetDescription(f"band {b + 1}")
        if a.colortable and b == 0:
            ct = gdal.ColorTable()
            for i in range(256):
                ct.SetColorEntry(i, (i, 255 - i, (i * 7) % 256, 255))
            band.SetColorTable(ct)
            band.SetColorInterpretation(gdal.GCI_PaletteIndex)
    if a.alpha:
        alpha = ds.GetRasterBand(nbands)
        alpha.SetColorInterpretation(gdal.GCI_AlphaBand)
        alpha.WriteArray(np.where(holes, 0, 255).astype(dtype))
    ds.SetMetadataItem("TEST_ITEM", "kept")
    ds = None


if __name__ == "__main__":
    main()
