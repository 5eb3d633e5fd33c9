#!/usr/bin/env python3
"""Issue #2's benchmark: the bare kernel against the same request served by heavy-api 4x2,
plus the server's memory and its exec-to-first-200 time. Side by side, in one run.

Usage: python3 bench/serve.py [--runs N] [--starts N]   (stdlib only; builds with cargo)
"""

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from heavylab import paths

ROOT = str(paths.ROOT)
BIN = os.path.join(ROOT, "target", "release", "heavy-api")
KERNEL = os.path.join(ROOT, "target", "release", "examples", "kernel")
DEFAULT = "/heavy/cpu-io-no-db/"


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "heavy-api", "--example", "kernel"],
        cwd=ROOT,
        check=True,
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(io_file, port):
    """Starts heavy-api 4x2; returns (process, seconds from exec to the first 200)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            BIN,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "4",
            "--threads",
            "2",
            "--io-file",
            io_file,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/heavy/health/")
            if conn.getresponse().status == 200:
                return proc, time.perf_counter() - t0
        except OSError:
            pass
        if time.perf_counter() - t0 > 20:
            proc.kill()
            sys.exit("server did not become healthy")
        time.sleep(0.0005)


def stop_server(proc):
    proc.terminate()
    proc.wait(timeout=30)


def process_tree(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        children = []
    return [pid] + children


def memory_kb(pids):
    rss = pss = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            rss += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss += int(re.search(r"Pss:\s+(\d+)", f.read()).group(1))
    return rss, pss


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=21, help="default requests per side")
    ap.add_argument("--starts", type=int, default=15, help="server starts for exec-to-200")
    args = ap.parse_args()
    build()
    tmp = tempfile.mkdtemp(prefix="heavy-bench-")
    io_file = os.path.join(tmp, "io.bin")

    starts = []
    for _ in range(args.starts):
        proc, secs = start_server(io_file, free_port())
        starts.append(secs)
        stop_server(proc)

    port = free_port()
    proc, _ = start_server(io_file, port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    kernel, served = [], []
    # Alternate the two so that both see the same machine conditions.
    for _ in range(args.runs):
        os.truncate(io_file, 1024 * 1024)  # keep both sides below the 5 MiB append cap
        out = subprocess.run([KERNEL, "1", io_file], capture_output=True, text=True, check=True).stdout
        kernel.append(float(out.split()[0]) / 1000)
        t0 = time.perf_counter()
        conn.request("GET", DEFAULT)
        resp = conn.getresponse()
        resp.read()
        served.append(time.perf_counter() - t0)
        assert resp.status == 200, resp.status
    rss, pss = memory_kb(process_tree(proc.pid))
    stop_server(proc)

    k, s = statistics.median(kernel), statistics.median(served)
    rows = [
        ("bare kernel, default request (median)", f"{k * 1000:.1f} ms"),
        ("served by heavy-api 4x2, keep-alive (median)", f"{s * 1000:.1f} ms"),
        ("served / bare", f"{s / k:.3f}"),
        ("RSS, master + 4 workers (sum of VmRSS)", f"{rss / 1024:.1f} MiB"),
        ("PSS, master + 4 workers (shared pages split)", f"{pss / 1024:.1f} MiB"),
        (
            "exec to first 200 (median of %d starts)" % args.starts,
            f"{statistics.median(starts) * 1000:.1f} ms",
        ),
        ("exec to first 200 (worst)", f"{max(starts) * 1000:.1f} ms"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
