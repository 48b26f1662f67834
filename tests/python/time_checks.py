"""Independent checks of time stores, reading the sources with GDAL and cftime.

  time_checks.py series GRIDSTORE_BIN STORE NETCDF X Y
      `gridstore series` at pixel (X, Y) equals the netCDF's values there, band by band,
      at the instants the netCDF's own time axis gives (decoded with cftime).
  time_checks.py holes SOURCE OUT
      OUT: SOURCE's first band as Float32, off the 0.01 grid, with NaN holes.
  time_checks.py packed RAW SOURCE SCALE OFFSET NODATA
      RAW (little-endian uint16 samples written by the test) holds SOURCE's first band packed:
      every value within half a scale step, and NaN or nodata exactly where the source has none.
"""
import json
import subprocess
import sys

import cftime
import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def netcdf_times(ds):
    md = ds.GetMetadata()
    values = [float(v) for v in md["NETCDF_DIM_time_VALUES"].strip("{}").split(",")]
    units = md["time#units"]
    calendar = md.get("time#calendar", "standard")
    dates = cftime.num2date(values, units, calendar=calendar, has_year_zero=True)
    return [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in dates]


def check_series(binary, store, nc, x, y):
    ds = gdal.Open(nc)
    times = netcdf_times(ds)
    out = subprocess.run(
        [binary, "series", store, x, y, "--pixel", "--format", "json"],
        check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    assert [r["time"] for r in rows] == times, (rows[:2], times[:2])
    for b, row in enumerate(rows, start=1):
        band = ds.GetRasterBand(b)
        v = float(band.ReadAsArray(int(x), int(y), 1, 1)[0, 0])
        got = row["values"][0]
        if np.isnan(v):
            assert got is None, (b, got)
        else:
            assert got is not None and np.float32(got) == np.float32(v), (b, got, v)
    print(f"{len(rows)} steps equal")


def check_packed(raw, source, scale, offset, nodata):
    scale, offset, nodata = float(scale), float(offset), float(nodata)
    ds = gdal.Open(source)  # kept: a band outliving its dataset crashes GDAL
    src = ds.GetRasterBand(1)
    a = src.ReadAsArray().astype("float64")
    if src.GetNoDataValue() is not None and not np.isnan(src.GetNoDataValue()):
        a[a == src.GetNoDataValue()] = np.nan
    p = np.fromfile(raw, dtype="<u2").reshape(a.shape).astype("float64")
    missing = np.isnan(a)
    assert (p[missing] == nodata).all(), "a missing pixel did not become nodata"
    assert (p[~missing] != nodata).all(), "a valid pixel became nodata"
    err = np.abs(p[~missing] * scale + offset - a[~missing])
    assert err.max() <= scale / 2 * (1 + 1e-6), f"error {err.max()} over half a step"
    print(f"{(~missing).sum()} values within {err.max():.6g} (half a step: {scale / 2})")


def make_holes(source, out):
    """A copy of SOURCE's first band as Float32 with values off the 0.01 grid and NaN holes."""
    src = gdal.Open(source)
    a = src.GetRasterBand(1).ReadAsArray().astype("float32") * np.float32(1.0137)
    a[(a > 20) & (a < 30)] = np.nan
    a[:3, :3] = np.nan
    assert np.isfinite(a).sum() > 100, "too few values left to check"
    ds = gdal.GetDriverByName("GTiff").Create(out, src.RasterXSize, src.RasterYSize, 1,
                                              gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    b = ds.GetRasterBand(1)
    b.SetNoDataValue(float("nan"))
    b.WriteArray(a)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"series": check_series, "packed": check_packed, "holes": make_holes}[cmd](*args)
