#!/usr/bin/env python3
"""Issue #5's heavy-request throughput (installs wrk from apt if missing). The light
(/heavy/health/) comparison with nginx, axum and the original is bench/health.py.

  heavy:  16 concurrent keep-alive clients on the smoke parameters
          (prime_limit=200000&hash_rounds=500000&io_kb=64) for 20 s against heavy-api 4x2:
          throughput, and efficiency = throughput x solo request time / cores

Usage: python3 bench/throughput.py
wrk runs on the same 2 cores as the servers, so every number includes the load generator's cost.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

from heavylab.bench.common import Server, build, get, machine, table

SMOKE = "/heavy/cpu-io-no-db/?prime_limit=200000&hash_rounds=500000&io_kb=64"


def wrk(port, path, conns, seconds, threads=2):
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    err = (int(errors.group(1)) if errors else 0) + (sum(map(int, sock.groups())) if sock else 0)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    return rps, err, (p50.group(1) + p50.group(2)) if p50 else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    build()
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
    print("`python3 bench/throughput.py " + " ".join(sys.argv[1:]) + "`; at start: " + machine() + "\n")
    with Server("heavy-api") as srv:
        get(srv.port, SMOKE)
        solo = statistics.median(get(srv.port, SMOKE)[3] for _ in range(15))
        rps, err, p50 = wrk(srv.port, SMOKE, 16, 20)
        cores = os.cpu_count()
        print("\nheavy: 16 concurrent keep-alive clients on the smoke parameters, 20 s\n")
        print(
            table(
                ["measure", "heavy-api 4x2"],
                [
                    ["solo request time (median of 15)", f"{solo * 1000:.1f} ms"],
                    ["throughput", f"{rps:.1f} req/s"],
                    ["errors", err],
                    ["p50 latency", p50],
                    [f"efficiency = throughput x solo / {cores} cores", f"{rps * solo / cores:.3f}"],
                ],
            )
        )


if __name__ == "__main__":
    main()
