#!/usr/bin/python3
"""Makes the rasters of the GDAL conformance checks and compares what GDAL and rasterio
report for a store with what they report for other drivers.

Usage:
  conformance.py make-alpha PATH BANDS         Byte GeoTIFF whose last band is alpha
                                               (BANDS 2 or 4), with transparent, partly
                                               transparent and opaque pixels
  conformance.py make-byte PATH NODATA         one Byte band using all 256 values, with
                                               the nodata value NODATA (e.g. -1 or 7)
  conformance.py make-geos PATH                the full disk seen from a geostationary
                                               satellite: its corners are off the Earth
  conformance.py mask-flags SOURCE STORE       mask flags and mask values band by band
                                               equal the source's (GTiff) ones
  conformance.py nodata STORE NODATA|none      band 1's nodata value
  conformance.py update-stats STORE            a handle open for update forgets the
                                               statistics computed before its commit
  conformance.py errors MISSING DAMAGED SOURCE TARGET
                                               exception types, error classes and messages
                                               rasterio and GDAL give for a missing store,
                                               a damaged manifest and a bad creation option
Prints "ok ..." when every check holds; fails with a message otherwise.
"""
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

FLAG_NAMES = {gdal.GMF_ALL_VALID: "ALL_VALID", gdal.GMF_PER_DATASET: "PER_DATASET",
              gdal.GMF_ALPHA: "ALPHA", gdal.GMF_NODATA: "NODATA"}


def flag_names(flags):
    return "|".join(n for f, n in FLAG_NAMES.items() if flags & f) or "0"


def georeference(ds, epsg=32633):
    ds.SetGeoTransform([440720.0, 30.0, 0.0, 3751320.0, 0.0, -30.0])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())


def make_alpha(path, bands):
    w, h = 300, 200
    ds = gdal.GetDriverByName("GTiff").Create(
        path, w, h, bands, gdal.GDT_Byte,
        ["ALPHA=YES"] + (["PHOTOMETRIC=RGB"] if bands == 4 else []))
    georeference(ds)
    y, x = np.mgrid[0:h, 0:w]
    for b in range(1, bands):
        ds.GetRasterBand(b).WriteArray(((x * b + y) % 251 + 1).astype(np.uint8))
    alpha = np.full((h, w), 255, np.uint8)
    alpha[40:120, 60:180] = 0  # transparent
    alpha[150:, :100] = 128  # partly transparent
    ds.GetRasterBand(bands).WriteArray(alpha)
    assert ds.GetRasterBand(bands).GetColorInterpretation() == gdal.GCI_AlphaBand
    ds = None


def make_byte(path, nodata):
    w, h = 256, 130
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, 1, gdal.GDT_Byte)
    georeference(ds)
    y, x = np.mgrid[0:h, 0:w]
    ds.GetRasterBand(1).WriteArray(((x + y) % 256).astype(np.uint8))
    ds.GetRasterBand(1).SetNoDataValue(nodata)
    ds = None
    ds = gdal.Open(path)
    got = ds.GetRasterBand(1).GetNoDataValue()
    assert got == nodata, f"GDAL keeps nodata {got}, not {nodata}"


def make_geos(path):
    # The disk a geostationary satellite sees spans about +-5.57e6 m in its own
    # coordinates; the square around it has corners in space, where the projection has no
    # inverse.
    n, half = 120, 5568748.0
    ds = gdal.GetDriverByName("GTiff").Create(path, n, n, 1, gdal.GDT_Byte)
    ds.SetGeoTransform([-half, 2 * half / n, 0.0, half, 0.0, -2 * half / n])
    srs = osr.SpatialReference()
    srs.ImportFromProj4("+proj=geos +h=35785831 +lon_0=0 +ellps=WGS84 +units=m +no_defs")
    ds.SetProjection(srs.ExportToWkt())
    y, x = np.mgrid[0:n, 0:n]
    ds.GetRasterBand(1).WriteArray(((x + 2 * y) % 200 + 1).astype(np.uint8))
    ds = None


def check_mask_flags(source, store):
    src, st = gdal.Open(source), gdal.Open(store)
    assert st.GetDriver().ShortName == "GRIDSTORE"
    assert src.RasterCount == st.RasterCount
    report = []
    for b in range(1, src.RasterCount + 1):
        want = src.GetRasterBand(b).GetMaskFlags()
        got = st.GetRasterBand(b).GetMaskFlags()
        assert got == want, (f"band {b}: the store's mask flags are {flag_names(got)}, "
                             f"GTiff's {flag_names(want)}")
        a = src.GetRasterBand(b).GetMaskBand().ReadAsArray()
        m = st.GetRasterBand(b).GetMaskBand().ReadAsArray()
        assert (a == m).all(), f"band {b}: mask values differ"
        report.append(flag_names(got))
    # Overviews follow the same rule.
    ov = st.GetRasterBand(1).GetOverview(0)
    if ov is not None:
        want = st.GetRasterBand(1).GetMaskFlags()
        assert ov.GetMaskFlags() == want, f"overview: {flag_names(ov.GetMaskFlags())}"
    print("ok " + " ".join(report))


