#!/usr/bin/python3
"""Time slices for the append tests, and what they hold, computed apart from gridstore.

Times are read from the netCDF time variable itself through GDAL's multidimensional API (not
the band metadata gridstore reads) and decoded by cftime; pixels are written out as raw
little-endian Float32 planes for the Rust tests to compare with what the store holds.

Subcommands:
  times FILE                         the instants of FILE's time variable, one ISO 8601 a line
  planes DATASET OUTDIR              every band of DATASET as OUTDIR/band<N>.f32 (Float32,
                                     row-major, NaN where the band has no data)
  calendar CAL OUT.nc [OFFSET]       a netCDF of 6 steps in calendar CAL around the end of
                                     February (of a leap and a common year), its variable `v`
                                     counting from OFFSET; prints its instants
  tiff OUT W H SEED [--type T] [--bands N] [--datetime TEXT] [--item KEY=VALUE] [--hole]
                                     a GeoTIFF slice on a fixed 10 m grid, nodata -9999
  strptime TEXT FORMAT               the instant Python's strptime reads in TEXT
  epoch SECONDS                      the instant SECONDS after 1970-01-01T00:00:00Z
  grib OUT REFTIME                   a GRIB2 slice of one Float32 band valid at REFTIME;
                                     prints GRIB_VALID_TIME as GDAL reads it back
"""
import datetime
import os
import subprocess
import sys

import cftime
import numpy as np
from osgeo import gdal

gdal.UseExceptions()

ORIGIN = (500000.0, 5000000.0)
CELL = 10.0
NODATA = -9999.0


def iso(d):
    """An instant as ISO 8601 to the second, whatever its calendar (30 February too)."""
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def times(path):
    ds = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER)
    t = ds.GetRootGroup().OpenMDArray("time")
    attrs = {a.GetName(): a.Read() for a in t.GetAttributes()}
    units = t.GetUnit() or attrs["units"]
    calendar = attrs.get("calendar", "standard")
    values = t.ReadAsArray()
    for d in cftime.num2date(values, units, calendar):
        print(iso(d))


def planes(path, outdir):
    ds = gdal.Open(path)
    os.makedirs(outdir, exist_ok=True)
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        a = band.ReadAsArray().astype("<f4")
        nodata = band.GetNoDataValue()
        if nodata is not None and not np.isnan(nodata):
            a[a == np.float32(nodata)] = np.nan
        a.tofile(os.path.join(outdir, f"band{b}.f32"))
    print(ds.RasterXSize, ds.RasterYSize, ds.RasterCount)


# Six days around the end of February, and for the standard calendars around the switch to
# the Gregorian one: each calendar has its own days there (29 February in 1500 in the
# standard calendar, which is Julian then, but not in the proleptic Gregorian; 4 and 15
# October 1582 a day apart in the standard one; 29 February every year in all_leap, 30
# February in 360_day, never in noleap), so a wrong day count moves every instant after it.
# Each set spans less than 136 years: an irregular axis counts seconds in 32 bits.
CALENDAR_DAYS = {
    "standard": [(1500, 2, 28), (1500, 2, 29), (1500, 3, 1), (1582, 10, 4), (1582, 10, 15), (1600, 3, 1)],
    "proleptic_gregorian": [(1500, 2, 28), (1500, 3, 1), (1582, 10, 4), (1582, 10, 15), (1600, 2, 29), (1600, 3, 1)],
    "noleap": [(2000, 2, 27), (2000, 2, 28), (2000, 3, 1), (2000, 3, 2), (2001, 2, 28), (2001, 3, 1)],
    "all_leap": [(2000, 2, 28), (2000, 2, 29), (2000, 3, 1), (2001, 2, 28), (2001, 2, 29), (2001, 3, 1)],
    "360_day": [(2000, 2, 29), (2000, 2, 30), (2000, 3, 1), (2001, 1, 30), (2001, 2, 30), (2001, 3, 1)],
}


