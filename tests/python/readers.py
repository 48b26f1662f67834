#!/usr/bin/python3
"""Reads a store with Debian's rasterio and with the GDAL Python bindings, checking what
they see against the raster it was made from.

Usage: readers.py SOURCE STORE
Checks: rasterio opens the store, reports the source's size, CRS, transform, dtype and
nodata, overviews() == [2, 4, 8, ...]; windowed reads equal the source; a decimated read
(out_shape) equals the matching overview read with GDAL; GDAL's ReadRaster with a smaller
buffer is served from an overview.
"""
import sys

import numpy as np
import rasterio
from osgeo import gdal
from rasterio.windows import Window

gdal.UseExceptions()


def same(a, b):
    if a.dtype.kind == "f":
        return bool(((a == b) | (np.isnan(a) & np.isnan(b))).all())
    return bool((a == b).all())


def main():
    src_name, store_name = sys.argv[1], sys.argv[2]
    with rasterio.open(src_name) as src, rasterio.open(store_name) as st:
        assert st.driver == "GRIDSTORE", st.driver
        assert (st.width, st.height, st.count) == (src.width, src.height, src.count)
        assert st.crs == src.crs, (st.crs, src.crs)
        assert st.transform.almost_equals(src.transform), (st.transform, src.transform)
        assert st.dtypes == src.dtypes, (st.dtypes, src.dtypes)
        assert st.nodatavals == src.nodatavals or all(
            (a == b) or (a is not None and b is not None and np.isnan(a) and np.isnan(b))
            for a, b in zip(st.nodatavals, src.nodatavals)), (st.nodatavals, src.nodatavals)
        g = gdal.Open(store_name)
        n_ov = g.GetRasterBand(1).GetOverviewCount()
        expected = [2 ** (i + 1) for i in range(n_ov)]
        for b in range(1, st.count + 1):
            assert st.overviews(b) == expected, (st.overviews(b), expected)
        rng = np.random.default_rng(3)
        for _ in range(20):
            w = int(rng.integers(1, min(300, st.width) + 1))
            h = int(rng.integers(1, min(300, st.height) + 1))
            x = int(rng.integers(0, st.width - w + 1))
            y = int(rng.integers(0, st.height - h + 1))
            win = Window(x, y, w, h)
            assert same(st.read(window=win), src.read(window=win)), f"window {win}"
        assert same(st.read(), src.read()), "full read"
        for i in range(n_ov):
            ov = g.GetRasterBand(1).GetOverview(i)
            dec = st.read(1, out_shape=(ov.YSize, ov.XSize))
            assert same(dec, ov.ReadAsArray()), f"decimated read of overview {i + 1}"
    # GDAL picks the overview for a downsampled read by itself.
    if n_ov:
        ov = g.GetRasterBand(1).GetOverview(n_ov - 1)
        got = np.frombuffer(g.GetRasterBand(1).ReadRaster(0, 0, g.RasterXSize, g.RasterYSize,
                                                          ov.XSize, ov.YSize),
                            dtype=ov.ReadAsArray().dtype).reshape(ov.YSize, ov.XSize)
        assert same(got, ov.ReadAsArray()), "GDAL downsampled read"
    print(f"ok: {st.count} band(s), overviews {expected}")


if __name__ == "__main__":
    main()
