#!/usr/bin/env python3
"""Capacity search: the highest arrival rate a target sustains within an SLO.

Run by `scripts/loadtest.sh --scenario capacity` (which starts the local server, if any, and writes
meta.json); usable alone:

    python3 scripts/capacity.py --k6 .venv/bin/k6 --script k6-tests/constant-rate-test.js \
        --base-url http://127.0.0.1:8000 --out results/capacity-x [--env PRIME_LIMIT=100000 ...]

Each step is a constant-arrival-rate run (open model: requests start on schedule whatever the
latency) of --step-secs x --scale seconds. A step *sustains* its rate when its p99 latency is below
the SLO, its failed requests are below the SLO's error rate, k6 dropped no iteration (it had a VU
for every scheduled request) and it sent at least 90 % of the scheduled requests. The search
doubles the rate from --start-rate until a step breaks the SLO (or --max-rate), then bisects
between the highest sustained and the lowest broken rate until they are within --precision of each
other or --max-steps runs are spent. It prints one line per step and, at the end, one line:

    capacity: 11.5 req/s at p99 812 ms (SLO p99 < 2000 ms, errors < 1 %)

and writes OUT/capacity.json (the result, the bracket and every step), OUT/steps/NN-RATE/ (each
step's summary and raw samples), and OUT/summary.json, summary.md and samples.csv.gz copied from
the step at capacity (so compare.py reads a capacity run like any run). Exit status 0 when a rate
was sustained, 99 when even the lowest rate tried broke the SLO, 108 when the target died.
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

ABORTED = 108


def fmt_rate(r: float) -> str:
    return f"{r:g}"


def step_verdict(summary: dict, rate: float, secs: float, slo_p99: float, slo_err: float) -> dict:
    ha = summary.get("heavy_api") or {}
    metrics = summary.get("metrics") or {}
    lat = (metrics.get("latency_total_ms") or {}).get("values") or {}
    p99 = lat.get("p(99)")
    requests = ha.get("requests") or 0
    err = ha.get("error_rate") or 0.0
    dropped = ha.get("dropped_iterations") or 0
    expected = rate * secs
    reasons = []
    if p99 is None or requests == 0:
        reasons.append("no request was answered")
    elif p99 >= slo_p99:
        reasons.append(f"p99 {p99:.0f} ms >= {slo_p99:g} ms")
    if err >= slo_err:
        reasons.append(f"errors {err * 100:.2f} % >= {slo_err * 100:g} %")
    if dropped > 0:
        reasons.append(f"{dropped} dropped iterations (k6 had no free VU: requests piled up)")
    if requests < 0.9 * expected:
        reasons.append(f"sent {requests} of {expected:.0f} scheduled requests")
    return {
        "rate": rate,
        "p99_ms": p99,
        "p50_ms": lat.get("p(50)"),
        "error_rate": err,
        "dropped_iterations": dropped,
        "requests": requests,
        "throughput_rps": ha.get("throughput_rps"),
        "ok": not reasons,
        "reasons": reasons,
    }


class Search:
    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.out = Path(args.out)
        self.steps: list[dict] = []
        self.secs = max(3, round(args.step_secs * args.scale))
        self.slo_p99 = args.slo_p99_ms
        self.slo_err = args.slo_errors_pct / 100.0

    def run_step(self, rate: float) -> dict:
        n = len(self.steps) + 1
        d = self.out / "steps" / f"{n:02d}-{fmt_rate(rate)}rps"
        d.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.a.k6,
            "run",
            "--quiet",
            "-e",
            f"BASE_URL={self.a.base_url}",
            "-e",
            "DURATION_SCALE=1",
            "-e",
            f"SUMMARY_DIR={d}",
        ]
        for kv in self.a.env:
            cmd += ["-e", kv]
        # The search's own settings come last, so they win over any -e given for the run.
        # Enough VUs ready for every request in flight at the SLO's latency: a step then drops
        # iterations only when requests pile up beyond it, not while k6 starts more VUs.
        pre = math.ceil(rate * max(1.0, self.slo_p99 / 1000.0)) + 2
        cmd += [
            "-e",
            f"RATE={rate:g}",
            "-e",
            f"DURATION={self.secs}s",
            "-e",
            f"PRE_VUS={pre}",
            "-e",
            f"MAX_VUS={max(pre, math.ceil(4 * rate))}",
            "-e",
            f"SLO_P99_MS={self.slo_p99:g}",
            "-e",
            f"SLO_ERRORS={self.slo_err:g}",
            "-e",
            "PROGRESS_EVERY=0",
        ]
        if not self.a.no_samples:
            cmd += ["--out", f"csv={d}/samples.csv.gz"]
        cmd += self.a.k6_arg + [self.a.script]
        env = dict(os.environ, K6_CSV_TIME_FORMAT="unix_milli", K6_WEB_DASHBOARD="false")
        with open(d / "k6.log", "w", encoding="utf-8") as logf:
            logf.write("$ " + " ".join(cmd) + "\n")
            logf.flush()
            try:
                rc = subprocess.run(
                    cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, timeout=self.secs + self.a.timeout
                ).returncode
            except subprocess.TimeoutExpired:
                rc = 124
        summary_path = d / "summary.json"
        if rc == ABORTED or not summary_path.is_file():
            raise RuntimeError(
                f"step {n} at {fmt_rate(rate)} req/s: k6 exited {rc} without a "
                f"usable summary (the target is down?); log: {d / 'k6.log'}"
            )
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        v = step_verdict(summary, rate, self.secs, self.slo_p99, self.slo_err)
        v.update({"step": n, "dir": str(d.relative_to(self.out)), "k6_exit_code": rc})
        self.steps.append(v)
        p99 = "n/a" if v["p99_ms"] is None else f"{v['p99_ms']:.0f} ms"
        what = "sustained" if v["ok"] else "broken: " + "; ".join(v["reasons"])
        print(
            f"[capacity] step {n}: {fmt_rate(rate)} req/s for {self.secs} s: p99 {p99}, "
            f"errors {v['error_rate'] * 100:.2f} %, dropped {v['dropped_iterations']} -> {what}",
            flush=True,
        )
        return v

    def search(self) -> dict:
        lo: dict | None = None  # highest sustained step
        hi: dict | None = None  # lowest broken step
        rate = self.a.start_rate
        # Step up (doubling) until a step breaks the SLO.
        while len(self.steps) < self.a.max_steps:
            v = self.run_step(rate)
            if v["ok"]:
                lo = v
                if rate >= self.a.max_rate:
                    break
                rate = min(rate * 2, self.a.max_rate)
            else:
                hi = v
                break
        # Bisect between the two (or below the start rate when even it broke the SLO).
        while hi is not None and len(self.steps) < self.a.max_steps:
            low_rate = lo["rate"] if lo else 0.0
            if hi["rate"] - low_rate <= max(self.a.precision * max(low_rate, hi["rate"] / 2), 0.05):
                break
            mid = (low_rate + hi["rate"]) / 2
            # Round to a readable rate: two significant digits of the bracket's width.
            step = 10 ** math.floor(math.log10(max(hi["rate"] - low_rate, 1e-9))) / 10
            mid = round(round(mid / step) * step, 6)
            if mid <= low_rate or mid >= hi["rate"]:
                break
            v = self.run_step(mid)
            if v["ok"]:
                lo = v
            else:
                hi = v
        return {"lo": lo, "hi": hi}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--k6", required=True)
    ap.add_argument("--script", required=True, help="k6-tests/constant-rate-test.js")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--out", required=True, help="the run folder")
    ap.add_argument("--env", action="append", default=[], help="KEY=VAL for k6 (repeatable)")
    ap.add_argument("--k6-arg", action="append", default=[], help="an extra k6 run argument")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--slo-p99-ms", type=float, default=2000.0)
    ap.add_argument("--slo-errors-pct", type=float, default=1.0)
    ap.add_argument("--start-rate", type=float, default=2.0)
    ap.add_argument("--max-rate", type=float, default=1000.0)
    ap.add_argument("--step-secs", type=float, default=15.0)
    ap.add_argument("--max-steps", type=int, default=10)
    ap.add_argument("--precision", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=120.0, help="extra seconds per step")
    ap.add_argument("--no-samples", action="store_true")
    a = ap.parse_args(argv)
    for name in ("scale", "slo_p99_ms", "slo_errors_pct", "start_rate", "max_rate", "step_secs", "precision"):
        if not getattr(a, name) > 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if a.max_steps < 1:
        ap.error("--max-steps must be at least 1")
    if a.start_rate > a.max_rate:
        ap.error("--start-rate must not exceed --max-rate")
    for kv in a.env:
        if "=" not in kv:
            ap.error(f"--env expects KEY=VAL, got {kv!r}")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    s = Search(a)
    slo_text = f"SLO p99 < {a.slo_p99_ms:g} ms, errors < {a.slo_errors_pct:g} %"
    print(
        f"[capacity] {slo_text}; steps of {s.secs} s from {a.start_rate:g} req/s (doubling, "
        f"then bisecting to {a.precision * 100:g} %), at most {a.max_steps} steps",
        flush=True,
    )
    started = time.time()
    try:
        found = s.search()
    except RuntimeError as err:
        print(f"[capacity] error: {err}", file=sys.stderr)
        found, rc = None, ABORTED
    lo, hi = (found or {}).get("lo"), (found or {}).get("hi")
    result = {
        "slo": {"p99_ms": a.slo_p99_ms, "errors_pct": a.slo_errors_pct},
        "step_secs": s.secs,
        "precision": a.precision,
        "start_rate": a.start_rate,
        "max_rate": a.max_rate,
        "search_secs": round(time.time() - started, 1),
        "capacity_rps": lo["rate"] if lo else None,
        "p99_ms_at_capacity": lo["p99_ms"] if lo else None,
        "error_rate_at_capacity": lo["error_rate"] if lo else None,
        "throughput_rps_at_capacity": lo["throughput_rps"] if lo else None,
        "broken_rps": hi["rate"] if hi else None,
        "bracket": [lo["rate"] if lo else 0.0, hi["rate"] if hi else None],
        "limited_by_max_rate": bool(lo and not hi),
        "steps": s.steps,
    }
    if found is not None:
        rc = 0 if lo else 99
    result["exit_code"] = rc
    (out / "capacity.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if lo:
        step_dir = out / lo["dir"]
        summary = json.loads((step_dir / "summary.json").read_text(encoding="utf-8"))
        summary.setdefault("heavy_api", {})["capacity"] = {
            k: result[k]
            for k in (
                "capacity_rps",
                "p99_ms_at_capacity",
                "broken_rps",
                "bracket",
                "slo",
                "limited_by_max_rate",
            )
        }
        summary["heavy_api"]["scenario"] = "capacity"
        (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        for f in ("summary.md", "summary.txt", "samples.csv.gz"):
            if (step_dir / f).is_file():
                shutil.copyfile(step_dir / f, out / f)
        more = " or more (--max-rate reached)" if result["limited_by_max_rate"] else ""
        print(f"capacity: {lo['rate']:g} req/s{more} at p99 {lo['p99_ms']:.0f} ms ({slo_text})", flush=True)
    elif found is not None:
        print(
            f"capacity: below {hi['rate']:g} req/s: even the lowest rate tried broke the SLO ({slo_text})",
            flush=True,
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
