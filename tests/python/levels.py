#!/usr/bin/python3
"""Checks every level of a store against an independent computation with numpy.

Usage: levels.py SOURCE STORE [METHOD ...]
SOURCE is what was ingested (any GDAL dataset name); METHOD is one per band (or one for all):
AVERAGE, NEAREST, MIN, MAX, MODE; default AVERAGE (NEAREST for bands with a colour table).

The reference follows the format's definition: level z+1 is made from level z, 2x2 children
per parent, over the children that hold data (not nodata, not NaN, not masked); a parent
with none holds no data. Sizes round up at the far edges. Prints one line per level; exits
1 on the first difference.
"""
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def reduce(method, vals, valid, dtype):
    """vals, valid: (h, w, 4) children in order TL, TR, BL, BR. Returns values, any-valid."""
    any_valid = valid.any(axis=2)
    f = vals.astype(np.float64)
    if method == "AVERAGE":
        s = np.where(valid, f, 0.0).sum(axis=2)
        n = np.maximum(valid.sum(axis=2), 1)
        m = s / n
        out = m if np.issubdtype(dtype, np.floating) else round_half_away(m)
    elif method == "NEAREST":
        first = np.argmax(valid, axis=2)
        out = np.take_along_axis(f, first[..., None], axis=2)[..., 0]
    elif method == "MIN":
        out = np.where(valid, f, np.inf).min(axis=2)
    elif method == "MAX":
        out = np.where(valid, f, -np.inf).max(axis=2)
    elif method == "MODE":
        out = np.zeros(vals.shape[:2])
        best = np.zeros(vals.shape[:2], int)
        for k in range(4):
            cand = f[..., k]
            count = sum(((f[..., j] == cand) & valid[..., j]) for j in range(4))
            count = np.where(valid[..., k], count, 0)
            better = (count > best) | ((count == best) & (count > 0) & (cand < out))
            out = np.where(better, cand, out)
            best = np.where(better, count, best)
    else:
        raise SystemExit(f"unknown method {method}")
    return out, any_valid


def next_level(method, data, valid, dtype):
    h, w = data.shape
    H, W = (h + 1) // 2, (w + 1) // 2
    pd = np.zeros((2 * H, 2 * W), data.dtype)
    pv = np.zeros((2 * H, 2 * W), bool)
    pd[:h, :w] = data
    pv[:h, :w] = valid
    order = [(0, 0), (0, 1), (1, 0), (1, 1)]
    vals = np.stack([pd[dy::2, dx::2] for dy, dx in order], axis=2)
    vv = np.stack([pv[dy::2, dx::2] for dy, dx in order], axis=2)
    out, any_valid = reduce(method, vals, vv, dtype)
    return out, any_valid


def main():
    src_name, store_name = sys.argv[1], sys.argv[2]
    methods = [m.upper() for m in sys.argv[3:]]
    src = gdal.Open(src_name)
    store = gdal.Open(store_name)
    nb = src.RasterCount
    if not methods:
        methods = ["NEAREST" if src.GetRasterBand(b + 1).GetColorTable() else "AVERAGE" for b in range(nb)]
    if len(methods) == 1:
        methods = methods * nb
    levels = store.GetRasterBand(1).GetOverviewCount()
    for b in range(nb):
        sb, tb = src.GetRasterBand(b + 1), store.GetRasterBand(b + 1)
        data = sb.ReadAsArray()
        dtype = data.dtype
        is_float = np.issubdtype(dtype, np.floating)
        nodata = sb.GetNoDataValue()
        # Bands with nodata carry validity in their values; the others in a mask.
        if nodata is not None:
            nd = np.array(nodata).astype(dtype)
            mask = None
        else:
            # Bands without nodata share the dataset's mask (band 1's, when it is per
            # dataset: an alpha band or an internal mask), the alpha band included.
            first = src.GetRasterBand(1)
            owner = first if first.GetMaskFlags() & gdal.GMF_PER_DATASET else sb
            flags = owner.GetMaskFlags()
            mask = (np.ones(data.shape, bool) if flags & gdal.GMF_ALL_VALID
                    else owner.GetMaskBand().ReadAsArray() != 0)
        for z in range(levels):
            if nodata is not None:
                usable = data != nd
            else:
                usable = mask.copy()
            if is_float:
                usable &= ~np.isnan(data)
            out, any_usable = next_level(methods[b], data, usable, dtype)
            if nodata is not None:
                expected = np.where(any_usable, out, nd).astype(dtype)
                parent_mask = None
            else:
                _, parent_mask = next_level("NEAREST", data, mask, dtype)
                # With data (by the mask) but only NaN children, a parent is NaN.
                missing = np.nan if is_float else 0
                expected = np.where(any_usable, out, np.where(parent_mask, missing, 0)).astype(dtype)
            ov = tb.GetOverview(z)
            got = ov.ReadAsArray()
            if got.shape != expected.shape:
                print(f"band {b + 1} level {z + 1}: shape {got.shape}, expected {expected.shape}")
                sys.exit(1)
            same = ((got == expected) | (np.isnan(got) & np.isnan(expected))) if is_float else got == expected
            if not same.all():
                ys, xs = np.nonzero(~same)
                print(f"band {b + 1} level {z + 1} ({methods[b]}): {len(ys)} pixels differ, first at "
                      f"({xs[0]}, {ys[0]}): got {got[ys[0], xs[0]]}, expected {expected[ys[0], xs[0]]}")
                sys.exit(1)
            meta = ov.GetMetadataItem("RESAMPLING")
            if meta != methods[b]:
                print(f"band {b + 1} level {z + 1}: RESAMPLING={meta}, expected {methods[b]}")
                sys.exit(1)
            if parent_mask is not None and tb.GetMaskFlags() & gdal.GMF_PER_DATASET:
                if not ((ov.GetMaskBand().ReadAsArray() != 0) == parent_mask).all():
                    print(f"band {b + 1} level {z + 1}: mask differs")
                    sys.exit(1)
            print(f"band {b + 1} level {z + 1} {got.shape[1]}x{got.shape[0]} {methods[b]}: ok")
            data, mask = expected, parent_mask

if __name__ == "__main__":
    main()
