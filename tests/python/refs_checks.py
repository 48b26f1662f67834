#!/usr/bin/python3
"""Checks kerchunk references of a store (gridstore refs) against GDAL (tests/refs.rs).

Usage:
  refs_checks.py compare STORE REFS [--chdir DIR] [--root ROOT] [--snapshot N]
      Opens every level group of REFS with xarray (engine zarr, fsspec's reference
      filesystem, offline) and compares each array, bit for bit, with gdal_translate of
      the same store and overview level (for a time store, of each variable: its steps
      are the bands). --chdir runs from DIR (relative roots resolve from there; by default, from
      the directory of REFS); --root
      overrides the references' root template at open; --snapshot opens that snapshot
      with GDAL. Prints one JSON line per level.
  refs_checks.py patch SRC OUT X Y W H
      Writes OUT: the window (X, Y, W, H) of SRC with every value plus one (a patch).
"""
import json
import os
import sys
import tempfile

import numpy as np
import xarray
from osgeo import gdal

gdal.UseExceptions()


def open_level(refs, group, root, decode_times=False):
    options = {"fo": refs}
    if root is not None:
        options["template_overrides"] = {"root": root}
    # chunks={}: dask reads one Zarr chunk at a time. fsspec 2022.11 (Debian 12) gives the
    # chunks of a batched read back in the wrong order when they lie in several objects
    # and none of their ranges are merged (ReferenceFileSystem.cat), so whole reads without
    # dask can mix up tiles.
    return xarray.open_dataset(
        "reference://", engine="zarr", group=group, mask_and_scale=False,
        decode_times=decode_times, chunks={},
        backend_kwargs={"consolidated": False, "storage_options": options})


def translated(dataset, level, open_options):
    """gdal_translate of DATASET (overview LEVEL - 1 for LEVEL > 0) to a GeoTIFF, read back."""
    out = tempfile.NamedTemporaryFile(suffix=".tif", delete=False).name
    args = ["-of", "GTiff"]
    if level > 0:
        args += ["-ovr", str(level - 1)]
    src = gdal.OpenEx(dataset, gdal.OF_RASTER, open_options=open_options)
    gdal.Translate(out, src, options=args)
    src = None
    ds = gdal.Open(out)
    data = ds.ReadAsArray()
    if data.ndim == 2:
        data = data[np.newaxis]
    meta = ds.GetMetadata()
    ds = None
    os.unlink(out)
    return data, meta


def same_bits(a, b):
    """Equal shape and equal bytes (NaNs included), whatever the byte order."""
    if a.shape != b.shape:
        return False
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("=")))
    b = np.ascontiguousarray(b.astype(b.dtype.newbyteorder("=")))
    if a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes()


def offset_of(coords, first_centre, step):
    """Index of the coordinate equal to FIRST_CENTRE (within a thousandth of a cell)."""
    i = int(round((first_centre - coords[0]) / step))
    assert 0 <= i < len(coords), (first_centre, coords[:3])
    assert abs(coords[i] - first_centre) <= abs(step) * 1e-3, (coords[i], first_centre)
    return i


def compare(store, refs, root, snapshot):
    top = json.loads(open_refs_entry(refs, ".zattrs"))
    levels = [d["level"] for d in top["multiscales"][0]["datasets"]]
    oo = [f"SNAPSHOT={snapshot}"] if snapshot else []
    base = gdal.OpenEx(store, gdal.OF_RASTER, open_options=oo)
    subdatasets = [v for k, v in sorted(base.GetMetadata("SUBDATASETS").items())
                   if k.endswith("_NAME")]
    band_count = base.RasterCount
    base = None
    first = gdal.OpenEx(subdatasets[0] if subdatasets else store, gdal.OF_RASTER,
                        open_options=oo)
    gt = first.GetGeoTransform()
    first = None
    for level in levels:
        ds = open_level(refs, f"level_{level}", root)
        arrays = [n for n in ds.data_vars if "gridstore_band" in ds[n].attrs]
        arrays.sort(key=lambda n: ds[n].attrs["gridstore_band"])
        timed = "time" in ds.dims
        checked = []
        if timed:
            # One GDAL dataset per variable, its steps as bands.
            sources = subdatasets or [store]
            assert len(sources) == len(arrays), (sources, arrays)
            for name, src in zip(arrays, sources):
                data, meta = translated(src, level, oo)
                check_array(ds, name, data, gt, level)
                values = meta.get("NETCDF_DIM_time_VALUES", "").strip("{}").split(",")
                got = ds["time"].values
                assert np.allclose(got, [float(v) for v in values], rtol=0, atol=1e-6), \
                    (got, values)
                checked.append(name)
            if "mask" in ds:
                check_time_mask(ds, sources, oo, gt, level)
                checked.append("mask")
            decoded = open_level(refs, f"level_{level}", root, decode_times=True)
            assert decoded["time"].size == ds["time"].size
        else:
            data, _ = translated(store, level, oo)
            assert len(arrays) == band_count == data.shape[0], (arrays, band_count)
            for b, name in enumerate(arrays):
                check_array(ds, name, data[b:b + 1], gt, level)
                checked.append(name)
            if "mask" in ds:
                check_mask(ds, store, oo, gt, level)
                checked.append("mask")
        print(json.dumps({"level": level, "arrays": checked,
                          "shape": list(ds[arrays[0]].shape)}))


