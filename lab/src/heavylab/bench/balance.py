#!/usr/bin/env python3
"""Issue #16's balance benchmark: how evenly the workers of heavy-api 4x2 hold connections.

Opens N keep-alive connections — one after another, or all at once from N threads — each
answered once (so every one has been accepted), then counts the sockets each worker holds
(/proc/PID/fd). Prints, per case and trial, the per-worker counts and busiest / least busy.

Usage: python3 bench/balance.py [--binary target/release/heavy-api] [--trials 3]
"""

import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time

from heavylab.bench.common import HEAVY_BIN, build, free_port, table


def sockets(pid):
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def open_one(port, conns, i):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /heavy/health/ HTTP/1.1\r\nHost: b\r\n\r\n")
    if not s.recv(12).startswith(b"HTTP/1.1 200"):
        raise RuntimeError("health did not answer 200")
    conns[i] = s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=HEAVY_BIN)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    if args.binary == HEAVY_BIN:
        build()
    port = free_port()
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
            deadline = time.time() + 20
            while True:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    workers = [int(p) for p in f.read().split()]
                if len(workers) == 4:
                    break
                if time.time() > deadline:
                    raise RuntimeError("4 workers did not start within 20 s")
                time.sleep(0.05)
            time.sleep(0.5)
            base = [sockets(w) for w in workers]
            rows = []
            for case, n, together in [
                ("one after another", 64, False),
                ("at once", 64, True),
                ("at once", 1000, True),
            ]:
                for trial in range(args.trials):
                    conns = [None] * n
                    if together:
                        threads = [threading.Thread(target=open_one, args=(port, conns, i)) for i in range(n)]
                        for t in threads:
                            t.start()
                        for t in threads:
                            t.join()
                    else:
                        for i in range(n):
                            open_one(port, conns, i)
                    counts = [sockets(w) - b for w, b in zip(workers, base, strict=False)]
                    rows.append(
                        [
                            f"{n} {case}",
                            trial + 1,
                            " / ".join(map(str, counts)),
                            f"{max(counts) / max(1, min(counts)):.2f}",
                        ]
                    )
                    for s in conns:
                        s.close()
                    time.sleep(0.5)
            print(table(["connections", "trial", "per worker", "busiest / least busy"], rows))
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
