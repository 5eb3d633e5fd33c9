#!/usr/bin/env python3
"""Soak test (issue #7): heavy-api 4x2 under a mixed load for a bounded time, sampling RSS,
open descriptors and threads of every process; they must stay flat.

The load (all on 127.0.0.1): 4 client threads looping over heavy requests on keep-alive
connections, heavy requests on fresh connections, health probes, and bad requests (400, 404,
431, a malformed head, a client that disconnects mid-request).

Usage: python3 bench/soak.py [--minutes 10] [--sample-every 10]
Prints a table of samples and a verdict; exits 1 if anything grew beyond its tolerance or any
request got an unexpected answer.
"""

import argparse
import http.client
import os
import re
import socket
import sys
import threading
import time

from heavylab.bench.common import Server, build, table

LIGHT = "/heavy/cpu-io-no-db/?prime_limit=20000&hash_rounds=20000&io_kb=4"


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def tree(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid] + [int(p) for p in f.read().split()]
    except OSError:
        return [pid]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--sample-every", type=float, default=10)
    args = ap.parse_args()
    build()
    stop = threading.Event()
    counts = {"ok": 0, "expected_error": 0, "unexpected": 0}
    lock = threading.Lock()

    def count(key):
        with lock:
            counts[key] += 1

    with Server("heavy-api", extra=["--keep-alive", "5"]) as srv:
        port = srv.port

        def keep_alive_client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while not stop.is_set():
                try:
                    conn.request("GET", LIGHT)
                    r = conn.getresponse()
                    r.read()
                    count("ok" if r.status == 200 else "unexpected")
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def fresh_client():
            while not stop.is_set():
                for path, want in (
                    (LIGHT, 200),
                    ("/heavy/health/", 200),
                    ("/nope/", 404),
                    ("/heavy/cpu-io-no-db/?io_kb=x", 400),
                ):
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    try:
                        c.request("GET", path)
                        r = c.getresponse()
                        r.read()
                        count(
                            ("ok" if want == 200 else "expected_error") if r.status == want else "unexpected"
                        )
                    except (OSError, http.client.HTTPException):
                        count("unexpected")
                    finally:
                        c.close()

        def hostile_client():
            bad = [
                b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n",
                b"\x16\x03\x01garbage\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            ]
            i = 0
            while not stop.is_set():
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                try:
                    if i % 4 == 3:
                        s.sendall(b"GET /heavy/health/ HTTP/1.1\r\nHo")  # and vanish
                    else:
                        s.sendall(bad[i % 3])
                        answer = s.recv(64)
                        count("expected_error" if re.match(rb"HTTP/1\.1 4\d\d ", answer) else "unexpected")
                except OSError:
                    count("unexpected")
                finally:
                    s.close()
                i += 1
                time.sleep(0.01)

        workers = [
            threading.Thread(target=f, daemon=True)
            for f in (keep_alive_client, keep_alive_client, fresh_client, hostile_client)
        ]
        for w in workers:
            w.start()
        samples = []
        end = time.time() + args.minutes * 60
        t0 = time.time()
        while True:
            pids = tree(srv.proc.pid)
            # The shell wrapper is not involved for heavy-api: pids[0] is the master.
            stats = [proc_stats(p) for p in pids]
            samples.append(
                (
                    time.time() - t0,
                    len(pids),
                    sum(s[0] for s in stats),
                    max(s[0] for s in stats),
                    sum(s[1] for s in stats),
                    sum(s[2] for s in stats),
                    dict(counts),
                )
            )
            if time.time() >= end:
                break
            time.sleep(args.sample_every)
        stop.set()
        for w in workers:
            w.join(timeout=35)
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        health.request("GET", "/heavy/health/")
        healthy = health.getresponse().status == 200

    rows = [
        [f"{t:5.0f} s", n, f"{rss / 1024:.1f}", f"{mx / 1024:.1f}", fds, th, c["ok"] + c["expected_error"]]
        for t, n, rss, mx, fds, th, c in samples
    ]
    print(table(["time", "procs", "RSS sum MiB", "RSS max MiB", "fds", "threads", "requests"], rows))
    warm = samples[min(1, len(samples) - 1)]
    last = samples[-1]
    growth_rss = (last[2] - warm[2]) / 1024
    print(f"\nrequests: {counts}")
    print(
        f"RSS growth after warm-up: {growth_rss:+.1f} MiB; fds {warm[4]} -> {last[4]}; threads {warm[5]} -> {last[5]}"
    )
    ok = (
        counts["unexpected"] == 0
        and healthy
        and growth_rss < 4
        and last[5] == warm[5]
        and last[4] <= warm[4] + 20
    )
    print("verdict:", "FLAT" if ok else "GREW OR FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
