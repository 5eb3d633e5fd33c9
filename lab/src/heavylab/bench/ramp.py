#!/usr/bin/env python3
"""Issue #4's ramp benchmark: k6's load-test.js shape (ramping VUs up to 150, 1 s think time)
against heavy-api 4x2 and against the real original (Django 4.2.8 on Gunicorn 21.2.0 4x2,
bench/original.sh; `--peer rewrite`: the Python rewrite on Gunicorn, bench/python_ref),
one after the other in one run, printing p50/p95/p99 and throughput side by side.

The two implementations do the same work at very different speeds (Python is ~25x slower), so
the request size is calibrated per server to the same solo time (the default request's time on
heavy-api, about 0.09 s here): both servers then face the same demand relative to capacity, and
the comparison is about scheduling — how evenly waiting is shared (p99/p50) — not about Rust vs
Python. `--same-params` runs both on heavy-api's default parameters instead.

Usage: python3 bench/ramp.py [--scale 0.25] [--same-params] [--peer original|rewrite]
(--scale multiplies the 11-minute ramp; 0.25 takes about 6 minutes for both servers.)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from heavylab.bench.common import LABELS, ROOT, Server, build, get, heavy_path, machine, table


def solo_time(port, path, n=5):
    return statistics.median(get(port, path)[3] for _ in range(n))


def run_k6(port, kind, params, scale, out):
    prime, rounds, io = params
    cmd = [
        os.path.join(ROOT, "scripts", "loadtest.sh"),
        "--scenario",
        "load",
        "--scale",
        str(scale),
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--label",
        kind,
        "--results-dir",
        out,
        "--no-dashboard",
        "-e",
        f"PRIME_LIMIT={prime}",
        "-e",
        f"HASH_ROUNDS={rounds}",
        "-e",
        f"IO_KB={io}",
        "-e",
        "PROGRESS_EVERY=1000",
    ]
    rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    run = [d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))][0]  # LABEL-load-TIME
    summary = json.load(open(os.path.join(out, run, "summary.json")))
    d = summary["metrics"]["http_req_duration"]["values"]
    ha = summary["heavy_api"]
    return {
        "rc": rc,
        "p50": d["p(50)"],
        "p95": d["p(95)"],
        "p99": d["p(99)"],
        "rps": ha["throughput_rps"],
        "requests": ha["requests"],
        "failed": ha["failed_requests"],
        "dir": os.path.join(out, run),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--same-params", action="store_true")
    ap.add_argument("--peer", choices=["original", "rewrite"], default="original")
    args = ap.parse_args()
    print("`python3 bench/ramp.py " + " ".join(sys.argv[1:]) + "`; at start: " + machine() + "\n")
    build()
    out_root = os.path.join(ROOT, "results", "bench-ramp-" + time.strftime("%Y%m%dT%H%M%S"))
    default = (500000, 1000000, 128)
    results = {}
    target = None
    for kind in ("heavy-api", args.peer):
        with Server(kind, extra=["--keep-alive", "75"]) as srv:
            if kind == "heavy-api" or args.same_params:
                params = default
            else:
                # Same solo time as heavy-api's default request: scale hash_rounds, keep the I/O.
                probe = (0, 100_000, 128)
                t = solo_time(srv.port, heavy_path(*probe))
                rounds = max(1, int(probe[1] * target / t))
                params = (0, rounds, 128)
            solo = solo_time(srv.port, heavy_path(*params))
            if kind == "heavy-api":
                target = solo
            r = run_k6(srv.port, kind, params, args.scale, os.path.join(out_root, kind))
            r["params"], r["solo"] = params, solo
            results[kind] = r
    kinds = list(results)
    rows = []

    def add(name, f):
        return rows.append([name] + [f(results[k]) for k in kinds])

    add("request (prime_limit, hash_rounds, io_kb)", lambda r: "%d, %d, %d" % r["params"])
    add("solo request time", lambda r: f"{r['solo'] * 1000:.0f} ms")
    add("requests (failed)", lambda r: f"{r['requests']} ({r['failed']})")
    add("throughput", lambda r: f"{r['rps']:.1f} req/s")
    add("p50", lambda r: f"{r['p50']:.0f} ms")
    add("p95", lambda r: f"{r['p95']:.0f} ms")
    add("p99", lambda r: f"{r['p99']:.0f} ms")
    add("p99 / p50", lambda r: f"{r['p99'] / r['p50']:.2f}")
    print(table([f"k6 load-test.js shape, scale {args.scale:.2f}"] + [LABELS[k] for k in kinds], rows))
    print("\nat end: " + machine())
    print("\nk6 result folders:", ", ".join(results[k]["dir"] for k in kinds))


if __name__ == "__main__":
    main()
