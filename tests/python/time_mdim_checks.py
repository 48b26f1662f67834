#!/usr/bin/python3
"""Checks of the multidimensional view of a time store (tests/time_mdim.rs).

Every expectation comes from the classic raster view of the same store (its bands, their
descriptions, NETCDF_DIM_* metadata, nodata, scale, offset, CRS and pixels), never from a
copy of the output.

Usage:
  time_mdim_checks.py slices DIR N
      writes DIR/s<i>.tif, i < N: 70 x 50 pixels in EPSG:32633, 2 bands ("rain" with
      nodata -9999 and some pixels of it, "temp"), values that differ by step, band, pixel.
  time_mdim_checks.py info STORE
      gdalmdiminfo's JSON and the multidim API show what the classic view shows.
  time_mdim_checks.py translate STORE FORMAT OUT FIRST LAST [xarray|gdal]
      gdalmdimtranslate -subset 'time(v1,v2)' of steps FIRST..LAST (from 0) to FORMAT
      (netCDF or Zarr); xarray opens OUT with datetime64 times equal to those steps' and
      values equal to the classic view's bands (with "gdal": GDAL's own reader sees those
      time values and units, and those values).
  time_mdim_checks.py requests STORE
      reads with steps (negative too), another buffer type, and requests beyond the
      dimensions or too large: results equal the classic view's, refusals are clear.
  time_mdim_checks.py classic STORE
      a classic open has no root group.
"""
import json
import subprocess
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()
W, H = 70, 50


def slices(out, n):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    for i in range(n):
        ds = gdal.GetDriverByName("GTiff").Create(f"{out}/s{i}.tif", W, H, 2, gdal.GDT_Float32)
        ds.SetGeoTransform([500000, 10, 0, 4000000, 0, -10])
        ds.SetSpatialRef(srs)
        y, x = np.mgrid[0:H, 0:W]
        for b in (1, 2):
            v = (i * 1000 + b * 100 + (x * 7 + y * 13) % 97).astype(np.float32) / 4
            band = ds.GetRasterBand(b)
            if b == 1:
                band.SetNoDataValue(-9999)
                v[0:3, 0:4] = -9999
            band.WriteArray(v)
            band.SetDescription(["rain", "temp"][b - 1])
        ds = None


def variables(store):
    """The classic view's dataset of each variable (a subdataset each when several)."""
    ds = gdal.Open(store)
    subs = ds.GetSubDatasets()
    return [gdal.Open(name) for name, _ in subs] if subs else [ds]


def meta_list(text):
    return [float(v) for v in text.strip("{}").split(",")]


def classic_facts(ds):
    md = ds.GetMetadata()
    b1 = ds.GetRasterBand(1)
    return {
        "name": b1.GetMetadataItem("NETCDF_VARNAME"),
        "times": meta_list(md["NETCDF_DIM_time_VALUES"]),
        "units": md["time#units"],
        "calendar": md["time#calendar"],
        "labels": [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)],
    }


