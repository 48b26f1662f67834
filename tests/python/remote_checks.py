#!/usr/bin/python3
"""Helpers for the tests of stores read over the network (tests/remote.rs), run with
Debian's Python so that GDAL and rasterio load this build's plugin. The network
configuration (AWS_*) comes from the environment.

Usage:
  remote_checks.py upload DIR VSI_DIR      copy a local store's files to VSI_DIR
  remote_checks.py keys VSI_DIR            print the keys under VSI_DIR, sorted
  remote_checks.py same LOCAL REMOTE [KEY=VALUE...]
      GDAL and rasterio read every band, mask and overview of both (with the open options
      given) and find them equal, and the metadata GDAL reports equal
  remote_checks.py reopen REMOTE NEW_DIR VSI_DIR
      open REMOTE, upload NEW_DIR (a later state of the same store) to VSI_DIR, open REMOTE
      again in the same process: the second open must see the new state (NEW_DIR's)
  remote_checks.py together STORE X Y W H
      serve STORE's directory over HTTP from another process, where each request for a
      chunk waits until another one has come (or fails after 10 s), and read the window
      (X, Y, W, H) of band 1 at full resolution through /vsicurl/: it reads as on disk only
      if the window's chunks are asked for at once, two or more at a time
  remote_checks.py refused STORE
      serve STORE's directory over HTTP from another process, answering every request for a
      chunk's bytes with 503 (and a request for its size with 200): reading band 1 must fail
      with an error that says the reading failed, not that the store is damaged
  remote_checks.py serve MODE DIR PORT_FILE
      those servers (MODE pairs or refuse; the port is written to PORT_FILE)
"""
import http.server
import os
import subprocess
import sys
import threading
import time

import numpy as np
import rasterio
from osgeo import gdal

gdal.UseExceptions()


def upload(src, dst):
    for d, _, files in os.walk(src):
        for f in sorted(files):
            path = os.path.join(d, f)
            key = dst.rstrip("/") + "/" + os.path.relpath(path, src)
            with open(path, "rb") as fh:
                data = fh.read()
            # The GCS emulator parses a body sent as JSON (GDAL's type for a .json name)
            # and then fails to store it.
            options = ["Content-Type=application/octet-stream"] if key.startswith("/vsigs/") else []
            fp = gdal.VSIFOpenExL(key, "wb", False, options)
            assert fp is not None, key
            assert gdal.VSIFWriteL(data, 1, len(data), fp) == len(data), key
            assert gdal.VSIFCloseL(fp) == 0, key


def arrays(ds):
    """Every band, its mask and every overview of `ds`, as arrays."""
    out = []
    for i in range(1, ds.RasterCount + 1):
        b = ds.GetRasterBand(i)
        out.append(b.ReadAsArray())
        out.append(b.GetMaskBand().ReadAsArray())
        for o in range(b.GetOverviewCount()):
            out.append(b.GetOverview(o).ReadAsArray())
    return out


