"""`heavy-lab run`'s command line: the options, and every check made before anything starts (a
bad value is named and nothing runs)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from heavylab import paths
from heavylab.analysis import prices
from heavylab.run import capacity

SCENARIOS = {
    # name: (k6 script, nominal seconds incl. graceful stop, the model)
    "smoke": ("smoke", 40, "closed"),
    "quick": ("quick", 85, "closed"),
    "load": ("load", 630, "closed"),
    "spike": ("spike", 200, "closed"),
    "autoscale": ("autoscale", 330, "closed"),
    "constant-rate": ("constant-rate", 70, "open"),
    "ramping-rate": ("ramping-rate", 80, "open"),
    "capacity": ("constant-rate", 70, "open"),
}


MIX_PARAMS = ("prime_limit", "hash_rounds", "io_kb")


def parser(epilog: str = "") -> argparse.ArgumentParser:
    """The options; `epilog` closes --help (the runner's own docstring)."""
    ap = argparse.ArgumentParser(
        prog="heavy-lab run",
        description="Run one k6 scenario against heavy-api and keep every artifact of the run.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = ap.add_argument_group("scenario")
    s.add_argument(
        "--scenario",
        default="smoke",
        choices=list(SCENARIOS),
        help="smoke | quick | load | spike | autoscale (closed model: VUs that wait), constant-rate | "
        "ramping-rate (open model: -e RATE=req/s), capacity (the highest rate within the SLO) (default: smoke)",
    )
    s.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="DURATION_SCALE: multiplies every duration and stage (default: 1)",
    )
    s.add_argument(
        "-e",
        dest="env",
        action="append",
        default=[],
        metavar="KEY=VAL",
        help="a variable for the k6 script (repeatable): VUS, THINK_TIME, PRIME_LIMIT, HASH_ROUNDS, IO_KB, "
        "VU_SCALE, RATE, DURATION, MIX='prime_limit=100000:70,500000:30', SEED, IO_SYNC=fsync|none",
    )
    s.add_argument(
        "--segments",
        type=int,
        default=1,
        help="run as N k6 processes with consecutive execution segments, merged exactly (default: 1)",
    )
    capacity.add_search_arguments(ap)
    t = ap.add_argument_group("target")
    t.add_argument(
        "--base-url", help="test a server already running (it must answer GET /heavy/health/ first)"
    )
    t.add_argument(
        "--local", action="store_true", help="start heavy-api on 127.0.0.1 (the default without --base-url)"
    )
    t.add_argument("--port", type=int, help="the port for --local (default: a free one)")
    t.add_argument(
        "--server-args",
        default="",
        help='extra heavy-api flags for --local, split like a shell would ("--workers 1 --threads 1")',
    )
    t.add_argument(
        "--build",
        action="store_true",
        help="cargo build --release first (done anyway when the binary is missing)",
    )
    t.add_argument(
        "--metrics-url",
        help="where to scrape the server's metrics (default: BASE_URL/metrics; for a server run with --metrics-bind)",
    )
    r = ap.add_argument_group("results")
    r.add_argument(
        "--label",
        default="local",
        help="platform label stored in meta.json, e.g. ec2-x86 or fargate-arm (default: local)",
    )
    r.add_argument(
        "--price", help="price stored in meta.json, e.g. ec2:c7g.large, fargate-arm64:cpu=2,mem=4 or 0.0971/h"
    )
    r.add_argument(
        "--results-dir",
        type=Path,
        default=paths.RESULTS,
        help="parent folder of the run folder (default: results/)",
    )
    r.add_argument("--no-samples", action="store_true", help="do not keep the raw samples (samples.csv.gz)")
    r.add_argument("--no-dashboard", action="store_true", help="do not export the k6 web dashboard report")
    r.add_argument(
        "--dashboard-port",
        type=int,
        default=-1,
        help="serve the live web dashboard on 127.0.0.1:N (default: off)",
    )
    o = ap.add_argument_group("other")
    o.add_argument("--ensure-k6", action="store_true", help="print the k6 binary's path and exit")
    ap.add_argument("k6_extra", nargs=argparse.REMAINDER, help="after --: extra `k6 run` arguments")
    return ap


def parse_duration(text: str) -> float | None:
    """Seconds of a k6 duration (90, 90s, 1m30s, 500ms); None when it is not one."""
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        return None
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def check_mix(text: str) -> str | None:
    """The problem with a MIX value, in the words of k6-tests/lib/common.js's parser; None if valid.
    MIX='prime_limit=100000:70,500000:30;io_kb=64:50,512:50'."""
    seen = set()
    for part in [p for p in text.split(";") if p.strip()]:
        name, eq, items = part.partition("=")
        name = name.strip()
        if not eq or name not in MIX_PARAMS:
            return f'"{part.strip()}" must start with one of {", ".join(MIX_PARAMS)} and "="'
        if name in seen:
            return f"{name} appears twice"
        seen.add(name)
        total = 0.0
        for item in [i for i in items.split(",") if i.strip()]:
            m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+(?:\.\d+)?)\s*", item)
            if not m:
                return f'"{item.strip()}" in {name} is not value:percent (e.g. 100000:70)'
            if float(m.group(2)) <= 0:
                return f"{name} value {m.group(1)} has a zero percent"
            total += float(m.group(2))
        if abs(total - 100) > 1e-6:
            return f"the percents of {name} add up to {total:g}, not 100"
    return None


