#!/usr/bin/env python3
"""Issue #16's connection-count benchmark: N clients connected at once to heavy-api 4x2 with
its default flags, each sending one health request and keeping its connection: how many are
answered. The default per-worker limit follows the descriptor limit (raised to the hard limit),
so none waits unanswered in the listen backlog.

Usage: python3 bench/many_conns.py [--binary target/release/heavy-api] [--counts 5000,10000]
"""

import argparse
import os
import resource
import selectors
import socket
import subprocess
import tempfile
import time

from heavylab.bench.common import HEAVY_BIN, build, free_port, table

REQUEST = b"GET /heavy/health/ HTTP/1.1\r\nHost: b\r\n\r\n"


def run(port, n, within=60.0):
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE, "connecting")
        socks.append(s)
    answered, started = 0, time.time()
    while answered < n and time.time() - started < within:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            if key.data == "connecting":
                try:
                    s.send(REQUEST)
                    sel.modify(s, selectors.EVENT_READ, "sent")
                except OSError:
                    sel.unregister(s)
            else:
                data = s.recv(4096)
                sel.unregister(s)
                if data.startswith(b"HTTP/1.1 200"):
                    answered += 1
    elapsed = time.time() - started
    for s in socks:
        s.close()
    return answered, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=HEAVY_BIN)
    ap.add_argument("--counts", default="5000,10000")
    args = ap.parse_args()
    if args.binary == HEAVY_BIN:
        build()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        proc = subprocess.Popen(
            [
                args.binary,
                "--bind",
                f"127.0.0.1:{port}",
                "--io-file",
                os.path.join(work, "io.bin"),
                "--keep-alive",
                "120",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)
            for n in [int(c) for c in args.counts.split(",")]:
                answered, secs = run(port, n)
                rows.append([n, answered, f"{secs:.1f} s"])
                time.sleep(1)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"descriptor limit of client and server: {hard}")
    print(table(["connections at once", "answered", "time"], rows))


if __name__ == "__main__":
    main()