def calendar(cal, out, offset=0.0):
    units = f"hours since {CALENDAR_DAYS[cal][0][0] - 1}-12-01 00:00:00"
    dates = [cftime.datetime(y, m, d, 6, calendar=cal) for (y, m, d) in CALENDAR_DAYS[cal]]
    values = cftime.date2num(dates, units, cal).astype("f8")
    nt, ny, nx = len(values), 20, 30
    ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(out)
    g = ds.GetRootGroup()
    dt = g.CreateDimension("time", "TEMPORAL", None, nt)
    dy = g.CreateDimension("y", "HORIZONTAL_Y", None, ny)
    dx = g.CreateDimension("x", "HORIZONTAL_X", None, nx)
    f8 = gdal.ExtendedDataType.Create(gdal.GDT_Float64)
    t = g.CreateMDArray("time", [dt], f8)
    t.Write(values)
    for k, v in (("units", units), ("calendar", cal), ("standard_name", "time"), ("axis", "T")):
        t.CreateAttribute(k, [], gdal.ExtendedDataType.CreateString()).Write(v)
    y = g.CreateMDArray("y", [dy], f8)
    y.Write(np.arange(ny, dtype="f8")[::-1] * 1000 + 500)
    x = g.CreateMDArray("x", [dx], f8)
    x.Write(np.arange(nx, dtype="f8") * 1000 + 500)
    for a, axis in ((x, "X"), (y, "Y")):
        for k, v in (("axis", axis), ("units", "m"),
                     ("standard_name", f"projection_{axis.lower()}_coordinate")):
            a.CreateAttribute(k, [], gdal.ExtendedDataType.CreateString()).Write(v)
    v = g.CreateMDArray("v", [dt, dy, dx], gdal.ExtendedDataType.Create(gdal.GDT_Float32))
    data = (np.arange(nt * ny * nx) + offset).astype("f4").reshape(nt, ny, nx)
    v.Write(data)
    ds = None
    for d in dates:
        print(iso(d))


def tiff(out, w, h, seed, rest):
    dtype, bands, datetime, items, hole = "Float32", 1, None, {}, False
    i = 0
    while i < len(rest):
        if rest[i] == "--type":
            dtype, i = rest[i + 1], i + 2
        elif rest[i] == "--bands":
            bands, i = int(rest[i + 1]), i + 2
        elif rest[i] == "--datetime":
            datetime, i = rest[i + 1], i + 2
        elif rest[i] == "--item":
            k, v = rest[i + 1].split("=", 1)
            items[k], i = v, i + 2
        elif rest[i] == "--hole":
            hole, i = True, i + 1
        else:
            raise SystemExit(f"unknown option {rest[i]}")
    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(out, w, h, bands, gdal.GetDataTypeByName(dtype))
    ds.SetGeoTransform([ORIGIN[0], CELL, 0, ORIGIN[1], 0, -CELL])
    ds.SetProjection("EPSG:32631")
    if datetime:
        ds.SetMetadataItem("TIFFTAG_DATETIME", datetime)
    for k, v in items.items():
        ds.SetMetadataItem(k, v)
    for b in range(1, bands + 1):
        a = rng.integers(0, 1000, size=(h, w)).astype("f8")
        if hole:
            a[: h // 2, : w // 2] = NODATA
        band = ds.GetRasterBand(b)
        band.SetNoDataValue(NODATA)
        band.WriteArray(a)
    ds = None


def grib(out, reftime):
    tif = out + ".tif"
    src = gdal.GetDriverByName("GTiff").Create(tif, 16, 12, 1, gdal.GDT_Float32)
    src.SetGeoTransform([-10.0, 0.5, 0, 50.0, 0, -0.5])
    src.SetProjection("EPSG:4326")
    src.GetRasterBand(1).WriteArray(np.arange(16 * 12, dtype="f4").reshape(12, 16) / 8)
    src = None
    # Through the tool: GDAL 3.6's GRIB writer crashes when called from Python here.
    subprocess.run(["gdal_translate", "-q", "-of", "GRIB", "-co", f"IDS_REF_TIME={reftime}",
                    tif, out], check=True)
    os.remove(tif)
    ds = gdal.Open(out)  # kept alive while its band is used
    print(ds.GetRasterBand(1).GetMetadataItem("GRIB_VALID_TIME"))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "times":
        times(args[0])
    elif cmd == "planes":
        planes(args[0], args[1])
    elif cmd == "calendar":
        calendar(args[0], args[1], *(float(a) for a in args[2:]))
    elif cmd == "tiff":
        tiff(args[0], int(args[1]), int(args[2]), int(args[3]), args[4:])
    elif cmd == "strptime":
        print(iso(datetime.datetime.strptime(args[0], args[1])))
    elif cmd == "epoch":
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        print(iso(epoch + datetime.timedelta(seconds=int(args[0]))))
    elif cmd == "grib":
        grib(args[0], args[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
