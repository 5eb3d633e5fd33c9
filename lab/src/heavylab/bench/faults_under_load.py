#!/usr/bin/env python3
"""Issue #7's faults under real k6 load. For each fault: start heavy-api 4x2, run the k6 smoke
scenario against it (10 VUs, 20 s, light requests, keep-alive), inject the fault a few seconds
in, and read k6's summary: how many requests failed.

  kill -9 of one worker      only that worker's in-flight requests may fail; its replacement
                             must serve within 1 s
  SIGHUP, TTOU then TTIN     zero failed requests
  --max-requests 50          zero failed requests
  panics in handlers         zero failed k6 requests while another client triggers 50 panics
                             (each answered 500 JSON)
  SIGTERM                    a separate client: every request the server had accepted completes

Usage: heavy-lab bench faults_under_load   (about 3 minutes; results for docs/reliability.md)
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import threading
import time

from heavylab.bench.common import ROOT, Server, build, get, table

LIGHT = "prime_limit=50000&hash_rounds=50000&io_kb=8"
DURATION_S = 20


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return sorted(int(p) for p in f.read().split())
    except OSError:
        return []


def k6_run(port, out):
    cmd = [
        os.path.join(ROOT, "scripts", "loadtest.sh"),
        "--scenario",
        "smoke",
        "--scale",
        str(DURATION_S / 30),
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--results-dir",
        out,
        "--no-dashboard",
        "-e",
        "PRIME_LIMIT=50000",
        "-e",
        "HASH_ROUNDS=50000",
        "-e",
        "IO_KB=8",
        "-e",
        "THINK_TIME=0.05",
        "-e",
        "PROGRESS_EVERY=100000",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def k6_result(out):
    # The run folder heavy-lab run made (LABEL-smoke-TIME): the only folder in `out`.
    run = [d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))][0]
    ha = json.load(open(os.path.join(out, run, "summary.json")))["heavy_api"]
    return ha["requests"], ha["failed_requests"]


def scenario(name, out_root, inject, extra=()):
    out = os.path.join(out_root, name.replace(" ", "-"))
    with Server("heavy-api", extra=["--keep-alive", "75", *extra]) as srv:
        k6 = k6_run(srv.port, out)
        time.sleep(6)  # the fault lands mid-run: this is the scenario's timing, not a wait for readiness
        note = inject(srv)
        k6.wait()
        requests, failed = k6_result(out)
    return [name, requests, failed, note]


def kill_worker(srv):
    victim = children(srv.proc.pid)[0]
    t0 = time.time()
    os.kill(victim, signal.SIGKILL)
    while True:
        now = children(srv.proc.pid)
        if len(now) == 4 and victim not in now:
            try:
                if get(srv.port, "/heavy/health/", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
        time.sleep(0.005)
    return f"replacement serving {time.time() - t0:.3f} s after the kill"


def hup(srv):
    before = children(srv.proc.pid)
    os.kill(srv.proc.pid, signal.SIGHUP)
    time.sleep(3)
    after = children(srv.proc.pid)
    return f"workers replaced: {len(set(before) - set(after))} of {len(before)}"


def ttou_ttin(srv):
    os.kill(srv.proc.pid, signal.SIGTTOU)
    time.sleep(3)
    n_down = len(children(srv.proc.pid))
    os.kill(srv.proc.pid, signal.SIGTTIN)
    time.sleep(3)
    return f"workers 4 -> {n_down} -> {len(children(srv.proc.pid))}"


def recycling(srv):
    return "workers recycle every ~50 requests"


def panics(srv):
    codes = []
    for _ in range(50):
        codes.append(get(srv.port, f"/heavy/cpu-io-no-db/?{LIGHT}&fault=panic")[0])
    return f"{codes.count(500)} of 50 panics answered 500"


def sigterm_case():
    """Clients send requests on fresh connections until the server is gone; counts requests
    that were accepted (got a connection and sent) and how many of them got a full answer."""
    srv = Server("heavy-api", extra=["--graceful-timeout", "30"])
    port = srv.port
    stats = {"answered": 0, "refused": 0, "cut": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                with lock:
                    stats["refused"] += 1
                time.sleep(0.01)
                continue
            try:
                s.sendall(
                    f"GET /heavy/cpu-io-no-db/?{LIGHT} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode()
                )
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                key = "answered" if data.startswith(b"HTTP/1.1 200") else ("refused" if not data else "cut")
            except OSError:
                key = "refused"
            finally:
                s.close()
            with lock:
                stats[key] += 1

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(4)
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(timeout=40)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    srv.log.close()
    return [
        "SIGTERM (8 clients, fresh connections)",
        stats["answered"] + stats["cut"],
        stats["cut"],
        f"exit {code}; {stats['refused']} connections refused or reset before the server read them",
    ]


def main():
    argparse.ArgumentParser(
        prog="heavy-lab bench faults_under_load", description=__doc__.split("\n\n")[0]
    ).parse_args()
    build()
    out_root = os.path.join(ROOT, "results", "faults-" + time.strftime("%Y%m%dT%H%M%S"))
    rows = [
        scenario("kill -9 one worker", out_root, kill_worker),
        scenario("SIGHUP", out_root, hup),
        scenario("TTOU then TTIN", out_root, ttou_ttin),
        scenario("max-requests 50", out_root, recycling, extra=["--max-requests", "50"]),
        scenario("50 handler panics", out_root, panics, extra=["--enable-fault-injection"]),
        sigterm_case(),
    ]
    print(table(["fault, under k6 smoke load (10 VUs, 20 s)", "requests", "failed", "notes"], rows))


if __name__ == "__main__":
    main()