def check_array(ds, name, expected, gt, level):
    """ARRAY (y, x) or (time, y, x) against EXPECTED (bands, rows, cols) of GDAL.

    GT is the level-0 geotransform: GDAL gives an overview the dataset's extent divided by
    its size, whose cells are not exactly 2^level larger where a size was rounded up, while
    the cells of a store's level are."""
    x, y = ds["x"].values, ds["y"].values
    dx, dy = gt[1] * 2 ** level, gt[5] * 2 ** level
    ox = offset_of(x, gt[0] + 0.5 * dx, dx)
    oy = offset_of(y, gt[3] + 0.5 * dy, dy)
    got = ds[name].values
    if got.ndim == 2:
        got = got[np.newaxis]
    got = got[:, oy:, ox:]
    if not same_bits(got, expected):
        diff = "shape" if got.shape != expected.shape else int(
            np.sum(got.astype(np.float64) != expected.astype(np.float64)))
        sys.exit(f"level {level} array {name}: the references read {got.shape} {got.dtype}, "
                 f"GDAL {expected.shape} {expected.dtype}; differences: {diff}")


def check_mask(ds, store, oo, gt, level):
    """The unpacked MASK array against GDAL's mask of the first band without nodata."""
    src = gdal.OpenEx(store, gdal.OF_RASTER, open_options=oo)
    band = next(src.GetRasterBand(b) for b in range(1, src.RasterCount + 1)
                if src.GetRasterBand(b).GetNoDataValue() is None)
    compare_mask(ds["mask"].values, band, ds, gt, level, "mask")


def check_time_mask(ds, sources, oo, gt, level):
    """Each step of the MASK array against GDAL's mask of that step (band) of a variable
    without nodata."""
    for src in sources:
        var = gdal.OpenEx(src, gdal.OF_RASTER, open_options=oo)
        if var.GetRasterBand(1).GetNoDataValue() is None:
            break
    else:
        return
    masks = ds["mask"].values
    assert masks.shape[0] == var.RasterCount, (masks.shape, var.RasterCount)
    for i in range(var.RasterCount):
        compare_mask(masks[i], var.GetRasterBand(i + 1), ds, gt, level, f"mask step {i}")


def compare_mask(packed, band, ds, gt, level, what):
    if level > 0:
        band = band.GetOverview(level - 1)
    expected = band.GetMaskBand().ReadAsArray()
    x, y = ds["x"].values, ds["y"].values
    dx, dy = gt[1] * 2 ** level, gt[5] * 2 ** level
    ox = offset_of(x, gt[0] + 0.5 * dx, dx)
    oy = offset_of(y, gt[3] + 0.5 * dy, dy)
    bits = np.unpackbits(packed, axis=-1, bitorder="little")[:, :len(x)]
    got = bits[oy:, ox:].astype(np.uint8) * 255
    if got.shape != expected.shape or not (got == expected).all():
        diff = "shape" if got.shape != expected.shape else int((got != expected).sum())
        sys.exit(f"level {level} {what}: the references read {got.shape}, GDAL "
                 f"{expected.shape}; differences: {diff}")


def open_refs_entry(refs, key):
    with open(refs) as f:
        return json.load(f)["refs"][key]


def patch(src, out, x, y, w, h):
    ds = gdal.Translate(out, src, srcWin=[x, y, w, h], format="GTiff")
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        v = band.ReadAsArray()
        band.WriteArray((v + 1).astype(v.dtype))
    ds = None


def main():
    args = sys.argv[1:]
    if args[0] == "patch":
        patch(args[1], args[2], *map(int, args[3:7]))
        return
    assert args[0] == "compare", args
    store, refs = os.path.abspath(args[1]), os.path.abspath(args[2])
    opts = dict(zip(args[3::2], args[4::2]))
    os.chdir(opts.get("--chdir", os.path.dirname(refs)))
    compare(store, refs, opts.get("--root"), opts.get("--snapshot"))


if __name__ == "__main__":
    main()
