#!/usr/bin/env python3
"""heavy-api against the REAL original (Django 4.2.8 on Gunicorn 21.2.0, 4 workers x 2 threads,
bench/original.sh) on the default request `/heavy/cpu-io-no-db/` (prime_limit=500000,
hash_rounds=1000000, io_kb=128), side by side in one interleaved run (issue #16):

  solo:     one request at a time over a keep-alive connection, alternating servers every round:
            wall time and the server's CPU for that request (its whole process tree, from
            /proc/PID/task/*/schedstat), min / median / max; the "Nx" is the median ratio
  loaded:   C concurrent keep-alive clients for S seconds per round, rounds alternating servers:
            throughput and CPU per request, min / median / max
  output:   the two answers' keys in order and their values (timings and pid aside)
  memory:   RSS of the process tree (master + workers) at the end

Usage: python3 bench/vs_original.py [--rounds 7] [--loaded-rounds 3] [--clients 8] [--seconds 20]
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time

from heavylab.bench.common import Server, build, machine, rss_mib, spread, table

DEFAULT = "/heavy/cpu-io-no-db/"
TIMINGS = {"cpu_time_sec", "total_time_sec", "io_time_sec", "pid", "digest"}


def one(conn):
    t0 = time.perf_counter()
    conn.request("GET", DEFAULT)
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, (resp.status, body[:200])
    return time.perf_counter() - t0, body


def loaded(srv, clients, seconds):
    """(requests/s, CPU seconds per request) with `clients` keep-alive clients for `seconds`."""
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
        while time.perf_counter() < stop:
            one(conn)
            done[i] += 1
        conn.close()

    cpu0, t0 = srv.cpu(), time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu, n = time.perf_counter() - t0, srv.cpu() - cpu0, sum(done)
    return n / wall, cpu / max(n, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--loaded-rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    build()
    cmdline = "python3 bench/vs_original.py " + " ".join(sys.argv[1:])
    start = machine()
    kinds = ["heavy-api", "original"]
    servers = {}
    try:
        for k in kinds:
            servers[k] = Server(k, extra=["--keep-alive", "75"])
        conns = {k: http.client.HTTPConnection("127.0.0.1", s.port, timeout=300) for k, s in servers.items()}
        bodies = {k: json.loads(one(conns[k])[1]) for k in kinds}  # warm-up, and the answers
        solo = {k: {"wall": [], "cpu": []} for k in kinds}
        for r in range(args.rounds):
            for k in kinds if r % 2 == 0 else kinds[::-1]:
                cpu0 = servers[k].cpu()
                wall, _ = one(conns[k])
                solo[k]["wall"].append(wall)
                solo[k]["cpu"].append(servers[k].cpu() - cpu0)
                print(f"solo round {r + 1} {k}: {wall:.3f} s", file=sys.stderr, flush=True)
        for c in conns.values():
            c.close()
        load = {k: {"rps": [], "cpu": []} for k in kinds}
        for r in range(args.loaded_rounds):
            for k in kinds if r % 2 == 0 else kinds[::-1]:
                rps, cpu = loaded(servers[k], args.clients, args.seconds)
                load[k]["rps"].append(rps)
                load[k]["cpu"].append(cpu)
                print(
                    f"loaded round {r + 1} {k}: {rps:.2f} req/s, {cpu * 1000:.0f} ms CPU/req",
                    file=sys.stderr,
                    flush=True,
                )
        rss = {k: rss_mib(s.proc.pid) for k, s in servers.items()}
        end = machine()
    finally:
        for s in servers.values():
            s.stop()

    def med(xs):
        return statistics.median(xs)

    rows = [
        ["solo default request, wall (s)"]
        + [spread(solo[k]["wall"], "{:.3f}") for k in kinds]
        + [f"{med(solo['original']['wall']) / med(solo['heavy-api']['wall']):.1f}x"],
        ["solo default request, server CPU (s)"]
        + [spread(solo[k]["cpu"], "{:.3f}") for k in kinds]
        + [f"{med(solo['original']['cpu']) / med(solo['heavy-api']['cpu']):.1f}x"],
        [f"{args.clients} clients x {args.seconds} s: throughput (req/s)"]
        + [spread(load[k]["rps"], "{:.2f}") for k in kinds]
        + [f"{med(load['heavy-api']['rps']) / med(load['original']['rps']):.1f}x"],
        [f"{args.clients} clients x {args.seconds} s: CPU per request (s)"]
        + [spread(load[k]["cpu"], "{:.3f}") for k in kinds]
        + [f"{med(load['original']['cpu']) / med(load['heavy-api']['cpu']):.1f}x"],
        ["RSS, master + 4 workers (MiB)"]
        + [f"{rss[k]:.1f}" for k in kinds]
        + [f"{rss['original'] / rss['heavy-api']:.1f}x"],
    ]
    same = {k: v for k, v in bodies["heavy-api"].items() if k not in TIMINGS}
    orig = {k: v for k, v in bodies["original"].items() if k not in TIMINGS}
    order_ok = [k for k in bodies["heavy-api"] if k in bodies["original"]] == list(bodies["original"])
    print(
        f"`{cmdline}`: {args.rounds} solo rounds and {args.loaded_rounds} loaded rounds, alternating servers."
    )
    print(f"At start: {start}.\nAt end: {end}.\n")
    print(
        table(
            [
                "default request (500000, 1000000, 128)",
                "heavy-api 4x2",
                "the original (Django 4.2.8 on Gunicorn 21.2.0, 4x2)",
                "original / heavy-api",
            ],
            rows,
        )
    )
    print(
        f"\nanswers: shared values equal: {same == orig} ({orig}); the original's keys in the same order: "
        f"{order_ok}; heavy-api adds: {[k for k in bodies['heavy-api'] if k not in bodies['original']]}"
    )


if __name__ == "__main__":
    main()
