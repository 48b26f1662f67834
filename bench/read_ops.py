#!/usr/bin/python3
"""One timed read of a dataset, printed in seconds. Run in a fresh process per measurement
so no format benefits from a warm GDAL block cache.

Usage: read_ops.py PATH overview|windows|full [COUNT]
  overview  a 1024x1024 read of the whole image (GDAL serves it from an overview)
  windows   COUNT (default 1000) random 256x256 windows of all bands (fixed seed)
  full      every pixel of all bands at full resolution, in strips of 1024 rows
"""
import random
import sys
import time

from osgeo import gdal

gdal.UseExceptions()


def main():
    path, op = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    start = time.perf_counter()
    ds = gdal.Open(path)
    width, height = ds.RasterXSize, ds.RasterYSize
    if op == "overview":
        ds.ReadRaster(0, 0, width, height, 1024, 1024)
    elif op == "windows":
        rnd = random.Random(1)
        for _ in range(count):
            x = rnd.randrange(0, width - 256)
            y = rnd.randrange(0, height - 256)
            ds.ReadRaster(x, y, 256, 256)
    elif op == "full":
        for y in range(0, height, 1024):
            ds.ReadRaster(0, y, width, min(1024, height - y))
    else:
        raise SystemExit(f"unknown operation {op}")
    print(f"{time.perf_counter() - start:.4f}")


if __name__ == "__main__":
    main()
