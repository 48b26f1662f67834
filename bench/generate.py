#!/usr/bin/python3
"""Generates the benchmark inputs, deterministically (fixed seeds):

- surface.tif: an 8192x8192 Float32 terrain (sum of octaves of bilinearly upsampled noise,
  heights rounded to 1 cm as survey DEMs are), UTM 33N, 10 m cells;
- image.tif: an 8192x8192 3-band Byte image (smooth colour fields, edges and sensor noise).

Both are tiled, uncompressed GeoTIFFs so that reading them costs the same for every format.
Usage: generate.py OUTDIR [SIZE]
"""
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()


def upsample(grid, n):
    """Bilinear upsampling of a square grid to n x n, separable."""
    m = grid.shape[0]
    xs = np.linspace(0, m - 1, n)
    i0 = np.floor(xs).astype(int)
    i1 = np.minimum(i0 + 1, m - 1)
    f = (xs - i0).astype(np.float32)
    rows = grid[:, i0] * (1 - f) + grid[:, i1] * f
    return (rows[i0, :] * (1 - f)[:, None] + rows[i1, :] * f[:, None]).astype(np.float32)


def terrain(n, rng):
    z = np.zeros((n, n), np.float32)
    amplitude = 400.0
    for k in range(2, 12):
        z += upsample(rng.normal(0, amplitude, (2**k + 1, 2**k + 1)).astype(np.float32), n)
        amplitude *= 0.5
    return np.round(z + 1000.0, 2).astype(np.float32)


def create(path, n, bands, dtype):
    ds = gdal.GetDriverByName("GTiff").Create(
        path, n, n, bands, dtype, ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]
    )
    ds.SetGeoTransform([500000, 10, 0, 6000000, 0, -10])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    return ds


def make_surface(out, n):
    """Writes out/surface.tif (the Float32 terrain) unless it exists; returns its path."""
    surface = os.path.join(out, "surface.tif")
    if not os.path.exists(surface):
        ds = create(surface + ".part", n, 1, gdal.GDT_Float32)
        ds.GetRasterBand(1).WriteArray(terrain(n, np.random.default_rng(42)))
        ds = None
        os.rename(surface + ".part", surface)
    return surface


def make_image(out, n):
    """Writes out/image.tif (the 3-band Byte image) unless it exists; returns its path."""
    image = os.path.join(out, "image.tif")
    if not os.path.exists(image):
        rng = np.random.default_rng(7)
        ds = create(image + ".part", n, 3, gdal.GDT_Byte)
        for b in range(3):
            field = terrain(n, rng)
            lo, hi = np.percentile(field, [1, 99])
            scaled = (field - lo) / (hi - lo) * 200 + 20
            # Field boundaries every 512 pixels, as in imagery of parcels.
            scaled += ((np.arange(n) // 512) % 3 * 12)[None, :]
            scaled += rng.normal(0, 2.0, (n, n))
            ds.GetRasterBand(b + 1).WriteArray(np.clip(scaled, 0, 255).astype(np.uint8))
        ds.GetRasterBand(1).SetColorInterpretation(gdal.GCI_RedBand)
        ds.GetRasterBand(2).SetColorInterpretation(gdal.GCI_GreenBand)
        ds.GetRasterBand(3).SetColorInterpretation(gdal.GCI_BlueBand)
        ds = None
        os.rename(image + ".part", image)
    return image


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8192
    os.makedirs(out, exist_ok=True)
    make_surface(out, n)
    make_image(out, n)


if __name__ == "__main__":
    main()
