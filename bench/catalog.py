#!/usr/bin/python3
"""The catalog on many items: bulk add, size and searches, SQLite and PostGIS side by side.

Generates --items STAC items (JSON lines, fixed seed): footprints as rotated 100 km scenes in
UTM zones (zones 1 and 60, beside the antimeridian, more often than the others), squares in
polar stereographic north (EPSG:3413) and south (EPSG:3031), some around the pole, and
geographic tiles (EPSG:4326), some across 180 degrees; times over ten years (2015-2024),
instants and some day-long ranges; five properties (eo:cloud_cover, view:off_nadir,
platform, sat:orbit, processed). Then, for each backend (a SQLite file, and a PostgreSQL +
PostGIS server this script starts on 127.0.0.1 in a temporary data directory, with 1 GB of
shared buffers and random_page_cost = 1.1, the setting for an SSD):

- add: `gridstore catalog add CATALOG --stac items.jsonl` (batches of 10,000), wall time,
  and the processor time (user + system) of that command alone (not the server's);
- size: the SQLite file (with its WAL), or the catalog's tables and indexes in PostgreSQL;
- searches (`gridstore catalog search`, output to a file; median of --runs runs, each a
  fresh process, so process start and catalog open are included):
  antimeridian: a box from 170E to 170W, 30S to 30N, over one month;
  polar: a polygon in EPSG:3031 around the south pole (1,000 km square), no time limit;
  local day: 2020-03-29 in Europe/Amsterdam (23 hours: daylight-saving time begins);
  property: platform = sentinel-2b and eo:cloud_cover < 5, first 100 in time order;
- stream: every item in time order to /dev/null: wall time and the process's peak memory.

Every search's result is checked against a brute force computed here, independently of
gridstore: the antimeridian and polar queries with GDAL's geometry functions (each
footprint densified and transformed, WRAPDATELINE=YES for EPSG:4326; the polar query
tested in EPSG:3031), the day with Python's zoneinfo, the properties directly. A mismatch
is reported with the ids that differ, and the script exits with status 1.

Usage: bench/catalog.py [--items N] [--runs N] [--work DIR] [--backends sqlite,postgis]
Needs a release build (cargo build --release), GDAL's Python bindings, and for PostGIS
Debian's postgresql and postgresql-15-postgis-3. Prints a Markdown table (also written to
DIR/catalog-results.md).
"""
import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zoneinfo

from osgeo import ogr, osr

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GRIDSTORE = os.path.join(ROOT, "target", "release", "gridstore")

T0 = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)
SPAN_S = 10 * 365.25 * 86400
PLATFORMS = ["sentinel-2a", "sentinel-2b", "landsat-8", "landsat-9"]

ANTIMERIDIAN_BOX = (170.0, -30.0, -170.0, 30.0)
MONTH = ("2020-06-01T00:00:00Z", "2020-07-01T00:00:00Z")
POLAR_WKT = ("POLYGON((-500000 -500000,500000 -500000,500000 500000,"
             "-500000 500000,-500000 -500000))")
DAY, TZ = "2020-03-29", "Europe/Amsterdam"
FILTERS = ["platform = sentinel-2b", "eo:cloud_cover < 5"]
PROPERTY_LIMIT = 100


# ---------------------------------------------------------------- generation

def ring(cx, cy, half, angle):
    """A square of half-side `half` around (cx, cy), turned by `angle` radians, closed."""
    c, s = math.cos(angle), math.sin(angle)
    pts = [(-half, -half), (half, -half), (half, half), (-half, half)]
    out = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    return out + [out[0]]