def check_nodata(store, want):
    ds = gdal.Open(store)
    got = ds.GetRasterBand(1).GetNoDataValue()
    want = None if want == "none" else float(want)
    assert got == want, f"nodata {got}, expected {want}"
    print(f"ok nodata {got}")


def check_update_forgets_statistics(store):
    ds = gdal.Open(store, gdal.GA_Update)
    band = ds.GetRasterBand(1)
    before = band.ComputeStatistics(False)
    kept = {k: v for k, v in band.GetMetadata().items() if not k.startswith("STATISTICS_")}
    assert band.GetMetadataItem("STATISTICS_MEAN") is not None
    band.WriteArray(np.full((64, 64), 255 - int(before[0]), np.uint8), 0, 0)
    ds.FlushCache()
    left = [k for k in band.GetMetadata() if k.startswith("STATISTICS_")]
    assert not left, f"statistics of the state before the commit are kept: {left}"
    assert {k: v for k, v in band.GetMetadata().items()} == kept, "other metadata changed"
    after = band.ComputeStatistics(False)
    assert after != before, (before, after)
    ds = None
    fresh = gdal.Open(store)
    again = fresh.GetRasterBand(1).ComputeStatistics(False)
    assert again == after, (again, after)
    print("ok update-stats")


def gdal_error(action):
    """Runs `action` with GDAL exceptions off; returns (error class number, message)."""
    gdal.DontUseExceptions()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        gdal.ErrorReset()
        result = action()
        return result, gdal.GetLastErrorNo(), gdal.GetLastErrorMsg()
    finally:
        gdal.PopErrorHandler()
        gdal.UseExceptions()


def check_errors(missing, damaged, source, target):
    import rasterio
    import rasterio.shutil
    from rasterio.errors import RasterioIOError

    # Open failures: rasterio raises RasterioIOError, with the driver's message.
    for path, number, words in [(missing, gdal.CPLE_OpenFailed, "no gridstore here"),
                                (damaged, gdal.CPLE_AppDefined, "manifest is damaged")]:
        try:
            rasterio.open(path)
        except RasterioIOError as e:
            assert words in str(e), f"rasterio on {path}: {e}"
        else:
            raise AssertionError(f"rasterio opened {path}")
        ds, got, msg = gdal_error(lambda: gdal.OpenEx(path, gdal.OF_RASTER))
        assert ds is None and got == number and words in msg, (path, got, msg)
    # A creation option value the driver does not support: an illegal argument.
    try:
        rasterio.shutil.copy(source, target, driver="GRIDSTORE", COMPRESS="JPEG")
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        kind = type(e).__name__
        assert kind == "CPLE_IllegalArgError", f"{kind}: {e}"
        assert "COMPRESS" in str(e), str(e)
    else:
        raise AssertionError("rasterio copied with COMPRESS=JPEG")
    src = gdal.Open(source)
    ds, got, msg = gdal_error(lambda: gdal.GetDriverByName("GRIDSTORE").CreateCopy(
        target, src, options=["COMPRESS=JPEG"]))
    assert ds is None and got == gdal.CPLE_IllegalArg and "COMPRESS" in msg, (got, msg)
    # A type a store cannot hold, asked of Create: not supported, and nothing is made.
    ds, got, msg = gdal_error(lambda: gdal.GetDriverByName("GRIDSTORE").Create(
        target, 10, 10, 1, gdal.GDT_CInt16))
    assert ds is None and got == gdal.CPLE_NotSupported and "CInt16" in msg, (got, msg)
    assert not os.path.exists(target), target
    print("ok errors")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make-alpha":
        make_alpha(args[0], int(args[1]))
    elif cmd == "make-byte":
        make_byte(args[0], float(args[1]))
    elif cmd == "make-geos":
        make_geos(args[0])
    elif cmd == "mask-flags":
        check_mask_flags(*args)
    elif cmd == "nodata":
        check_nodata(*args)
    elif cmd == "update-stats":
        check_update_forgets_statistics(*args)
    elif cmd == "errors":
        check_errors(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
