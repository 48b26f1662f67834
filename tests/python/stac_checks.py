#!/usr/bin/python3
"""Checks of `gridstore stac` output (tests/stac.rs), offline.

Usage:
  stac_checks.py validate DIR
      validates DIR/collection.json, DIR/items/*.json and DIR/item-collection.json against
      the vendored JSON schemas (tests/schemas): STAC 1.1.0 core, GeoJSON, and the schema
      of every extension each document declares. No schema is fetched: a $ref to anything
      not vendored fails. Prints "valid: N documents".
  stac_checks.py against FILE URL
      validates the JSON document FILE against the vendored schema URL only.
  stac_checks.py slices DIR
      writes DIR/s<i>.tif, i < 4 (70 x 50 pixels, 2 bands "rain" and "temp", Float32,
      nodata -9999, EPSG:32633), values that differ by step, band and pixel, and
      DIR/fiji.tif (EPSG:32760, over the antimeridian near Fiji, Int16, 1 band), and
      DIR/nan.tif (EPSG:4326, Float32, nodata NaN, some pixels NaN, unit "mm").
  stac_checks.py same A B
      GDAL datasets A and B have the same size, band count, geotransform and pixels
      (bit for bit, NaN equal to NaN). Prints the pixels' SHA-256.
  stac_checks.py projection JSON DATASET
      every feature of JSON (an item or an ItemCollection) has the proj:transform,
      proj:shape and proj:bbox of GDAL dataset DATASET (as GDAL opens the store).
  stac_checks.py hrefs JSON ASSET NAME...
      from the directory of JSON (an item, or an ItemCollection), opens each feature's
      asset ASSET href as GDAL opens it (relative to the working directory) and checks
      that the i-th feature reads the same pixels as GDAL dataset NAME i (names relative
      to the working directory of this script's caller).
"""
import hashlib
import json
import os
import sys
import urllib.parse

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(os.path.dirname(HERE), "schemas")
STAC = "https://schemas.stacspec.org/v1.1.0/"
# Where each STAC core file is published (the copies are flat; common.json's own $id has
# a typo, "commonjson", so every file is registered under its published URL).
CORE_PLACES = {"collection.json": "collection-spec", "catalog.json": "catalog-spec"}


def vendored():
    """Every vendored schema by URL: its $id and its published URL."""
    store = {}
    for root, _, files in os.walk(SCHEMAS):
        for name in files:
            if not name.endswith(".json"):
                continue
            with open(os.path.join(root, name)) as f:
                schema = json.load(f)
            store[schema["$id"].rstrip("#")] = schema
            if os.path.basename(os.path.dirname(root)) == "stac-spec":
                place = CORE_PLACES.get(name, "item-spec")
                store[f"{STAC}{place}/json-schema/{name}"] = schema
            if os.path.basename(root) == "geojson":
                store[f"https://geojson.org/schema/{name}"] = schema
    return store


def refuse(url):
    raise RuntimeError(f"schema {url} is not vendored in tests/schemas (no network here)")


