#!/usr/bin/python3
"""Helpers for the tests of new stores made through GDAL's Create (tests/create.rs).

Every writer here writes the same pixels, in the same order and with the same setters, to a
GTiff and to a store, so the GTiff is the reference the store is compared with.

compare STORE REFERENCE [--written DATASET]... [--written-window COL ROW W H]...
    Compares STORE with REFERENCE: size, band count and types, geotransform, CRS, nodata,
    colour tables, every pixel of every band (NaN equals NaN), and masks. A block of STORE
    (its own block size) is "written" when it touches the footprint of a --written dataset
    (georeferenced bounds) or a --written-window (pixels of STORE); without either, every
    block is. Masks must equal REFERENCE's in written blocks and be 0 (no data) elsewhere.
    Exits 1 listing every difference; prints what was compared.
rasterio-write STORE GTIFF
    rasterio 'w' mode: windows written in reverse, shuffled and partially overlapping
    order, with band descriptions and tags; checks both files read back as written and
    compares them (as compare does).
pixels-first STORE GTIFF
    Driver.Create, WriteArray before SetGeoTransform/SetProjection, SetNoDataValue after
    WriteArray, band and dataset metadata, unit, scale/offset, colour interpretation; part
    of the raster is never written. Prints the windows written (COL ROW W H per line).
check-metadata DATASET
    Checks the metadata pixels-first set is read back from DATASET.
palette STORE GTIFF
    A Byte band with a colour table, written through Driver.Create.
no-georef STORE GTIFF
    A two-band raster created without geotransform or CRS.
flush-midway STORE GTIFF
    Driver.Create, the top half written, FlushCache (checked from another handle: the rows
    written are there, the blocks below hold no data), the bottom half written, closed.
rotated PATH
    Driver.Create, then SetGeoTransform of a rotated grid; prints "refused <errno>: <msg>"
    or "accepted", then the geotransform the dataset reports.
create-refused PATH TYPE
    Tries Driver.Create of a 64x64 raster of TYPE at PATH; prints "refused <errno>: <msg>"
    or "created".
writer STORE|GTIFF SIZE [--pixels-first] [--strip-rows N]
    Writes a SIZE x SIZE Float32 raster in strips, printing "strip K of N" after each strip
    (stdout flushed), for the kill test. --pixels-first sets the georeferencing only after
    the last strip.
"""
import argparse
import random
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

TYPES = {"Byte": gdal.GDT_Byte, "UInt16": gdal.GDT_UInt16, "Int16": gdal.GDT_Int16,
         "UInt32": gdal.GDT_UInt32, "Int32": gdal.GDT_Int32, "Float32": gdal.GDT_Float32,
         "Float64": gdal.GDT_Float64, "Int64": gdal.GDT_Int64, "CInt16": gdal.GDT_CInt16}


def driver_for(path):
    """GRIDSTORE for *.gridstore, GTiff otherwise."""
    return gdal.GetDriverByName("GRIDSTORE" if path.endswith(".gridstore") else "GTiff")


def creation_options(path):
    """64-pixel tiles for both formats: the small test rasters span several blocks and
    levels, and GDAL's block cache fills the same blocks of both (a partly written block
    is written back whole)."""
    if path.endswith(".gridstore"):
        return ["BLOCKSIZE=64"]
    return ["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"]


def utm_srs():
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    return srs


# ---- compare ---------------------------------------------------------------------------

def footprint_window(store, dataset_name):
    """The pixel window of STORE covered by a dataset's georeferenced bounds."""
    ds = gdal.Open(dataset_name)
    g, sg = ds.GetGeoTransform(), store.GetGeoTransform()
    xs = sorted([g[0], g[0] + ds.RasterXSize * g[1]])
    ys = sorted([g[3], g[3] + ds.RasterYSize * g[5]])
    c = sorted(((x - sg[0]) / sg[1] for x in xs))
    r = sorted(((y - sg[3]) / sg[5] for y in ys))
    eps = 1e-6
    c0, r0 = int(np.floor(c[0] + eps)), int(np.floor(r[0] + eps))
    c1, r1 = int(np.ceil(c[1] - eps)), int(np.ceil(r[1] - eps))
    return c0, r0, c1 - c0, r1 - r0


