#!/usr/bin/python3
"""Reads every pixel of a store, its overviews included, through the GDAL Python bindings,
as a program embedding GDAL would: for the crafted-store tests (tests/hostile.rs).

Usage: hostile.py STORE [OPEN_OPTION=VALUE ...]
Exits 0 after reading everything, 1 with the error GDAL raised on stderr. A crash, hang or
memory blow-up of the driver shows as a signal or a kill, which the caller checks.
"""
import sys

from osgeo import gdal

gdal.UseExceptions()


def read_all(band):
    """Every pixel of a band, row of blocks by row of blocks, and its checksum."""
    band.ReadRaster(0, 0, band.XSize, band.YSize)
    band.Checksum()


def main():
    store, options = sys.argv[1], sys.argv[2:]
    try:
        ds = gdal.OpenEx(store, gdal.OF_RASTER, open_options=options)
        for b in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(b)
            read_all(band)
            for i in range(band.GetOverviewCount()):
                read_all(band.GetOverview(i))
    except RuntimeError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)
    print("read everything")


if __name__ == "__main__":
    main()
