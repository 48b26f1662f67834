#!/usr/bin/python3
"""Reads over the network: gridstore against COG, both on an S3 server and a web server.

The 8192 x 8192 Float32 surface of generate.py, written as a COG (ZSTD, AVERAGE overviews,
as bench/run.py makes it) and as a store (default options), is put on moto's S3 server
and served by nginx, both on 127.0.0.1. Each read runs in a fresh process (Debian's Python
with the system GDAL and this checkout's plugin), timed from the open to the last pixel,
and the requests the server logged for it are counted:

- open: open the dataset and read its size and georeferencing;
- overview: the whole image read into 1024 x 1024 (served from a level / an overview);
- window: a 1024 x 1024 window at full resolution;
- windows: 20 random 256 x 256 windows at full resolution, in one process.

Both servers run on this machine, so these figures are the cost of the requests and of
decoding, without network latency. With --latency MS, a third server (a threaded range
server of this script's own) answers every request MS milliseconds late, as object storage
does (20 to 100 ms per request), and the reads run again against it.
Every figure is the median of --runs runs, the formats taking turns.

Usage: bench/remote.py [--runs N] [--work DIR] [--size N] [--latency MS]
Needs nginx (Debian's nginx-light) and moto_server (target/moto-venv, see .ci/run).
Prints a Markdown table (also written to DIR/remote-results.md).
"""
import argparse
import http.server
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
BUCKET = "bench"
# The format version this build writes (src/manifest.rs).
FORMAT_VERSION = 4

