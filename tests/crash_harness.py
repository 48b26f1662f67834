#!/usr/bin/python3
"""Kills writers with SIGKILL at random moments and checks that no committed state is lost.

A fixed sequence of writes runs against a store, first without interruption to learn every
state a commit can produce (the reference), then again and again with each write killed
at a random moment. After every kill:
  - the store opens (gdalinfo),
  - `gridstore verify` passes (every object present, every checksum right),
  - its content digest is one of the states the killed write could have left: the state
    before it, one of its checkpoints, or the state after it (nothing half-written, and
    nothing committed before the kill lost),
  - the write is then run again (an interrupted ingest resumes from its last checkpoint;
    the killed process's lock and debris are recovered by the next writer, or by
    `gridstore repair`) and must reach exactly the reference state after it.

The writes cover a multi-checkpoint `gridstore ingest` (with a source in another CRS,
warped), a gdal_translate merge, a GDAL update-mode session, a rollback and a gc; all of
them update the aggregation levels.

With `--s3 BUCKET` the store that is killed lives on S3 (`/vsis3/BUCKET/...`, the server's
configuration in the AWS_* environment), where writers take no lock and commit by
conditional writes: the checks are the same; a killed writer's claim and objects are
found, and removed by `gridstore gc --grace 0s` instead of `repair`; the rollback goes to
the first snapshot after the initial one and the gc check reads the one before the
current, whatever their ids (killed writers leave ids unused there).

With `--mode append` the writes are along time instead, on a store with a regular 5-minute
axis: `gridstore append` of several slices (one commit each, so every slice's commit is a
state a kill may leave, and a rerun skips the slices already in), an append with
`--insert` into a hole, an append with `--replace`, `gridstore delete-time`, and a gc.

Usage: crash_harness.py [--mode writes|append] [--kills N] [--seed S] [--work DIR]
                        [--gridstore EXE] [--plugin-dir D] [--s3 BUCKET]
The plugin folder must hold gdal_GRIDSTORE.so (default: a copy of target/release's build).
Exit status 0 when every check held; 1 with the first failure explained.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE = 64
CHECKPOINT_MB = "1"  # 1 MiB of 64x64 Float32 tiles: 64 tiles per checkpoint


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("writes", "append"), default="writes",
                   help="writes: ingest, merge, update, rollback, gc; append: along time")
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", help="folder for stores and sources (default: a temporary one)")
    p.add_argument("--gridstore", default=os.path.join(REPO, "target/release/gridstore"))
    p.add_argument("--plugin-dir", help="folder holding gdal_GRIDSTORE.so")
    p.add_argument("--s3", metavar="BUCKET", help="kill writers of a store on S3, in BUCKET")
    return p.parse_args()


class Harness:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.env = dict(os.environ, GDAL_PAM_ENABLED="NO")
        self.env["GDAL_DRIVER_PATH"] = args.plugin_dir or self._plugin_copy()
        self.sources = os.path.join(work, "sources")
        os.makedirs(self.sources, exist_ok=True)
        self.outcomes = {}
        self.phases = {}

    def _plugin_copy(self):
        d = os.path.join(self.work, "plugin")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(REPO, "target/release/libgridstore.so"),
                    os.path.join(d, "gdal_GRIDSTORE.so"))
        return d

    # --- sources -------------------------------------------------------------------

    def make_sources(self):
        rng = np.random.default_rng(self.args.seed)
        drv = gdal.GetDriverByName("GTiff")

        def raster(name, x0, y0, w, h, epsg=3857, cell=1.0, nodata_hole=False):
            path = os.path.join(self.sources, name)
            ds = drv.Create(path, w, h, 1, gdal.GDT_Float32)
            ds.SetGeoTransform([x0, cell, 0, y0, 0, -cell])
            ds.SetProjection(f"EPSG:{epsg}")
            a = (rng.random((h, w)) * 1000).astype("float32")
            if nodata_hole:
                a[: h // 3, : w // 3] = -1
            b = ds.GetRasterBand(1)
            b.SetNoDataValue(-1)
            b.WriteArray(a)
            ds = None
            return path

        self.base = raster("base.tif", 0, 0, 256, 256)
        # Overlapping tiles that grow the extent in every direction, some with holes.
        self.ingest_files = [
            raster(f"f{i:02d}.tif", (i % 4) * 300 - 150, -(i // 4) * 300 + 150, 450, 450,
                   nodata_hole=(i % 3 == 0))
            for i in range(12)
        ]
        # One in geographic coordinates near the store's origin: warped onto the grid.
        self.ingest_files.append(
            raster("geo.tif", 0.0005, 0.0015, 120, 120, epsg=4326, cell=0.00002))
        self.patch = raster("patch.tif", 100, -100, 200, 200, nodata_hole=True)
        # Time slices: one 5-minute step each, named for their time; the replacements have
        # the names (so the times) of two of them, in a folder of their own.
        os.makedirs(os.path.join(self.sources, "replace"), exist_ok=True)
        self.slices = {m: raster(f"{slice_name(m)}", 0, 0, 384, 384, nodata_hole=(m % 10 == 0))
                       for m in SLICE_MINUTES}
        self.replacements = [raster(os.path.join("replace", slice_name(m)), 0, 0, 384, 384,
                                    nodata_hole=True)
                             for m in (10, 15)]

    # --- the writes --------------------------------------------------------------------

    def writes(self):
        """(name, argv) of each write of one round, in order."""
        if self.args.mode == "append":
            return self.appends()
        g, store = self.args.gridstore, self.store
        edit = [sys.executable, __file__, "--edit", store]
        return [
            ("ingest", [g, "ingest", "-q", "--checkpoint-mb", CHECKPOINT_MB, store]
             + self.ingest_files),
            ("translate", ["gdal_translate", "-q", "-of", "GRIDSTORE", self.patch, store]),
            ("update-mode", edit),
            ("rollback", [g, "rollback", store, "--to", FIRST_AFTER_INITIAL]),
            ("gc", [g, "gc", store, "--keep", "2"]),
        ]

    def appends(self):
        """The writes of `--mode append`: along the time axis of the store `create` made."""
        g, store = self.args.gridstore, self.store
        append = [g, "append", "-q", "--time-pattern", SLICE_PATTERN, store]
        late = [self.slices[m] for m in SLICE_MINUTES[2:] if m != HOLE_MINUTE]
        return [
            ("append", append + [self.slices[SLICE_MINUTES[1]]] + late),
            ("insert", append + ["--insert", self.slices[HOLE_MINUTE]]),
            ("replace", append + ["--replace"] + self.replacements),
            ("delete-time", [g, "delete-time", store, slice_time(SLICE_MINUTES[-1])]),
            ("gc", [g, "gc", store, "--keep", "2"]),
        ]

    def create(self, store):
        if self.args.mode == "append":
            self.run([self.args.gridstore, "append", "-q", "--time-pattern", SLICE_PATTERN,
                      "--time-step", "PT5M", "--co", f"BLOCKSIZE={TILE}", store,
                      self.slices[SLICE_MINUTES[0]]])
            return
        self.run(["gdal_translate", "-q", "-of", "GRIDSTORE", "-co", f"BLOCKSIZE={TILE}",
                  self.base, store])

    # --- tools -------------------------------------------------------------------------

    def resolve(self, argv):
        """`argv` with the snapshot it names found in the store's history."""
        if FIRST_AFTER_INITIAL not in argv:
            return argv
        first = self.history(self.store)[1]
        return [str(first) if a == FIRST_AFTER_INITIAL else a for a in argv]

    def history(self, store):
        """The store's snapshot ids, oldest first."""
        r = self.run([self.args.gridstore, "log", store])
        ids = [int(line.split()[0]) for line in r.stdout.splitlines()[1:] if line.strip()]
        return sorted(ids)

    def run(self, argv, check=True):
        argv = self.resolve(argv)
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise Failure(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def digest(self, store, snapshot=None):
        argv = [self.args.gridstore, "verify", store]
        if snapshot is not None:
            argv += ["--snapshot", str(snapshot)]
        r = self.run(argv, check=False)
        if r.returncode != 0:
            raise Failure(f"verify failed:\n{r.stdout}{r.stderr}")
        for line in r.stdout.splitlines():
            if line.startswith("content digest: "):
                return line.split(": ", 1)[1]
        raise Failure(f"verify printed no digest:\n{r.stdout}")

    def snapshot_ids(self, store):
        return json.loads(read_object(os.path.join(store, "gridstore.json")))["snapshot"]["id"]

    # --- reference ---------------------------------------------------------------------

    def reference(self):
        """Runs one round without kills; returns per write (before, checkpoints, after)
        digests and its duration."""
        self.store = os.path.join(self.work, "reference.gridstore")
        shutil.rmtree(self.store, ignore_errors=True)
        self.create(self.store)
        self.initial = os.path.join(self.work, "initial.gridstore")
        shutil.rmtree(self.initial, ignore_errors=True)
        shutil.copytree(self.store, self.initial)
        if self.args.s3:
            # Where the kills happen, so that the writes take there the time they take.
            self.store = f"/vsis3/{self.args.s3}/reference-{os.getpid()}.gridstore"
            upload(self.initial, self.store)
        states = []
        for name, argv in self.writes():
            before_id = self.snapshot_ids(self.store)
            before = self.digest(self.store)
            t = time.monotonic()
            self.run(argv)
            took = time.monotonic() - t
            after_id = self.snapshot_ids(self.store)
            # Every commit of the write: checkpoints of an ingest are states a kill may
            # leave too.
            middle = {self.digest(self.store, i) for i in range(before_id + 1, after_id)}
            after = self.digest(self.store)
            states.append((name, before, middle, after, took))
            print(f"reference: {name}: {after_id - before_id} commit(s), {took:.2f} s",
                  flush=True)
        return states

    # --- the kills ---------------------------------------------------------------------

    def kill_round(self, states, kills_left):
        if self.args.s3:
            self.rounds = getattr(self, "rounds", 0) + 1
            self.store = f"/vsis3/{self.args.s3}/victim-{os.getpid()}-{self.rounds}.gridstore"
            upload(self.initial, self.store)
        else:
            self.store = os.path.join(self.work, "victim.gridstore")
            shutil.rmtree(self.store, ignore_errors=True)
            shutil.copytree(self.initial, self.store)
        done = 0
        for (name, argv), (_, before, middle, after, took) in zip(self.writes(), states):
            if done >= kills_left:
                break
            # Kill anywhere from before the process does anything to just after it ends;
            # half of the kills in the second half, where short writes do their writing
            # (the first half of them is mostly starting up).
            delay = self.rng.uniform(0 if self.rng.random() < 0.5 else took * 0.5, took * 1.1)
            p = subprocess.Popen(self.resolve(argv), env=self.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            time.sleep(delay)
            finished_first = p.poll() is not None
            if not finished_first:
                p.send_signal(signal.SIGKILL)
            p.wait()
            done += 1
            self.check_after_kill(name, before, middle, after, finished_first, p)
            # Then the write is completed (resumed) and must reach the reference state. A gc
            # leaves the content as it was whether or not it finished, so it always reruns.
            if name == "gc" or self.digest(self.store) != after:
                self.run(argv)
                got = self.digest(self.store)
                if got != after:
                    raise Failure(f"{name}: run again after the kill, it reached {got}, "
                                  f"not the reference state {after}")
        self.check_no_debris()
        return done

    def check_no_debris(self):
        """After a repair, nothing of a killed write may remain: no lock, no temporary
        files, no objects of a snapshot id beyond the current one."""
        if self.args.s3:
            return self.check_no_debris_s3()
        self.run([self.args.gridstore, "repair", self.store])
        names = set(os.listdir(self.store))
        extra = names - {"gridstore.json", "chunks", "index", "snapshots", "steps", "sources"}
        if extra:
            raise Failure(f"left behind after repair: {sorted(extra)}")
        current = self.snapshot_ids(self.store)
        for prefix in ("chunks", "index", "steps", "sources"):
            if not os.path.isdir(os.path.join(self.store, prefix)):
                continue
            for seq in os.listdir(os.path.join(self.store, prefix)):
                if int(seq) > current:
                    raise Failure(f"{prefix}/{seq}/ of an unfinished write was left behind "
                                  f"(current snapshot {current})")

    def check_no_debris_s3(self):
        """On S3, gc past its grace period removes what killed writers left: then no
        claim remains, no snapshot manifest beyond the current one, and the store
        verifies."""
        self.run([self.args.gridstore, "gc", self.store, "--keep", "1000", "--grace", "0s"])
        keys = gdal.ReadDirRecursive(self.store) or []
        current = self.snapshot_ids(self.store)
        claims = [k for k in keys if k.startswith("claims/") and not k.endswith("/")]
        if claims:
            raise Failure(f"claims left behind after gc: {claims}")
        for k in keys:
            if k.startswith("snapshots/") and k.endswith(".json"):
                if int(k[len("snapshots/"):-len(".json")]) > current:
                    raise Failure(f"{k} of an unfinished write was left behind")
        self.digest(self.store)

    def check_after_kill(self, name, before, middle, after, finished_first, p):
        if finished_first and p.returncode != 0:
            raise Failure(f"{name} failed by itself:\n{p.stderr.read().decode()}")
        if self.args.s3:
            self.count_claims_left()
        # Was the write under way: its lock taken, perhaps objects of the next snapshot
        # written?
        elif os.path.exists(os.path.join(self.store, "writer.lock")):
            nxt = str(self.snapshot_ids(self.store) + 1)
            wrote = any(os.path.exists(os.path.join(self.store, d, nxt))
                        for d in ("chunks", "index", "steps", "sources"))
            phase = "while writing objects" if wrote else "holding the lock"
            self.phases[phase] = self.phases.get(phase, 0) + 1
        # Half of the time the next writer recovers the lock; half of the time repair does
        # (on S3: the next writer goes on beside what the dead one left; or gc removes it).
        if self.rng.random() < 0.5:
            if self.args.s3:
                self.run([self.args.gridstore, "gc", self.store, "--keep", "1000",
                          "--grace", "0s"])
            else:
                self.run([self.args.gridstore, "repair", self.store])
        r = self.run(["gdalinfo", self.store], check=False)
        if r.returncode != 0:
            raise Failure(f"after killing {name}, the store does not open:\n{r.stderr}")
        got = self.digest(self.store)
        if name == "gc":
            # The snapshot gc keeps besides the current one must still be whole.
            self.digest(self.store, self.history(self.store)[-2])
        if got == before == after:
            outcome = "unchanged"
        elif got == before:
            outcome = "before"
        elif got in middle:
            outcome = "checkpoint"
        elif got == after:
            outcome = "after"
        else:
            raise Failure(f"after killing {name}, the store holds a state no commit made "
                          f"({got})")
        key = (name, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


    def count_claims_left(self):
        """On S3: a claim left by the killed writer, perhaps with objects under its id."""
        claims = gdal.ReadDir(self.store + "/claims") or []
        for c in claims:
            wrote = any(gdal.ReadDir(f"{self.store}/{d}/{c}")
                        for d in ("chunks", "index", "steps", "sources"))
            phase = "while writing objects" if wrote else "holding a claim"
            self.phases[phase] = self.phases.get(phase, 0) + 1


class Failure(Exception):
    pass


# The snapshot a rollback goes to: the first after the initial one, found in the history.
FIRST_AFTER_INITIAL = "<first snapshot after the initial one>"


def read_object(path):
    """The bytes of a file, or of an object on GDAL's virtual file systems."""
    if not path.startswith("/vsi"):
        with open(path, "rb") as f:
            return f.read()
    gdal.VSICurlPartialClearCache(path)
    fp = gdal.VSIFOpenL(path, "rb")
    if fp is None:
        raise Failure(f"{path} cannot be read")
    try:
        gdal.VSIFSeekL(fp, 0, 2)
        n = gdal.VSIFTellL(fp)
        gdal.VSIFSeekL(fp, 0, 0)
        return gdal.VSIFReadL(1, n, fp)
    finally:
        gdal.VSIFCloseL(fp)


def upload(src, dst):
    """Copies a store folder to `dst` on GDAL's virtual file systems, its manifest last."""
    files = []
    for d, _, names in os.walk(src):
        files += [os.path.join(d, n) for n in names]
    files.sort(key=lambda p: os.path.basename(p) == "gridstore.json")
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        fp = gdal.VSIFOpenL(dst + "/" + os.path.relpath(path, src), "wb")
        assert fp is not None and gdal.VSIFWriteL(data, 1, len(data), fp) == len(data)
        assert gdal.VSIFCloseL(fp) == 0


# The time slices of `--mode append`: minutes after 12:00 of one day, one slice each. The
# first creates the store; the one at HOLE_MINUTE is left out of the first append and
# inserted later.
SLICE_MINUTES = [0, 5, 10, 15, 20, 25, 30, 35]
HOLE_MINUTE = 20
SLICE_PATTERN = "RAD_%Y%m%d%H%M.tif"


def slice_name(minute):
    return f"RAD_2024033112{minute:02d}.tif"


def slice_time(minute):
    return f"2024-03-31T12:{minute:02d}:00Z"


def edit_session(store):
    """The update-mode write: a GDAL session that writes windows and commits at close."""
    ds = gdal.OpenEx(store, gdal.OF_UPDATE | gdal.OF_RASTER)
    band = ds.GetRasterBand(1)
    rng = np.random.default_rng(7)
    for i in range(6):
        a = (rng.random((150, 150)) * 50 + 2000 + i).astype("float32")
        band.WriteArray(a, 20 + i * 40, 20 + i * 30)
    ds = None


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--edit":
        edit_session(sys.argv[2])
        return 0
    args = parse_args()
    work = args.work or tempfile.mkdtemp(prefix="crash-harness-")
    os.makedirs(work, exist_ok=True)
    h = Harness(args, work)
    h.make_sources()
    try:
        states = h.reference()
        kills, rounds = 0, 0
        while kills < args.kills:
            kills += h.kill_round(states, args.kills - kills)
            rounds += 1
    except Failure as e:
        print(f"FAILED after {sum(h.outcomes.values())} kill(s): {e}", file=sys.stderr)
        print(f"the store is kept in {h.store}", file=sys.stderr)
        return 1
    print(f"{kills} kill(s) in {rounds} round(s): every store opened, verified, and held a "
          "committed state; every write completed afterwards reached the reference state")
    for (name, outcome), n in sorted(h.outcomes.items()):
        print(f"  {name:<12} left the state {outcome:<10} {n:>4} time(s)")
    for phase, n in sorted(h.phases.items()):
        print(f"  killed {phase}: {n} time(s) (a lock or objects of the unfinished write "
              "were left, and recovered)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