def written_blocks(store, windows):
    """Per pixel: True where the pixel's block touches one of the windows (all when none)."""
    w, h = store.RasterXSize, store.RasterYSize
    if not windows:
        return np.ones((h, w), bool)
    bw, bh = store.GetRasterBand(1).GetBlockSize()
    blocks = np.zeros(((h + bh - 1) // bh, (w + bw - 1) // bw), bool)
    for col, row, ww, wh in windows:
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + ww, w), min(row + wh, h)
        if c1 > c0 and r1 > r0:
            blocks[r0 // bh:(r1 - 1) // bh + 1, c0 // bw:(c1 - 1) // bw + 1] = True
    return np.kron(blocks, np.ones((bh, bw), bool))[:h, :w]


def same_values(a, b):
    if a.dtype.kind == "f":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    return a == b


def first_at(mask):
    ys, xs = np.nonzero(mask)
    return int(xs[0]), int(ys[0])


def colour_entries(band):
    ct = band.GetColorTable()
    return None if ct is None else [ct.GetColorEntry(k) for k in range(ct.GetCount())]


def same_colour_tables(a, b):
    """Equal, but for the opaque black entries a TIFF colour map is padded with up to 2^bits
    entries (GTiff's table of 5 colours set through Create has 256)."""
    if a is None or b is None:
        return a is b
    short, long = sorted((a, b), key=len)
    return long[:len(short)] == short and all(e == (0, 0, 0, 255) for e in long[len(short):])


def header_problems(s, r):
    """Differences of size, georeferencing and band properties."""
    problems = []
    if (s.RasterXSize, s.RasterYSize, s.RasterCount) != (r.RasterXSize, r.RasterYSize, r.RasterCount):
        problems.append(f"size {s.RasterXSize}x{s.RasterYSize}x{s.RasterCount} != "
                        f"{r.RasterXSize}x{r.RasterYSize}x{r.RasterCount}")
        return problems
    sg, rg = s.GetGeoTransform(can_return_null=True), r.GetGeoTransform(can_return_null=True)
    if (sg is None) != (rg is None) or (
            sg is not None and not np.allclose(sg, rg, rtol=1e-12, atol=1e-9 * abs(rg[1]))):
        problems.append(f"geotransform {sg} != {rg}")
    ss, rs = s.GetSpatialRef(), r.GetSpatialRef()
    if (ss is None) != (rs is None) or (ss is not None and not ss.IsSame(rs)):
        problems.append(f"CRS differs: {ss and ss.GetName()!r} != {rs and rs.GetName()!r}")
    for i in range(1, s.RasterCount + 1):
        sb, rb = s.GetRasterBand(i), r.GetRasterBand(i)
        if sb.DataType != rb.DataType:
            problems.append(f"band {i}: type {gdal.GetDataTypeName(sb.DataType)} != "
                            f"{gdal.GetDataTypeName(rb.DataType)}")
        sn, rn = sb.GetNoDataValue(), rb.GetNoDataValue()
        if not (sn == rn or (sn is not None and rn is not None and np.isnan(sn) and np.isnan(rn))):
            problems.append(f"band {i}: nodata {sn} != {rn}")
        if not same_colour_tables(colour_entries(sb), colour_entries(rb)):
            problems.append(f"band {i}: colour tables differ: {colour_entries(sb)} != "
                            f"{colour_entries(rb)}")
    return problems


def band_problems(i, sb, rb, written):
    """Differences of the pixels and masks of one band."""
    problems = []
    sv, rv = sb.ReadAsArray(), rb.ReadAsArray()
    diff = ~same_values(sv, rv)
    if diff.any():
        x, y = first_at(diff)
        problems.append(f"band {i}: {int(diff.sum())} pixels differ, first at ({x}, {y}): "
                        f"store {sv[y, x]} reference {rv[y, x]}")
    sm = sb.GetMaskBand().ReadAsArray() != 0
    rm = rb.GetMaskBand().ReadAsArray() != 0
    bad = written & (sm != rm)
    if bad.any():
        x, y = first_at(bad)
        problems.append(f"band {i}: mask differs in {int(bad.sum())} written pixels, first at "
                        f"({x}, {y}): store {sm[y, x]} reference {rm[y, x]}")
    leaked = ~written & sm
    if leaked.any():
        x, y = first_at(leaked)
        problems.append(f"band {i}: {int(leaked.sum())} pixels of blocks never written hold "
                        f"data, first at ({x}, {y})")
    return problems


def compare_datasets(store_name, ref_name, windows=(), written_from=()):
    s, r = gdal.Open(store_name), gdal.Open(ref_name)
    problems = header_problems(s, r)
    if not problems:
        windows = list(windows) + [footprint_window(s, d) for d in written_from]
        written = written_blocks(s, windows)
        for i in range(1, s.RasterCount + 1):
            problems += band_problems(i, s.GetRasterBand(i), r.GetRasterBand(i), written)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"{s.RasterXSize}x{s.RasterYSize}x{s.RasterCount} equal; "
          f"{int(written.sum())} pixels in written blocks")


def compare(args):
    p = argparse.ArgumentParser(prog="compare")
    p.add_argument("store")
    p.add_argument("reference")
    p.add_argument("--written", action="append", default=[])
    p.add_argument("--written-window", action="append", nargs=4, type=int, default=[])
    a = p.parse_args(args)
    compare_datasets(a.store, a.reference, a.written_window, a.written)


# ---- rasterio 'w' mode -----------------------------------------------------------------

def rasterio_windows(w, h, rng):
    """Windows of 40x30 pixels (some extended so they overlap their neighbours) covering
    all but the bottom-right corner, in reverse order then shuffled by halves."""
    wins = []
    for row in range(0, h, 30):
        for col in range(0, w, 40):
            if col >= w - 40 and row >= h - 30:
                continue  # never written: must read as nodata and be masked
            ww, wh = min(40, w - col), min(30, h - row)
            if rng.random() < 0.3:  # overlaps the next window's pixels
                ww, wh = min(ww + 13, w - col), min(wh + 7, h - row)
            wins.append((col, row, ww, wh))
    wins.reverse()
    half = len(wins) // 2
    first, second = wins[:half], wins[half:]
    rng.shuffle(second)
    return first + second


def rasterio_write_one(path, profile, windows, rng_seed):
    """Writes every window with fresh random values; returns the arrays expected back."""
    import rasterio
    from rasterio.windows import Window
    rng = np.random.default_rng(rng_seed)
    count, h, w = profile["count"], profile["height"], profile["width"]
    expected = np.full((count, h, w), profile["nodata"], dtype=profile["dtype"])
    with rasterio.open(path, "w", **profile) as ds:
        ds.descriptions = tuple(f"band number {b}" for b in range(1, count + 1))
        ds.update_tags(purpose="create test", written="out of order")
        ds.update_tags(1, kind="first band")
        for col, row, ww, wh in windows:
            data = rng.normal(100, 50, (count, wh, ww)).astype(profile["dtype"])
            data[:, 0, 0] = 0  # zeros are data too
            ds.write(data, window=Window(col, row, ww, wh))
            expected[:, row:row + wh, col:col + ww] = data
    return expected


def rasterio_check_back(path, expected, profile):
    import rasterio
    problems = []
    with rasterio.open(path) as ds:
        got = ds.read()
        if not np.array_equal(got, expected):
            problems.append(f"{path}: {int((got != expected).sum())} values differ from what was written")
        if ds.descriptions != tuple(f"band number {b}" for b in range(1, profile["count"] + 1)):
            problems.append(f"{path}: descriptions {ds.descriptions}")
        tags, band_tags = ds.tags(), ds.tags(1)
        if tags.get("purpose") != "create test" or tags.get("written") != "out of order":
            problems.append(f"{path}: dataset tags {tags}")
        if band_tags.get("kind") != "first band":
            problems.append(f"{path}: band 1 tags {band_tags}")
        if ds.nodata != profile["nodata"] or ds.crs != profile["crs"] or ds.transform != profile["transform"]:
            problems.append(f"{path}: nodata {ds.nodata}, crs {ds.crs}, transform {ds.transform}")
    return problems


def rasterio_write(args):
    from rasterio.transform import from_origin
    store, gtiff = args
    rng = random.Random(20)
    w, h = 230, 170
    profile = {"width": w, "height": h, "count": 2, "dtype": "float32", "nodata": -9999.0,
               "crs": "EPSG:32631", "transform": from_origin(600000, 4800000, 20, 20)}
    windows = rasterio_windows(w, h, rng)
    problems = []
    for path in (store, gtiff):
        extra = {"driver": driver_for(path).ShortName}
        extra.update(option.lower().split("=") for option in creation_options(path))
        expected = rasterio_write_one(path, {**profile, **extra}, windows, 7)
        problems += rasterio_check_back(path, expected, profile)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"{len(windows)} windows written and read back")
    compare_datasets(store, gtiff, windows)