def same_arrays(a, b, what):
    assert len(a) == len(b), (what, len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape and x.dtype == y.dtype, (what, i, x.shape, y.shape)
        equal = (x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" else x == y
        assert equal.all(), (what, i, int((~equal).sum()))


def same(local, remote, options):
    opts = dict(o.split("=", 1) for o in options)
    a = gdal.OpenEx(local, gdal.OF_RASTER, open_options=options)
    b = gdal.OpenEx(remote, gdal.OF_RASTER, open_options=options)
    assert b.GetDriver().ShortName == "GRIDSTORE", b.GetDriver().ShortName
    assert (a.RasterXSize, a.RasterYSize, a.RasterCount) == (b.RasterXSize, b.RasterYSize, b.RasterCount)
    assert a.GetGeoTransform() == b.GetGeoTransform()
    assert a.GetProjection() == b.GetProjection()
    assert a.GetMetadata() == b.GetMetadata(), (a.GetMetadata(), b.GetMetadata())
    for i in range(1, a.RasterCount + 1):
        assert a.GetRasterBand(i).GetMetadata() == b.GetRasterBand(i).GetMetadata()
        assert a.GetRasterBand(i).GetDescription() == b.GetRasterBand(i).GetDescription()
    same_arrays(arrays(a), arrays(b), "GDAL")
    with rasterio.open(local, **opts) as x, rasterio.open(remote, **opts) as y:
        assert y.driver == "GRIDSTORE"
        same_arrays([x.read(), x.read_masks()], [y.read(), y.read_masks()], "rasterio")
        assert y.overviews(1) == x.overviews(1)
    print(f"equal: {a.RasterCount} bands")


def reopen(remote, new_dir, vsi_dir):
    before = gdal.OpenEx(remote, gdal.OF_RASTER)
    old = arrays(before)
    # Uploaded by another process: this one's writes would drop its own cached copies.
    subprocess.run([sys.executable, __file__, "upload", new_dir, vsi_dir], check=True)
    after = gdal.OpenEx(remote, gdal.OF_RASTER)
    new = arrays(after)
    fresh = arrays(gdal.OpenEx(new_dir, gdal.OF_RASTER))
    same_arrays(new, fresh, "second open against the new state")
    assert any(x.shape != y.shape or not (x == y).all() for x, y in zip(old, new)), \
        "the new state reads as the old one: the test needs a change"
    print("the second open sees the new state")


class Chunky(http.server.BaseHTTPRequestHandler):
    """Serves files under `root` with byte ranges. In mode "pairs", a request for a chunk
    waits for a second one; in mode "refuse", it gets a 503."""
    root, mode = "", "pairs"
    pairs = threading.Barrier(2, timeout=10)
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        path = os.path.join(self.root, self.path.lstrip("/"))
        if "/chunks/" in self.path and body and self.mode == "refuse":
            return self.reply(503, b"")
        if "/chunks/" in self.path and body:
            try:
                self.pairs.wait()
            except threading.BrokenBarrierError:
                self.pairs.reset()
                return self.reply(503, b"")
        if not os.path.isfile(path):
            return self.reply(404, b"")
        with open(path, "rb") as f:
            data = f.read()
        rng = self.headers.get("Range", "")
        if not rng.startswith("bytes="):
            return self.reply(200, data if body else b"", len(data))
        a, _, b = rng[6:].partition("-")
        start, end = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
        part = data[start:end + 1]
        self.reply(206, part if body else b"", len(part), f"bytes {start}-{end}/{len(data)}")

    def reply(self, status, data, length=None, content_range=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        if content_range:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("served: %s\n" % self.requestline)


def serve(mode, root, port_file):
    handler = type("Handler", (Chunky,), {"root": root, "mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    with open(port_file + ".part", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".part", port_file)
    server.serve_forever()


class Served:
    """STORE's directory served by `serve` in MODE from another process, while in use;
    `url` is the store's /vsicurl/ path."""

    def __init__(self, mode, store):
        root, name = os.path.split(os.path.abspath(store))
        port_file = os.path.join(root, "served.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.server = subprocess.Popen([sys.executable, __file__, "serve", mode, root, port_file])
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            self.url = f"/vsicurl/http://127.0.0.1:{f.read()}/{name}"

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.server.kill()
        self.server.wait()


def together(store, x, y, w, h):
    with Served("pairs", store) as served:
        remote = gdal.OpenEx("GRIDSTORE:" + served.url, gdal.OF_RASTER)
        got = remote.GetRasterBand(1).ReadAsArray(x, y, w, h)
    # The dataset is kept while its band is read (a band does not keep it open).
    local = gdal.OpenEx(store, gdal.OF_RASTER)
    want = local.GetRasterBand(1).ReadAsArray(x, y, w, h)
    same_arrays([got], [want], f"window {x} {y} {w} {h}")
    print("the window's chunks were asked for together")


def refused(store):
    with Served("refuse", store) as served:
        remote = gdal.OpenEx("GRIDSTORE:" + served.url, gdal.OF_RASTER)
        try:
            remote.GetRasterBand(1).ReadAsArray()
        except RuntimeError as e:
            said = str(e)
        else:
            sys.exit("a read whose chunks the server refused succeeded")
    assert "reading" in said and "missing" not in said and "damaged" not in said, said
    print("refused:", said)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "upload":
        upload(args[0], args[1])
    elif cmd == "keys":
        for k in sorted(gdal.ReadDirRecursive(args[0]) or []):
            print(k)
    elif cmd == "same":
        same(args[0], args[1], args[2:])
    elif cmd == "reopen":
        reopen(args[0], args[1], args[2])
    elif cmd == "together":
        together(args[0], *map(int, args[1:5]))
    elif cmd == "refused":
        refused(args[0])
    elif cmd == "serve":
        serve(args[0], args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
