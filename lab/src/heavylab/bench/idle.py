#!/usr/bin/env python3
"""Issue #16's idle benchmark: wake-ups of an idle heavy-api 4x2, per second and per process.

Counts every thread's context switches (voluntary + involuntary, /proc/PID/task/*/status) over
a quiet window after start-up, for the master and each worker.

Usage: python3 bench/idle.py [--binary target/release/heavy-api] [--seconds 10]
"""

import argparse
import os
import subprocess
import tempfile
import time

from heavylab.bench.common import HEAVY_BIN, build, free_port, table


def switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=HEAVY_BIN)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    if args.binary == HEAVY_BIN:
        build()
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.Popen(
            [
                args.binary,
                "--bind",
                f"127.0.0.1:{free_port()}",
                "--workers",
                "4",
                "--threads",
                "2",
                "--io-file",
                os.path.join(work, "io.bin"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                workers = [int(p) for p in f.read().split()]
            procs = [("master", proc.pid)] + [(f"worker {i + 1}", p) for i, p in enumerate(workers)]
            before = {pid: switches(pid) for _, pid in procs}
            time.sleep(args.seconds)
            rows = [[name, f"{(switches(pid) - before[pid]) / args.seconds:.1f}"] for name, pid in procs]
            print(table(["process", "wake-ups per second (all threads)"], rows))
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
