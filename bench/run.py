#!/usr/bin/python3
"""Side-by-side benchmark of gridstore against COG and tiled GTiff + gdaladdo.

For each input (an 8192x8192 Float32 surface and a 3-band 8192x8192 Byte image, made by
generate.py) and each format, in one run on one machine:

- ingest: seconds to write the format with all its levels, peak memory (max RSS) and size
  on disk;
- full read: `gdalinfo -checksum` of every band;
- downsampled read: one 1024x1024 read of the whole image (served from a level);
- windows: 1000 random 256x256 windows.

Every figure is the median of --runs runs (4 x runs + 1 for the 1024x1024 read, which takes
milliseconds); formats take turns run by run; reads run in fresh processes. Files are read
from the page cache (warm), the same for every format.

Usage: bench/run.py [--runs N] [--work DIR] [--size N] [--only surface|image]
Prints a Markdown table (also written to DIR/results.md).
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"  # Debian's Python, with the system GDAL bindings

FORMATS = {
    "GRIDSTORE": (
        ".gridstore",
        lambda src, dst: [["gdal_translate", "-q", "-of", "GRIDSTORE", src, dst]],
    ),
    # The same with zstd level 3, to show what the default level 1 trades.
    "GRIDSTORE LEVEL=3": (
        ".gridstore",
        lambda src, dst: [["gdal_translate", "-q", "-of", "GRIDSTORE", "-co", "LEVEL=3", src, dst]],
    ),
    "COG": (
        ".tif",
        lambda src, dst: [
            ["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=ZSTD",
             "-co", "NUM_THREADS=ALL_CPUS", "-co", "RESAMPLING=AVERAGE", src, dst]
        ],
    ),
    "GTiff+gdaladdo": (
        ".tif",
        lambda src, dst: [
            ["gdal_translate", "-q", "-co", "TILED=YES", "-co", "COMPRESS=ZSTD",
             "-co", "NUM_THREADS=ALL_CPUS", src, dst],
            ["gdaladdo", "-q", "-r", "average", "--config", "COMPRESS_OVERVIEW", "ZSTD",
             "--config", "GDAL_NUM_THREADS", "ALL_CPUS", dst],
        ],
    ),
}


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def timed(cmd, env):
    """Runs a command under /usr/bin/time; returns (seconds, max RSS in KiB)."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M"] + cmd, env=env, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    seconds, rss = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def disk_bytes(path):
    return int(subprocess.check_output(["du", "-sb", path]).split()[0])


def ingest(fmt, src, dst, env):
    remove(dst)
    total, peak = 0.0, 0
    for cmd in FORMATS[fmt][1](src, dst):
        seconds, rss = timed(cmd, env)
        total += seconds
        peak = max(peak, rss)
    return total, peak


def full_read(path, env):
    start = time.perf_counter()
    subprocess.run(["gdalinfo", "-checksum", path], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def read_op(path, op, env):
    out = subprocess.check_output([PY, os.path.join(HERE, "read_ops.py"), path, op], env=env)
    return float(out)


def median(values):
    return statistics.median(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--only", choices=["surface", "image"])
    args = ap.parse_args()

    env = dict(os.environ)
    plugin_dir = os.path.join(ROOT, "target", "release", "gdalplugins")
    if os.path.exists(os.path.join(plugin_dir, "gdal_GRIDSTORE.so")):
        env["GDAL_DRIVER_PATH"] = plugin_dir
    subprocess.run([PY, os.path.join(HERE, "generate.py"), args.work, str(args.size)], check=True)

    inputs = {
        "surface": ("Float32 surface, 1 band", os.path.join(args.work, "surface.tif")),
        "image": ("Byte image, 3 bands", os.path.join(args.work, "image.tif")),
    }
    rows = []
    for key, (label, src) in inputs.items():
        if args.only and key != args.only:
            continue
        dst = {fmt: os.path.join(args.work, f"{key}-{fmt.replace('+', '_').replace(' ', '_').replace('=', '')}{ext}")
               for fmt, (ext, _) in FORMATS.items()}
        # Formats take turns run by run, so that the machine's drift hits them alike.
        def rounds(n, measure):
            got = {fmt: [] for fmt in FORMATS}
            for _ in range(n):
                for fmt in FORMATS:
                    got[fmt].append(measure(fmt))
            return got
        ingests = rounds(args.runs, lambda fmt: ingest(fmt, src, dst[fmt], env))
        full = rounds(args.runs, lambda fmt: full_read(dst[fmt], env))
        # A 1024x1024 read takes milliseconds: more runs to see through the noise.
        overview = rounds(4 * args.runs + 1, lambda fmt: read_op(dst[fmt], "overview", env))
        windows = rounds(args.runs, lambda fmt: read_op(dst[fmt], "windows", env))
        for fmt in FORMATS:
            r = {
                "input": label,
                "format": fmt,
                "ingest": median([t for t, _ in ingests[fmt]]),
                "rss": median([m for _, m in ingests[fmt]]) / 1024,
                "size": disk_bytes(dst[fmt]) / 1e6,
                "full": median(full[fmt]),
                "overview": median(overview[fmt]),
                "windows": median(windows[fmt]),
            }
            rows.append(r)
            print(f"{label} {fmt}: {r}", file=sys.stderr)

    gdal_version = subprocess.check_output(["gdal-config", "--version"], text=True).strip()
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, GDAL {gdal_version}; "
        f"median of {args.runs} runs ({4 * args.runs + 1} for the 1024² read); "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "| input | format | ingest s (all levels) | peak MB | size MB | full read s | 1024² read ms | 1000 windows s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input']} | {r['format']} | {r['ingest']:.2f} | {r['rss']:.0f} | "
            f"{r['size']:.1f} | {r['full']:.2f} | {r['overview'] * 1000:.1f} | {r['windows']:.3f} |")
    lines += ["", "Ratios (gridstore / best peer; below 1 is better for every column):", ""]
    lines += ["| input | ingest | peak memory (vs COG) | size (vs COG) | full read | 1024² read | windows |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for label in sorted({r["input"] for r in rows}):
        mine = next(r for r in rows if r["input"] == label and r["format"] == "GRIDSTORE")
        peers = [r for r in rows if r["input"] == label and not r["format"].startswith("GRIDSTORE")]
        cog = next(r for r in peers if r["format"] == "COG")
        best = {k: min(p[k] for p in peers) for k in ("ingest", "full", "overview", "windows")}
        lines.append(
            f"| {label} | {mine['ingest'] / best['ingest']:.2f} | {mine['rss'] / cog['rss']:.2f} | "
            f"{mine['size'] / cog['size']:.2f} | {mine['full'] / best['full']:.2f} | "
            f"{mine['overview'] / best['overview']:.2f} | {mine['windows'] / best['windows']:.2f} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.work, "results.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
