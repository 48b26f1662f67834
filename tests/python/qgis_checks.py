#!/usr/bin/python3
"""Uses a store as QGIS does, headless: raster layers through QGIS's GDAL provider.

Usage: qgis_checks.py STORE PATCH WORKDIR
STORE is a store of one band with levels 2..16; PATCH a raster on its grid whose values
change the store's statistics; WORKDIR a folder outside the store for copies.
Checks:
- the store opens by its directory and by its manifest; computing statistics
  (bandStatistics) leaves no .aux.xml sidecar in the store or beside it;
- after an update (PATCH written into the store by another process), a new layer's
  statistics are those of the new state, equal to a fresh copy's, not the old ones;
- Build pyramids: levels the store has succeed, others fail (FAILED_NOT_SUPPORTED) with
  the driver's message, and nothing is written;
- a damaged manifest opened by its path gives an invalid layer whose error is the
  store's own message;
- Save as (QgsRasterFileWriter, which writes through GDAL's Create) to GRIDSTORE makes a
  store with the pixels, size, geotransform and CRS of the layer saved.
Prints "ok" when every check holds.
"""
import os
import shutil
import subprocess
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from osgeo import gdal  # noqa: E402 - the same GDAL QGIS runs on, for its error handler
from qgis.core import (QgsApplication, QgsRaster, QgsRasterBandStats,  # noqa: E402
                       QgsRasterFileWriter, QgsRasterLayer, QgsRasterPipe)


def layer(path):
    lyr = QgsRasterLayer(path, os.path.basename(path), "gdal")
    assert lyr.isValid(), f"{path}: {lyr.error().summary()}"
    return lyr


def statistics(path):
    """Band 1's minimum, maximum, mean and standard deviation, as QGIS computes them for
    a layer's histogram stretch. The layer is closed before returning."""
    lyr = layer(path)
    s = lyr.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    stats = (s.minimumValue, s.maximumValue, s.mean, s.stdDev)
    del lyr
    return stats


def close(a, b):
    return all(abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


def files_named(folder, suffixes):
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.endswith(suffixes)]
    return found


SIDECARS = (".aux.xml", ".ovr", ".aux", ".msk")


def check_no_sidecars(store):
    """Nothing GDAL derives is kept in the store, or beside it."""
    beside = os.path.dirname(os.path.abspath(store))
    left = files_named(store, SIDECARS) + [
        os.path.join(beside, f) for f in os.listdir(beside) if f.endswith(SIDECARS)]
    assert not left, f"sidecars left by QGIS: {left}"


def check_statistics(store, patch, workdir):
    manifest = os.path.join(store, "gridstore.json")
    before = statistics(store)
    assert statistics(manifest) == before
    check_no_sidecars(store)
    # Another process updates the store while QGIS runs.
    subprocess.run(["gdal_translate", "-q", "-of", "GRIDSTORE", patch, store], check=True)
    fresh = os.path.join(workdir, "fresh.tif")
    subprocess.run(["gdal_translate", "-q", store, fresh], check=True)
    want = statistics(fresh)
    for path in (store, manifest):
        after = statistics(path)
        assert not close(after, before), f"{path}: the update changed nothing: {after}"
        assert close(after, want), f"{path}: statistics {after}, a fresh copy's {want}"
    check_no_sidecars(store)


def build_pyramids(provider, levels):
    """Asks QGIS to build pyramids at `levels`; returns QGIS's answer and GDAL's errors."""
    pyramids = provider.buildPyramidList(levels)
    for p in pyramids:
        p.setBuild(True)
    errors = []
    gdal.PushErrorHandler(lambda cls, no, msg: errors.append((cls, no, msg)))
    try:
        answer = provider.buildPyramids(pyramids, "NEAREST", QgsRaster.PyramidsGTiff)
    finally:
        gdal.PopErrorHandler()
    return answer, errors


def check_pyramids(store):
    lyr = layer(store)
    provider = lyr.dataProvider()
    listed = provider.buildPyramidList()
    existing = [p.getLevel() for p in listed if p.getExists()]
    assert existing == [2, 4, 8, 16], [(p.getLevel(), p.getExists()) for p in listed]
    answer, errors = build_pyramids(provider, existing)
    assert answer == "" and not errors, (answer, errors)
    for levels in ([3], [2, 32]):
        answer, errors = build_pyramids(provider, levels)
        assert answer == "FAILED_NOT_SUPPORTED", answer
        assert any(no == gdal.CPLE_NotSupported and "levels are built by every write" in msg
                   and "the store has levels 2..16" in msg for _, no, msg in errors), errors
    del provider, lyr
    check_no_sidecars(store)


def check_damaged(store, workdir):
    damaged = os.path.join(workdir, "damaged.gridstore")
    shutil.copytree(store, damaged)
    manifest = os.path.join(damaged, "gridstore.json")
    with open(manifest, "r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    lyr = QgsRasterLayer(manifest, "damaged", "gdal")
    assert not lyr.isValid()
    text = lyr.error().message()
    assert "GRIDSTORE" in text and "the manifest is damaged" in text and manifest in text, text
    assert "not recognized" not in text, text


def check_save_as(store, workdir):
    source = layer(store)
    provider = source.dataProvider()
    saved = os.path.join(workdir, "saved.gridstore")
    writer = QgsRasterFileWriter(saved)
    writer.setOutputFormat("GRIDSTORE")
    writer.setCreateOptions(["BLOCKSIZE=64"])
    pipe = QgsRasterPipe()
    assert pipe.set(provider.clone())
    err = writer.writeRaster(pipe, provider.xSize(), provider.ySize(), provider.extent(),
                             provider.crs())
    assert err == QgsRasterFileWriter.NoError, err
    a, b = gdal.Open(store), gdal.Open(saved)
    assert (a.RasterXSize, a.RasterYSize) == (b.RasterXSize, b.RasterYSize)
    assert a.GetGeoTransform() == b.GetGeoTransform(), (a.GetGeoTransform(), b.GetGeoTransform())
    assert a.GetSpatialRef().IsSame(b.GetSpatialRef())
    for i in range(1, a.RasterCount + 1):
        assert a.GetRasterBand(i).Checksum() == b.GetRasterBand(i).Checksum(), i
    assert b.GetRasterBand(1).GetOverviewCount() > 0


def main():
    store, patch, workdir = sys.argv[1:4]
    app = QgsApplication([], False)
    app.initQgis()
    try:
        check_statistics(store, patch, workdir)
        check_pyramids(store)
        check_save_as(store, workdir)
        check_damaged(store, workdir)
    finally:
        app.exitQgis()
    print("ok")


if __name__ == "__main__":
    main()
