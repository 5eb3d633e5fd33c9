#!/usr/bin/env python3
"""Issue #4's scheduling benchmark: heavy-api 4x2 against the real original (Django 4.2.8 on
Gunicorn 21.2.0 4x2 gthread, bench/original.sh), side by side in one run (`--peer rewrite` runs
the Python rewrite on Gunicorn, bench/python_ref, instead). For each server, request sizes are
calibrated so that a "long" request takes about 3 s alone and a "short" one about 0.15 s.

  1. short behind long: 4 long requests, then 4 short ones; worst short latency (3 trials)
  2. burst of 8 equal requests: per-worker split and burst time / ideal time (5 trials);
     ideal = 8 x solo time / cores, what a perfectly shared CPU would take
  3. health under saturation: 24 long requests in flight, 10 fresh health probes; worst probe
  4. 50 idle keep-alive connections: a request's latency with and without them
  5. --timeout 2 and a request that would run 8 s: when the answer comes, and its status

Usage: python3 bench/scheduling.py [--only heavy-api|original|rewrite] [--peer original|rewrite]
"""

import argparse
import json
import os
import socket
import statistics
import sys
import time

from heavylab.bench.common import (
    LABELS,
    Server,
    build,
    calibrate,
    get,
    heavy_path,
    in_parallel,
    join,
    machine,
    table,
)

LONG_S, SHORT_S = 3.0, 0.15


def short_behind_long(srv, long_rounds, short_rounds):
    worst = []
    for _ in range(3):
        threads, long_res = in_parallel(srv.port, [heavy_path(hash_rounds=long_rounds)] * 4)
        time.sleep(0.3)  # let the long ones start: this is the scenario, not synchronisation
        s_threads, short_res = in_parallel(srv.port, [heavy_path(hash_rounds=short_rounds)] * 4)
        join(s_threads)
        join(threads)
        assert all(r[0] == 200 for r in long_res + short_res), [r[0] for r in long_res + short_res]
        worst.append(max(r[3] for r in short_res))
    return max(worst)


def burst_of_eight(srv, rounds, solo):
    splits, ratios = [], []
    for _ in range(5):
        start = time.perf_counter()
        threads, res = in_parallel(srv.port, [heavy_path(hash_rounds=rounds)] * 8)
        join(threads)
        took = time.perf_counter() - start
        pids = [json.loads(r[1]).get("pid") for r in res]  # the original's answer has no pid
        splits.append(None if None in pids else sorted((pids.count(p) for p in set(pids)), reverse=True))
        ratios.append(took / (8 * solo / os.cpu_count()))
    return splits, ratios


def health_under_saturation(srv, long_rounds):
    threads, res = in_parallel(srv.port, [heavy_path(hash_rounds=long_rounds)] * 24)
    time.sleep(0.5)
    probes = [get(srv.port, "/heavy/health/", timeout=60)[3] for _ in range(10)]
    join(threads)
    return max(probes), statistics.median(probes)


def idle_keep_alive(srv, rounds):
    base = statistics.median(get(srv.port, heavy_path(hash_rounds=rounds))[3] for _ in range(5))
    idle = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /heavy/health/ HTTP/1.1\r\nHost: b\r\n\r\n")
        s.recv(4096)
        idle.append(s)
    loaded = statistics.median(get(srv.port, heavy_path(hash_rounds=rounds))[3] for _ in range(5))
    for s in idle:
        s.close()
    return base, loaded


def timeout_case(kind, per_round):
    with Server(kind, extra=["--timeout", "2"]) as srv:
        rounds = int(8.0 / per_round)
        status, body, headers, secs = get(srv.port, heavy_path(hash_rounds=rounds), timeout=60)
        return status, secs


def run(kind):
    with Server(kind, extra=["--keep-alive", "75"]) as srv:
        long_rounds = calibrate(srv.port, LONG_S)
        short_rounds = calibrate(srv.port, SHORT_S)
        per_round = LONG_S / long_rounds
        solo_short = statistics.median(
            get(srv.port, heavy_path(hash_rounds=short_rounds))[3] for _ in range(5)
        )
        burst_rounds = int(1.0 / per_round)
        solo_burst = statistics.median(
            get(srv.port, heavy_path(hash_rounds=burst_rounds))[3] for _ in range(3)
        )
        r = {"kind": kind, "solo_short": solo_short}
        r["short_worst"] = short_behind_long(srv, long_rounds, short_rounds)
        r["splits"], r["burst_ratios"] = burst_of_eight(srv, burst_rounds, solo_burst)
        r["health_worst"], r["health_median"] = health_under_saturation(srv, long_rounds)
        r["ka_base"], r["ka_loaded"] = idle_keep_alive(srv, short_rounds)
    r["timeout_status"], r["timeout_secs"] = timeout_case(kind, per_round)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["heavy-api", "original", "rewrite"])
    ap.add_argument("--peer", choices=["original", "rewrite"], default="original")
    args = ap.parse_args()
    build()
    kinds = [args.only] if args.only else ["heavy-api", args.peer]
    print("`python3 bench/scheduling.py " + " ".join(sys.argv[1:]) + "`; at start: " + machine() + "\n")
    results = [run(k) for k in kinds]
    rows = []

    def add(name, f):
        return rows.append([name] + [f(r) for r in results])

    add("short request alone (median)", lambda r: f"{r['solo_short']:.2f} s")
    add("short behind 4 long, worst of 3 trials", lambda r: f"{r['short_worst']:.2f} s")
    add(
        "burst of 8: per-worker split, 5 trials",
        lambda r: " ".join("/".join(map(str, s)) if s else "-" for s in r["splits"]),
    )
    add(
        "burst of 8: time / ideal (8 x solo / cores), median, worst",
        lambda r: f"{statistics.median(r['burst_ratios']):.2f}, {max(r['burst_ratios']):.2f}",
    )
    add("health with 24 long in flight (worst of 10)", lambda r: f"{r['health_worst']:.3f} s")
    add("health with 24 long in flight (median)", lambda r: f"{r['health_median']:.3f} s")
    add("request alone / with 50 idle keep-alive", lambda r: f"{r['ka_base']:.2f} s / {r['ka_loaded']:.2f} s")
    add(
        "--timeout 2, 8 s request: answer", lambda r: f"{r['timeout_status']} after {r['timeout_secs']:.2f} s"
    )
    print(table(["measure"] + [LABELS[k] for k in kinds], rows))
    print("\nat end: " + machine())


if __name__ == "__main__":
    main()
