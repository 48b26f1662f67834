#!/usr/bin/python3
"""Writes the rasters the catalog CLI tests add.

Usage: catalog_rasters.py DIR
half.tif   UTM 31N (EPSG:32631), 200 x 100 cells of 100 m from (500000, 5800000): the
           western half nodata; TIFFTAG_DATETIME 2024:03:31 00:30:00; CLOUD=12.5, SENSOR=abc.
later.tif  the same grid, all valid; TIFFTAG_DATETIME 2024:04:02 10:00:00; CLOUD=40.
pole.tif   EPSG:3413, 100 x 100 cells of 20 km centred on the North Pole, all valid;
           TIFFTAG_DATETIME 2024:03:30 23:30:00.
notime.tif like later.tif without any time.
"""
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()


def write(path, epsg, gt, w, h, meta, nodata_west=False):
    d = gdal.GetDriverByName("GTiff").Create(path, w, h, 1, gdal.GDT_Int16)
    d.SetGeoTransform(gt)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    d.SetProjection(srs.ExportToWkt())
    a = np.ones((h, w), dtype=np.int16)
    band = d.GetRasterBand(1)
    if nodata_west:
        a[:, : w // 2] = -9999
        band.SetNoDataValue(-9999)
    band.WriteArray(a)
    band.SetDescription("level")
    d.SetMetadata(meta)
    d = None


out = sys.argv[1]
utm = [500000, 100, 0, 5800000, 0, -100]
write(os.path.join(out, "half.tif"), 32631, utm, 200, 100,
      {"TIFFTAG_DATETIME": "2024:03:31 00:30:00", "CLOUD": "12.5", "SENSOR": "abc"}, True)
write(os.path.join(out, "later.tif"), 32631, utm, 200, 100,
      {"TIFFTAG_DATETIME": "2024:04:02 10:00:00", "CLOUD": "40"})
write(os.path.join(out, "pole.tif"), 3413, [-1000000, 20000, 0, 1000000, 0, -20000], 100, 100,
      {"TIFFTAG_DATETIME": "2024:03:30 23:30:00"})
write(os.path.join(out, "notime.tif"), 32631, utm, 200, 100, {})
