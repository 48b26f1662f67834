#!/usr/bin/python3
"""Checks of how GDAL, rasterio, netCDF and rioxarray see a time store (tests/time_view.rs).

Usage:
  time_view_checks.py slices DIR N [--no-nodata]
      writes DIR/s<i>.tif, i < N: 70 x 50 pixels, 2 bands ("rain", "temp"), values that
      differ by step, band and pixel; nodata -9999 unless --no-nodata (then Byte, 1 band).
  time_view_checks.py series DATASET BAND SLICE|hole...
      the dataset's bands are the slices' band BAND in order; "hole" is a band of nodata
      (or, without nodata, one whose mask is empty).
  time_view_checks.py points DATASET
      rasterio reads of small windows over all bands equal the reads band by band.
  time_view_checks.py netcdf NC VAR INSTANT... -- SLICE|hole...
      the netCDF's VAR holds the slices' band 1 (in order) and its time axis decodes to the
      instants.
  time_view_checks.py rioxarray DATASET INSTANT...
      rioxarray.open_rasterio gives a time coordinate of those instants.
  time_view_checks.py source DATASET NC VAR
      the dataset's bands are the netCDF variable's time steps: descriptions are its times
      (decoded by cftime from the file's own units and calendar), pixels its values.
"""
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
W, H = 70, 50


def values(step, band):
    y, x = np.mgrid[0:H, 0:W]
    return (step * 1000 + band * 100 + (x * 7 + y * 13) % 97).astype(np.float32)


def slices(out, n, no_nodata):
    for i in range(n):
        bands = 1 if no_nodata else 2
        kind = gdal.GDT_Byte if no_nodata else gdal.GDT_Float32
        ds = gdal.GetDriverByName("GTiff").Create(f"{out}/s{i}.tif", W, H, bands, kind)
        ds.SetGeoTransform([500000, 10, 0, 4000000, 0, -10])
        for b in range(1, bands + 1):
            band = ds.GetRasterBand(b)
            v = values(i, b)
            if no_nodata:
                v = (v % 200 + 1).astype(np.uint8)
            else:
                band.SetNoDataValue(-9999)
                v[0:3, 0:4] = -9999  # some pixels without data
            band.WriteArray(v)
            band.SetDescription(["rain", "temp"][b - 1])
        ds = None


def source_band(name, band, like):
    """The band of a slice, or for a hole a band of nodata."""
    if name == "hole":
        return None
    ds = gdal.Open(name)  # kept open while its band is read
    return ds.GetRasterBand(band).ReadAsArray()


def series(dataset, band, names):
    ds = gdal.Open(dataset)
    assert ds.RasterCount == len(names), (ds.RasterCount, len(names))
    for i, name in enumerate(names):
        b = ds.GetRasterBand(i + 1)
        got = b.ReadAsArray()
        want = source_band(name, band, got)
        nodata = b.GetNoDataValue()
        mask = b.GetMaskBand().ReadAsArray()
        if want is None:
            if nodata is not None:
                assert (got == nodata).all(), f"band {i + 1}: a hole holds data"
            assert (mask == 0).all(), f"band {i + 1}: a hole's mask is not empty"
        else:
            assert np.array_equal(got, want), f"band {i + 1} differs from {name}"
            if nodata is None:
                assert (mask == 255).all(), f"band {i + 1}: its mask hides data"
        # The overviews are the same time step: level 1 at a pixel that is not nodata.
        ov = b.GetOverview(0).ReadAsArray()
        assert ov.shape == ((H + 1) // 2, (W + 1) // 2), ov.shape
    print("ok")


def points(dataset):
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(dataset) as src:
        assert src.count > 1
        # 1x1 windows, one across a block boundary and one at the edge.
        for (x, y, w, h) in [(5, 7, 1, 1), (31, 15, 3, 3), (W - 1, H - 1, 1, 1), (0, 0, 4, 3)]:
            win = Window(x, y, w, h)
            together = src.read(window=win)
            apart = np.stack([src.read(b, window=win) for b in range(1, src.count + 1)])
            full = src.read()[:, y:y + h, x:x + w]
            assert np.array_equal(together, apart), (x, y, w, h)
            assert np.array_equal(together, full), (x, y, w, h)
            masks = src.read_masks(window=win)
            assert np.array_equal(masks, src.read_masks()[:, y:y + h, x:x + w]), (x, y)
    print("ok")


def netcdf(nc, var, instants, names):
    import cftime
    import netCDF4

    with netCDF4.Dataset(nc) as d:
        t = d["time"]
        got = cftime.num2date(t[:], t.units, getattr(t, "calendar", "standard"))
        want = [cftime.DatetimeGregorian(*parse(i)) for i in instants]
        assert list(got) == want, (list(got), want)
        data = d[var][:]
        assert data.shape[0] == len(names), data.shape
        for i, name in enumerate(names):
            # netCDF rows run south to north.
            plane = np.ma.filled(data[i][::-1], np.nan)
            want = source_band(name, 1, plane)
            if want is None:
                assert np.isnan(plane).all() or (plane == -9999).all(), f"step {i}"
                continue
            want = np.where(want == -9999, np.nan, want)
            assert np.array_equal(plane, want, equal_nan=True), f"step {i} differs from {name}"
    print("ok")


def parse(text):
    """2024-01-01T03:00:00Z as (year, month, day, hour, minute, second)."""
    date, _, clock = text.rstrip("Z").partition("T")
    y, m, d = (int(p) for p in date.split("-"))
    hh, mm, ss = (int(p) for p in (clock or "00:00:00").split(":"))
    return y, m, d, hh, mm, ss


def rioxarray_check(dataset, instants):
    import cftime
    import rioxarray

    x = rioxarray.open_rasterio(dataset)
    assert "time" in x.dims, x.dims
    got = list(x.coords["time"].values)
    want = [cftime.DatetimeGregorian(*parse(i)) for i in instants]
    assert got == want, (got, want)
    print("ok")


def source(dataset, nc, var):
    import cftime
    import netCDF4

    with netCDF4.Dataset(nc) as d:
        t = d["time"]
        times = cftime.num2date(t[:], t.units, getattr(t, "calendar", "standard"))
    want = [x.strftime("%Y-%m-%dT%H:%M:%SZ") for x in times]
    ds = gdal.Open(dataset)
    got = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    assert got == want, (got, want)
    # Each item once: the slice's own copies of the time items are not shown beside the view's.
    for obj in [ds] + [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]:
        keys = [item.split("=", 1)[0] for item in obj.GetMetadata_List() or []]
        assert len(keys) == len(set(keys)), sorted(keys)
    src = gdal.Open(f'NETCDF:"{nc}":{var}')
    assert src.RasterCount == ds.RasterCount
    for i in range(1, ds.RasterCount + 1):
        a = src.GetRasterBand(i).ReadAsArray()
        b = ds.GetRasterBand(i).ReadAsArray()
        assert np.array_equal(a, b, equal_nan=True), f"step {i} differs"
    print("ok")


def main(argv):
    cmd = argv[0]
    if cmd == "slices":
        slices(argv[1], int(argv[2]), "--no-nodata" in argv)
    elif cmd == "series":
        series(argv[1], int(argv[2]), argv[3:])
    elif cmd == "points":
        points(argv[1])
    elif cmd == "netcdf":
        split = argv.index("--")
        netcdf(argv[1], argv[2], argv[3:split], argv[split + 1:])
    elif cmd == "rioxarray":
        rioxarray_check(argv[1], argv[2:])
    elif cmd == "source":
        source(argv[1], argv[2], argv[3])
    else:
        sys.exit(f"unknown check {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
