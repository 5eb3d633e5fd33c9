#!/usr/bin/env python3
"""Issue #10's benchmarks: the hardened core against an earlier build, side by side in one run.

  head:   event-loop CPU per request-head byte, for heads of 1 KiB up to the largest each build
          accepts, each head trickled in one header line per write (the shape that made the old
          parser re-walk the head at every line). CPU is the worker's own utime + stime from
          /proc (schedstat), so neighbours on the machine do not count. Flat across sizes = linear parsing.
  light:  /heavy/health/ requests per second, `wrk -t2 -c50` with keep-alive, 4x2.
  heavy:  requests per second of the smoke request (prime_limit=200000&hash_rounds=500000&
          io_kb=64), `wrk -t2 -c8`, 4x2.
  scrape: round trip of GET /metrics with 4 workers (the build after only).
Rounds alternate between the two builds; the table shows min / median / max.

Usage: python3 bench/hardening.py [--before REV] [--rounds 3] [--seconds 5]
Builds REV (default: the commit before issue #10's work) in a temporary worktree.
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time

from heavylab.bench.common import ROOT, build, free_port, table

BEFORE_REV = "0e18c61"
SMOKE = "/heavy/cpu-io-no-db/?prime_limit=200000&hash_rounds=500000&io_kb=64"


def build_rev(rev, workdir):
    tree = os.path.join(workdir, "tree")
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", tree, rev],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        ["cargo", "build", "--release", "--quiet"],
        cwd=tree,
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": os.path.join(workdir, "target")},
    )
    return os.path.join(workdir, "target", "release", "heavy-api"), tree


class Running:
    def __init__(self, binary, args):
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--io-file",
                os.path.join(self.dir.name, "io.bin"),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /heavy/health/ HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                    if s.recv(12) == b"HTTP/1.1 200":
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{binary} did not start within 20 s")

    def workers(self):
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return [int(p) for p in f.read().split()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.dir.cleanup()


def cpu_seconds(pid):
    """CPU time of all of a process's threads, in ns resolution (schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def head_cost(binary, extra, size, total_bytes=16 << 20):
    """Nanoseconds of worker CPU per head byte, for heads of about `size` bytes in lines of
    100 bytes (both builds allow 10,000 fields here, so every size is legal)."""
    server = Running(binary, ["--workers", "1", "--threads", "1", "--limit-request-fields", "10000", *extra])
    try:
        worker = server.workers()[0]
        line = b"X-Pad: " + b"p" * 91 + b"\r\n"
        lines = max(1, (size - 40) // len(line))
        head_bytes = 40 + lines * len(line)
        count = max(3, total_bytes // head_bytes)
        before = cpu_seconds(worker)
        sent = 0
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(b"GET /heavy/health/ HTTP/1.1\r\nHost: b\r\n")
                for _ in range(lines):
                    s.sendall(line)
                s.sendall(b"\r\n")
                if s.recv(12) != b"HTTP/1.1 200":
                    raise RuntimeError(f"head of {head_bytes} bytes refused")
                sent += head_bytes
        return (cpu_seconds(worker) - before) * 1e9 / sent, head_bytes
    finally:
        server.stop()


def wrk_rps(binary, path, conns, seconds):
    server = Running(binary, ["--workers", "4", "--threads", "2"])
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", f"http://127.0.0.1:{server.port}{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    finally:
        server.stop()


def scrape_cost(binary, count=200):
    """Round trip of GET /metrics on a keep-alive connection, 4 workers, after some traffic."""
    server = Running(binary, ["--workers", "4", "--threads", "2"])
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = s.makefile("rb")

            def get(path):
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
                status = f.readline()
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                return status, f.read(length)

            for _ in range(50):
                get(SMOKE.replace("io_kb=64", "io_kb=1").replace("200000", "1000"))
            times, size = [], 0
            for _ in range(count):
                started = time.perf_counter()
                status, body = get("/metrics")
                times.append(time.perf_counter() - started)
                size = len(body)
                if not status.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"/metrics answered {status!r}")
        times.sort()
        return statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3, size
    finally:
        server.stop()


def spread(values, fmt="{:.0f}"):
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE_REV)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    build()
    new = os.path.join(ROOT, "target", "release", "heavy-api")
    with tempfile.TemporaryDirectory() as work:
        old, tree = build_rev(args.before, work)
        # The head cap is new; it is raised so both builds take every size measured.
        builds = [
            (f"before ({args.before})", old, []),
            ("after", new, ["--limit-request-head", str(1 << 20)]),
        ]
        try:
            rows = [["head size", *[f"{name}: ns CPU per head byte" for name, _, _ in builds]]]
            for size in [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 784 << 10]:
                cells = []
                for _, binary, extra in builds:
                    costs = [head_cost(binary, extra, size)[0] for _ in range(args.rounds)]
                    cells.append(spread(costs, "{:.1f}"))
                rows.append([f"{size >> 10} KiB", *cells])
            print("\nEvent-loop CPU per head byte (min / median / max over rounds)")
            print(table(rows[0], rows[1:]))

            results = {name: {"light": [], "heavy": []} for name, _, _ in builds}
            for _ in range(args.rounds):
                for name, binary, _ in builds:
                    results[name]["light"].append(wrk_rps(binary, "/heavy/health/", 50, args.seconds))
                    results[name]["heavy"].append(wrk_rps(binary, SMOKE, 8, args.seconds * 2))
            rows = [["measure", *[name for name, _, _ in builds], "after / before (medians)"]]
            for key, label in [("light", "health req/s, wrk -c50"), ("heavy", "smoke req/s, wrk -c8")]:
                meds = [statistics.median(results[name][key]) for name, _, _ in builds]
                rows.append(
                    [
                        label,
                        *[spread(results[name][key], "{:.1f}") for name, _, _ in builds],
                        f"{meds[1] / meds[0]:.2f}",
                    ]
                )
            print("\nThroughput, 4x2 (min / median / max over interleaved rounds)")
            print(table(rows[0], rows[1:]))

            median_ms, p99_ms, size = scrape_cost(new)
            print("\nGET /metrics with 4 workers (200 scrapes on one keep-alive connection)")
            print(
                table(
                    ["median", "p99", "page size"],
                    [[f"{median_ms:.3f} ms", f"{p99_ms:.3f} ms", f"{size / 1024:.1f} KiB"]],
                )
            )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", tree],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


if __name__ == "__main__":
    main()