def footprint(rng, i):
    """(crs code, exterior ring in that CRS) of item i."""
    r = rng.random()
    if r < 0.40:  # UTM scenes; zones 1 and 60 a fifth of them
        zone = rng.choice([1, 60]) if rng.random() < 0.2 else rng.randint(1, 60)
        north = rng.random() < 0.6
        code = (32600 if north else 32700) + zone
        cy = rng.uniform(100_000, 8_800_000) if north else rng.uniform(1_200_000, 9_900_000)
        return code, ring(rng.uniform(250_000, 750_000), cy, 50_000, rng.uniform(-0.2, 0.2))
    if r < 0.55:  # polar stereographic, some around the pole
        code = 3413 if rng.random() < 0.5 else 3031
        if rng.random() < 0.05:
            return code, ring(rng.uniform(-50_000, 50_000), rng.uniform(-50_000, 50_000),
                              rng.uniform(100_000, 400_000), 0.0)
        return code, ring(rng.uniform(-3_000_000, 3_000_000), rng.uniform(-3_000_000, 3_000_000),
                          rng.uniform(50_000, 250_000), rng.uniform(0, 1.5))
    # geographic tiles; some across 180 degrees (longitudes past 180 in their own CRS)
    size = rng.choice([1.0, 2.0, 5.0])
    lat = rng.uniform(-80.0, 80.0 - size)
    lon = rng.uniform(180.0 - size + 0.01, 179.99) if rng.random() < 0.05 else \
        rng.uniform(-180.0, 180.0 - size)
    return 4326, [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size),
                  (lon, lat)]


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(path, count, seed=7):
    """Writes the items as JSON lines; returns the facts the brute force needs per item."""
    rng = random.Random(seed)
    facts = []
    with open(path, "w") as f:
        for i in range(count):
            code, pts = footprint(rng, i)
            start = T0 + dt.timedelta(seconds=rng.uniform(0, SPAN_S))
            start = start.replace(microsecond=0)
            end = start + dt.timedelta(days=1) if rng.random() < 0.1 else None
            props = {
                "eo:cloud_cover": round(rng.uniform(0, 100), 2),
                "view:off_nadir": round(rng.uniform(0, 15), 3),
                "platform": rng.choice(PLATFORMS),
                "sat:orbit": rng.randint(1, 50_000),
                "processed": iso(start + dt.timedelta(hours=rng.uniform(1, 72))),
                "proj:code": f"EPSG:{code}",
                "proj:geometry": {"type": "Polygon", "coordinates": [[list(p) for p in pts]]},
            }
            if end is None:
                props["datetime"] = iso(start)
            else:
                props["datetime"] = None
                props["start_datetime"] = iso(start)
                # STAC's end is inclusive: the last microsecond of the day.
                props["end_datetime"] = iso(end - dt.timedelta(microseconds=1))
            item = {"type": "Feature", "stac_version": "1.1.0", "id": f"scene-{i:07d}",
                    "collection": "bench", "geometry": None, "properties": props,
                    "links": [], "assets": {}}
            f.write(json.dumps(item, separators=(",", ":")) + "\n")
            facts.append((code, pts, start, end or start + dt.timedelta(microseconds=1),
                          props["platform"], props["eo:cloud_cover"]))
    return facts


# ---------------------------------------------------------------- brute force

_srs = {}


def srs(code):
    if code not in _srs:
        s = osr.SpatialReference()
        s.ImportFromEPSG(code)
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        _srs[code] = s
    return _srs[code]


def polygon(pts):
    r = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in pts:
        r.AddPoint_2D(x, y)
    g = ogr.Geometry(ogr.wkbPolygon)
    g.AddGeometry(r)
    return g


def in_4326(code, pts):
    """The footprint in EPSG:4326, densified and cut at the antimeridian (None if it fails)."""
    g = polygon(pts)
    env = g.GetEnvelope()
    g.Segmentize(max(env[1] - env[0], env[3] - env[2]) / 64)
    if code == 4326:
        t = ogr.GeomTransformer(osr.CoordinateTransformation(srs(4326), srs(4326)),
                                ["WRAPDATELINE=YES"])
    else:
        t = ogr.GeomTransformer(osr.CoordinateTransformation(srs(code), srs(4326)),
                                ["WRAPDATELINE=YES"])
    return t.Transform(g)


def overlaps(f, start, end):
    return f[2] < end and f[3] > start


def brute_antimeridian(facts):
    w, s, e, n = ANTIMERIDIAN_BOX
    query = ogr.Geometry(ogr.wkbMultiPolygon)
    query.AddGeometry(polygon([(w, s), (180, s), (180, n), (w, n), (w, s)]))
    query.AddGeometry(polygon([(-180, s), (e, s), (e, n), (-180, n), (-180, s)]))
    start, end = (dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in MONTH)
    hits = set()
    for i, f in enumerate(facts):
        if overlaps(f, start, end):
            g = in_4326(f[0], f[1])
            if g is not None and g.Intersects(query):
                hits.add(f"scene-{i:07d}")
    return hits


def brute_polar(facts):
    query = polygon([tuple(map(float, p.split())) for p in
                     POLAR_WKT[len("POLYGON(("):-2].split(",")])
    hits = set()
    for i, f in enumerate(facts):
        code, pts = f[0], f[1]
        if code == 3413 or (32601 <= code <= 32660):
            continue  # the northern hemisphere: never within 1,000 km of the south pole
        if code == 4326 and min(y for _, y in pts) > -70:
            continue
        if code // 100 == 327 and max(y for _, y in pts) > 3_000_000:
            continue  # UTM south above northing 3,000 km: north of 64S, far from the query
        g = polygon(pts)
        env = g.GetEnvelope()
        g.Segmentize(max(env[1] - env[0], env[3] - env[2]) / 64)
        if code != 3031:
            if g.Transform(osr.CoordinateTransformation(srs(code), srs(3031))) != 0:
                continue
        if g.Intersects(query):
            hits.add(f"scene-{i:07d}")
    return hits


