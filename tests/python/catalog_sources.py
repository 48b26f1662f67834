#!/usr/bin/python3
"""Writes the rain-like rasters tests/catalog_sources.rs catalogues and ingests.

Usage: catalog_sources.py DIR
Four 64 x 64 Float32 GeoTIFFs in EPSG:4326, cells of 0.01 degree, nodata -1, each with its
own values and TIFFTAG_DATETIME one hour apart from 2024-05-01 00:00 (west_0, east_1,
west_2, east_3): the west ones from (5.00, 52.64), the east ones from (5.64, 52.64).
"""
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()
out = sys.argv[1]
srs = osr.SpatialReference()
srs.ImportFromEPSG(4326)
for i, side in enumerate(["west", "east", "west", "east"]):
    x0 = 5.0 if side == "west" else 5.64
    d = gdal.GetDriverByName("GTiff").Create(
        os.path.join(out, f"{side}_{i}.tif"), 64, 64, 1, gdal.GDT_Float32)
    d.SetGeoTransform([x0, 0.01, 0, 52.64, 0, -0.01])
    d.SetProjection(srs.ExportToWkt())
    a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) * (i + 1) / 100.0
    a[:4, :4] = -1
    band = d.GetRasterBand(1)
    band.SetNoDataValue(-1)
    band.WriteArray(a)
    d.SetMetadata({"TIFFTAG_DATETIME": f"2024:05:01 {i:02d}:00:00", "RUN": str(i)})
    d = None