# ---- GDAL Python Driver.Create ---------------------------------------------------------

PIXELS_FIRST_WINDOWS = [(100, 70, 200, 60), (0, 0, 150, 100), (130, 0, 170, 75)]


def pixels_first_one(path):
    """Pixels written before any georeferencing, nodata set after them."""
    w, h = 300, 200
    ds = driver_for(path).Create(path, w, h, 2, gdal.GDT_Int16, creation_options(path))
    y, x = np.mgrid[0:h, 0:w]
    values = [(x * 3 - y * 2 - 150).astype(np.int16), ((x + y) % 11 - 5).astype(np.int16)]
    for col, row, ww, wh in PIXELS_FIRST_WINDOWS:
        for b in (1, 2):
            ds.GetRasterBand(b).WriteArray(values[b - 1][row:row + wh, col:col + ww], col, row)
    # After the pixels, on both bands (a GTiff has one nodata value for all its bands).
    for b in (1, 2):
        ds.GetRasterBand(b).SetNoDataValue(-5)
    ds.SetGeoTransform([400000, 5, 0, 5100000, 0, -5])
    ds.SetProjection(utm_srs().ExportToWkt())
    ds.SetMetadata({"SOURCE": "create test", "STAGE": "pixels first"})
    b1 = ds.GetRasterBand(1)
    b1.SetDescription("elevation")
    b1.SetUnitType("m")
    b1.SetScale(0.5)
    b1.SetOffset(-10)
    b1.SetMetadataItem("SENSOR", "synthetic")
    ds.GetRasterBand(2).SetColorInterpretation(gdal.GCI_Undefined)
    ds.GetRasterBand(2).SetDescription("pattern")
    ds = None