def validate(doc, url, store):
    """Errors of `doc` against the vendored schema `url`, as strings."""
    import jsonschema

    schema = store.get(url.rstrip("#"))
    if schema is None:
        return [f"no vendored schema for {url}"]
    resolver = jsonschema.RefResolver(
        base_uri=url, referrer=schema, store=store, handlers={"http": refuse, "https": refuse}
    )
    cls = jsonschema.validators.validator_for(schema)
    v = cls(schema, resolver=resolver)
    return [f"{url}: {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in v.iter_errors(doc)]


def validate_stac(doc, store):
    """Errors of a STAC item or collection against the core schema and its extensions."""
    core = {"Feature": STAC + "item-spec/json-schema/item.json",
            "Collection": STAC + "collection-spec/json-schema/collection.json"}[doc["type"]]
    errors = validate(doc, core, store)
    for ext in doc.get("stac_extensions", []):
        errors += validate(doc, ext, store)
    return errors


def validate_dir(out):
    store = vendored()
    docs = [os.path.join(out, "collection.json")]
    items = os.path.join(out, "items")
    docs += sorted(os.path.join(items, n) for n in os.listdir(items))
    errors = []
    for path in docs:
        with open(path) as f:
            doc = json.load(f)
        errors += [f"{path}: {e}" for e in validate_stac(doc, store)]
    listing = os.path.join(out, "item-collection.json")
    with open(listing) as f:
        fc = json.load(f)
    errors += [f"{listing}: {e}" for e in validate(fc, "https://geojson.org/schema/FeatureCollection.json", store)]
    for i, feature in enumerate(fc["features"]):
        errors += [f"{listing} feature {i}: {e}" for e in validate_stac(feature, store)]
    if errors:
        sys.exit("INVALID:\n" + "\n".join(errors))
    print(f"valid: {len(docs) + 1 + len(fc['features'])} documents")


def against(path, url):
    with open(path) as f:
        doc = json.load(f)
    errors = validate(doc, url, vendored())
    if errors:
        sys.exit("INVALID:\n" + "\n".join(errors))
    print("valid")


def values(step, band):
    y, x = np.mgrid[0:50, 0:70]
    return (step * 1000 + band * 100 + (x * 7 + y * 13) % 97).astype(np.float32)


def slices(out):
    for i in range(4):
        ds = gdal.GetDriverByName("GTiff").Create(f"{out}/s{i}.tif", 70, 50, 2, gdal.GDT_Float32)
        ds.SetGeoTransform([500000, 10, 0, 4000000, 0, -10])
        ds.SetProjection("EPSG:32633")
        for b in (1, 2):
            band = ds.GetRasterBand(b)
            band.SetNoDataValue(-9999)
            v = values(i, b)
            v[0:3, 0:4] = -9999
            band.WriteArray(v)
            band.SetDescription(["rain", "temp"][b - 1])
        ds = None
    ds = gdal.GetDriverByName("GTiff").Create(f"{out}/fiji.tif", 200, 150, 1, gdal.GDT_Int16)
    ds.SetGeoTransform([700000, 1000, 0, 8150000, 0, -1000])
    ds.SetProjection("EPSG:32760")
    y, x = np.mgrid[0:150, 0:200]
    ds.GetRasterBand(1).WriteArray((x * 3 + y).astype(np.int16))
    ds = None
    ds = gdal.GetDriverByName("GTiff").Create(f"{out}/nan.tif", 60, 40, 1, gdal.GDT_Float32)
    ds.SetGeoTransform([5.0, 0.01, 0, 50.0, 0, -0.01])
    ds.SetProjection("EPSG:4326")
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(float("nan"))
    band.SetUnitType("mm")
    v = values(0, 1)[:40, :60].copy()
    v[5:9, 10:20] = np.nan
    band.WriteArray(v)
    ds = None


def pixels(name):
    ds = gdal.Open(name)
    arrays = [ds.GetRasterBand(b + 1).ReadAsArray() for b in range(ds.RasterCount)]
    return ds, arrays


def same(a, b):
    da, pa = pixels(a)
    db, pb = pixels(b)
    assert (da.RasterXSize, da.RasterYSize) == (db.RasterXSize, db.RasterYSize), "sizes differ"
    assert len(pa) == len(pb), f"{len(pa)} bands against {len(pb)}"
    ga, gb = da.GetGeoTransform(), db.GetGeoTransform()
    assert np.allclose(ga, gb, rtol=0, atol=1e-9 * max(map(abs, ga))), f"{ga} against {gb}"
    digest = hashlib.sha256()
    for i, (x, y) in enumerate(zip(pa, pb)):
        assert x.dtype == y.dtype, f"band {i + 1}: {x.dtype} against {y.dtype}"
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            diff = np.argwhere(~((x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" else (x == y)))
            sys.exit(f"band {i + 1}: {len(diff)} pixels differ, first at {diff[0]}: {x[tuple(diff[0])]} against {y[tuple(diff[0])]}")
        digest.update(x.tobytes())
    print(digest.hexdigest())


def feature_list(path):
    with open(path) as f:
        doc = json.load(f)
    return doc["features"] if doc["type"] == "FeatureCollection" else [doc]


def projection(path, dataset):
    ds = gdal.Open(dataset)
    g = ds.GetGeoTransform()
    w, h = ds.RasterXSize, ds.RasterYSize
    xs, ys = (g[0], g[0] + w * g[1]), (g[3], g[3] + h * g[5])
    want = {
        "proj:transform": [g[1], g[2], g[0], g[4], g[5], g[3]],
        "proj:shape": [h, w],
        "proj:bbox": [min(xs), min(ys), max(xs), max(ys)],
    }
    for feature in feature_list(path):
        for key, value in want.items():
            got = feature["properties"][key]
            assert np.allclose(got, value, rtol=1e-12, atol=0), f"{feature['id']} {key}: {got}, GDAL {value}"
    print("projection as GDAL has it")


def hrefs(path, asset, names):
    with open(path) as f:
        doc = json.load(f)
    features = doc["features"] if doc["type"] == "FeatureCollection" else [doc]
    assert len(features) == len(names), f"{len(features)} features, {len(names)} names"
    here = os.getcwd()
    for feature, name in zip(features, names):
        href = feature["assets"][asset]["href"]
        os.chdir(os.path.dirname(os.path.abspath(path)))
        _, got = pixels(href)
        os.chdir(here)
        _, want = pixels(name)
        assert len(got) == len(want), f"{href}: {len(got)} bands, {name} has {len(want)}"
        for b, (x, y) in enumerate(zip(got, want)):
            assert np.array_equal(x, y), f"{href} band {b + 1} differs from {name}"
        print(f"{feature['id']}: {href} reads as {name}")


def main(argv):
    cmd = argv[1]
    if cmd == "validate":
        validate_dir(argv[2])
    elif cmd == "against":
        against(argv[2], argv[3])
    elif cmd == "slices":
        slices(argv[2])
    elif cmd == "same":
        same(argv[2], argv[3])
    elif cmd == "projection":
        projection(argv[2], argv[3])
    elif cmd == "hrefs":
        hrefs(argv[2], argv[3], argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
