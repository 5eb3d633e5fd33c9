"""Shared helpers for the benchmark scripts: start heavy-api or the Gunicorn reference on a free
loopback port, wait for health, time requests. Stdlib only."""
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY_BIN = os.path.join(ROOT, "target", "release", "heavy-api")


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "heavy-api"], cwd=ROOT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server under test. kind: 'heavy-api' or 'gunicorn'."""

    def __init__(self, kind, extra=(), workers=4, threads=2):
        self.kind, self.port = kind, free_port()
        self.tmp = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        env = dict(os.environ)
        if kind == "heavy-api":
            cmd = [HEAVY_BIN, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads",
                   str(threads), "--io-file", os.path.join(self.tmp, "io.bin"), "--log-level", "warning",
                   "--max-hash-rounds", "2000000000", *extra]
        else:
            env["REF_IO_FILE"] = os.path.join(self.tmp, "io.bin")
            env["GUNICORN_EXTRA"] = " ".join(extra)
            cmd = [os.path.join(ROOT, "bench", "gunicorn-ref.sh"), str(self.port)]
        self.log = open(os.path.join(self.tmp, "server.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 120  # the first Gunicorn start installs it
        while time.time() < deadline:
            try:
                if get(self.port, "/heavy/health/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        sys.exit(f"{kind} did not become healthy; see {self.log.name}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def get(port, path, timeout=120, conn=None):
    """One GET; returns (status, body bytes, headers dict, seconds)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    secs = time.perf_counter() - t0
    headers = {k.lower(): v for k, v in resp.getheaders()}
    if own:
        conn.close()
    return resp.status, body, headers, secs


def in_parallel(port, paths, stagger=0.0):
    """Starts one GET per path on its own thread (new connection each); returns the threads'
    results in order, each (status, body, headers, secs, start offset)."""
    results = [None] * len(paths)
    t0 = time.perf_counter()

    def run(i, path):
        start = time.perf_counter() - t0
        try:
            status, body, headers, secs = get(port, path)
        except OSError as e:
            status, body, headers, secs = 0, str(e).encode(), {}, time.perf_counter() - t0 - start
        results[i] = (status, body, headers, secs, start)

    threads = []
    for i, path in enumerate(paths):
        th = threading.Thread(target=run, args=(i, path))
        th.start()
        threads.append(th)
        if stagger:
            time.sleep(stagger)
    return threads, results


def join(threads):
    for th in threads:
        th.join()


def heavy_path(prime_limit=0, hash_rounds=0, io_kb=0):
    return f"/heavy/cpu-io-no-db/?prime_limit={prime_limit}&hash_rounds={hash_rounds}&io_kb={io_kb}"


def calibrate(port, seconds, samples=3):
    """hash_rounds for which one request alone takes about `seconds` on this server."""
    probe = 200_000
    times = sorted(get(port, heavy_path(hash_rounds=probe))[3] for _ in range(samples))
    per_round = times[len(times) // 2] / probe
    return max(1, int(seconds / per_round))


def table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
