"""Capacity search: the highest arrival rate a target holds within an SLO, bracketed to 5 %.

`heavy-lab capacity [OPTIONS]` is `heavy-lab run --scenario capacity [OPTIONS]`: the runner starts
the local server (or checks --base-url), writes meta.json, and calls `run_search` here.

1. **Probe** (a few seconds, closed model: VUs sending back to back): what the target serves flat
   out, and what one request costs it — the server's own CPU per request, from its /metrics
   process CPU (or Server-Timing's cpu_thread) — against what it may use (/heavy/info/: the CPUs
   of its affinity and cgroup quota). The **CPU ceiling** = usable CPUs / CPU-seconds per request.
   The estimate is the lower of the ceiling and the probe's throughput; a target without
   /heavy/info/ (any other server) is estimated from the probe's throughput alone.
2. **Search** around the estimate (heavylab.run.search): bracket, bisect to --precision, confirm
   both ends, within --budget-secs. Each step is a constant-arrival-rate k6 run whose verdict
   (heavylab.analysis.steady) leaves out a warm-up and breaks on a growing queue, not only on the
   SLO.
3. **Result**: one line, e.g.
       capacity: 56 req/s at p99 840 ms = 92 % of this target's CPU ceiling of 61 req/s
       (2 CPUs / 32.6 ms CPU per request)
   or `capacity: between 480 and 700 req/s (search budget spent)`; OUT/capacity.json (the result,
   the ceiling, every step), OUT/probe/ and OUT/steps/NN-RATErps/ (each k6 run), and OUT/summary.json,
   summary.md and samples.csv.gz of the step at capacity, so a capacity run reads like any run.

Exit status 0 when a rate was sustained, 99 when even the lowest rate broke the SLO, 108 when the
target or k6 failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from heavylab.analysis import steady
from heavylab.analysis.ceiling import ceiling_of, fmt_rate, metrics_totals, statement, usable_cpus
from heavylab.results import samples as k6samples
from heavylab.run import search as strategy
from heavylab.run import target

ABORTED = 108
K6_START_SECS = 3.0  # k6's own start and stop around a step, for the budget's arithmetic


# --- options ---------------------------------------------------------------------------------


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The capacity search's options, for the runner's parser (one place declares them)."""
    g = parser.add_argument_group("capacity search (--scenario capacity)")
    g.add_argument(
        "--slo-p99-ms",
        type=float,
        default=2000.0,
        metavar="MS",
        help="SLO: p99 latency below MS (default: 2000)",
    )
    g.add_argument(
        "--slo-errors-pct",
        type=float,
        default=1.0,
        metavar="P",
        help="SLO: failed requests below P percent (default: 1)",
    )
    g.add_argument(
        "--start-rate",
        type=float,
        default=None,
        metavar="R",
        help="skip the estimate: bracket around R req/s (default: calibrated by the probe)",
    )
    g.add_argument(
        "--max-rate",
        type=float,
        default=100000.0,
        metavar="R",
        help="never offer more than R req/s (default: 100000)",
    )
    g.add_argument(
        "--step-secs",
        type=float,
        default=15.0,
        metavar="S",
        help="length of one step before --scale; its first 20 %% (at least 2 s) is warm-up, left out of the verdict (default: 15)",
    )
    g.add_argument(
        "--budget-secs",
        type=float,
        default=300.0,
        metavar="S",
        help="stop searching after S seconds and report the bracket reached (default: 300)",
    )
    g.add_argument(
        "--precision",
        type=float,
        default=0.05,
        metavar="F",
        help="bracket the capacity to within F of it: highest sustained x (1 + F) >= lowest broken (default: 0.05)",
    )
    g.add_argument(
        "--max-steps",
        type=int,
        default=30,
        metavar="N",
        help="at most N steps besides the probe (default: 30)",
    )


def check_search_arguments(args: argparse.Namespace, error) -> None:
    """Calls error(message) for the first bad capacity option."""
    for name in ("slo_p99_ms", "slo_errors_pct", "max_rate", "step_secs", "budget_secs", "precision"):
        if not getattr(args, name) > 0:
            error(f"--{name.replace('_', '-')} must be a positive number (got {getattr(args, name)!r})")
    if args.start_rate is not None and not args.start_rate > 0:
        error(f"--start-rate must be a positive number (got {args.start_rate!r})")
    if args.start_rate is not None and args.start_rate > args.max_rate:
        error("--start-rate must not exceed --max-rate")
    if args.precision >= 1:
        error(f"--precision is a fraction: 0.05 is 5 % (got {args.precision!r})")
    if args.max_steps < 1:
        error(f"--max-steps must be at least 1 (got {args.max_steps})")