def brute_day(facts):
    zone = zoneinfo.ZoneInfo(TZ)
    d = dt.date.fromisoformat(DAY)
    start = dt.datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(dt.timezone.utc)
    nxt = d + dt.timedelta(days=1)
    end = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(dt.timezone.utc)
    assert end - start == dt.timedelta(hours=23), "the DST day is 23 hours long"
    return {f"scene-{i:07d}" for i, f in enumerate(facts) if overlaps(f, start, end)}


def brute_property(facts):
    hits = [(f[2], f"scene-{i:07d}") for i, f in enumerate(facts)
            if f[4] == "sentinel-2b" and f[5] < 5]
    hits.sort()
    return [h[1] for h in hits[:PROPERTY_LIMIT]]


# ---------------------------------------------------------------- running

def run(args, out=None):
    """Runs a command; (wall seconds, peak resident memory in MB, as the kernel's VmHWM of
    the command's own address space, sampled every 20 ms while it runs: the rusage of a
    child would also count this script's memory, which a forked child holds until exec;
    and what it wrote to standard error)."""
    start = time.perf_counter()
    peak_kb = 0
    with open(out or os.devnull, "w") as sink, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(args, stdout=sink, stderr=err)
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - start
        err.seek(0)
        message = err.read().decode()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {message}")
    return wall, peak_kb / 1024, message