def mdiminfo(store):
    out = subprocess.run(["gdalmdiminfo", "-detailed", store], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def value(attr):
    """An attribute's value in gdalmdiminfo's JSON (plain, or detailed with its type)."""
    return attr["value"] if isinstance(attr, dict) else attr


def info(store):
    doc = mdiminfo(store)
    views = variables(store)
    first = views[0]
    facts = classic_facts(first)
    dims = {d["name"]: d for d in doc["dimensions"]}
    assert [d["name"] for d in doc["dimensions"]] == ["time", "y", "x"], doc["dimensions"]
    assert dims["time"]["type"] == "TEMPORAL" and dims["time"]["indexing_variable"] == "/time"
    assert dims["time"]["size"] == first.RasterCount == len(facts["times"])
    assert (dims["y"]["type"], dims["y"]["size"]) == ("HORIZONTAL_Y", first.RasterYSize)
    assert (dims["x"]["type"], dims["x"]["size"]) == ("HORIZONTAL_X", first.RasterXSize)
    arrays = doc["arrays"]
    time = arrays["time"]
    assert time["datatype"] == "Float64"
    assert np.allclose(time["values"], facts["times"], rtol=0, atol=1e-9), time["values"]
    assert time["unit"] == facts["units"], (time["unit"], facts["units"])
    attrs = {k: value(v) for k, v in time["attributes"].items()}
    assert attrs == {"calendar": facts["calendar"], "standard_name": "time", "axis": "T"}, attrs
    gt = first.GetGeoTransform()
    assert np.allclose(arrays["x"]["values"], gt[0] + (np.arange(first.RasterXSize) + 0.5) * gt[1])
    assert np.allclose(arrays["y"]["values"], gt[3] + (np.arange(first.RasterYSize) + 0.5) * gt[5])
    names = [classic_facts(v)["name"] for v in views]
    assert list(arrays) == ["time", "y", "x"] + names, list(arrays)
    root = gdal.OpenEx(store, gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    for view, name in zip(views, names):
        check_array(arrays[name], root.OpenMDArray(name), view)
    print("ok", names)


def check_array(doc, array, view):
    band = view.GetRasterBand(1)
    assert doc["dimensions"] == ["/time", "/y", "/x"], doc["dimensions"]
    assert doc["datatype"] == gdal.GetDataTypeName(band.DataType), doc["datatype"]
    assert doc["block_size"] == [1, band.GetBlockSize()[1], band.GetBlockSize()[0]], doc
    nodata = band.GetNoDataValue()
    if nodata is None:
        assert "nodata_value" not in doc, doc
    else:
        got = array.GetNoDataValueAsDouble()
        assert got == nodata or (np.isnan(got) and np.isnan(nodata)), (got, nodata)
    assert array.GetScale() == band.GetScale(), (array.GetScale(), band.GetScale())
    assert array.GetOffset() == band.GetOffset(), (array.GetOffset(), band.GetOffset())
    assert (array.GetUnit() or "") == (band.GetUnitType() or "")
    srs, classic_srs = array.GetSpatialRef(), view.GetSpatialRef()
    if classic_srs is None:
        assert srs is None and "srs" not in doc
    else:
        same = srs is not None and srs.IsSame(classic_srs, ["IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES"])
        assert same, (srs, classic_srs)
        # x is the last dimension, y the one before: easting on x, or latitude on y.
        want = [2, 3] if classic_srs.EPSGTreatsAsLatLong() else [3, 2]
        assert srs.GetDataAxisToSRSAxisMapping() == want, srs.GetDataAxisToSRSAxisMapping()
    got = array.ReadAsArray()
    want = view.ReadAsArray()
    if view.RasterCount == 1:
        want = want[np.newaxis]
    assert got.shape == want.shape and np.array_equal(got, want, equal_nan=True), "pixels differ"


def translate(store, fmt, out, first, last, reader="xarray"):
    facts = [classic_facts(v) for v in variables(store)]
    times = facts[0]["times"]
    first, last = int(first), int(last)
    subset = f"time({times[first]!r},{times[last]!r})"
    subprocess.run(["gdalmdimtranslate", "-q", "-of", fmt, "-subset", subset, store, out],
                   check=True)
    if reader == "gdal":
        return translated_by_gdal(store, out, first, last, facts, times)
    import xarray as xr
    engine = {"netCDF": "netcdf4", "Zarr": "zarr"}[fmt]
    ds = xr.open_dataset(out, engine=engine, mask_and_scale=False)
    got = ds["time"].values
    assert got.dtype.kind == "M", f"times are {got.dtype}, not datetime64"
    labels = facts[0]["labels"][first:last + 1]
    want = np.array([np.datetime64(label.rstrip("Z"), "ns") for label in labels])
    assert np.array_equal(got, want), (got, want)
    for view, f in zip(variables(store), facts):
        raw = ds[f["name"]].values
        classic = view.ReadAsArray()[first:last + 1]
        assert raw.shape == classic.shape, (raw.shape, classic.shape)
        assert np.array_equal(raw, classic, equal_nan=True), f"{f['name']} differs"
    print("ok", fmt, list(got))


def translated_by_gdal(store, out, first, last, facts, times):
    """The export as GDAL's own reader sees it: the time values and units, the pixels."""
    root = gdal.OpenEx(out, gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    time = root.OpenMDArray("time")
    assert list(time.ReadAsArray()) == times[first:last + 1], time.ReadAsArray()
    assert time.GetUnit() == facts[0]["units"], time.GetUnit()
    for f, view in zip(facts, variables(store)):
        got = root.OpenMDArray(f["name"]).ReadAsArray()
        want = view.ReadAsArray()[first:last + 1]
        assert np.array_equal(got, want, equal_nan=True), f"{f['name']} differs"
    print("ok (GDAL's reader)", times[first:last + 1])


def stepped_reads(root, array, whole, times):
    """Steps, negative steps, a step of 0 along time, and another buffer type."""
    t, h, w = whole.shape
    got = array.ReadAsArray(array_start_idx=[t - 1, h - 1, 3], count=[t, (h + 1) // 2, 5],
                            array_step=[-1, -2, 7])
    assert np.array_equal(got, whole[::-1, ::-2, 3:3 + 7 * 5:7], equal_nan=True)
    got = array.ReadAsArray(array_start_idx=[1, 0, 0], count=[3, h, w], array_step=[0, 1, 1],
                            buffer_datatype=gdal.ExtendedDataType.Create(gdal.GDT_Float64))
    assert got.dtype == np.float64
    assert np.array_equal(got, np.repeat(whole[1:2], 3, axis=0).astype(np.float64),
                          equal_nan=True)
    got = root.OpenMDArray("time").ReadAsArray(array_start_idx=[t - 1], count=[t],
                                               array_step=[-1])
    assert np.array_equal(got, times[::-1]), got


def requests(store):
    root = gdal.OpenEx(store, gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    view = variables(store)[0]
    name = classic_facts(view)["name"]
    array = root.OpenMDArray(name)
    whole = view.ReadAsArray()
    t, h, w = whole.shape
    times = classic_facts(view)["times"]
    stepped_reads(root, array, whole, times)
    # The same in parts of 100 bytes: several parts along every dimension.
    gdal.SetConfigOption("GRIDSTORE_MDIM_READ_BYTES", "100")
    stepped_reads(root, array, whole, times)
    assert np.array_equal(array.ReadAsArray(), whole, equal_nan=True)
    gdal.SetConfigOption("GRIDSTORE_MDIM_READ_BYTES", None)
    # Beyond the dimensions, and too large: refused with an error, no crash.
    for start, count in (([0, 0, 0], [t + 1, h, w]), ([t, 0, 0], [1, 1, 1]),
                         ([0, h - 1, 0], [1, 2, w]), ([0, 0, 0], [1 << 40, 1 << 40, 1 << 40])):
        try:
            array.ReadAsArray(array_start_idx=start, count=count)
        except (RuntimeError, MemoryError, ValueError, OverflowError) as e:
            assert str(e), "an empty error"
            continue
        raise AssertionError(f"a read of {count} from {start} was not refused")
    print("ok")


def classic(store):
    ds = gdal.Open(store)
    assert ds.GetRootGroup() is None, "a classic open has a root group"
    print("ok")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "slices":
        slices(args[0], int(args[1]))
    elif cmd == "info":
        info(args[0])
    elif cmd == "translate":
        translate(*args)
    elif cmd == "requests":
        requests(args[0])
    elif cmd == "classic":
        classic(args[0])
    else:
        sys.exit(f"unknown check {cmd}")
