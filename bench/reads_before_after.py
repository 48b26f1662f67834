#!/usr/bin/python3
"""Reads of the same stores by two builds of the plugin, taking turns, to tell whether a
change costs reads anything: a full read (`gdalinfo -checksum`) and 1000 random 256 x 256
windows (bench/read_ops.py), each in a fresh process, the builds alternating run by run
(before, after; then after, before) so that a slow spell of the machine falls on both.

Usage: reads_before_after.py --before DIR --after DIR [--runs N] STORE...
DIR is a folder holding that build's gdal_GRIDSTORE.so. Both builds must read the stores'
format. Prints the median of each and the ratio after / before.
"""
import argparse
import os
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"  # Debian's Python, with the system GDAL bindings


def full_read(store, env):
    start = time.perf_counter()
    subprocess.run(["gdalinfo", "-checksum", store], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def windows(store, env):
    out = subprocess.run([PY, os.path.join(HERE, "read_ops.py"), store, "windows"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("stores", nargs="+")
    args = ap.parse_args()
    builds = {"before": args.before, "after": args.after}
    times = {}
    for run in range(args.runs):
        order = ["before", "after"] if run % 2 == 0 else ["after", "before"]
        for build in order:
            env = dict(os.environ, GDAL_DRIVER_PATH=builds[build], GDAL_PAM_ENABLED="NO")
            for store in args.stores:
                for name, op in (("full read", full_read), ("1000 windows", windows)):
                    times.setdefault((store, name, build), []).append(op(store, env))
    print(f"median of {args.runs} runs, builds alternating")
    print("| store | read | before s | after s | after / before |")
    print("|---|---|---:|---:|---:|")
    for store in args.stores:
        for name in ("full read", "1000 windows"):
            b = statistics.median(times[(store, name, "before")])
            a = statistics.median(times[(store, name, "after")])
            print(f"| {os.path.basename(store)} | {name} | {b:.3f} | {a:.3f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
