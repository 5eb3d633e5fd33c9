#!/usr/bin/env python3
"""How evenly the workers of heavy-api 4x2 hold connections when a load generator opens them
all at once (issues #16 and #23).

For each connection count, `wrk -t2 -cN` drives `/heavy/health/` on keep-alive connections (wrk
opens every connection at once, as k6 and load balancers do in bursts); halfway through the run
the established client connections each worker holds are counted from its descriptors
(/proc/PID/fd against /proc/net/tcp; wrk is installed from apt if missing). Prints, per count and trial, the per-worker counts and
busiest / least busy, and the median over the trials.

Usage: heavy-lab bench balance [--binary target/release/heavy-api] [--trials 3]
                               [--conns 64,1000] [--seconds 4]
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from heavylab.bench.common import HEAVY_BIN, build, free_port, machine, raise_nofile, table
from heavylab.bench.health import ensure_tools

ESTABLISHED = "01"


def established_inodes(port):
    """Socket inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == ESTABLISHED:
                inodes.add(fields[9])
    return inodes


def held(pid, inodes):
    """How many of `inodes` the process holds open."""
    count = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            count += 1
    return count


def workers_of(pid, n, within=20.0):
    deadline = time.time() + within
    while True:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            workers = [int(p) for p in f.read().split()]
        if len(workers) == n:
            return workers
        if time.time() > deadline:
            raise RuntimeError(f"{n} workers did not start within {within} s")
        time.sleep(0.05)


def trial(port, workers, conns, seconds):
    """Per-worker established connections, read halfway through a wrk run."""
    wrk = subprocess.Popen(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", f"http://127.0.0.1:{port}/heavy/health/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(seconds / 2)
        inodes = established_inodes(port)
        return [held(w, inodes) for w in workers]
    finally:
        wrk.wait(timeout=seconds + 30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=HEAVY_BIN)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--conns", default="64,1000")
    ap.add_argument("--seconds", type=int, default=4)
    args = ap.parse_args()
    if args.binary == HEAVY_BIN:
        build()
    ensure_tools()
    raise_nofile()
    port = free_port()
    print(machine())
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.Popen(
            [
                args.binary,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "4",
                "--threads",
                "2",
                "--keep-alive",
                "60",
                "--io-file",
                os.path.join(work, "io.bin"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            workers = workers_of(proc.pid, 4)
            time.sleep(0.5)
            rows = []
            for conns in (int(c) for c in args.conns.split(",")):
                ratios = []
                for number in range(args.trials):
                    counts = trial(port, workers, conns, args.seconds)
                    ratio = max(counts) / max(1, min(counts))
                    ratios.append(ratio)
                    rows.append(
                        [f"{conns} at once (wrk)", number + 1, " / ".join(map(str, counts)), f"{ratio:.2f}"]
                    )
                    time.sleep(0.5)
                rows.append([f"{conns} at once (wrk)", "median", "", f"{statistics.median(ratios):.2f}"])
            print(table(["connections", "trial", "per worker", "busiest / least busy"], rows))
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