def children_cpu():
    """Processor seconds (user + system) of this script's children that have ended."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def searches():
    w, s, e, n = ANTIMERIDIAN_BOX
    return [
        ("antimeridian box, one month", ["--bbox", f"{w},{s},{e},{n}", "--time", "/".join(MONTH)]),
        ("polar polygon (EPSG:3031)", ["--polygon", POLAR_WKT, "--polygon-crs", "EPSG:3031"]),
        (f"local day ({DAY}, {TZ})", ["--day", DAY, "--tz", TZ]),
        ("property filter, first 100",
         [a for f in FILTERS for a in ("--where", f)] + ["--limit", str(PROPERTY_LIMIT)]),
    ]


def ids_in(path):
    with open(path) as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A PostgreSQL + PostGIS server in a temporary data directory, stopped on exit."""

    def __init__(self, work):
        bins = sorted(d for d in os.listdir("/usr/lib/postgresql")
                      if os.path.exists(f"/usr/lib/postgresql/{d}/bin/initdb"))
        if not bins:
            raise RuntimeError("install Debian's postgresql and postgresql-15-postgis-3")
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir, exist_ok=True)
        as_pg = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            # The server's user must reach its directory: a temporary work directory is
            # private to root.
            os.chmod(work, os.stat(work).st_mode | 0o711)
            as_pg = {"user": pw.pw_uid, "group": pw.pw_gid}
        data = os.path.join(self.dir, "data")
        subprocess.run([f"{self.bin}/initdb", "-D", data, "-U", "gridstore", "-A", "trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"], check=True,
                       stdout=subprocess.DEVNULL, **as_pg)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [f"{self.bin}/postgres", "-D", data, "-h", "127.0.0.1", "-p", str(self.port),
             "-k", self.dir, "-c", "shared_buffers=1GB", "-c", "max_wal_size=4GB",
             # The setting for a database on an SSD or in memory (docs/CATALOG.md).
             "-c", "random_page_cost=1.1"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"), **as_pg)
        self.url = f"postgresql://gridstore@127.0.0.1:{self.port}/postgres"
        for _ in range(600):
            if subprocess.run(["psql", "-X", "-q", "-d", self.url, "-c", "SELECT 1"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("postgres did not start")

    def size_mb(self):
        sql = ("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
               "ON n.oid = c.relnamespace WHERE n.nspname = 'gridstore' AND c.relkind = 'r'")
        out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-d", self.url, "-c", sql],
                             check=True, capture_output=True, text=True).stdout
        return int(out.strip()) / 1e6

    def stop(self):
        self.proc.send_signal(2)  # fast shutdown
        self.proc.wait(timeout=60)


def bench_backend(name, catalog, items_path, runs, work, size_of):
    rows = {}
    run([GRIDSTORE, "catalog", "init", catalog])
    cpu = children_cpu()
    wall, rss, _ = run([GRIDSTORE, "catalog", "add", catalog, "--stac", items_path,
                     "--batch", "10000"])
    rows["add"] = (wall, rss)
    rows["add cpu"] = children_cpu() - cpu  # the command's own, not a server's
    rows["size"] = size_of()
    results = {}
    for label, args in searches():
        out = os.path.join(work, f"{name}-result.jsonl")
        times, inside = [], []
        for _ in range(runs):
            t, _, err = run([GRIDSTORE, "catalog", "search", catalog, "--timing"] + args, out)
            times.append(t)
            inside.append(float(re.search(r"searched in ([0-9.]+) ms", err).group(1)) / 1e3)
        rows[label] = statistics.median(times)
        rows[label + " in process"] = statistics.median(inside)
        results[label] = ids_in(out)
    t, rss, _ = run([GRIDSTORE, "catalog", "search", catalog, "--order", "asc"])
    rows["stream"] = (t, rss)
    return rows, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default=None)
    ap.add_argument("--backends", default="sqlite,postgis")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="gridstore-catalog-bench-")
    os.makedirs(work, exist_ok=True)
    items_path = os.path.join(work, "items.jsonl")
    t = time.perf_counter()
    facts = generate(items_path, a.items)
    print(f"generated {a.items} items in {time.perf_counter() - t:.1f} s "
          f"({os.path.getsize(items_path) / 1e6:.0f} MB)", file=sys.stderr)
    t = time.perf_counter()
    truth = {
        "antimeridian box, one month": set(brute_antimeridian(facts)),
        "polar polygon (EPSG:3031)": brute_polar(facts),
        f"local day ({DAY}, {TZ})": brute_day(facts),
        "property filter, first 100": brute_property(facts),
    }
    print(f"brute force in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    # The generated file's pages go to disk now, not while the add is timed.
    os.sync()
    base = statistics.median(run([GRIDSTORE, "--version"])[0] for _ in range(11))
    table, failed = {}, False
    for backend in a.backends.split(","):
        if backend == "sqlite":
            cat = os.path.join(work, "catalog.sqlite")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(cat + suffix):
                    os.remove(cat + suffix)
            size = lambda: sum(os.path.getsize(cat + s) for s in ("", "-wal")
                               if os.path.exists(cat + s)) / 1e6
            table[backend], results = bench_backend(backend, cat, items_path, a.runs, work, size)
        else:
            pg = Postgres(work)
            try:
                table[backend], results = bench_backend(backend, pg.url, items_path, a.runs,
                                                        work, pg.size_mb)
            finally:
                pg.stop()
                shutil.rmtree(pg.dir, ignore_errors=True)
        for label, want in truth.items():
            got = results[label]
            same = got == want if isinstance(want, list) else set(got) == want and \
                len(got) == len(set(got))
            table[backend][label + " ok"] = (same, len(got), len(want))
            if not same:
                failed = True
                g = set(got)
                w = set(want)
                print(f"{backend}: {label}: {len(g - w)} extra {sorted(g - w)[:5]}, "
                      f"{len(w - g)} missing {sorted(w - g)[:5]}", file=sys.stderr)
    lines = report(table, a, base)
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(work, "catalog-results.md"), "w") as f:
        f.write(text + "\n")
    sys.exit(1 if failed else 0)


def report(table, a, base):
    backends = list(table)
    lines = [
        f"{a.items:,} items, {platform.machine()}, {os.cpu_count()} cores; searches: median of "
        f"{a.runs} runs of the CLI (its start, {base * 1000:.0f} ms for `--version`, "
        "included), and the time the search itself reports (`--timing`)",
        "",
        "| | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]
    lines.append("| bulk add (s) | " + " | ".join(f"{table[b]['add'][0]:.1f}" for b in backends)
                 + " |")
    lines.append("| bulk add: the command's processor time (s) | " +
                 " | ".join(f"{table[b]['add cpu']:.1f} ({table[b]['add cpu'] / table[b]['add'][0]:.2f}"
                            " cores)" for b in backends) + " |")
    lines.append("| size (MB) | " + " | ".join(f"{table[b]['size']:.0f}" for b in backends)
                 + " |")
    for label, _ in searches():
        cells = []
        for b in backends:
            ok, n, want = table[b][label + " ok"]
            mark = "" if ok else f" WRONG (expected {want})"
            cells.append(f"{table[b][label] * 1000:.0f} ms ({n} items{mark}); in the "
                         f"process {table[b][label + ' in process'] * 1000:.0f} ms")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| stream all in time order (s) | " +
                 " | ".join(f"{table[b]['stream'][0]:.1f}" for b in backends) + " |")
    lines.append("| stream: peak memory (MB) | " +
                 " | ".join(f"{table[b]['stream'][1]:.0f}" for b in backends) + " |")
    return lines


if __name__ == "__main__":
    main()
