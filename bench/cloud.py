#!/usr/bin/python3
"""GRIDSTORE against COG on object storage: reads, ingest, a patch and sharded ingest, in one
run against one local S3 server (moto), with and without added latency.

The 8192 x 8192 Float32 surface of generate.py is written locally as a COG (ZSTD, AVERAGE
overviews, as bench/run.py makes it), which is uploaded to moto's S3 server, and as a store
(default options) straight to S3 (`gdal_translate -of GRIDSTORE`, so with the packs a store
written there has). Every command then talks to S3 through a small threaded proxy of this
script's own, which forwards each request to moto (after --latency ms, or at once) and
counts the requests by method. Each part measures both formats, each command in a fresh
process, the formats taking turns run by run; figures are medians of --runs runs of the
command's wall time (process start-up included, the same for both formats):

- open: `gdalinfo`;
- overview: the whole image read into 1024 x 1024 (`gdal_translate -outsize 1024 1024`,
  which GDAL serves from a level / an overview);
- windows: 100 random 256 x 256 windows at full resolution (read_ops.py, fixed seed);
- full: every pixel at full resolution (read_ops.py);
- ingest: the surface written straight to S3 (`gdal_translate -of GRIDSTORE` against
  `gdal_translate -of COG`), with the objects it leaves under its key;
- patch: a 512 x 512 patch written into the data on S3 (`gridstore ingest` into the store,
  against a COG rewritten whole from a mosaic of the old COG and the patch, to a new key:
  GDAL deletes a copy's destination first, so a COG cannot be rewritten from itself), the
  patched pixels read back and compared after every run;
- shards: `gridstore ingest --shard I/N` of the surface by N = 1, 2, 4 processes at once
  into one store on S3 made first with `gridstore create`; the speed-up against 1 process.

moto handles the whole object for every range request, so the COG (one object of about
200 MB at 8192 x 8192) pays on every request a cost that S3 does not charge, and the store
(small objects) does not: the times on moto say more about moto than about S3; the request
counts hold for any S3 server. The proxy adds a little Python work to every request.
moto and the proxy run on the same cores as the commands, so every run also records the
processor time of the commands (user + system, from their rusage), of moto (from
/proc/PID/stat) and of this script (its proxy threads), medians in the tables: where the
three add up to the machine's cores times the wall time, the cores, not the network or the
format, are what the command waits on.

Set-up work (uploads, writing the stores read, emptying a key prefix, creating the store of
the shards) goes straight
to moto and is neither timed nor counted. A command that fails is reported with its own
error message, the other parts still run, and the script exits with status 1.

Usage: bench/cloud.py [--runs N] [--work DIR] [--size N] [--latency MS] [--parts LIST]
  --parts: comma-separated, from open,overview,windows,full,ingest,patch,shards (default all)
  --latency: ms added to every request in the second pass (default 20; 0: one pass only)
Needs moto_server (target/moto-venv, see .ci/run) and a release build (cargo build --release).
Prints Markdown tables (also written to DIR/cloud-results.md).
"""
import argparse
import http.client
import http.server
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import generate  # noqa: E402  (the surface)
import remote  # noqa: E402  (moto, free ports, uploads through /vsis3/)
import update  # noqa: E402  (the patch)

PY = "/usr/bin/python3"
GRIDSTORE = os.path.join(ROOT, "target", "release", "gridstore")
BUCKET = remote.BUCKET
PARTS = ("open", "overview", "windows", "full", "ingest", "patch", "shards")
READS = PARTS[:4]
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
SHARDS = (1, 2, 4)
WINDOWS = 100
PATCH_AT = 2048
COG = ["-of", "COG", "-co", "COMPRESS=ZSTD", "-co", "NUM_THREADS=ALL_CPUS",
       "-co", "RESAMPLING=AVERAGE"]
# What a COG reader sets so GDAL does not list the bucket prefix at open.
COG_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
# GDAL writes a GeoTIFF out of order: on /vsis3/ it needs a local temporary file, which it
# uploads when the dataset closes.
COG_WRITE = dict(COG_ENV, CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE="YES")
# Headers that belong to one connection, not to the request a proxy forwards.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "expect", "content-length"}


class CountingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the S3 server, `server.delay` seconds late, whole (bodies
    read before forwarding, answers read before answering), and counts it by method."""
    protocol_version = "HTTP/1.1"
    upstream = None

    def do_GET(self):
        self.forward()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def forward(self):
        body = self.read_body()
        self.server.tally(self.command)
        time.sleep(self.server.delay)
        status, reason, headers, data = self.ask_upstream(body)
        self.send_response_only(status, reason)
        length = str(len(data))
        for key, value in headers:
            if key.lower() == "content-length" and self.command == "HEAD":
                length = value
            elif key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def ask_upstream(self, body):
        """Sends the request to moto on this connection's own upstream connection (the Host
        header kept, as the request's signature covers it); retries once on a connection
        the server had closed."""
        for attempt in (0, 1):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port,
                                                           timeout=900)
            try:
                self.upstream.putrequest(self.command, self.path, skip_host=True,
                                         skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.upstream.putheader(key, value)
                if body or self.command in ("PUT", "POST"):
                    self.upstream.putheader("Content-Length", str(len(body)))
                self.upstream.endheaders(body or None)
                answer = self.upstream.getresponse()
                return answer.status, answer.reason, answer.getheaders(), answer.read()
            except (http.client.HTTPException, OSError):
                self.upstream.close()
                self.upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def log_message(self, fmt, *args):
        pass


class ProxyServer(remote.QueuedServer):
    """A CountingProxy on a free port of 127.0.0.1, serving from a thread of its own."""

    def __init__(self, upstream_port, delay_ms):
        super().__init__(("127.0.0.1", 0), CountingProxy)
        self.upstream_port, self.delay = upstream_port, delay_ms / 1000
        self.lock, self.counts = threading.Lock(), Counter()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def tally(self, method):
        with self.lock:
            self.counts[method] += 1

    def take(self):
        """The counts since the last call, by method."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


