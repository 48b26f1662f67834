#!/usr/bin/python3
"""Uses a store on S3 as QGIS does, headless, next to the same store on disk.

Usage: qgis_remote_checks.py LOCAL REMOTE SAVE_TO
LOCAL is a store on disk, REMOTE the same store on /vsis3/ (GRIDSTORE:/vsis3/...), SAVE_TO
a /vsis3/ path for a new store. The S3 configuration (AWS_*) comes from the environment.
Checks:
- both open as valid raster layers with the same size, extent, CRS and statistics;
- rendered by QGIS's map renderer at the full extent (which reads a level) and zoomed in
  (level 0), the two give the same image, pixel for pixel;
- Save as (QgsRasterFileWriter, through GDAL's Create) writes a store on S3 whose pixels
  equal the layer's.
Prints "ok" when every check holds.
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from osgeo import gdal  # noqa: E402
from qgis.core import (QgsApplication, QgsMapRendererParallelJob,  # noqa: E402
                       QgsMapSettings, QgsRasterBandStats, QgsRasterFileWriter,
                       QgsRasterLayer, QgsRasterPipe, QgsRectangle)
from qgis.PyQt.QtCore import QSize  # noqa: E402


def layer(path):
    lyr = QgsRasterLayer(path, os.path.basename(path), "gdal")
    assert lyr.isValid(), f"{path}: {lyr.error().summary()}"
    return lyr


def render(lyr, extent, size):
    settings = QgsMapSettings()
    settings.setLayers([lyr])
    settings.setDestinationCrs(lyr.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    return bytes(ptr)


def check_same(local, remote):
    a, b = layer(local), layer(remote)
    assert (a.width(), a.height()) == (b.width(), b.height())
    assert a.extent() == b.extent(), (a.extent().toString(), b.extent().toString())
    assert a.crs() == b.crs()
    sa = a.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    sb = b.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    assert (sa.minimumValue, sa.maximumValue, sa.mean) == \
        (sb.minimumValue, sb.maximumValue, sb.mean)
    full = a.extent()
    zoom = QgsRectangle(full.xMinimum(), full.yMinimum(),
                        full.xMinimum() + full.width() / 4, full.yMinimum() + full.height() / 4)
    for extent, size in [(full, 64), (zoom, 256)]:
        assert render(a, extent, size) == render(b, extent, size), extent.toString()
    del a, b


def check_save_as(remote, save_to):
    lyr = layer(remote)
    provider = lyr.dataProvider()
    writer = QgsRasterFileWriter(save_to)
    writer.setOutputFormat("GRIDSTORE")
    pipe = QgsRasterPipe()
    assert pipe.set(provider.clone())
    err = writer.writeRaster(pipe, provider.xSize(), provider.ySize(), provider.extent(),
                             provider.crs())
    assert err == QgsRasterFileWriter.NoError, err
    a, b = gdal.Open(lyr.source()), gdal.Open(save_to)
    assert a is not None and b is not None
    for i in range(1, a.RasterCount + 1):
        assert a.GetRasterBand(i).Checksum() == b.GetRasterBand(i).Checksum(), i
    del lyr, provider, pipe, writer


def main():
    local, remote, save_to = sys.argv[1:4]
    app = QgsApplication([], False)
    app.initQgis()
    try:
        check_same(local, remote)
        check_save_as(remote, save_to)
    finally:
        app.exitQgis()
    print("ok")


if __name__ == "__main__":
    main()