def validate(a: argparse.Namespace, error) -> dict[str, str]:
    """Checks every option; returns the -e variables as a dict. error(message) exits 2."""
    if a.k6_extra and a.k6_extra[0] == "--":
        a.k6_extra = a.k6_extra[1:]
    elif a.k6_extra:
        error(f"unknown option: {a.k6_extra[0]} (extra k6 arguments go after --)")
    if not a.scale > 0:
        error(f"--scale must be a positive number (got {a.scale!r})")
    if not 1 <= a.segments <= 64:
        error(f"--segments must be from 1 to 64 (got {a.segments})")
    if a.segments > 1 and a.scenario == "capacity":
        error("--segments does not apply to --scenario capacity (run capacity on one generator)")
    if a.scenario == "capacity":
        capacity.check_search_arguments(a, error)
    if a.base_url and a.local:
        error("--base-url and --local exclude each other")
    if a.base_url and a.port is not None:
        error("--port applies to --local only")
    if a.port is not None and not 1 <= a.port <= 65535:
        error(f"--port must be a number from 1 to 65535 (got {a.port})")
    if a.base_url:
        if not re.match(r"^https?://[^/]+", a.base_url):
            error(f"--base-url must look like http://host[:port] (got {a.base_url!r})")
        a.base_url = a.base_url.rstrip("/")
    if a.metrics_url and not re.match(r"^https?://[^/]+", a.metrics_url):
        error(f"--metrics-url must look like http://host[:port]/path (got {a.metrics_url!r})")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", a.label):
        error(f"--label may hold letters, digits, '.', '_' and '-' only (got {a.label!r})")
    if a.price:
        try:
            prices.parse_price(a.price)
        except ValueError as e:
            error(f"--price: {e}")
    try:
        a.server_words = shlex.split(a.server_args)
    except ValueError as e:
        error(f"--server-args: cannot split {a.server_args!r} like a shell ({e})")
    env: dict[str, str] = {}
    for kv in a.env:
        key, eq, value = kv.partition("=")
        if not eq or not key:
            error(f"-e expects KEY=VAL (got {kv!r})")
        env[key] = value
    for key in ("RATE", "VUS", "PRIME_LIMIT", "HASH_ROUNDS", "IO_KB", "THINK_TIME", "VU_SCALE", "SEED"):
        if key in env:
            try:
                float(env[key])
            except ValueError:
                error(f"-e {key} must be a number (got {env[key]!r})")
    if env.get("IO_SYNC", "fsync") not in ("fsync", "none"):
        error(f"-e IO_SYNC must be fsync or none (got {env['IO_SYNC']!r})")
    if "DURATION" in env and parse_duration(env["DURATION"]) is None:
        error(f"-e DURATION must be a k6 duration like 45s or 2m (got {env['DURATION']!r})")
    if "MIX" in env and (problem := check_mix(env["MIX"])):
        error(f"-e MIX: {problem}")
    return env