READER = r"""
import sys, time, random
from osgeo import gdal
gdal.UseExceptions()
path, op = sys.argv[1], sys.argv[2]
t = time.perf_counter()
ds = gdal.OpenEx(path, gdal.OF_RASTER)
w, h = ds.RasterXSize, ds.RasterYSize
ds.GetGeoTransform()
b = ds.GetRasterBand(1)
if op == "overview":
    b.ReadRaster(0, 0, w, h, 1024, 1024)
elif op == "window":
    b.ReadRaster(w // 3, h // 3, 1024, 1024)
elif op == "windows":
    rng = random.Random(7)
    for _ in range(20):
        b.ReadRaster(rng.randrange(w - 256), rng.randrange(h - 256), 256, 256)
print(time.perf_counter() - t)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def start_moto(log):
    port = free_port()
    exe = os.path.join(ROOT, "target/moto-venv/bin/moto_server")
    exe = exe if os.path.exists(exe) else "moto_server"
    p = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    wait_for(port)
    subprocess.run(["curl", "-s", "-X", "PUT", f"http://127.0.0.1:{port}/{BUCKET}"],
                   check=True, stdout=subprocess.DEVNULL)
    return p, port


def start_nginx(root, tmp):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    temps = " ".join(f"{k}_temp_path {tmp};" for k in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf, "w") as f:
        f.write(f"daemon off; worker_processes 2; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
                f"events {{ worker_connections 256; }}\n"
                f"http {{ access_log {tmp}/access.log; {temps}\n"
                f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = subprocess.Popen([nginx, "-c", conf, "-p", tmp, "-e", f"{tmp}/error.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port)
    return p, port, os.path.join(tmp, "access.log")


class SlowRangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files under `root` with byte ranges, each answer `delay` seconds late."""
    root, delay, log = "", 0.0, ""
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        time.sleep(self.delay)
        path = os.path.join(self.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = os.path.getsize(path)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end, status = int(a), min(int(b) if b else size - 1, size - 1), 206
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                f.seek(start)
                self.wfile.write(f.read(end - start + 1))

    def log_message(self, fmt, *args):
        with open(self.log, "a") as f:
            f.write('"%s" HTTP/1\n' % self.requestline)


class QueuedServer(http.server.ThreadingHTTPServer):
    """A threaded server whose listen queue takes parallel clients: with the default of 5,
    dropped connections come back a second later and would be measured as latency."""
    request_queue_size = 256
    daemon_threads = True


def start_slow_server(root, delay_ms, log):
    handler = type("Handler", (SlowRangeHandler,), {"root": root, "delay": delay_ms / 1000, "log": log})
    server = QueuedServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def upload(env, local, remote):
    """Copies a file or a directory's files to `remote` through GDAL (so through /vsis3/)."""
    code = (
        "import os, sys\nfrom osgeo import gdal\ngdal.UseExceptions()\n"
        "src, dst = sys.argv[1], sys.argv[2]\n"
        "files = [src] if os.path.isfile(src) else [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs]\n"
        "for p in files:\n"
        "    key = dst if p == src else dst + '/' + os.path.relpath(p, src)\n"
        "    data = open(p, 'rb').read()\n"
        "    fp = gdal.VSIFOpenL(key, 'wb'); gdal.VSIFWriteL(data, 1, len(data), fp); gdal.VSIFCloseL(fp)\n")
    subprocess.run([PY, "-c", code, local, remote], env=env, check=True)


def count(log):
    with open(log, "rb") as f:
        return sum(1 for line in f if b"HTTP/1" in line)


def clear(log):
    open(log, "wb").close()


def this_builds_format(store):
    """Whether a store kept from an earlier run was written by this build: of the format it
    writes (an older one would measure the older format: its chunk names, for one, cost
    more requests), and no older than the build (another build of the same format may lay
    its chunks out otherwise, in packs of another size)."""
    manifest = os.path.join(store, "gridstore.json")
    with open(manifest) as f:
        if json.load(f)["format_version"] != FORMAT_VERSION:
            return False
    build = os.path.join(ROOT, "target/release/libgridstore.so")
    return os.path.getmtime(manifest) > os.path.getmtime(build)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--work", default=os.path.join(ROOT, "target/bench/remote"))
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--latency", type=float, default=0, help="ms per request of a third server")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    plugins = os.path.join(ROOT, "target/release/gdalplugins")
    os.makedirs(plugins, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "target/release/libgridstore.so"),
                os.path.join(plugins, "gdal_GRIDSTORE.so"))
    env = dict(os.environ, GDAL_DRIVER_PATH=plugins)
    surface = os.path.join(args.work, "surface.tif")
    if not os.path.exists(surface):
        subprocess.run([PY, os.path.join(HERE, "generate.py"), args.work, str(args.size)], check=True)
    cog, store = os.path.join(args.work, "surface-cog.tif"), os.path.join(args.work, "surface.gridstore")
    if os.path.exists(store) and not this_builds_format(store):
        shutil.rmtree(store)
    for path, cmd in ((cog, ["-of", "COG", "-co", "COMPRESS=ZSTD", "-co", "NUM_THREADS=ALL_CPUS",
                             "-co", "RESAMPLING=AVERAGE"]),
                      (store, ["-of", "GRIDSTORE"])):
        if not os.path.exists(path):
            subprocess.run(["gdal_translate", "-q", *cmd, surface, path], env=env, check=True)

    tmp = tempfile.mkdtemp(prefix="bench-remote-")
    moto_log = os.path.join(tmp, "moto.log")
    moto, moto_port = start_moto(moto_log)
    nginx, nginx_port, nginx_log = start_nginx(args.work, tmp)
    slow_log = os.path.join(tmp, "slow.log")
    open(slow_log, "w").close()
    slow, slow_port = start_slow_server(args.work, args.latency, slow_log)
    s3 = dict(env, AWS_S3_ENDPOINT=f"127.0.0.1:{moto_port}", AWS_HTTPS="NO",
              AWS_VIRTUAL_HOSTING="FALSE", AWS_ACCESS_KEY_ID="bench",
              AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    try:
        upload(s3, cog, f"/vsis3/{BUCKET}/surface-cog.tif")
        upload(s3, store, f"/vsis3/{BUCKET}/surface.gridstore")
        sides = [
            ("S3 (moto)", "COG", f"/vsis3/{BUCKET}/surface-cog.tif", s3, moto_log),
            ("S3 (moto)", "gridstore", f"GRIDSTORE:/vsis3/{BUCKET}/surface.gridstore", s3, moto_log),
            ("HTTP (nginx)", "COG", f"/vsicurl/http://127.0.0.1:{nginx_port}/surface-cog.tif", env, nginx_log),
            ("HTTP (nginx)", "gridstore",
             f"GRIDSTORE:/vsicurl/http://127.0.0.1:{nginx_port}/surface.gridstore", env, nginx_log),
        ]
        slow_name = f"HTTP, {args.latency:g} ms per request"
        if args.latency:
            sides += [
                (slow_name, "COG", f"/vsicurl/http://127.0.0.1:{slow_port}/surface-cog.tif", env, slow_log),
                (slow_name, "gridstore",
                 f"GRIDSTORE:/vsicurl/http://127.0.0.1:{slow_port}/surface.gridstore", env, slow_log),
            ]
        ops = ["open", "overview", "window", "windows"]
        times = {(s[0], s[1], op): [] for s in sides for op in ops}
        requests = {}
        for _ in range(args.runs):
            for op in ops:
                for server, fmt, path, e, log in sides:
                    clear(log)
                    out = subprocess.run([PY, "-c", READER, path, op], env=e, check=True,
                                         capture_output=True, text=True).stdout
                    times[(server, fmt, op)].append(float(out.split()[-1]))
                    requests[(server, fmt, op)] = count(log)
    finally:
        moto.terminate()
        nginx.terminate()
        slow.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [f"Machine: {os.cpu_count()} cores, {platform.machine()}, GDAL "
             f"{subprocess.run(['gdal-config', '--version'], capture_output=True, text=True).stdout.strip()}; "
             f"{args.size}x{args.size} Float32; medians of {args.runs} runs; "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             "| server | read | COG ms | gridstore ms | gridstore / COG | COG requests | gridstore requests |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for server in dict.fromkeys(side[0] for side in sides):
        for op in ops:
            c = statistics.median(times[(server, "COG", op)]) * 1000
            g = statistics.median(times[(server, "gridstore", op)]) * 1000
            lines.append(f"| {server} | {op} | {c:.1f} | {g:.1f} | {g / c:.2f} | "
                         f"{requests[(server, 'COG', op)]} | {requests[(server, 'gridstore', op)]} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.work, "remote-results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