def search_options(args: argparse.Namespace) -> dict:
    """The options as meta.json and capacity.json record them (the report's command row)."""
    return {
        k: getattr(args, k)
        for k in (
            "slo_p99_ms",
            "slo_errors_pct",
            "start_rate",
            "max_rate",
            "step_secs",
            "budget_secs",
            "precision",
            "max_steps",
        )
    }


# --- the target's own numbers ----------------------------------------------------------------


def _get(url: str, timeout: float = 5.0) -> str | None:
    """The body of a 200 answer, else None."""
    ok, body = target.get(url, timeout)
    return body if ok else None


def _info(info_url: str | None) -> dict | None:
    text = _get(info_url) if info_url else None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _in_flight(metrics_url: str | None) -> float | None:
    text = _get(metrics_url, 2.0) if metrics_url else None
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("heavy_api_requests_in_flight "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


# --- one k6 run ------------------------------------------------------------------------------


class Steps:
    """Runs the probe and the steps as k6 processes and keeps every step's numbers."""

    def __init__(self, *, k6, script, base_url, out, env, k6_args, args, metrics_url):
        self.k6, self.script, self.base_url, self.out = k6, Path(script), base_url, Path(out)
        self.env, self.k6_args, self.a = list(env), list(k6_args), args
        self.metrics_url = metrics_url
        self.secs = max(4.0, round(args.step_secs * args.scale, 1))
        self.slo_errors = args.slo_errors_pct / 100.0
        self.steps: list[dict] = []
        self.walls: list[float] = []
        self.latency_hint_s = 0.05  # the probe's median latency, for sizing VUs

    def k6_run(
        self, d: Path, extra_env: list[str], secs: float
    ) -> tuple[int, dict | None, k6samples.Samples | None]:
        d.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.k6,
            "run",
            "--quiet",
            "-e",
            f"BASE_URL={self.base_url}",
            "-e",
            "DURATION_SCALE=1",
            "-e",
            f"SUMMARY_DIR={d}",
        ]
        for kv in self.env:
            cmd += ["-e", kv]
        # The search's own settings come last, so they win over any -e given for the run.
        for kv in [*extra_env, "PROGRESS_EVERY=0", "SUMMARY_SCENARIO=capacity", "GRACEFUL_STOP=2s"]:
            cmd += ["-e", kv]
        cmd += ["--out", f"csv={d}/samples.csv.gz", *self.k6_args, str(self.script)]
        env = dict(os.environ, K6_CSV_TIME_FORMAT="unix_milli", K6_WEB_DASHBOARD="false")
        with open(d / "k6.log", "w", encoding="utf-8") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            try:
                rc = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=secs + 120
                ).returncode
            except subprocess.TimeoutExpired:
                rc = 124
        summary = None
        if (d / "summary.json").is_file():
            summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        got = k6samples.read_csv(d / "samples.csv.gz") if (d / "samples.csv.gz").is_file() else None
        return rc, summary, got

    def drain(self) -> None:
        """Lets the target finish the work a broken step left queued before the next step starts."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            n = _in_flight(self.metrics_url)
            if n is None:  # not heavy-api: a short pause instead
                time.sleep(2)
                return
            if n <= 1:  # the scrape itself is a request in flight
                return
            time.sleep(0.25)

    def probe(self, info: dict | None) -> dict:
        """The closed-model probe: throughput flat out, and CPU per request."""
        p = (info or {}).get("server") or {}
        slots = (p.get("workers") or 0) * (p.get("threads") or 0)
        cpus = usable_cpus(info)
        vus = max(4, 2 * slots, math.ceil(4 * (cpus[0] if cpus else 2)))
        secs = max(4.0, round(self.secs / 2, 1))
        before = metrics_totals(_get(self.metrics_url)) if self.metrics_url else None
        print(f"[capacity] probe: {vus} VUs back to back for {secs:g} s", flush=True)
        rc, summary, got = self.k6_run(self.out / "probe", [f"PROBE_VUS={vus}", f"DURATION={secs:g}s"], secs)
        after = metrics_totals(_get(self.metrics_url)) if self.metrics_url else None
        if summary is None or got is None:
            raise RuntimeError(
                f"the probe: k6 exited {rc} without a summary (log: {self.out / 'probe' / 'k6.log'})"
            )
        st = steady.step_stats(got, 0.0, secs, warmup=min(1.0, secs / 4))
        cpu_ms, source = None, None
        if before and after and after["requests"] > before["requests"]:
            cpu_ms = (
                1000 * (after["cpu_secs"] - before["cpu_secs"]) / (after["requests"] - before["requests"])
            )
            source = "the server's process CPU (/metrics) per request"
        elif st.cpu_thread_ms:
            cpu_ms, source = st.cpu_thread_ms, "Server-Timing cpu_thread per request"
        if st.p50_ms:
            self.latency_hint_s = st.p50_ms / 1000
        return {
            "vus": vus,
            "secs": secs,
            "k6_exit_code": rc,
            "throughput_rps": st.served_rps,
            "p50_ms": st.p50_ms,
            "p99_ms": st.p99_ms,
            "error_rate": st.error_rate,
            "cpu_ms_per_request": cpu_ms,
            "cpu_source": source,
            "dir": "probe",
        }

    def step(self, rate: float, phase: str) -> bool:
        n = len(self.steps) + 1
        d = self.out / "steps" / f"{n:02d}-{rate:g}rps"
        # VUs ready for the requests in flight at the probe's latency, and room up to the SLO's:
        # k6 drops a request only when they pile up beyond what the SLO allows.
        pre = math.ceil(rate * max(0.2, 3 * self.latency_hint_s)) + 5
        most = min(5000, max(pre, math.ceil(rate * self.a.slo_p99_ms / 1000) + 5))
        started = time.monotonic()
        rc, summary, got = self.k6_run(
            d,
            [
                f"RATE={rate:g}",
                f"DURATION={self.secs:g}s",
                f"PRE_VUS={pre}",
                f"MAX_VUS={most}",
                f"SLO_P99_MS={self.a.slo_p99_ms:g}",
                f"SLO_ERRORS={self.slo_errors:g}",
            ],
            self.secs,
        )
        if rc == ABORTED or summary is None or got is None:
            raise RuntimeError(
                f"step {n} at {rate:g} req/s: k6 exited {rc} without a usable summary "
                f"(is the target down?); log: {d / 'k6.log'}"
            )
        st = steady.judge(steady.step_stats(got, rate, self.secs), self.a.slo_p99_ms, self.slo_errors)
        ha = summary.get("heavy_api") or {}
        row = {
            "step": n,
            "phase": phase,
            **st.as_dict(),
            "requests": ha.get("requests"),
            "throughput_rps": st.served_rps,
        }
        row.update({"dir": str(d.relative_to(self.out)), "k6_exit_code": rc})
        self.drain()
        row["wall_secs"] = round(time.monotonic() - started, 1)
        self.walls.append(row["wall_secs"])
        self.steps.append(row)
        p99 = "n/a" if st.p99_ms is None else f"{st.p99_ms:.0f} ms"
        p50 = "n/a" if st.p50_ms is None else f"{st.p50_ms:.0f} ms"
        what = "sustained" if st.ok else "broken: " + "; ".join(st.reasons)
        print(
            f"[capacity] step {n} ({phase}): {rate:g} req/s for {self.secs:g} s: served {fmt_rate(st.served_rps or 0)} req/s, "
            f"p50 {p50}, p99 {p99}, errors {st.error_rate * 100:.2f} % -> {what}",
            flush=True,
        )
        return st.ok

    def step_cost(self) -> float:
        return max(self.walls) if self.walls else self.secs + K6_START_SECS


# --- the search ------------------------------------------------------------------------------


def run_search(
    *,
    k6: str,
    script: Path,
    base_url: str,
    out: Path,
    env: list[str],
    k6_args: list[str],
    args: argparse.Namespace,
    samples: bool = True,
    info_url: str | None = None,
    metrics_url: str | None = None,
) -> int:
    """The search against a running target; writes OUT/capacity.json and the step at capacity's
    summary. Returns the exit status (0, 99 or 108)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info_url = info_url if info_url is not None else f"{base_url}/heavy/info/"
    metrics_url = metrics_url if metrics_url is not None else f"{base_url}/metrics"
    if metrics_totals(_get(metrics_url)) is None:
        metrics_url = None  # not heavy-api's /metrics: no process CPU, no drain signal
    steps = Steps(
        k6=k6,
        script=script,
        base_url=base_url,
        out=out,
        env=env,
        k6_args=k6_args,
        args=args,
        metrics_url=metrics_url,
    )
    slo = {"p99_ms": args.slo_p99_ms, "errors_pct": args.slo_errors_pct}
    started = time.monotonic()
    result: dict = {
        "slo": slo,
        "options": search_options(args),
        "step_secs": steps.secs,
        "precision": args.precision,
    }
    result.update({"budget_secs": args.budget_secs, "contradictions": [], "transients": []})
    outcome = None
    rc = ABORTED
    try:
        info = _info(info_url)
        probe = steps.probe(info)
        ceiling = ceiling_of(info, probe)
        candidates = [x for x in (probe.get("throughput_rps"), ceiling and ceiling["rps"]) if x]
        estimate = args.start_rate or (min(candidates) if candidates else 1.0)
        result.update({"probe": probe, "ceiling": ceiling, "estimate_rps": estimate})
        how = "--start-rate" if args.start_rate else "the probe" + (" and the CPU ceiling" if ceiling else "")
        print(
            f"[capacity] estimate {fmt_rate(estimate)} req/s from {how}; steps of {steps.secs:g} s, "
            f"bracket to {args.precision * 100:g} %, budget {args.budget_secs:g} s",
            flush=True,
        )

        def may_run() -> bool:
            spent = time.monotonic() - started
            return len(steps.steps) < args.max_steps and spent + steps.step_cost() <= args.budget_secs

        outcome = strategy.find_capacity(
            steps.step, estimate, precision=args.precision, max_rate=args.max_rate, may_run=may_run
        )
        rc = 0 if outcome.lo is not None else 99
    except RuntimeError as err:
        print(f"[capacity] error: {err}", file=sys.stderr, flush=True)
    result["search_secs"] = round(time.monotonic() - started, 1)
    result["steps"] = steps.steps
    lo = outcome.lo if outcome else None
    hi = outcome.hi if outcome else None
    at = [s for s in steps.steps if s["rate"] == lo]
    result.update(
        {
            "status": outcome.status if outcome else "aborted",
            "confirmed": bool(outcome and outcome.confirmed),
            "capacity_rps": lo,
            "broken_rps": hi,
            "bracket": [lo or 0.0, hi],
            "bracket_width_pct": round(100 * outcome.width, 2)
            if outcome and outcome.width is not None
            else None,
            "precise": bool(outcome and outcome.width is not None and outcome.width <= args.precision),
            "limited_by_max_rate": bool(outcome and outcome.status == "max-rate"),
            # The worst of the runs at capacity: a capacity is quoted at the latency it may have.
            "p50_ms_at_capacity": max((s["p50_ms"] for s in at), default=None),
            "p99_ms_at_capacity": max((s["p99_ms"] for s in at), default=None),
            "error_rate_at_capacity": max((s["error_rate"] for s in at), default=None),
            "throughput_rps_at_capacity": min((s["served_rps"] for s in at if s["served_rps"]), default=None),
        }
    )
    if outcome:
        result["contradictions"] = outcome.contradictions
        result["transients"] = outcome.transients
    ceiling = result.get("ceiling")
    result["headroom_pct"] = round(100 * lo / ceiling["rps"], 1) if lo and ceiling else None
    result["statement"] = statement(result)
    result["exit_code"] = rc
    (out / "capacity.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if at:
        _adopt_step(out, at[-1], result, samples)
    for note in result["contradictions"] + result["transients"]:
        print(f"[capacity] note: {note}", flush=True)
    print(result["statement"], flush=True)
    return rc


def _adopt_step(out: Path, step: dict, result: dict, samples: bool) -> None:
    """The step at capacity becomes the run's summary, so the report reads a capacity run like any
    run; its summary says which search it came from."""
    d = out / step["dir"]
    summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    ha = summary.setdefault("heavy_api", {})
    ha["scenario"] = "capacity"
    ha["capacity"] = {
        k: result[k]
        for k in (
            "capacity_rps",
            "p99_ms_at_capacity",
            "broken_rps",
            "bracket",
            "slo",
            "status",
            "statement",
            "limited_by_max_rate",
        )
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    md = d / "summary.md"
    if md.is_file():
        text = md.read_text(encoding="utf-8")
        head = f"# capacity search: {result['statement']}\n\nThe step at capacity ({step['rate']:g} req/s, step {step['step']}):\n\n"
        (out / "summary.md").write_text(
            head + text.replace("# k6 summary:", "## k6 summary:", 1), encoding="utf-8"
        )
    names = ["summary.txt"] + (["samples.csv.gz"] if samples else [])
    for f in names:
        if (d / f).is_file():
            shutil.copyfile(d / f, out / f)