def pixels_first(args):
    for path in args:
        pixels_first_one(path)
    for win in PIXELS_FIRST_WINDOWS:
        print(*win)


def check_metadata(args):
    ds = gdal.Open(args[0])
    b1, b2 = ds.GetRasterBand(1), ds.GetRasterBand(2)
    got = {
        "dataset": {k: ds.GetMetadataItem(k) for k in ("SOURCE", "STAGE")},
        "band 1": (b1.GetDescription(), b1.GetUnitType(), b1.GetScale(), b1.GetOffset(),
                   b1.GetMetadataItem("SENSOR"), b1.GetNoDataValue()),
        "band 2": (b2.GetDescription(), b2.GetNoDataValue()),
    }
    want = {
        "dataset": {"SOURCE": "create test", "STAGE": "pixels first"},
        "band 1": ("elevation", "m", 0.5, -10, "synthetic", -5),
        "band 2": ("pattern", -5),
    }
    bad = [f"{k}: got {got[k]}, expected {want[k]}" for k in want if got[k] != want[k]]
    for line in bad:
        print(line)
    if bad:
        sys.exit(1)
    print("metadata kept")


def palette(args):
    w, h = 150, 140
    y, x = np.mgrid[0:h, 0:w]
    classes = ((x // 9 + y // 13) % 5).astype(np.uint8)
    ct = gdal.ColorTable()
    for k, rgb in enumerate([(0, 0, 0), (200, 30, 30), (30, 200, 30), (30, 30, 200), (250, 250, 0)]):
        ct.SetColorEntry(k, (*rgb, 255))
    for path in args:
        ds = driver_for(path).Create(path, w, h, 1, gdal.GDT_Byte, creation_options(path))
        ds.SetGeoTransform([500000, 30, 0, 4500000, 0, -30])
        ds.SetProjection(utm_srs().ExportToWkt())
        band = ds.GetRasterBand(1)
        band.SetColorTable(ct)
        band.SetColorInterpretation(gdal.GCI_PaletteIndex)
        band.WriteArray(classes)
        ds = None


def no_georef(args):
    w, h = 130, 90
    y, x = np.mgrid[0:h, 0:w]
    for path in args:
        ds = driver_for(path).Create(path, w, h, 2, gdal.GDT_Float32, creation_options(path))
        ds.GetRasterBand(1).WriteArray((x * 0.5 + y).astype(np.float32))
        ds.GetRasterBand(2).WriteArray(np.sin(x / 7.0).astype(np.float32))
        # A GTiff's second band is Undefined unless told; said here, so that the default
        # colour interpretation of a store's bands is no part of this comparison.
        ds.GetRasterBand(2).SetColorInterpretation(gdal.GCI_Undefined)
        ds = None


def flush_midway_one(path, values, check_flush):
    h, w = values.shape
    ds = driver_for(path).Create(path, w, h, 1, gdal.GDT_Int32, creation_options(path))
    ds.SetGeoTransform([700000, 25, 0, 4100000, 0, -25])
    ds.SetProjection(utm_srs().ExportToWkt())
    band = ds.GetRasterBand(1)
    band.WriteArray(values[:h // 2], 0, 0)
    ds.FlushCache()
    if check_flush:
        check_first_commit(path, values)
    band.WriteArray(values[h // 2:], 0, h // 2)
    ds = None


def check_first_commit(path, values):
    """Another handle sees the top half written before the flush, and no data in the
    blocks below it."""
    h = values.shape[0]
    other = gdal.Open(path)
    band = other.GetRasterBand(1)
    bh = band.GetBlockSize()[1]
    got, mask = band.ReadAsArray(), band.GetMaskBand().ReadAsArray()
    first_unwritten = (h // 2 + bh - 1) // bh * bh
    if not np.array_equal(got[:h // 2], values[:h // 2]) or not mask[:h // 2].all():
        raise SystemExit("after FlushCache, another handle does not read the rows written")
    if mask[first_unwritten:].any():
        raise SystemExit(f"after FlushCache, rows from {first_unwritten} on hold data")


def flush_midway(args):
    """The top half, FlushCache (a first commit, checked through another handle), the
    bottom half, close."""
    h, w = 160, 200
    y, x = np.mgrid[0:h, 0:w]
    values = (x * 1000 - y * 7 - 30000).astype(np.int32)
    for path in args:
        flush_midway_one(path, values, path.endswith(".gridstore"))


def rotated(args):
    """SetGeoTransform of a rotated grid on a new dataset: prints "refused <errno>: <msg>"
    or "accepted", then the geotransform the dataset reports."""
    ds = driver_for(args[0]).Create(args[0], 64, 64, 1, gdal.GDT_Byte, creation_options(args[0]))
    try:
        ds.SetGeoTransform([500000, 10, 2, 5000000, 1, -10])
        print("accepted")
    except RuntimeError as e:
        print(f"refused {gdal.GetLastErrorNo()}: {e}")
    print(ds.GetGeoTransform(can_return_null=True))
    ds = None


def create_refused(args):
    path, type_name = args
    gdal.ErrorReset()
    try:
        ds = gdal.GetDriverByName("GRIDSTORE").Create(path, 64, 64, 1, TYPES[type_name])
    except RuntimeError as e:
        print(f"refused {gdal.GetLastErrorNo()}: {e}")
        return
    if ds is None:
        print(f"refused {gdal.GetLastErrorNo()}: {gdal.GetLastErrorMsg()}")
        return
    ds = None
    print("created")


# ---- the writer the kill test kills ----------------------------------------------------

def writer(args):
    p = argparse.ArgumentParser(prog="writer")
    p.add_argument("path")
    p.add_argument("size", type=int)
    p.add_argument("--pixels-first", action="store_true")
    p.add_argument("--strip-rows", type=int, default=64)
    a = p.parse_args(args)
    n = a.size
    ds = driver_for(a.path).Create(a.path, n, n, 1, gdal.GDT_Float32, creation_options(a.path))

    def georeference():
        ds.SetGeoTransform([300000, 2, 0, 5200000, 0, -2])
        ds.SetProjection(utm_srs().ExportToWkt())

    if not a.pixels_first:
        georeference()
    band = ds.GetRasterBand(1)
    strips = (n + a.strip_rows - 1) // a.strip_rows
    x = np.arange(n, dtype=np.float32)
    for k in range(strips):
        row = k * a.strip_rows
        rows = min(a.strip_rows, n - row)
        y = np.arange(row, row + rows, dtype=np.float32)[:, None]
        band.WriteArray(np.sin(x / 50.0) * 100 + y * 0.01, 0, row)
        print(f"strip {k + 1} of {strips}", flush=True)
    if a.pixels_first:
        georeference()
    ds = None
    print("closed", flush=True)


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    {"compare": compare, "rasterio-write": rasterio_write, "pixels-first": pixels_first,
     "check-metadata": check_metadata, "palette": palette, "no-georef": no_georef,
     "create-refused": create_refused, "writer": writer,
     "flush-midway": flush_midway, "rotated": rotated}[command](rest)
