#!/usr/bin/env python3
"""Issue #5: the smoke and quick k6 scenarios against heavy-api 4x2 and against the real original
(Django 4.2.8 on Gunicorn 21.2.0 4x2, bench/original.sh; `--peer rewrite`: the Python rewrite on
Gunicorn, bench/python_ref), one after the other, on the scenarios' own parameters.

Usage: python3 bench/k6_scenarios.py [--peer original|rewrite]   (about 4 minutes)
"""

import argparse
import json
import os
import subprocess
import sys
import time

from heavylab.bench.common import LABELS, ROOT, Server, build, machine, table


def run(port, scenario, kind, out):
    cmd = [
        os.path.join(ROOT, "scripts", "loadtest.sh"),
        "--scenario",
        scenario,
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--label",
        kind,
        "--results-dir",
        out,
        "--no-dashboard",
        "-e",
        "PROGRESS_EVERY=100000",
    ]
    rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    run_dir = [d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))][0]  # LABEL-SCENARIO-TIME
    s = json.load(open(os.path.join(out, run_dir, "summary.json")))
    d = s["metrics"]["http_req_duration"]["values"]
    ha = s["heavy_api"]
    return {
        "rc": rc,
        "p50": d["p(50)"],
        "p95": d["p(95)"],
        "p99": d["p(99)"],
        "rps": ha["throughput_rps"],
        "requests": ha["requests"],
        "failed": ha["failed_requests"],
        "passed": ha["thresholds_passed"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", choices=["original", "rewrite"], default="original")
    args = ap.parse_args()
    build()
    print("`python3 bench/k6_scenarios.py " + " ".join(sys.argv[1:]) + "`; at start: " + machine() + "\n")
    out_root = os.path.join(ROOT, "results", "bench-k6-" + time.strftime("%Y%m%dT%H%M%S"))
    rows = []
    for scenario in ("smoke", "quick"):
        res = {}
        for kind in ("heavy-api", args.peer):
            with Server(kind, extra=["--keep-alive", "75"]) as srv:
                res[kind] = run(srv.port, scenario, kind, os.path.join(out_root, scenario, kind))
        for kind, r in res.items():
            rows.append(
                [
                    scenario,
                    LABELS[kind],
                    r["requests"],
                    r["failed"],
                    f"{r['rps']:.1f}",
                    f"{r['p50']:.0f}",
                    f"{r['p95']:.0f}",
                    f"{r['p99']:.0f}",
                    "passed" if r["passed"] else "FAILED",
                ]
            )
    print(
        table(
            ["scenario", "server", "requests", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms", "thresholds"],
            rows,
        )
    )
    print(f"\nk6 result folders under {out_root}; at end: " + machine())


if __name__ == "__main__":
    main()