def s3_env(base, port):
    """GDAL's settings for the S3 server on 127.0.0.1:port, with dummy keys."""
    return dict(base, AWS_S3_ENDPOINT=f"127.0.0.1:{port}", AWS_HTTPS="NO",
                AWS_VIRTUAL_HOSTING="FALSE", AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")


# Lists or deletes what is under a key prefix through GDAL's /vsis3/ (signed requests).
OBJECTS = r"""
import json, sys
from osgeo import gdal
gdal.UseExceptions()
op, path = sys.argv[1], sys.argv[2].rstrip("/")
st = gdal.VSIStatL(path)
if st is None:
    names = []
elif st.IsDirectory():
    names = [n for n in gdal.ReadDirRecursive(path) or [] if not n.endswith("/")]
else:
    names = [""]
full = [path + "/" + n if n else path for n in names]
if op == "list":
    print(json.dumps([(f, gdal.VSIStatL(f).size) for f in full]))
elif st is not None and st.IsDirectory():
    gdal.RmdirRecursive(path)
elif st is not None:
    gdal.Unlink(path)
"""


def objects_under(env, path, op="list"):
    """(key, size) of every object under the /vsis3/ `path` (op "list"), or deletes them all
    (op "delete"); asked of moto directly, so not counted."""
    out = subprocess.run([PY, "-c", OBJECTS, op, path], env=env, capture_output=True,
                         text=True)
    if out.returncode:
        raise SystemExit(f"cannot {op} the objects under {path}: {out.stderr.strip()}")
    return json.loads(out.stdout) if op == "list" else None


class Failed(Exception):
    """A command failed; the message holds the command and its own error output."""


def shown(argv):
    """A command as one would type it from the repository root."""
    return shlex.join(argv).replace(ROOT + "/", "")


def run_at_once(argvs, env):
    """Starts the commands at once and waits for all; raises Failed on the first failure."""
    procs = [subprocess.Popen(a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for a in argvs]
    errors = [p.communicate()[1] for p in procs]
    for argv, proc, err in zip(argvs, procs, errors):
        if proc.returncode != 0:
            raise Failed(f"`{shown(argv)}` exited with status {proc.returncode}:\n{err.strip()}")


class Case:
    """One format's command(s) for one part: `steps` run one after the other, each step a list
    of commands started at once. `setup` runs before every run (not timed, not counted);
    `check` after it, returning an error message or None; `prefix` is the /vsis3/ path whose
    objects are listed after the run."""

    def __init__(self, part, label, steps, env, setup=None, check=None, prefix=None, extra=None):
        self.part, self.label, self.steps, self.env = part, label, steps, env
        self.setup, self.check, self.prefix = setup, check, prefix
        self.extra = extra or {}
        self.times, self.counts, self.objects, self.error = [], Counter(), None, None
        self.cpu = {"command": [], "moto": [], "proxy": []}

    def command(self):
        prefix = " ".join(f"{k}={v}" for k, v in self.extra.items())
        prefix = prefix + " " if prefix else ""
        text = []
        for step in self.steps:
            if len(step) == 1:
                text.append(prefix + shown(step[0]))
            else:
                text.append("(" + " & ".join(prefix + shown(a) for a in step) + " & wait)")
        return " && ".join(text)

    def measure_once(self, proxy, direct):
        if self.error:
            return
        try:
            if self.setup:
                self.setup()
            proxy.take()
            before = cpu_now(proxy.server_pid)
            start = time.perf_counter()
            for step in self.steps:
                run_at_once(step, dict(self.env, **self.extra))
            took = time.perf_counter() - start
            used = {k: v - before[k] for k, v in cpu_now(proxy.server_pid).items()}
            counts = proxy.take()
            if not sum(counts.values()):
                raise Failed(f"`{self.command()}` sent no request through the proxy: "
                             "the command did not read from or write to S3")
            problem = self.check() if self.check else None
            if problem:
                raise Failed(problem)
        except Failed as e:
            self.error = str(e)
            return
        self.times.append(took)
        for k, v in used.items():
            self.cpu[k].append(v)
        self.counts = counts
        if self.prefix:
            self.objects = objects_under(direct, self.prefix)

    def median(self):
        return statistics.median(self.times) if self.times else None


def cpu_now(server_pid):
    """Processor seconds so far (user + system) of the commands this script ran and waited
    for, of the server `server_pid`, and of this script itself (the proxy's threads)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open(f"/proc/{server_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {"command": children.ru_utime + children.ru_stime,
            "moto": (int(fields[11]) + int(fields[12])) / ticks,
            "proxy": own.ru_utime + own.ru_stime}


def patch_check(path, patch, env, at, levels):
    """A check that the 512 x 512 window at (at, at) of `path` holds the patch's pixels and
    that `path` still has `levels` overview levels."""
    code = (
        "import sys, numpy as np\nfrom osgeo import gdal\ngdal.UseExceptions()\n"
        "at = int(sys.argv[3])\n"
        "ds, patch = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])\n"
        "got = ds.GetRasterBand(1).ReadAsArray(at, at, 512, 512)\n"
        "want = patch.GetRasterBand(1).ReadAsArray()\n"
        "n = ds.GetRasterBand(1).GetOverviewCount()\n"
        "if n != int(sys.argv[4]):\n"
        "    sys.exit(f'{n} overview levels, where the original has {sys.argv[4]}')\n"
        "sys.exit(0 if np.array_equal(got, want) else 'the patched pixels differ from the patch')\n")

    def check():
        out = subprocess.run([PY, "-c", code, path, patch, str(at), str(levels)], env=env,
                             capture_output=True, text=True)
        if out.returncode:
            return (f"{path}, read back after the patch: {out.stderr.strip()} "
                    f"(exit status {out.returncode})")
        return None
    return check


def overview_count(path, env):
    """How many overview levels GDAL sees in the local dataset `path`."""
    code = ("import sys\nfrom osgeo import gdal\ngdal.UseExceptions()\nds = gdal.Open(sys.argv[1])\n"
            "print(ds.GetRasterBand(1).GetOverviewCount())\n")
    return int(subprocess.run([PY, "-c", code, path], env=env, check=True, capture_output=True,
                              text=True).stdout)


class Bench:
    """The inputs, the servers and the cases of one run of the script."""

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        plugins = os.path.join(ROOT, "target", "release", "gdalplugins")
        os.makedirs(plugins, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "target", "release", "libgridstore.so"),
                    os.path.join(plugins, "gdal_GRIDSTORE.so"))
        self.env = dict(os.environ, GDAL_DRIVER_PATH=plugins)
        self.make_inputs()

    def make_inputs(self):
        work = self.args.work
        os.makedirs(work, exist_ok=True)
        self.surface = generate.make_surface(work, self.args.size)
        self.cog = os.path.join(work, "surface-cog.tif")
        self.store = os.path.join(work, "surface.gridstore")
        if os.path.exists(self.store) and not remote.this_builds_format(self.store):
            update.remove(self.store)
        for path, cmd in ((self.cog, COG), (self.store, ["-of", "GRIDSTORE"])):
            if not os.path.exists(path):
                # Written under another name first, so an interrupted run leaves no input.
                part = os.path.join(work, "partial-" + os.path.basename(path))
                update.remove(part)
                subprocess.run(["gdal_translate", "-q", *cmd, self.surface, part],
                               env=self.env, check=True)
                os.rename(part, path)
        self.patch_at = min(PATCH_AT, self.args.size - 512)
        self.patch = os.path.join(work, f"patch-{self.patch_at}.tif")
        if not os.path.exists(self.patch):
            update.make_patch(self.surface, self.patch, at=self.patch_at)

    def start_servers(self):
        self.moto, self.moto_port = remote.start_moto(os.path.join(self.tmp, "moto.log"))
        self.direct = s3_env(self.env, self.moto_port)
        self.proxies = [(ProxyServer(self.moto_port, 0), "S3 (moto)")]
        if self.args.latency:
            self.proxies.append((ProxyServer(self.moto_port, self.args.latency),
                                 f"S3 + {self.args.latency:g} ms per request"))
        for proxy, _ in self.proxies:
            proxy.server_pid = self.moto.pid

    def stop_servers(self):
        for proxy, _ in getattr(self, "proxies", []):
            proxy.shutdown()
        if getattr(self, "moto", None):
            self.moto.terminate()
            self.moto.wait()

    def s3(self, key):
        return f"/vsis3/{BUCKET}/{key}"

    def upload(self, local, key):
        remote.upload(self.direct, local, self.s3(key))

    def reset(self, key, local=None):
        """A setup: empties the key prefix, then uploads `local` there if given."""
        def setup():
            objects_under(self.direct, self.s3(key), "delete")
            if local:
                self.upload(local, key)
        return setup

    def ingest_there(self, key):
        """A setup: empties the key prefix, then ingests the surface into a store there
        (straight to S3, as a user would: its packs are those of object storage)."""
        def setup():
            objects_under(self.direct, self.s3(key), "delete")
            run_at_once([["gdal_translate", "-q", "-of", "GRIDSTORE", self.surface,
                          self.s3(key)]], self.direct)
        return setup

    def gridstore_create(self, key):
        """A setup: an empty store on S3 on the surface's grid, made by `gridstore create`."""
        def setup():
            objects_under(self.direct, self.s3(key), "delete")
            run_at_once([[GRIDSTORE, "create", self.s3(key), "--crs", "EPSG:32633",
                          "--origin", "500000", "6000000", "--cell-size", "10"]], self.direct)
        return setup

    def read_cases(self, part, env):
        cog, store = self.s3("surface-cog.tif"), "GRIDSTORE:" + self.s3("surface.gridstore")
        out = os.path.join(self.tmp, "overview.tif")
        ops = os.path.join(HERE, "read_ops.py")

        def argv(path):
            return {
                "open": ["gdalinfo", path],
                "overview": ["gdal_translate", "-q", "-outsize", "1024", "1024", path, out],
                "windows": [PY, ops, path, "windows", str(WINDOWS)],
                "full": [PY, ops, path, "full"],
            }[part]
        return [Case(part, "COG", [[argv(cog)]], env, extra=COG_ENV),
                Case(part, "GRIDSTORE", [[argv(store)]], env)]

    def ingest_cases(self, env):
        return [
            Case("ingest", "COG",
                 [[["gdal_translate", "-q", *COG, self.surface, self.s3("ingest.tif")]]], env,
                 setup=self.reset("ingest.tif"), prefix=self.s3("ingest.tif"), extra=COG_WRITE),
            Case("ingest", "GRIDSTORE",
                 [[["gdal_translate", "-q", "-of", "GRIDSTORE", self.surface,
                    self.s3("ingest.gridstore")]]], env,
                 setup=self.reset("ingest.gridstore"), prefix=self.s3("ingest.gridstore")),
        ]

    def patch_cases(self, env):
        vrt = os.path.join(self.tmp, "mosaic.vrt")
        # GDAL deletes a copy's destination before writing it, so a COG cannot be rewritten
        # from itself in place: the new COG goes to a new key, as a new version would.
        old, cog, store = self.s3("patch.tif"), self.s3("patched.tif"), self.s3("patch.gridstore")

        def cog_setup():
            self.reset("patch.tif", self.cog)()
            self.reset("patched.tif")()
        return [
            Case("patch", "COG",
                 [[["gdalbuildvrt", "-q", "-overwrite", vrt, old, self.patch]],
                  # Without IGNORE_EXISTING, GDAL 3.6 keeps only some overview levels of
                  # a mosaic whose sources have overviews; the check below catches that.
                  [["gdal_translate", "-q", *COG, "-co", "OVERVIEWS=IGNORE_EXISTING", vrt,
                    cog]]], env,
                 setup=cog_setup, prefix=cog, extra=COG_WRITE,
                 check=patch_check(cog, self.patch, dict(self.direct, **COG_ENV),
                                   self.patch_at, overview_count(self.cog, self.env))),
            Case("patch", "GRIDSTORE",
                 [[[GRIDSTORE, "ingest", "-q", store, self.patch]]], env,
                 setup=self.ingest_there("patch.gridstore"), prefix=store,
                 check=patch_check("GRIDSTORE:" + store, self.patch, self.direct,
                                   self.patch_at, overview_count("GRIDSTORE:" + self.store, self.env))),
        ]

    def shard_cases(self, env):
        store = self.s3("shards.gridstore")
        return [Case("shards", f"{n} shard{'s' if n > 1 else ''}",
                     [[[GRIDSTORE, "ingest", "-q", "--shard", f"{i}/{n}", store, self.surface]
                       for i in range(n)]], env,
                     setup=self.gridstore_create("shards.gridstore"), prefix=store)
                for n in SHARDS]

    def cases(self, part, env):
        if part in READS:
            return self.read_cases(part, env)
        return {"ingest": self.ingest_cases, "patch": self.patch_cases,
                "shards": self.shard_cases}[part](env)

    def run(self):
        """Measures every selected part at every endpoint; returns [(endpoint, [Case])]."""
        self.upload(self.cog, "surface-cog.tif")
        self.ingest_there("surface.gridstore")()
        done = []
        for proxy, endpoint in self.proxies:
            env = s3_env(self.env, proxy.port)
            for part in self.args.parts:
                cases = self.cases(part, env)
                for _ in range(self.args.runs):
                    for case in cases:
                        case.measure_once(proxy, self.direct)
                for case in cases:
                    print(f"{endpoint} {part} {case.label}: "
                          f"{case.median() if case.times else 'failed'}", file=sys.stderr,
                          flush=True)
                done.append((endpoint, cases))
        return done


def requests(case):
    if not case.times:
        return ""
    by = ", ".join(f"{m} {case.counts[m]}" for m in METHODS if case.counts[m])
    return f"{sum(case.counts.values())} ({by})"


def objects(case):
    if case.objects is None:
        return ""
    return f"{len(case.objects)}, {sum(s for _, s in case.objects) / 1e6:.1f} MB"


def cpu(case):
    """Median processor seconds of the command, moto and the proxy."""
    if not case.times:
        return ""
    return " / ".join(f"{statistics.median(case.cpu[k]):.2f}" for k in ("command", "moto", "proxy"))


def seconds(case):
    return f"{case.median():.3f}" if case.times else "failed"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else ""


def tables(done, args):
    gdal_version = subprocess.run(["gdal-config", "--version"], capture_output=True,
                                  text=True).stdout.strip()
    lines = [f"Machine: {os.cpu_count()} cores, {platform.machine()}, GDAL {gdal_version}; "
             f"{args.size}x{args.size} Float32; medians of {args.runs} runs of each command's "
             f"wall time; {time.strftime('%Y-%m-%d %H:%M')}", "",
             "Every command ran with AWS_S3_ENDPOINT=127.0.0.1:PORT (the counting proxy) "
             "AWS_HTTPS=NO AWS_VIRTUAL_HOSTING=FALSE AWS_ACCESS_KEY_ID=bench "
             "AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 "
             "GDAL_DRIVER_PATH=target/release/gdalplugins, from the repository root.", "",
             "| endpoint | part | format | median s | CPU s: command / moto / proxy | requests | "
             "objects after | s GRIDSTORE / COG | requests GRIDSTORE / COG | command |",
             "|---|---|---|---:|---|---|---|---:|---:|---|"]
    shard_rows, failures = [], []
    for endpoint, cases in done:
        for case in cases:
            if case.error:
                failures.append(f"- {endpoint}, {case.part}, {case.label}: {case.error}")
        if cases[0].part == "shards":
            one = cases[0].median()
            for case in cases:
                shard_rows.append(f"| {endpoint} | {case.label} | {seconds(case)} | "
                                  f"{cpu(case)} | {requests(case)} | {objects(case)} | "
                                  f"{ratio(one, case.median())} | `{case.command()}` |")
            continue
        cog, mine = cases
        for case in cases:
            ours = case is mine
            lines.append(
                f"| {endpoint} | {case.part} | {case.label} | {seconds(case)} | {cpu(case)} | "
                f"{requests(case)} | "
                f"{objects(case)} | {ratio(mine.median(), cog.median()) if ours else ''} | "
                f"{ratio(sum(mine.counts.values()) or None, sum(cog.counts.values())) if ours else ''}"
                f" | `{case.command()}` |")
    if shard_rows:
        lines += ["", "Sharded ingest into one store on S3 (created first with "
                  "`gridstore create`, not timed):", "",
                  "| endpoint | processes | median s | CPU s: command / moto / proxy | requests | "
                  "objects after | speed-up | command |",
                  "|---|---|---:|---|---|---|---:|---|"] + shard_rows
    if failures:
        lines += ["", "Failed (the tool's own message):", ""] + failures
    return "\n".join(lines) + "\n", bool(failures)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--work", help="default: target/bench/cloud-SIZE")
    ap.add_argument("--latency", type=float, default=20, help="ms per request, second pass")
    ap.add_argument("--parts", default=",".join(PARTS))
    args = ap.parse_args()
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {','.join(PARTS)}")
    if args.size < 1024:
        ap.error("--size must be at least 1024 (the reads take 1024 x 1024)")
    args.work = args.work or os.path.join(ROOT, "target", "bench", f"cloud-{args.size}")
    return args


def main():
    args = parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-cloud-")
    bench = None
    try:
        bench = Bench(args, tmp)
        bench.start_servers()
        done = bench.run()
    finally:
        if bench:
            bench.stop_servers()
        shutil.rmtree(tmp, ignore_errors=True)
    text, failed = tables(done, args)
    with open(os.path.join(args.work, "cloud-results.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
