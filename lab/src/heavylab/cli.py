"""`heavy-lab`: one command for the whole instrument, a subcommand per job.

Each subcommand is a module with a `main(argv)` that owns its options and its `--help`; this file
only names them, so `heavy-lab --help` is the table of contents and nothing is parsed twice."""

from __future__ import annotations

import importlib
import inspect
import sys

# name -> (module[:function], one line for `heavy-lab --help`), in the order a measurement goes;
# the function is `main` unless named.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("heavylab.run.runner", "run one k6 scenario against a server; keep every artifact"),
    "capacity": ("heavylab.run.runner:capacity_main", "search the highest arrival rate held within an SLO"),
    "platforms": ("heavylab.lab.platforms", "the platform lab: known answers on real containers"),
    "remote": ("heavylab.run.remote", "run k6 on N ECS tasks (execution segments)"),
    "merge": ("heavylab.results.merge", "merge k6 segments' raw samples exactly"),
    "cloudwatch": ("heavylab.results.cloudwatch", "fetch a run window's CloudWatch metrics beside k6's"),
    "compare": ("heavylab.report.compare", "one report over two or more run folders"),
    "report-png": ("heavylab.report.png", "check a report's screenshot shows its charts"),
    "validate": ("heavylab.deploy.validate", "check ECS task/service definitions and CloudFormation"),
    "validate-loadgen": ("heavylab.deploy.validate_loadgen", "check the load generators' ECS files"),
    "dashboard": ("heavylab.deploy.dashboard", "check the Grafana dashboard against a /metrics scrape"),
    "vectors": ("heavylab.deploy.vectors", "check a running server against the API test vectors"),
    "pid1": ("heavylab.deploy.pid1", "the image's command as PID 1: SIGTERM during requests"),
}

BENCHMARKS: dict[str, str] = {
    "balance": "connections per worker when clients connect at once",
    "capacity": "the capacity search repeated on one server: its spread",
    "faults_under_load": "faults (kill, HUP, TTOU) while serving",
    "hardening": "head parsing cost against an older commit",
    "health": "/heavy/health/ against nginx, axum and the original",
    "idle": "idle wake-ups",
    "k6_scenarios": "the k6 scenarios against the original",
    "many_conns": "10,000 connections",
    "ramp": "a ramp of arrival rates against the original",
    "scheduling": "work-conserving scheduling against the original",
    "serve": "the bare kernel against the served request",
    "soak": "memory and descriptors over a long run",
    "throughput": "throughput of the default request",
    "vs_original": "the default request against the original",
}


def _usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = [
        "usage: heavy-lab COMMAND [OPTIONS]   (heavy-lab COMMAND --help for one command's manual)",
        "",
        "The instrument around heavy-api: run load, search capacity, compare platforms, check the",
        "deployment. A measurement goes run -> results -> analysis -> report.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items()]
    lines += [f"  {'bench':<{width}}benchmarks: heavy-lab bench NAME [OPTIONS] (heavy-lab bench --help)"]
    return "\n".join(lines)


def _bench_usage() -> str:
    width = max(map(len, BENCHMARKS)) + 2
    lines = ["usage: heavy-lab bench NAME [OPTIONS]   (results go in docs/benchmarks.md)", "", "benchmarks:"]
    lines += [f"  {name:<{width}}{text}" for name, text in BENCHMARKS.items()]
    return "\n".join(lines)


def _call(target: str, prog: str, argv: list[str]) -> int:
    module_name, _, function = target.partition(":")
    entry = getattr(importlib.import_module(module_name), function or "main")
    # Older modules parse sys.argv themselves; give them this command's words under its name.
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        rc = entry(argv) if inspect.signature(entry).parameters else entry()
    finally:
        sys.argv = saved
    return int(rc or 0)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "bench":
        if not rest or rest[0] in ("-h", "--help"):
            print(_bench_usage())
            return 0 if rest else 2
        bench, rest = rest[0].replace("-", "_"), rest[1:]
        if bench not in BENCHMARKS:
            print(
                f"heavy-lab bench: unknown benchmark {bench!r}; one of: " + ", ".join(BENCHMARKS),
                file=sys.stderr,
            )
            return 2
        return _call(f"heavylab.bench.{bench}", f"heavy-lab bench {bench}", rest)
    if name not in COMMANDS:
        print(
            f"heavy-lab: unknown command {name!r}; one of: {', '.join(COMMANDS)}, bench (heavy-lab --help)",
            file=sys.stderr,
        )
        return 2
    return _call(COMMANDS[name][0], f"heavy-lab {name}", rest)


if __name__ == "__main__":
    sys.exit(main())
