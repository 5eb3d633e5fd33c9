#!/usr/bin/env python3
"""`GET /heavy/health/` throughput and CPU per request, every server side by side in one
interleaved run (issue #16): nginx (`worker_processes 2`, keep-alive, `return 200` with the same
body), heavy-api 4x2 (the default) and 2x2, the axum peer ("what a Rust user would write
instead", bench/axum-peer), and the real original (Django 4.2.8 on Gunicorn 21.2.0 4x2,
bench/original.sh). Installs wrk and nginx-light from apt if missing; builds heavy-api and the
axum peer.

Every server starts once and stays up; each round runs `wrk -t2 -cN -dS` against each server in
turn (the order rotates every round), for every connection count. Per server and connection
count it prints min / median / max of: wall throughput (req/s), and CPU per request = the CPU
the server's whole process tree used during the wrk run (sum of /proc/PID/task/*/schedstat's
first field) / requests answered. Wall throughput depends on what else the 2 cores are doing
(wrk runs on them too, and so do neighbours); CPU per request does not, so conclusions rest on it.

With heavy-api 4x2 among the servers, the same rounds also drive two heavy paths on that server
(issue #23): the cheapest heavy request (`prime_limit=2&hash_rounds=1&io_kb=0`, answered by the
event loop: less work than a hand-off) and the first one above the inline bound
(`prime_limit=101`, handed to a thread), each also as a ratio to health on the same server.

Usage: heavy-lab bench health [--rounds 5] [--seconds 5] [--conns 50,1000]
                              [--servers nginx,heavy-4x2,heavy-2x2,axum,original] [--heavy-paths cheapest,handoff]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

from heavylab.bench.common import Server, build, build_axum, machine, raise_nofile, spread, table

SERVERS = {
    "nginx": lambda: Server("nginx"),
    "heavy-4x2": lambda: Server("heavy-api", extra=["--keep-alive", "75"], workers=4, threads=2),
    "heavy-2x2": lambda: Server("heavy-api", extra=["--keep-alive", "75"], workers=2, threads=2),
    "axum": lambda: Server("axum"),
    "original": lambda: Server("original", extra=["--keep-alive", "75"]),
    "rewrite": lambda: Server("rewrite", extra=["--keep-alive", "75"]),
}


def ensure_tools():
    missing = [
        p
        for p, b in (("wrk", "wrk"), ("nginx-light", "nginx"))
        if not shutil.which(b) and not os.path.exists(f"/usr/sbin/{b}")
    ]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


HEALTH = "/heavy/health/"
# Heavy paths driven on heavy-4x2 beside its health (name: path).
HEAVY_PATHS = {
    "cheapest": "/heavy/cpu-io-no-db/?prime_limit=2&hash_rounds=1&io_kb=0",
    "handoff": "/heavy/cpu-io-no-db/?prime_limit=101&hash_rounds=1&io_kb=0",
}


def wrk(port, conns, seconds, threads=2, path=HEALTH):
    """(requests, req/s, errors, p50 string, p99 string) of one wrk run."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    err = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)

    def pct(p):
        return (lambda m: m.group(1) + m.group(2) if m else "?")(
            re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        )

    return reqs, rps, err, pct(50), pct(99)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", default="50,1000")
    ap.add_argument("--servers", default="nginx,heavy-4x2,heavy-2x2,axum,original")
    ap.add_argument(
        "--heavy-paths",
        default="cheapest,handoff",
        help="heavy paths also driven on heavy-4x2 (cheapest, handoff; empty: none)",
    )
    ap.add_argument(
        "--baseline",
        metavar="BINARY",
        help="also run this heavy-api build as 4x2 (server name 'baseline'), to compare builds side by side",
    )
    args = ap.parse_args()
    names = args.servers.split(",")
    if args.baseline:
        SERVERS["baseline"] = lambda: Server(
            "heavy-api", extra=["--keep-alive", "75"], workers=4, threads=2, binary=args.baseline
        )
        names.append("baseline")
    heavy = [h for h in args.heavy_paths.split(",") if h] if "heavy-4x2" in names else []
    unknown = [h for h in heavy if h not in HEAVY_PATHS]
    if unknown:
        ap.error(f"--heavy-paths: unknown {', '.join(unknown)} (known: {', '.join(HEAVY_PATHS)})")
    # What each wrk run targets: (row name, server, path).
    targets = [(n, n, HEALTH) for n in names] + [
        (f"heavy-4x2 {h}", "heavy-4x2", HEAVY_PATHS[h]) for h in heavy
    ]
    conns = [int(c) for c in args.conns.split(",")]
    raise_nofile()
    ensure_tools()
    build()
    if "axum" in names:
        build_axum()
    cmdline = "python3 bench/health.py " + " ".join(sys.argv[1:])
    start = machine()
    servers = {}
    try:
        for n in names:
            servers[n] = SERVERS[n]()
        for s in servers.values():  # warm-up: connections, caches, Python imports
            wrk(s.port, 50, 1)
        res = {(t, c): [] for t, _, _ in targets for c in conns}
        for r in range(args.rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for c in conns:
                for n, server, path in order:
                    s = servers[server]
                    cpu0 = s.cpu()
                    reqs, rps, err, p50, p99 = wrk(s.port, c, args.seconds, path=path)
                    cpu = s.cpu() - cpu0
                    res[(n, c)].append(
                        {"rps": rps, "err": err, "p50": p50, "p99": p99, "us": cpu / max(reqs, 1) * 1e6}
                    )
                    print(
                        f"round {r + 1} c={c} {n}: {rps:,.0f} req/s, {cpu / max(reqs, 1) * 1e6:.1f} us CPU/req,"
                        f" errors {err}, p99 {p99}",
                        file=sys.stderr,
                        flush=True,
                    )
        end = machine()
    finally:
        for s in servers.values():
            s.stop()
    print(f"`{cmdline}`: {args.rounds} interleaved rounds of `wrk -t2 -cN -d{args.seconds}s` per server.")
    print(f"At start: {start}.\nAt end: {end}.\n")
    for c in conns:
        ref = "nginx" if "nginx" in names else names[0]
        ref_rps = statistics.median(x["rps"] for x in res[(ref, c)])
        ref_us = statistics.median(x["us"] for x in res[(ref, c)])
        rows = []
        for n, server, path in targets:
            xs = res[(n, c)]
            rps, us = [x["rps"] for x in xs], [x["us"] for x in xs]
            label = servers[server].label + ("" if path == HEALTH else f", `{path.split('?')[1]}`")
            if path != HEALTH:
                own = statistics.median(x["rps"] for x in res[(server, c)])
                label += f" ({statistics.median(rps) / own:.2f}x its health)"
            rows.append(
                [
                    label,
                    spread(rps),
                    f"{statistics.median(rps) / ref_rps:.2f}",
                    spread(us, "{:.1f}"),
                    f"{statistics.median(us) / ref_us:.2f}",
                    sum(x["err"] for x in xs),
                    " ".join(x["p99"] for x in xs),
                ]
            )
        print(f"{c} connections:\n")
        print(
            table(
                [
                    "server",
                    "req/s min / median / max",
                    f"median vs {ref}",
                    "CPU us/request min / median / max",
                    f"CPU/req vs {ref}",
                    "errors",
                    "p99 per round",
                ],
                rows,
            )
        )
        print()


if __name__ == "__main__":
    main()
