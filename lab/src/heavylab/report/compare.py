#!/usr/bin/env python3
"""Compare two k6 result folders side by side (e.g. ECS on EC2 against Fargate), and say only
what the data supports.

    python3 scripts/compare.py RUN_A RUN_B [--label-a ec2 --label-b fargate]
        [--price-a 0.0971/h] [--price-b fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4]
        [--out DIR] [--force] [--min-effect 0.05]

Each RUN is a folder written by scripts/loadtest.sh (summary.json from the k6 scripts'
handleSummary() or any k6 summary, meta.json, samples.csv.gz, capacity.json for a capacity run),
or a folder of such folders: the runs of one side, alternated with the other side's.

- Runs that did not really run are excluded, each with its reason: k6 aborted (exit 108) or died
  (any exit but 0 and 99), no check ran, or the run is shorter than its scenario's plan.
- Every statistic is the median over a side's runs with its min-max. With one run per side the
  spread is estimated from 5 slices of the run (each slice a fifth of every stage), from its raw
  samples; without samples, +-10 % is assumed and said.
- A difference is a finding only when the two sides' ranges do not overlap and the medians differ
  by more than --min-effect (5 %); otherwise the report says "no difference beyond noise".
- Runs of different scenarios, scales or request parameters are refused unless --force.
- The verdicts are worded from what the two sides' metadata share: the same image (digest, or the
  same binary for local runs) or not, the same CPU model or not (from GET /heavy/info/ when the
  server has it, else the local host's).
- Capacity runs (loadtest.sh --scenario capacity) are compared by capacity and by the cost per
  million requests at capacity.
- The two platforms' fingerprints (GET /heavy/info/ before the run) are shown side by side, and
  when one side is slower beyond noise the server's split of the CPU phase (Server-Timing
  cpu_thread, cpu_wait, throttled, steal) names why: each cause only when it differs beyond noise
  by the same rule, in the slower side's direction.

Writes DIR/comparison.md and a self-contained DIR/comparison.html (inline SVG: bar charts, the
time series of both sides overlaid, a per-stage table; no external assets). Python 3.11 standard
library only.

Prices (cost per million requests = hourly price / (throughput x 3600) x 1e6):
  0.0971/h, 0.0971, $0.0971/hour      an hourly price (an instance); append x3 for 3 of them
  fargate:vcpu=R,gb=R,cpu=N,mem=N     Fargate: R per vCPU-hour and per GB-hour, task size N vCPU and
                                      N GB (cpu >= 64 is read as CPU units, 1024 a vCPU; mem >= 128
                                      as MiB); tasks=N for several tasks
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from heavylab.report.charts import DASHES, SIDE_COLORS, fmt_num, svg_bars, svg_lines  # noqa: F401
from heavylab.results import samples as k6samples

Number = Optional[float]
SLICES = 5
DEFAULT_NOISE = 0.10  # assumed spread of a single run without raw samples
DEFAULT_MIN_EFFECT = 0.05
# Metrics whose heavy-request version (without the health probe of setup()) is preferred.
HEAVY_ALIASES = {
    "http_req_duration": "latency_total_ms",
    "http_reqs": "custom_requests_total",
    "http_req_failed": "http_req_failed{name:cpu-io-no-db}",
}


# --------------------------------------------------------------------------------------------
# Prices


@dataclass
class Price:
    hourly: float
    description: str


def parse_price(spec: str) -> Price:
    """Parse a price specification into an hourly price (see the module docstring)."""
    text = spec.strip()
    low = text.lower().replace("$", "").replace(" ", "")
    if low.startswith("fargate:"):
        fields: dict[str, float] = {}
        for part in low[len("fargate:") :].split(","):
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"bad Fargate price part {part!r} in {spec!r} (want key=value)")
            key, value = part.split("=", 1)
            value = re.sub(r"/(h|hr|hour)$", "", value)
            try:
                fields[key] = float(value)
            except ValueError:
                raise ValueError(f"bad number {value!r} for {key} in {spec!r}") from None
        aliases = {"vcpu_rate": "vcpu", "gb_rate": "gb", "vcpus": "cpu", "memory": "mem", "count": "tasks"}
        for alias, key in aliases.items():
            if alias in fields and key not in fields:
                fields[key] = fields.pop(alias)
        unknown = set(fields) - {"vcpu", "gb", "cpu", "mem", "tasks"}
        if unknown:
            raise ValueError(f"unknown Fargate price keys {sorted(unknown)} in {spec!r}")
        missing = [k for k in ("vcpu", "gb", "cpu", "mem") if k not in fields]
        if missing:
            raise ValueError(f"Fargate price {spec!r} lacks {', '.join(missing)}")
        cpu = fields["cpu"] / 1024 if fields["cpu"] >= 64 else fields["cpu"]
        mem = fields["mem"] / 1024 if fields["mem"] >= 128 else fields["mem"]
        tasks = fields.get("tasks", 1.0)
        hourly = (fields["vcpu"] * cpu + fields["gb"] * mem) * tasks
        desc = (
            f"Fargate {cpu:g} vCPU x {fields['vcpu']:g}/vCPU-h + {mem:g} GB x {fields['gb']:g}/GB-h"
            + (f", {tasks:g} tasks" if tasks != 1 else "")
            + f" = {hourly:.5f}/h"
        )
        return Price(hourly, desc)
    m = re.fullmatch(r"(?:[a-z0-9_.-]+:)?([0-9]*\.?[0-9]+)(?:/(?:h|hr|hour))?(?:[x*]([0-9]+))?", low)
    if not m:
        raise ValueError(f"bad price {spec!r}: use 0.0971/h or fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4")
    count = int(m.group(2)) if m.group(2) else 1
    hourly = float(m.group(1)) * count
    desc = (
        f"{float(m.group(1)):g}/h"
        + (f" x {count}" if count != 1 else "")
        + (f" = {hourly:.5f}/h" if count != 1 else "")
    )
    return Price(hourly, desc)


def cost_per_million(hourly: Number, throughput_rps: Number) -> Number:
    """Price of a million requests served at the measured throughput."""
    if hourly is None or not throughput_rps:
        return None
    return hourly / (throughput_rps * 3600.0) * 1e6


# --------------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    path: Path
    summary: dict
    meta: dict
    label: str = ""
    price: Price | None = None
    metrics: dict = field(default_factory=dict)
    capacity: dict | None = None

    def values(self, name: str) -> dict:
        """A metric's values, from handleSummary() data ({"values": {...}}) or the flat
        --summary-export format. k6's HTTP metrics are read from their heavy-request version
        when the run has it (so the health probe never counts)."""
        alias = HEAVY_ALIASES.get(name)
        m = self.metrics.get(alias) if alias else None
        if not isinstance(m, dict):
            m = self.metrics.get(name)
        if not isinstance(m, dict):
            return {}
        if isinstance(m.get("values"), dict):
            return m["values"]
        return {k: v for k, v in m.items() if not isinstance(v, dict)}

    def stat(self, name: str, key: str) -> Number:
        vals = self.values(name)
        candidates = [key]
        if key in ("p(50)", "med"):
            candidates = ["p(50)", "med"]
        if key == "count" and name in ("http_req_failed",):
            candidates = ["passes"]
        for k in candidates:
            v = vals.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        # The flat export format names a Rate's value "value".
        if key == "rate" and isinstance(vals.get("value"), (int, float)):
            return float(vals["value"])
        return None

    def thresholds(self) -> list[tuple[str, str, bool]]:
        out = []
        for name, m in self.metrics.items():
            if isinstance(m, dict) and isinstance(m.get("thresholds"), dict):
                for expr, res in m["thresholds"].items():
                    ok = res.get("ok") if isinstance(res, dict) else not res
                    out.append((name, expr, bool(ok)))
        return sorted(out)

    def duration_sec(self) -> Number:
        state = self.summary.get("state") or {}
        ms = state.get("testRunDurationMs")
        if isinstance(ms, (int, float)):
            return ms / 1000.0
        ha = self.summary.get("heavy_api") or {}
        return ha.get("test_run_duration_sec")

    @property
    def ha(self) -> dict:
        return self.summary.get("heavy_api") or {}


def _load_single(p: Path) -> Run:
    summary_path = p / "summary.json"
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    meta: dict = {}
    if (p / "meta.json").is_file():
        with open(p / "meta.json", encoding="utf-8") as f:
            meta = json.load(f)
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"{summary_path} has no 'metrics' object (not a k6 summary)")
    capacity = None
    if (p / "capacity.json").is_file():
        with open(p / "capacity.json", encoding="utf-8") as f:
            capacity = json.load(f)
    return Run(path=p, summary=summary, meta=meta, metrics=metrics, capacity=capacity)


def exclusion_reason(run: Run) -> str | None:
    """Why a run must not be counted (None when it is a real run)."""
    rc = run.meta.get("k6_exit_code")
    if run.capacity is not None:
        if run.capacity.get("capacity_rps") is None:
            return "the capacity search found no sustained rate"
        return None
    if rc == 108:
        return "k6 aborted it (exit 108: the target failed the health check or the test was aborted)"
    if isinstance(rc, int) and rc not in (0, 99):
        return f"k6 exited {rc} (not a finished run: 0 or 99)"
    if "checks" in run.metrics:
        checks = run.values("checks")
        if (checks.get("passes") or 0) + (checks.get("fails") or 0) == 0:
            return "no check ran (no request was answered and checked)"
    elif run.ha:  # the project's scripts check every request: no checks metric, no request
        return "no check ran (no request was answered and checked)"
    planned = run.ha.get("planned_duration_sec")
    ran = run.duration_sec()
    if isinstance(planned, (int, float)) and planned > 0 and isinstance(ran, (int, float)):
        if ran < 0.9 * planned:
            return f"it ran {ran:.1f} s of the {planned:g} s its scenario plans"
    return None


def _normalized(run: Run) -> dict:
    """The run's metrics as {name: {"values": {...}, "thresholds": {expr: {"ok": bool}}}}."""
    out = {}
    for name, m in run.metrics.items():
        if not isinstance(m, dict):
            continue
        th = m.get("thresholds") if isinstance(m.get("thresholds"), dict) else {}
        values = (
            m["values"]
            if isinstance(m.get("values"), dict)
            else {k: v for k, v in m.items() if not isinstance(v, dict)}
        )
        out[name] = {
            "values": values,
            # The flat --summary-export format marks a crossed threshold true.
            "thresholds": {
                e: ({"ok": bool(r.get("ok"))} if isinstance(r, dict) else {"ok": not r})
                for e, r in th.items()
            },
        }
    return out


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def merge_runs(path: Path, runs: list[Run]) -> Run:
    """One Run whose every statistic is the median over several runs of the same scenario; a
    threshold passes only if it passed in every run."""
    norm = [_normalized(r) for r in runs]
    metrics: dict = {}
    for name in sorted({n for m in norm for n in m}):
        present = [m[name] for m in norm if name in m]
        keys = {k for m in present for k in m["values"]}
        values = {}
        for k in keys:
            nums = [
                m["values"][k]
                for m in present
                if isinstance(m["values"].get(k), (int, float)) and not isinstance(m["values"].get(k), bool)
            ]
            if nums:
                values[k] = _median([float(x) for x in nums])
        thresholds: dict = {}
        for m in present:
            for expr, res in m["thresholds"].items():
                ok = thresholds.get(expr, {"ok": True})["ok"] and res["ok"]
                thresholds[expr] = {"ok": ok}
        metrics[name] = {"values": values}
        if thresholds:
            metrics[name]["thresholds"] = thresholds
    durations = [r.summary.get("state", {}).get("testRunDurationMs") for r in runs]
    durations = [float(d) for d in durations if isinstance(d, (int, float))]
    summary = {
        "metrics": metrics,
        "state": {"testRunDurationMs": _median(durations)} if durations else {},
        "heavy_api": runs[0].summary.get("heavy_api") or {},
    }
    meta = dict(runs[0].meta)
    meta["runs"] = [str(r.path.name) for r in runs]
    capacity = None
    caps = [r.capacity for r in runs if r.capacity and r.capacity.get("capacity_rps") is not None]
    if caps:
        capacity = dict(caps[0])
        capacity["capacity_rps"] = _median([c["capacity_rps"] for c in caps])
    return Run(path=path, summary=summary, meta=meta, metrics=metrics, capacity=capacity)


# What must be equal between runs (of a side, and of the two sides) for a comparison to mean
# anything: the scenario, its scales and the requests sent.
def workload(run: Run) -> dict:
    """{what: value} of the workload; a value is None when the run's metadata does not say."""
    ha, m = run.ha, run.meta
    out = {
        "scenario": m.get("scenario", ha.get("scenario")),
        "duration scale": m.get("duration_scale", ha.get("duration_scale")),
    }
    if ha:
        rate = ha.get("rate_per_sec") if run.capacity is None else None
        out.update(
            {
                "VU scale": ha.get("vu_scale"),
                "parameters": ha.get("params"),
                "think time": ha.get("think_time_sec"),
                "MIX": ha.get("mix") or "none",
                "SEED": ha.get("seed") if ha.get("mix") else "n/a",
                "io_sync": ha.get("io_sync") or "fsync (server default)",
                "arrival rate": rate if rate is not None else "n/a",
            }
        )
    if run.capacity is not None:
        out["capacity SLO"] = run.capacity.get("slo")
        out["capacity step (s)"] = run.capacity.get("step_secs")
    return out


def workload_differences(a: Run, b: Run) -> list[str]:
    """What differs in the workload of two runs (only what both runs' metadata tell)."""
    wa, wb = workload(a), workload(b)
    out = []
    for k in wa:
        va, vb = wa.get(k), wb.get(k)
        if va is None or vb is None:
            continue
        if json.dumps(va, sort_keys=True) != json.dumps(vb, sort_keys=True):
            out.append(f"{k} ({json.dumps(va)} vs {json.dumps(vb)})")
    return out


def _no_summary_reason(d: Path) -> str:
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    why = meta.get("aborted_before_start")
    if why:
        return str(why)
    rc = meta.get("k6_exit_code")
    return f"k6 wrote no summary.json (exit code {rc})"


@dataclass
class Side:
    path: Path
    runs: list  # the valid runs
    excluded: list  # (folder name, reason)
    merged: Run  # medians over the valid runs (the run itself when there is one)
    label: str = ""
    price: Price | None = None
    _slices: list | None = None

    @property
    def meta(self) -> dict:
        return self.merged.meta


def load_side(path: str | os.PathLike) -> Side:
    """A result folder, or a folder of result folders (the runs of one side)."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{p} is not a result folder")
    runs, excluded = [], []
    if (p / "summary.json").is_file():
        all_runs = [_load_single(p)]
    elif (p / "meta.json").is_file():
        all_runs = []
        excluded.append((p.name, _no_summary_reason(p)))
    else:
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / "summary.json").is_file())
        # Run folders without a summary (the target was down before k6 started, or k6 died)
        # are listed as excluded, with the reason their meta.json gives.
        for d in sorted(
            d
            for d in p.iterdir()
            if d.is_dir() and (d / "meta.json").is_file() and not (d / "summary.json").is_file()
        ):
            excluded.append((d.name, _no_summary_reason(d)))
        if not subs and not excluded:
            raise ValueError(f"{p} has no summary.json (nor sub-folders with one)")
        all_runs = [_load_single(d) for d in subs]
    for r in all_runs:
        why = exclusion_reason(r)
        if why:
            excluded.append((r.path.name, why))
        else:
            runs.append(r)
    if not runs:
        reasons = "; ".join(f"{n}: {w}" for n, w in excluded)
        raise ValueError(f"{p}: no valid run to compare ({reasons})")
    for key in ("scenario", "duration_scale", "label"):
        seen = {json.dumps(r.meta.get(key)) for r in runs}
        if len(seen) > 1:
            raise ValueError(f"{p}: its runs differ in {key} ({', '.join(sorted(seen))})")
    for r in runs[1:]:
        diff = workload_differences(runs[0], r)
        if diff:
            raise ValueError(f"{p}: its runs differ in {'; '.join(diff)}")
    merged = runs[0] if len(runs) == 1 else merge_runs(p, runs)
    return Side(path=p, runs=runs, excluded=excluded, merged=merged)


# --------------------------------------------------------------------------------------------
# Raw samples: slices (the spread of a single run), time series, stages


_SAMPLES_CACHE: dict = {}


def run_samples(run: Run) -> k6samples.Samples | None:
    f = run.path / "samples.csv.gz"
    if not f.is_file():
        f = run.path / "samples.csv"
        if not f.is_file():
            return None
    key = str(f)
    if key not in _SAMPLES_CACHE:
        _SAMPLES_CACHE[key] = k6samples.read_csv(f)
    return _SAMPLES_CACHE[key]


def metric_types(run: Run) -> dict:
    return {
        n: m.get("type")
        for n, m in run.metrics.items()
        if isinstance(m, dict) and isinstance(m.get("type"), str)
    }


def run_origin(run: Run, samples: k6samples.Samples) -> float:
    """t = 0 of a run (ms since the epoch): when its scenario started."""
    t0 = run.ha.get("started_ms")
    if isinstance(t0, (int, float)):
        return float(t0)
    lo, _ = samples.span()
    return lo or 0.0


def run_stages(run: Run, samples: k6samples.Samples) -> list[dict]:
    stages = [s for s in run.ha.get("stages") or [] if s.get("end_sec", 0) > s.get("start_sec", 0)]
    if stages:
        return stages
    t0 = run_origin(run, samples)
    _, hi = samples.span()
    return [{"name": "whole run", "start_sec": 0.0, "end_sec": max(1.0, ((hi or t0) - t0) / 1000)}]


# The metrics the report reads from raw samples.
SAMPLED = (
    "latency_total_ms",
    "custom_requests_total",
    "successful_requests",
    "http_req_failed",
    "server_queue_ms",
    "server_total_ms",
    "server_cpu_ms",
    "server_io_ms",
    "server_cpu_thread_ms",
    "server_cpu_wait_ms",
    "server_fsync_ms",
    "server_throttled_ms",
    "server_steal_ms",
    "custom_cpu_time_ms",
    "custom_io_time_ms",
    "throttled_requests",
    "server_errors",
    "checks",
    "http_req_duration",
    "http_reqs",
    "dropped_iterations",
)


def window_run(run: Run, samples: k6samples.Samples, windows: list, seconds: float) -> Run:
    metrics = k6samples.summarize(samples, metric_types(run), seconds, windows=windows, only=SAMPLED)
    # http_req_failed of heavy requests, under the key the report prefers.
    if "http_req_failed" in metrics:
        metrics[HEAVY_ALIASES["http_req_failed"]] = metrics["http_req_failed"]
    summary = {"metrics": metrics, "state": {"testRunDurationMs": seconds * 1000.0}, "heavy_api": run.ha}
    return Run(
        path=run.path, summary=summary, meta=run.meta, metrics=metrics, label=run.label, price=run.price
    )


def slices(run: Run) -> list[Run] | None:
    """SLICES pseudo-runs of one run: slice k holds the k-th fifth of every stage, so each slice
    sees the whole schedule and the slices differ by time-to-time noise only."""
    samples = run_samples(run)
    if samples is None or run.capacity is not None:
        return None
    t0 = run_origin(run, samples)
    out = []
    stages = run_stages(run, samples)
    for k in range(SLICES):
        windows, seconds = [], 0.0
        for st in stages:
            a, b = float(st["start_sec"]), float(st["end_sec"])
            w = (b - a) / SLICES
            windows.append((t0 + (a + k * w) * 1000.0, t0 + (a + (k + 1) * w) * 1000.0))
            seconds += w
        out.append(window_run(run, samples, windows, seconds))
    return out


# --------------------------------------------------------------------------------------------
# A statistic of a side: median, spread, and where the spread comes from


@dataclass
class Stat:
    value: Number
    lo: Number
    hi: Number
    basis: str  # "runs", "slices", "assumed" or "none"

    def text(self, kind: str) -> str:
        if self.value is None:
            return "n/a"
        v = fmt_value(self.value, kind)
        if self.lo is None or self.hi is None or self.basis == "assumed":
            return v
        if self.basis == "bracket":
            if self.hi is None or math.isinf(self.hi) or kind == "money":
                return v
            return f"{v} (broke at {fmt_value(self.hi + 1e-9, kind)})"
        lo, hi = fmt_value(self.lo, kind), fmt_value(self.hi, kind)
        return v if lo == hi == v else f"{v} ({lo}–{hi})"


def side_stat(side: Side, get: Callable[[Run], Number], noise: float = DEFAULT_NOISE) -> Stat:
    value = get(side.merged)
    if value is None:
        return Stat(None, None, None, "none")
    if len(side.runs) >= 2:
        vals = [v for v in (get(r) for r in side.runs) if v is not None]
        if len(vals) >= 2:
            return Stat(value, min(vals), max(vals), "runs")
    if side._slices is None:
        sl = slices(side.runs[0])
        for r in sl or []:
            r.price = side.price
        side._slices = sl or []
    if side._slices:
        vals = [v for v in (get(r) for r in side._slices) if v is not None]
        if len(vals) >= 2:
            return Stat(value, min(min(vals), value), max(max(vals), value), "slices")
    return Stat(value, value * (1 - noise), value * (1 + noise), "assumed")


def differs(a: Stat, b: Stat, min_effect: float) -> bool:
    """A finding: the ranges do not overlap and the medians differ by more than min_effect."""
    if a.value is None or b.value is None or None in (a.lo, a.hi, b.lo, b.hi):
        return False
    if not (a.hi < b.lo or b.hi < a.lo):  # type: ignore[operator]
        return False
    base = max(abs(a.value), abs(b.value))
    return base > 0 and abs(a.value - b.value) / base > min_effect


# --------------------------------------------------------------------------------------------
# The table


def _sum(*vals: Number) -> Number:
    if any(v is None for v in vals):
        return None
    return float(sum(vals))  # type: ignore[arg-type]


def queue_share(r: Run) -> Number:
    q, s = r.stat("server_queue_ms", "avg"), r.stat("server_total_ms", "avg")
    if q is None or s is None or q + s <= 0:
        return None
    return q / (q + s)


def outside_server(r: Run) -> Number:
    d = r.stat("http_req_duration", "avg")
    inside = _sum(r.stat("server_queue_ms", "avg"), r.stat("server_total_ms", "avg"))
    if d is None or inside is None:
        return None
    return max(0.0, d - inside)


def cost(r: Run) -> Number:
    return cost_per_million(r.price.hourly if r.price else None, r.stat("http_reqs", "rate"))


def capacity_of(r: Run) -> Number:
    c = r.capacity or {}
    v = c.get("capacity_rps")
    return float(v) if isinstance(v, (int, float)) else None


def cost_at_capacity(r: Run) -> Number:
    return cost_per_million(r.price.hourly if r.price else None, capacity_of(r))


def cpu_per_request(r: Run) -> Number:
    """Server-Timing's CPU phase (to the microsecond), else the body's cpu_time_sec (10 ms steps)."""
    v = r.stat("server_cpu_ms", "avg")
    return v if v is not None else r.stat("custom_cpu_time_ms", "avg")


@dataclass
class Row:
    section: str
    label: str
    get: Callable[[Run], Number]
    fmt: str  # "ms", "int", "rate", "pct", "money", "num"
    lower_is_better: bool | None = True


def _s(name: str, key: str) -> Callable[[Run], Number]:
    return lambda r: r.stat(name, key)


# The server's split of the CPU phase (Server-Timing cpu_thread, cpu_wait, throttled, steal).
CPU_THREAD = "cpu_thread avg (CPU the thread got)"
CPU_WAIT = "cpu_wait avg (waiting for a core)"
THROTTLED = "throttled avg (cgroup CFS throttling)"
STEAL = "steal avg (host steal time)"

ROWS: list[Row] = [
    Row("Capacity", "capacity (req/s within the SLO)", capacity_of, "rate", False),
    Row("Capacity", "cost per million requests at capacity", cost_at_capacity, "money"),
    Row("Load", "test duration (s)", lambda r: r.duration_sec(), "num", None),
    Row("Load", "max VUs", _s("vus_max", "max"), "int", None),
    Row("Load", "requests", _s("http_reqs", "count"), "int", None),
    Row("Load", "throughput (req/s)", _s("http_reqs", "rate"), "rate", False),
    Row("Load", "dropped iterations", _s("dropped_iterations", "count"), "int"),
    Row("Latency (ms)", "p50", _s("http_req_duration", "p(50)"), "ms"),
    Row("Latency (ms)", "p90", _s("http_req_duration", "p(90)"), "ms"),
    Row("Latency (ms)", "p95", _s("http_req_duration", "p(95)"), "ms"),
    Row("Latency (ms)", "p99", _s("http_req_duration", "p(99)"), "ms"),
    Row("Latency (ms)", "avg", _s("http_req_duration", "avg"), "ms"),
    Row("Latency (ms)", "max", _s("http_req_duration", "max"), "ms"),
    Row("Errors", "failed requests", _s("http_req_failed", "count"), "int"),
    Row("Errors", "error rate", _s("http_req_failed", "rate"), "pct"),
    Row("Errors", "throttled (429)", _s("throttled_requests", "count"), "int"),
    Row("Errors", "server errors (5xx)", _s("server_errors", "count"), "int"),
    Row("Errors", "checks passed", _s("checks", "rate"), "pct", False),
    Row("Server time (ms)", "queue avg (waiting for a thread)", _s("server_queue_ms", "avg"), "ms"),
    Row("Server time (ms)", "queue p95", _s("server_queue_ms", "p(95)"), "ms"),
    Row("Server time (ms)", "service avg (cpu + io)", _s("server_total_ms", "avg"), "ms"),
    Row("Server time (ms)", "service p95", _s("server_total_ms", "p(95)"), "ms"),
    Row("Server time (ms)", "queue share of server time", queue_share, "pct"),
    Row("Server time (ms)", "outside the server avg (network, LB)", outside_server, "ms"),
    Row("Per request (ms)", "CPU time avg (cpu_time_sec)", _s("custom_cpu_time_ms", "avg"), "ms"),
    Row("Per request (ms)", "CPU time p95", _s("custom_cpu_time_ms", "p(95)"), "ms"),
    Row("Per request (ms)", "CPU time avg (Server-Timing)", _s("server_cpu_ms", "avg"), "ms"),
    Row("Per request (ms)", "IO time avg (io_time_sec)", _s("custom_io_time_ms", "avg"), "ms"),
    Row("Per request (ms)", "IO time avg (Server-Timing)", _s("server_io_ms", "avg"), "ms"),
    Row("Per request (ms)", "fsync avg (inside io)", _s("server_fsync_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", CPU_THREAD, _s("server_cpu_thread_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", CPU_WAIT, _s("server_cpu_wait_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", "cpu_wait p95", _s("server_cpu_wait_ms", "p(95)"), "ms"),
    Row("CPU truth (ms per request)", THROTTLED, _s("server_throttled_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", STEAL, _s("server_steal_ms", "avg"), "ms"),
    Row("Cost", "price per hour", lambda r: r.price.hourly if r.price else None, "money", None),
    Row("Cost", "cost per million requests", cost, "money"),
]


OPTIONAL_ROWS = {
    r.get for r in ROWS if r.section == "CPU truth (ms per request)" or r.label.startswith("fsync")
}


def fmt_value(v: Number, kind: str) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "n/a"
    if kind == "int":
        return f"{v:.0f}"
    if kind == "pct":
        return f"{v * 100:.2f}%"
    if kind == "money":
        return f"{v:.4f}"
    return f"{v:.2f}"


def ratio(a: Number, b: Number) -> Number:
    if a is None or b is None or a == 0:
        return None
    return b / a


def fmt_ratio(r: Number) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def capacity_stat(side: Side) -> Stat:
    """Capacity with the search's bracket: at least the sustained rate, below the broken one."""
    caps = [r.capacity for r in side.runs if r.capacity and r.capacity.get("capacity_rps")]
    if not caps:
        return Stat(None, None, None, "none")
    value = capacity_of(side.merged)
    lo = min(c["capacity_rps"] for c in caps)
    highs = [c.get("broken_rps") for c in caps]
    hi = max(h if isinstance(h, (int, float)) else math.inf for h in highs)
    # The interval is [lo, hi): nudge the top so touching brackets do not count as apart.
    return Stat(value, lo, hi - 1e-9 if hi != math.inf else math.inf, "bracket")


def row_stats(side: Side, row: Row, noise: float) -> Stat:
    if row.get is capacity_of:
        return capacity_stat(side)
    if row.get is cost_at_capacity:
        c = capacity_stat(side)
        price = side.price.hourly if side.price else None
        if c.value is None or price is None:
            return Stat(None, None, None, "none")
        hi_cost = cost_per_million(price, c.lo)
        lo_cost = cost_per_million(price, c.hi) if c.hi not in (None, math.inf) else 0.0
        return Stat(cost_per_million(price, c.value), lo_cost, hi_cost, "bracket")
    if row.section == "Capacity":
        return Stat(None, None, None, "none")
    return side_stat(side, row.get, noise)


def table_rows(
    a: Side, b: Side, noise: float = DEFAULT_NOISE, min_effect: float = DEFAULT_MIN_EFFECT
) -> list[dict]:
    rows = []
    capacity_mode = capacity_of(a.merged) is not None and capacity_of(b.merged) is not None
    for row in ROWS:
        sa, sb = row_stats(a, row, noise), row_stats(b, row, noise)
        if (row.section == "Capacity" or row.get in OPTIONAL_ROWS) and sa.value is None and sb.value is None:
            continue  # runs of servers or scripts without these numbers: no row of n/a
        finding = row.lower_is_better is not None and differs(sa, sb, min_effect)
        if capacity_mode and row.section != "Capacity":
            # Each side's other numbers come from its own step at capacity: different rates.
            finding = False
        rows.append(
            {
                "section": row.section,
                "label": row.label,
                "a": sa.value,
                "b": sb.value,
                "a_stat": sa,
                "b_stat": sb,
                # Rows that are not compared (duration, VUs, request count) show the value alone.
                "a_text": sa.text(row.fmt)
                if row.lower_is_better is not None
                else fmt_value(sa.value, row.fmt),
                "b_text": sb.text(row.fmt)
                if row.lower_is_better is not None
                else fmt_value(sb.value, row.fmt),
                "ratio": ratio(sa.value, sb.value),
                "ratio_text": fmt_ratio(ratio(sa.value, sb.value)),
                "lower_is_better": row.lower_is_better,
                "finding": finding,
                "fmt": row.fmt,
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# The platform under each side: GET /heavy/info/ (when the server has it) or the local host


FINGERPRINT_KEYS = [  # (shown as, key names to look for in the flattened fingerprint)
    ("CPU model", ("cpu_model", "model_name", "cpu_model_name", "processor")),
    ("architecture", ("architecture", "arch", "machine")),
    ("logical CPUs", ("logical_cpus", "cpus_visible", "cpus", "cpu_count", "nproc")),
    ("usable CPUs (affinity)", ("affinity_cpus", "usable_cpus", "cpus_usable", "cpus_allowed", "affinity")),
    ("CPU quota", ("cpu_quota", "cgroup_cpu_quota", "cpu_max", "quota")),
    ("memory limit", ("memory_limit_bytes", "memory_limit", "mem_limit")),
    ("kernel", ("kernel", "kernel_release", "release")),
    ("SHA extensions", ("sha_extensions", "sha_ni")),
    ("hypervisor", ("hypervisor", "dmi_product_name", "product_name")),
    ("machine (DMI)", ("machine",)),
    ("ECS", ("ecs",)),
    ("launch type", ("launch_type", "launchtype")),
    ("availability zone", ("availability_zone", "availabilityzone", "az")),
    ("task size", ("task_size",)),
    ("platform version", ("platform_version", "platformversion")),
    ("image digest", ("image_digest", "imagedigest", "image_id", "imageid", "binary_sha256")),
    ("image", ("image", "image_name")),
    ("ECS cluster", ("cluster",)),
    ("task definition", ("task_definition",)),
    ("server version", ("version", "server_version", "build_version")),
    ("workers x threads", ("workers_x_threads",)),
]
# In GET /heavy/info/'s "platform", null means "none" (no quota, no limit), not "unknown".
INFO_NULL_MEANS = {"cpu_quota": "none", "memory_limit_bytes": "none", "ecs": "not on ECS"}


def _flatten(obj, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = re.sub(r"[^a-z0-9]+", "_", str(k).lower()).strip("_")
            if isinstance(v, (dict, list)):
                _flatten(v, key, out)
            elif v is not None and v != "":
                out.setdefault(key, v)
    elif isinstance(obj, list):
        for v in obj:
            _flatten(v, prefix, out)
    return out


def _fmt_bytes(v) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= size:
            return f"{v // size:.0f} {unit}" if v % size == 0 else f"{v / size:.2f} {unit}"
    return f"{v:.0f} B"


def _info_view(info: dict) -> dict:
    """GET /heavy/info/ ({"server": {...}, "platform": {...}}) made readable before flattening:
    nulls that mean "none", bytes in GiB, yes/no, the ECS task size and definition in one value."""
    plat = dict(info.get("platform") or {})
    server = dict(info.get("server") or {})
    for key, text in INFO_NULL_MEANS.items():
        if key in plat and plat[key] is None:
            plat[key] = text
    quota = plat.get("cpu_quota")
    if isinstance(quota, (int, float)) and not isinstance(quota, bool):
        plat["cpu_quota"] = f"{quota:g} CPUs"
    if isinstance(plat.get("memory_limit_bytes"), (int, float)):
        plat["memory_limit_bytes"] = _fmt_bytes(plat["memory_limit_bytes"])
    if isinstance(plat.get("sha_extensions"), bool):
        plat["sha_extensions"] = "yes" if plat["sha_extensions"] else "no"
    ecs = plat.get("ecs")
    if isinstance(ecs, dict):
        ecs = dict(ecs)
        if ecs.get("task_cpu") is not None or ecs.get("task_memory_mib") is not None:
            ecs["task_size"] = f"{ecs.get('task_cpu', '?')} CPU units, {ecs.get('task_memory_mib', '?')} MiB"
        if ecs.get("family"):
            ecs["task_definition"] = f"{ecs['family']}:{ecs.get('revision', '?')}"
        plat["ecs"] = ecs
    if server.get("workers") is not None:
        server["workers_x_threads"] = f"{server['workers']} x {server.get('threads', '?')}"
    return {"platform": plat, "server": server}


def _info_of(meta: dict) -> dict | None:
    info = meta.get("server_info_before") or meta.get("server_info_after")
    return info if isinstance(info, dict) and info else None


def fingerprint(side: Side) -> dict:
    """What is known of the platform that served a side: {shown name: value}."""
    m = side.meta
    source = _info_of(m)
    origin = "GET /heavy/info/"
    local = m.get("local_server_fingerprint") if m.get("local_server") else None
    if source is None:
        source = local
        origin = "the local host (server run by loadtest.sh --local)"
    if not isinstance(source, dict) or not source:
        return {}
    if isinstance(source.get("platform"), dict):
        source = _info_view(source)
        # A local server has no image: its binary's hash stands in for the digest.
        if (
            isinstance(local, dict)
            and local.get("binary_sha256")
            and not _flatten(source).get("image_digest")
        ):
            source["local"] = {"binary_sha256": local["binary_sha256"]}
    flat = _flatten(source)
    out = {"source": origin}
    for shown, keys in FINGERPRINT_KEYS:
        for k in keys:
            if k in flat:
                out[shown] = str(flat[k])
                break
    return out


def fingerprint_changes(side: Side) -> list[str]:
    """What changed in a run's platform between the fingerprint before and the one after (a task
    replaced, a different host behind the same URL)."""
    out = []
    for r in side.runs:
        before, after = r.meta.get("server_info_before"), r.meta.get("server_info_after")
        if not (isinstance(before, dict) and isinstance(after, dict)):
            continue
        if "platform" not in before or "platform" not in after:
            continue
        fb, fa = _flatten(_info_view(before)), _flatten(_info_view(after))
        changed = [
            k
            for k in ("cpu_model", "task_arn", "availability_zone", "image_digest", "kernel", "hypervisor")
            if fb.get(k) != fa.get(k)
        ]
        if changed:
            out.append(
                f"{side.label}: run {r.path.name}: the platform changed during the run "
                f"({', '.join(f'{k} {fb.get(k)!r} -> {fa.get(k)!r}' for k in changed)}): "
                "another task or host answered after the run than before it."
            )
    return out


def _same(fa: dict, fb: dict, key: str) -> bool | None:
    if key not in fa or key not in fb:
        return None
    return fa[key] == fb[key]


def platform_sentences(a: Side, b: Side) -> tuple[list[str], dict]:
    """What the two sides' metadata share, worded as facts, and the flags the verdicts use."""
    fa, fb = fingerprint(a), fingerprint(b)
    la, lb = a.label, b.label
    notes = []
    same_image = _same(fa, fb, "image digest")
    if same_image is True:
        notes.append(
            f"Same image on both sides ({fa['image digest'][:19]}…): a difference is the "
            "platform's, not the code's."
        )
    elif same_image is False:
        notes.append(
            f"**Different images** ({la}: {fa['image digest'][:19]}…, {lb}: "
            f"{fb['image digest'][:19]}…): a difference may come from the code as much as "
            "from the platform."
        )
    else:
        notes.append(
            "Whether both sides ran the same image is unknown (no image digest in at "
            "least one side's metadata: the server has no /heavy/info/ and was not run "
            "locally)."
        )
    same_cpu = _same(fa, fb, "CPU model")
    if same_cpu is True:
        notes.append(f"Same CPU model on both sides ({fa['CPU model']}).")
    elif same_cpu is False:
        notes.append(f"**Different CPU models**: {la} {fa['CPU model']}, {lb} {fb['CPU model']}.")
    else:
        notes.append("The CPU models are unknown for at least one side.")
    fa_args, fb_args = a.meta.get("server_args"), b.meta.get("server_args")
    if a.meta.get("local_server") and b.meta.get("local_server") and (fa_args or "") != (fb_args or ""):
        notes.append(
            f"**Different server flags**: {la} `{fa_args or '(defaults: 4x2)'}`, {lb} "
            f"`{fb_args or '(defaults: 4x2)'}`."
        )
    same_target = a.meta.get("base_url") == b.meta.get("base_url") and not (
        a.meta.get("local_server") or b.meta.get("local_server")
    )
    if same_target:
        notes.append(f"Both sides tested the same URL ({a.meta.get('base_url')}).")
    return notes, {"same_image": same_image, "same_cpu": same_cpu}


# --------------------------------------------------------------------------------------------
# Verdicts


def _row(rows: list[dict], label: str) -> dict | None:
    return next((r for r in rows if r["label"] == label), None)


def _better(row: dict, la: str, lb: str) -> str | None:
    """The label of the side that is better in a row with a finding."""
    if not row or not row["finding"] or row["a"] is None or row["b"] is None:
        return None
    b_lower = row["b"] < row["a"]
    return lb if b_lower == bool(row["lower_is_better"]) else la


def spread_note(a: Side, b: Side) -> str:
    def basis(s: Side) -> str:
        if s.runs and s.runs[0].capacity is not None:
            return (
                f"{len(s.runs)} capacity search(es): the bracket between the highest sustained "
                "and the lowest broken rate"
            )
        if len(s.runs) >= 2:
            return f"min–max over {len(s.runs)} runs"
        if s._slices:
            return f"one run: min–max over {SLICES} slices of it (each a fifth of every stage)"
        return "one run without raw samples: ±10 % assumed"

    return f"Spread: {a.label}: {basis(a)}; {b.label}: {basis(b)}."


def verdicts(a: Side, b: Side, rows: list[dict], min_effect: float) -> list[str]:
    la, lb = a.label, b.label
    notes: list[str] = []
    platform, flags = platform_sentences(a, b)
    wins: dict = {la: [], lb: []}

    cap = _row(rows, "capacity (req/s within the SLO)")
    if cap and cap["a"] is not None and cap["b"] is not None:
        slo = (a.runs[0].capacity or {}).get("slo") or {}
        slo_text = f"SLO p99 < {slo.get('p99_ms', 2000):g} ms, errors < {slo.get('errors_pct', 1):g} %"
        faster = _better(cap, la, lb)
        if faster:
            hi_side, lo_side = (cap["a"], cap["b"]) if faster == la else (cap["b"], cap["a"])
            notes.append(
                f"**Capacity**: {la} {cap['a_text']} req/s, {lb} {cap['b_text']} req/s "
                f"({slo_text}): **{faster} sustains {hi_side / lo_side:.2f}x the rate**, "
                "beyond the search's resolution."
            )
            wins[faster].append("capacity")
        else:
            notes.append(
                f"**Capacity**: {la} {cap['a_text']} req/s, {lb} {cap['b_text']} req/s "
                f"({slo_text}): no difference beyond the search's resolution."
            )
        cc = _row(rows, "cost per million requests at capacity")
        if cc and cc["a"] is not None and cc["b"] is not None:
            cheaper = la if cc["a"] < cc["b"] else lb
            verdict = (
                f"{cheaper} is cheaper at capacity"
                if cc["finding"]
                else "no difference beyond the search's resolution"
            )
            notes.append(
                f"**Cost per million requests at capacity**: {la} {cc['a_text']}, {lb} "
                f"{cc['b_text']}: {verdict}."
            )
        elif a.price is None or b.price is None:
            notes.append("Cost at capacity: give --price-a and --price-b (or --price to loadtest.sh).")

    if cap and cap["a"] is not None and cap["b"] is not None:
        notes.append(
            "The other numbers describe each side's step at its own capacity (different "
            "arrival rates), so they are shown but not read as findings."
        )
        return _overall(wins, la, lb) + notes + platform + [spread_note(a, b)]

    lat = [_row(rows, k) for k in ("p50", "p95", "p99")]
    lat = [r for r in lat if r and r["a"] is not None and r["b"] is not None]
    found = [r for r in lat if r["finding"]]
    if lat:
        detail = ", ".join(f"{r['label']} {r['a_text']} vs {r['b_text']} ms" for r in lat)
        if found:
            sides = {_better(r, la, lb) for r in found}
            if len(sides) == 1:
                faster = sides.pop()
                slower = lb if faster == la else la
                notes.append(
                    f"**Latency**: {slower} is slower ({la} vs {lb}: {detail}); beyond "
                    f"noise in {', '.join(r['label'] for r in found)}."
                )
                wins[faster].append("latency")
                slowest = next((r for r in found if r["label"] == "p95"), found[0])
                why = cpu_truth(a, b, rows, slower, slowest)
                if why:
                    notes.append(why)
            else:
                notes.append(f"**Latency**: mixed ({detail}): neither side is faster at every percentile.")
        else:
            notes.append(f"**Latency**: no difference beyond noise ({la} vs {lb}: {detail}).")
        if not found or len({_better(r, la, lb) for r in found}) > 1:
            split = cpu_truth(a, b, rows, None, None)
            if split:
                notes.append(split)

    thr = _row(rows, "throughput (req/s)")
    if thr and thr["a"] is not None and thr["b"] is not None:
        if thr["finding"]:
            more = _better(thr, la, lb)
            notes.append(
                f"**Throughput**: {more} served more ({la} {thr['a_text']}, {lb} {thr['b_text']} req/s)."
            )
            wins[more].append("throughput")
        else:
            notes.append(
                f"**Throughput**: no difference beyond noise ({la} {thr['a_text']}, {lb} "
                f"{thr['b_text']} req/s)"
                + ("; with a fixed load (VUs or arrival rate) it follows the offered load" if not cap else "")
                + "."
            )

    err = _row(rows, "error rate")
    if err and err["a"] is not None and err["b"] is not None and (err["a"] or err["b"]):
        if err["finding"]:
            notes.append(
                f"**Errors**: {la} {err['a_text']}, {lb} {err['b_text']}: "
                f"{_better(err, la, lb)} fails less; latency and throughput of a side "
                "with failures understate its real cost."
            )
        else:
            notes.append(
                f"**Errors**: {la} {err['a_text']}, {lb} {err['b_text']}: no difference beyond noise."
            )

    q, sv = _row(rows, "queue avg (waiting for a thread)"), _row(rows, "service avg (cpu + io)")
    if q and sv and None not in (q["a"], q["b"], sv["a"], sv["b"]):
        dq, ds = q["b"] - q["a"], sv["b"] - sv["a"]
        if q["finding"] and (not sv["finding"] or abs(dq) > abs(ds)):
            notes.append(
                f"**Queue vs service**: the difference is mostly queueing ({dq:+.1f} ms "
                f"avg queue vs {ds:+.1f} ms service, {lb} minus {la}): one side is "
                "saturated — more requests than handler threads and cores — rather than "
                "slower per request; add tasks or capacity there."
            )
        elif sv["finding"]:
            notes.append(
                f"**Queue vs service**: the difference is mostly service time ({ds:+.1f} "
                f"ms avg vs {dq:+.1f} ms queue, {lb} minus {la}): the work itself runs "
                "slower on one side (slower or shared CPU, slower storage), not just "
                "waiting."
            )
        else:
            notes.append("**Queue vs service**: no difference beyond noise in either.")
    elif q is not None:
        notes.append("Queue vs service time: n/a (no Server-Timing in at least one side).")

    cpu_rows = [_row(rows, "CPU time avg (Server-Timing)"), _row(rows, "CPU time avg (cpu_time_sec)")]
    cpu = next((r for r in cpu_rows if r and r["a"] is not None and r["b"] is not None), None)
    if cpu:
        if cpu["finding"]:
            slow = lb if cpu["b"] > cpu["a"] else la
            rc = max(cpu["a"], cpu["b"]) / min(cpu["a"], cpu["b"]) if min(cpu["a"], cpu["b"]) else 0
            if flags["same_cpu"] is False:
                why = (
                    "the two sides run different CPU models, so per-core speed differs "
                    "(compare at equal concurrency before blaming sharing or throttling)"
                )
            elif flags["same_cpu"] is True:
                why = (
                    "with the same CPU model, the difference is sharing (steal from "
                    "neighbours), throttling to the task's CPU share, or more requests at once "
                    "than cores"
                )
            else:
                why = (
                    "the CPU models are unknown, so this may be a slower processor, sharing, "
                    "throttling, or more requests at once than cores"
                )
            split = [_row(rows, k) for k in (CPU_THREAD, CPU_WAIT)]
            if all(r and r["a"] is not None and r["b"] is not None for r in split):
                why = (
                    "the server measured where it went: "
                    + ", ".join(
                        f"{r['label'].split(' avg')[0]} {r['a_text']} vs {r['b_text']}" for r in split
                    )
                    + " ms (the CPU split names the cause)"
                )
                if flags["same_cpu"] is False:
                    why += "; the CPU models differ"
            if flags["same_image"] is False:
                why += "; the images differ too, so the code may differ"
            notes.append(
                f"**CPU time per request** is {rc:.2f}x on {slow} ({la} {cpu['a_text']}, "
                f"{lb} {cpu['b_text']} ms): {why}."
            )
        else:
            notes.append(
                f"**CPU time per request**: no difference beyond noise ({la} "
                f"{cpu['a_text']}, {lb} {cpu['b_text']} ms)."
            )

    ct = _row(rows, "cost per million requests")
    if ct and ct["a"] is not None and ct["b"] is not None and not cap:
        cheaper = la if ct["a"] < ct["b"] else lb
        tail = f"{cheaper} is cheaper at the load tested" if ct["finding"] else "no difference beyond noise"
        notes.append(
            f"**Cost per million requests** at the load tested: {la} {ct['a_text']}, {lb} "
            f"{ct['b_text']}: {tail} (with a fixed load the throughput follows the offered "
            "load; the capacity scenario gives the cost at capacity)."
        )
    elif ct and not cap and (a.price is None or b.price is None):
        notes.append(
            "Cost: give --price-a and --price-b (or --price to loadtest.sh) to compare "
            "cost per million requests."
        )

    return _overall(wins, la, lb) + notes + platform + [spread_note(a, b)]


# The causes the server measures, in the order they are named: (row, what a higher value on the
# slower side means).
CAUSES = [
    (
        THROTTLED,
        "it was throttled to its CPU quota (throttled up: the cgroup's CFS quota ran out within a period)",
    ),
    (STEAL, "it lost time to steal (steal up: the hypervisor ran other guests on its vCPUs)"),
    (
        CPU_THREAD,
        "its requests got slower CPU (cpu_thread per request up: the same work took more "
        "CPU time, a slower or shared core)",
    ),
    (
        CPU_WAIT,
        "its requests waited for a core (cpu_wait up: more runnable threads than the CPUs it may use)",
    ),
]


def cpu_truth(a: Side, b: Side, rows: list[dict], slower: str | None, lat_row: dict | None) -> str | None:
    """Why one side is slower, from the server's own split of the CPU phase: each cause named only
    when its row differs beyond noise (the report's rule) and in the slower side's direction."""
    la, lb = a.label, b.label
    present = [
        (r, what)
        for r, what in ((_row(rows, k), w) for k, w in CAUSES)
        if r and r["a"] is not None and r["b"] is not None
    ]
    if not present:
        return None

    def delta(r: dict, side: str) -> float:
        return (r["b"] - r["a"]) if side == lb else (r["a"] - r["b"])

    def amount(r: dict, side: str) -> str:
        if r["label"] == CPU_THREAD and min(r["a"], r["b"]) > 0:
            hi, lo = (r["b"], r["a"]) if side == lb else (r["a"], r["b"])
            return f"{hi / lo:.2f}x, {la} {r['a_text']} vs {lb} {r['b_text']} ms"
        return f"{delta(r, side):+.1f} ms per request avg, {la} {r['a_text']} vs {lb} {r['b_text']}"

    found = [(r, what) for r, what in present if r["finding"]]
    if slower is not None and lat_row is not None:
        causes = [(r, what) for r, what in found if delta(r, slower) > 0]
        pct = lat_row["label"]
        if causes:
            named = {r["label"] for r, _ in causes}
            parts = []
            for r, what in causes:
                if r["label"] == CPU_WAIT and named & {THROTTLED, STEAL}:
                    what += ", which includes the throttled or stolen time: a thread that may not run waits"
                parts.append(f"{what} — {amount(r, slower)}")
            return (
                f"**Why {pct} is higher on {slower}** (the server's CPU split, beyond noise): "
                + "; ".join(parts)
                + "."
            )
        order = [CPU_THREAD, CPU_WAIT, THROTTLED, STEAL]
        names = ", ".join(
            r["label"].split(" avg")[0] for r, _ in sorted(present, key=lambda x: order.index(x[0]["label"]))
        )
        other = [r for r, _ in found]
        tail = (
            "; "
            + ", ".join(
                f"{r['label'].split(' avg')[0]} is higher on {lb if r['b'] > r['a'] else la}" for r in other
            )
            if other
            else ""
        )
        return (
            f"**Why {pct} is higher on {slower}**: not the CPU phase — {names} show no "
            f"difference beyond noise in {slower}'s direction{tail}; look at the queue, "
            "I/O (fsync) and the network."
        )
    if found:
        return (
            "**CPU split**: "
            + "; ".join(
                f"{r['label'].split(' avg')[0]} is higher on {lb if r['b'] > r['a'] else la} "
                f"({la} {r['a_text']}, {lb} {r['b_text']} ms)"
                for r, _ in found
            )
            + ", beyond noise, without a latency difference beyond noise."
        )
    return "**CPU split**: cpu_thread, cpu_wait, throttled and steal show no difference beyond noise."


def _overall(wins: dict, la: str, lb: str) -> list[str]:
    if wins[la] and not wins[lb]:
        overall = f"**Overall: {la} is faster** ({', '.join(wins[la])}, beyond noise)."
    elif wins[lb] and not wins[la]:
        overall = f"**Overall: {lb} is faster** ({', '.join(wins[lb])}, beyond noise)."
    elif wins[la] and wins[lb]:
        overall = (
            f"**Overall: mixed**: {la} is better in {', '.join(wins[la])}, {lb} in {', '.join(wins[lb])}."
        )
    else:
        overall = "**Overall: no difference beyond noise** in capacity, latency or throughput."
    return [overall]


# --------------------------------------------------------------------------------------------
# Time series and stages, from the raw samples

SERIES_METRICS = (
    "latency_total_ms",
    "custom_requests_total",
    "http_req_failed",
    "server_queue_ms",
    "server_total_ms",
    "server_cpu_ms",
    "custom_cpu_time_ms",
)


def _nice_step(raw: float) -> float:
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if raw <= s:
            return float(s)
    return 3600.0 * math.ceil(raw / 3600.0)


def side_span(side: Side) -> float:
    spans = []
    for r in side.runs:
        s = run_samples(r)
        if s is None:
            continue
        t0 = run_origin(r, s)
        _, hi = s.span()
        planned = r.ha.get("planned_duration_sec")
        # The schedule's length (the graceful stop after it is left out of the charts).
        spans.append(float(planned) if planned else ((hi or t0) - t0) / 1000.0)
    return max(spans) if spans else 0.0


def time_series(side: Side, bin_s: float) -> dict | None:
    """Per time bin (seconds since the scenario started), pooled over the side's runs: latency
    p50/p95/p99, throughput, error rate, queue and service time, CPU time per request."""
    bins: dict = {}
    n_runs = 0
    for r in side.runs:
        s = run_samples(r)
        if s is None:
            continue
        n_runs += 1
        t0 = run_origin(r, s)
        for metric in SERIES_METRICS:
            for t, v, tag in zip(
                s.times.get(metric, []), s.values.get(metric, []), s.tags.get(metric, []), strict=False
            ):
                if metric == "http_req_failed" and tag.get("name") != k6samples.HEAVY_TAG:
                    continue
                i = int((t - t0) / 1000.0 // bin_s)
                if i < 0:
                    continue
                bins.setdefault(i, {}).setdefault(metric, []).append(v)
    if not n_runs or not bins:
        return None
    planned = max((float(r.ha.get("planned_duration_sec") or 0) for r in side.runs), default=0.0)
    out: dict = {k: [] for k in ("p50", "p95", "p99", "rps", "err", "queue", "service", "cpu")}
    for i in sorted(bins):
        if planned > 0 and i * bin_s >= planned:
            continue  # the graceful stop after the schedule: partial, not part of the plan
        x = (i + 0.5) * bin_s
        b = bins[i]
        lat = sorted(b.get("latency_total_ms", []))
        if lat:
            out["p50"].append((x, k6samples.percentile(lat, 0.50)))
            out["p95"].append((x, k6samples.percentile(lat, 0.95)))
            out["p99"].append((x, k6samples.percentile(lat, 0.99)))
        out["rps"].append((x, math.fsum(b.get("custom_requests_total", [])) / (bin_s * n_runs)))
        failed = b.get("http_req_failed", [])
        if failed:
            out["err"].append((x, 100.0 * sum(1 for v in failed if v) / len(failed)))
        for key, metric in (("queue", "server_queue_ms"), ("service", "server_total_ms")):
            vals = b.get(metric, [])
            if vals:
                out[key].append((x, math.fsum(vals) / len(vals)))
        cpu = b.get("server_cpu_ms") or b.get("custom_cpu_time_ms") or []
        if cpu:
            out["cpu"].append((x, math.fsum(cpu) / len(cpu)))
    return out


def stage_table(side: Side) -> list[dict]:
    """Per stage of the scenario: the median over the side's runs of each stage's numbers."""
    per_stage: dict = {}
    names: list = []
    for r in side.runs:
        s = run_samples(r)
        if s is None or r.capacity is not None:
            continue
        t0 = run_origin(r, s)
        for st in run_stages(r, s):
            a, b = float(st["start_sec"]), float(st["end_sec"])
            w = window_run(r, s, [(t0 + a * 1000, t0 + b * 1000)], b - a)
            vals = {
                "requests": w.stat("http_reqs", "count"),
                "rps": w.stat("http_reqs", "rate"),
                "p50": w.stat("http_req_duration", "p(50)"),
                "p95": w.stat("http_req_duration", "p(95)"),
                "p99": w.stat("http_req_duration", "p(99)"),
                "err": w.stat("http_req_failed", "rate"),
                "queue": w.stat("server_queue_ms", "avg"),
                "service": w.stat("server_total_ms", "avg"),
                "cpu": cpu_per_request(w),
            }
            key = (st.get("name"), a, b)
            if key not in per_stage:
                names.append(key)
            per_stage.setdefault(key, []).append(vals)
    out = []
    for key in names:
        runs = per_stage[key]
        med = {}
        for k in runs[0]:
            xs = [v[k] for v in runs if v[k] is not None]
            med[k] = _median(xs) if xs else None
        out.append({"name": key[0], "start": key[1], "end": key[2], **med})
    return out


def series_charts(a: Side, b: Side) -> list[str]:
    span = max(side_span(a), side_span(b))
    if span <= 0:
        return []
    bin_s = _nice_step(span / 60.0)
    sa, sb = time_series(a, bin_s), time_series(b, bin_s)
    if sa is None and sb is None:
        return []
    stage_marks = []
    ref = a if sa is not None else b
    r0 = ref.runs[0]
    s0 = run_samples(r0)
    if s0 is not None:
        stage_marks = [(float(st["start_sec"]), str(st.get("name"))) for st in run_stages(r0, s0)]
    sides = [(a.label, SIDE_COLORS[0], sa), (b.label, SIDE_COLORS[1], sb)]
    charts = []

    def lines(keys: list[tuple[str, str]]) -> list:
        out = []
        for label, color, data in sides:
            if data is None:
                continue
            for key, what in keys:
                out.append((f"{label} {what}".strip(), color, DASHES.get(key, ""), data[key]))
        return out

    every = f" (per {fmt_num(bin_s)} s)"
    charts.append(
        svg_lines(
            "Latency over time: p50, p95, p99" + every,
            "latency (ms)",
            lines([("p50", "p50"), ("p95", "p95"), ("p99", "p99")]),
            span,
            stage_marks,
        )
    )
    charts.append(
        svg_lines(
            "Throughput over time" + every,
            "requests per second",
            [(lab, col, "", d["rps"]) for lab, col, d in sides if d],
            span,
            stage_marks,
        )
    )
    charts.append(
        svg_lines(
            "Error rate over time" + every,
            "failed requests (%)",
            [(lab, col, "", d["err"]) for lab, col, d in sides if d],
            span,
            stage_marks,
        )
    )
    charts.append(
        svg_lines(
            "Queue vs service time over time (avg)" + every,
            "time (ms)",
            lines([("queue", "queue"), ("service", "service")]),
            span,
            stage_marks,
        )
    )
    charts.append(
        svg_lines(
            "CPU time per request over time (avg)" + every,
            "CPU time (ms)",
            [(lab, col, "", d["cpu"]) for lab, col, d in sides if d],
            span,
            stage_marks,
        )
    )
    return charts


# --------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def run_command(side: Side) -> str:
    """The loadtest.sh command that produced a side's runs (from meta.json)."""
    m = side.runs[0].meta
    if not m:
        return "n/a (no meta.json)"
    cmd = ["scripts/loadtest.sh", "--scenario", str(m.get("scenario", "?"))]
    if m.get("duration_scale") not in (None, 1, 1.0):
        cmd += ["--scale", f"{m['duration_scale']:g}"]
    if m.get("segments") and m["segments"] > 1:
        cmd += ["--segments", str(m["segments"])]
    if m.get("local_server"):
        if m.get("server_args"):
            cmd += ["--server-args", m["server_args"]]
    else:
        cmd += ["--base-url", str(m.get("base_url"))]
    for kv in m.get("k6_env") or []:
        cmd += ["-e", kv]
    if m.get("label"):
        cmd += ["--label", m["label"]]
    if m.get("price"):
        cmd += ["--price", m["price"]]
    text = " ".join(shlex.quote(c) for c in cmd)
    return text + (f"   (x{len(side.runs)} runs)" if len(side.runs) > 1 else "")


def run_facts(side: Side) -> list[tuple[str, str]]:
    r = side.merged
    m = r.meta
    th = r.thresholds()
    passed = (
        "n/a"
        if not th
        else (
            "all passed"
            if all(ok for _, _, ok in th)
            else "FAILED: " + ", ".join(f"{n} {e}" for n, e, ok in th if not ok)
        )
    )
    ha = r.ha
    params = ha.get("params") or {}
    param_text = ", ".join(f"{k}={v}" for k, v in params.items()) if params else "n/a"
    extras = [
        f"MIX={ha['mix']} (SEED={ha.get('seed')})" if ha.get("mix") else "",
        f"io_sync={ha['io_sync']}" if ha.get("io_sync") else "",
        f"arrival rate {ha['rate_per_sec']:g} req/s"
        if isinstance(ha.get("rate_per_sec"), (int, float)) and r.capacity is None
        else "",
    ]
    param_text += "".join(f"; {x}" for x in extras if x)
    used = f"{len(side.runs)} used" + (" (medians)" if len(side.runs) > 1 else "")
    if side.excluded:
        used += f"; {len(side.excluded)} excluded: " + "; ".join(f"{n} ({why})" for n, why in side.excluded)
    fingerprint(side)
    facts = [
        ("folder", str(side.path)),
        ("runs", used),
        ("scenario", str(m.get("scenario", ha.get("scenario", "n/a")))),
        ("duration scale", str(m.get("duration_scale", ha.get("duration_scale", "n/a")))),
        ("parameters", param_text),
        ("target", str(m.get("base_url", ha.get("base_url", "n/a")))),
        ("server command", str(m.get("server_command") or "n/a (not started by loadtest.sh)")),
        ("started", str(m.get("started_at", "n/a"))),
        ("git commit", str(m.get("git_commit", "n/a"))[:12]),
        ("price", side.price.description if side.price else "n/a"),
        ("thresholds", passed),
        ("command", run_command(side)),
    ]
    return facts


def platform_rows(a: Side, b: Side) -> list[tuple[str, str, str, str]]:
    """The two fingerprints side by side: (what, A, B, "same" / "differs" / "")."""
    fa, fb = fingerprint(a), fingerprint(b)
    out = []
    for shown, _ in [("source", ())] + FINGERPRINT_KEYS:
        if shown not in fa and shown not in fb:
            continue
        va, vb = fa.get(shown, "n/a"), fb.get(shown, "n/a")
        mark = "" if shown == "source" or "n/a" in (va, vb) else ("same" if va == vb else "differs")
        out.append((shown, va, vb, mark))
    return out


def _paired_facts(a: Side, b: Side) -> list[tuple[str, str, str]]:
    fa, fb = dict(run_facts(a)), dict(run_facts(b))
    keys = [k for k, _ in run_facts(a)] + [k for k, _ in run_facts(b) if k not in fa]
    return [(k, fa.get(k, "n/a"), fb.get(k, "n/a")) for k in keys]


def _mark(row: dict) -> str:
    if row["lower_is_better"] is None or row["a"] is None or row["b"] is None:
        return ""
    return "beyond noise" if row["finding"] else "≈"


def render_markdown(
    a: Side,
    b: Side,
    rows: list[dict],
    notes: list[str],
    stages: tuple[list, list],
    command: str,
    warnings: list[str],
) -> str:
    out = [f"# Comparison: {a.label} vs {b.label}", "", f"Made by `{command}`.", ""]
    for w in warnings:
        out += [f"> **Warning:** {w}", ""]
    out += ["## Verdict", ""] + [f"- {n}" for n in notes] + [""]
    out += [f"| | {_md_escape(a.label)} (A) | {_md_escape(b.label)} (B) |", "| --- | --- | --- |"]
    for k, va, vb in _paired_facts(a, b):
        out.append(f"| {k} | {_md_escape(va)} | {_md_escape(vb)} |")
    out.append("")
    plat = platform_rows(a, b)
    if plat:
        out += [
            "## Platforms",
            "",
            "What each side's server reported about the machine under it (`GET /heavy/info/` "
            "before the run; for a local server without it, the host).",
            "",
            f"| platform | {_md_escape(a.label)} (A) | {_md_escape(b.label)} (B) | |",
            "| --- | --- | --- | --- |",
        ]
        for k, va, vb, mark in plat:
            out.append(f"| {k} | {_md_escape(va)} | {_md_escape(vb)} | {mark} |")
        out.append("")
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            out += [
                "",
                f"## {section}",
                "",
                f"| metric | {_md_escape(a.label)} (A) | {_md_escape(b.label)} (B) | B/A | difference |",
                "| --- | ---: | ---: | ---: | --- |",
            ]
        out.append(
            f"| {row['label']} | {row['a_text']} | {row['b_text']} | {row['ratio_text']} | {_mark(row)} |"
        )
    sa, sb = stages
    if sa or sb:
        out += [
            "",
            "## Per stage (medians over the runs; from the raw samples)",
            "",
            "| side | stage | s | requests | req/s | p50 ms | p95 ms | p99 ms | errors | "
            "queue ms | service ms | CPU ms |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for side, st in ((a, sa), (b, sb)):
            for s in st:
                out.append(
                    f"| {_md_escape(side.label)} | {s['name']} | {fmt_num(s['start'])}–"
                    f"{fmt_num(s['end'])} | {fmt_num(s['requests'])} | {fmt_num(s['rps'])} | "
                    f"{fmt_num(s['p50'])} | {fmt_num(s['p95'])} | {fmt_num(s['p99'])} | "
                    f"{fmt_value(s['err'], 'pct')} | {fmt_num(s['queue'])} | "
                    f"{fmt_num(s['service'])} | {fmt_num(s['cpu'])} |"
                )
    out += [
        "",
        'Values are medians with their min–max; "beyond noise" marks a difference larger '
        "than both sides' spread and than the minimum effect. Cost per million requests = "
        "price per hour / (throughput x 3600) x 1e6. Queue = waiting for a handler thread, "
        "service = cpu + io (both from the `Server-Timing` header); see docs/COMPARISON.md.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# HTML with inline SVG (the charts themselves: svgcharts.py)


WORSE_ATTR = ' class="worse"'


def render_html(
    a: Side,
    b: Side,
    rows: list[dict],
    notes: list[str],
    stages: tuple[list, list],
    command: str,
    warnings: list[str],
) -> str:
    e = html.escape
    ra, rb = a.merged, b.merged
    pct_keys = ["p(50)", "p(90)", "p(95)", "p(99)", "avg"]
    charts = []
    if capacity_of(ra) is not None or capacity_of(rb) is not None:
        charts.append(
            svg_bars(
                "Capacity within the SLO",
                ["capacity"],
                [(a.label, [capacity_of(ra)]), (b.label, [capacity_of(rb)])],
                "req/s",
            )
        )
        if cost_at_capacity(ra) is not None or cost_at_capacity(rb) is not None:
            charts.append(
                svg_bars(
                    "Cost per million requests at capacity",
                    ["cost"],
                    [(a.label, [cost_at_capacity(ra)]), (b.label, [cost_at_capacity(rb)])],
                    "price",
                )
            )
    charts.append(
        svg_bars(
            "Request duration",
            ["p50", "p90", "p95", "p99", "avg"],
            [
                (a.label, [ra.stat("http_req_duration", k) for k in pct_keys]),
                (b.label, [rb.stat("http_req_duration", k) for k in pct_keys]),
            ],
            "ms",
        )
    )
    charts.append(
        svg_bars(
            "Throughput",
            ["requests per second"],
            [(a.label, [ra.stat("http_reqs", "rate")]), (b.label, [rb.stat("http_reqs", "rate")])],
            "req/s",
        )
    )
    charts.append(
        svg_bars(
            "Server time per request (avg)",
            ["queue", "service", "cpu", "io"],
            [
                (
                    s.label,
                    [
                        s.merged.stat("server_queue_ms", "avg"),
                        s.merged.stat("server_total_ms", "avg"),
                        cpu_per_request(s.merged),
                        _first(
                            s.merged.stat("server_io_ms", "avg"), s.merged.stat("custom_io_time_ms", "avg")
                        ),
                    ],
                )
                for s in (a, b)
            ],
            "ms",
        )
    )
    if cost(ra) is not None or cost(rb) is not None:
        charts.append(
            svg_bars(
                "Cost per million requests (at the load tested)",
                ["cost"],
                [(a.label, [cost(ra)]), (b.label, [cost(rb)])],
                "price",
            )
        )
    over_time = series_charts(a, b)
    facts = "".join(
        f"<tr><th>{e(k)}</th><td>{e(va)}</td><td>{e(vb)}</td></tr>" for k, va, vb in _paired_facts(a, b)
    )
    plat = platform_rows(a, b)
    platform_html = ""
    if plat:
        platform_html = (
            "<h2>Platforms</h2><p>What each side's server reported about the machine under it "
            "(<code>GET /heavy/info/</code> before the run; for a local server without it, the "
            f'host).</p><table class="facts"><tr><th>platform</th><th>{e(a.label)} (A)</th>'
            f"<th>{e(b.label)} (B)</th><th></th></tr>"
            + "".join(
                f"<tr><th>{e(k)}</th><td>{e(va)}</td><td>{e(vb)}</td>"
                f"<td{WORSE_ATTR if mark == 'differs' else ''}>{e(mark)}</td></tr>"
                for k, va, vb, mark in plat
            )
            + "</table>"
        )
    body_rows = []
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            body_rows.append(f'<tr class="section"><th colspan="5">{e(section)}</th></tr>')
        cls = ""
        if row["finding"]:
            worse = (row["b"] > row["a"]) == bool(row["lower_is_better"])
            cls = ' class="worse"' if worse else ' class="better"'
        body_rows.append(
            f"<tr><td>{e(row['label'])}</td><td>{e(row['a_text'])}</td>"
            f"<td>{e(row['b_text'])}</td><td{cls}>{e(row['ratio_text'])}</td>"
            f"<td>{e(_mark(row))}</td></tr>"
        )
    stage_rows = []
    for side, st in ((a, stages[0]), (b, stages[1])):
        for s in st:
            cells = [
                side.label,
                s["name"],
                f"{fmt_num(s['start'])}–{fmt_num(s['end'])}",
                fmt_num(s["requests"]),
                fmt_num(s["rps"]),
                fmt_num(s["p50"]),
                fmt_num(s["p95"]),
                fmt_num(s["p99"]),
                fmt_value(s["err"], "pct"),
                fmt_num(s["queue"]),
                fmt_num(s["service"]),
                fmt_num(s["cpu"]),
            ]
            stage_rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    stage_html = ""
    if stage_rows:
        stage_html = (
            "<h2>Per stage</h2><p>Medians over each side's runs, from the raw samples "
            '(samples.csv.gz).</p><table class="numbers stages"><tr><th>side</th><th>stage</th>'
            "<th>s</th><th>requests</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th>"
            "<th>p99 ms</th><th>errors</th><th>queue ms</th><th>service ms</th><th>CPU ms</th>"
            "</tr>" + "".join(stage_rows) + "</table>"
        )
    series_html = ""
    if over_time:
        series_html = (
            "<h2>Over time</h2><p>Both sides overlaid (A blue, B orange), pooled over "
            "each side's runs; dotted vertical lines mark the stages.</p>"
            f'<div class="series">{"".join(over_time)}</div>'
        )
    else:
        series_html = (
            "<h2>Over time</h2><p>No raw samples (samples.csv.gz) in either side: "
            "run loadtest.sh without --no-samples to get the time series.</p>"
        )
    notes_html = "".join(
        "<li>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", e(n)) + "</li>" for n in notes
    )
    warn_html = "".join(f'<p class="warning"><strong>Warning:</strong> {e(w)}</p>' for w in warnings)
    style = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
table.numbers td:nth-child(n+2) { text-align: right; font-variant-numeric: tabular-nums; }
table.stages td:nth-child(2) { text-align: left; }
table.facts td { overflow-wrap: anywhere; }
tr.section th { background: #f0f0f0; }
td.worse { color: #b00020; font-weight: bold; }
td.better { color: #1b7f3a; font-weight: bold; }
p.warning { background: #fff3cd; padding: 0.5em; }
code { overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.charts svg, .series svg { flex: 0 0 auto; max-width: 100%; height: auto;
       font-family: system-ui, sans-serif; }
"""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Comparison: {e(a.label)} vs {e(b.label)}</title>
<style>{style}</style>
</head>
<body>
<h1>Comparison: {e(a.label)} (A) vs {e(b.label)} (B)</h1>
<p>Made by <code>{e(command)}</code>.</p>
{warn_html}
<h2>Verdict</h2>
<ul class="verdict">{notes_html}</ul>
<table class="facts"><tr><th></th><th>{e(a.label)} (A)</th><th>{e(b.label)} (B)</th></tr>{facts}</table>
{platform_html}
{series_html}
{stage_html}
<h2>Summary</h2>
<div class="charts">
{"".join(charts)}
</div>
<table class="numbers">
<tr><th>metric</th><th>{e(a.label)} (A)</th><th>{e(b.label)} (B)</th><th>B/A</th><th>difference</th></tr>
{"".join(body_rows)}
</table>
<p>Values are medians with their min–max. B/A in red: B is worse, in green: better — only where the
difference is beyond noise (larger than both sides' spread and than the minimum effect).
Cost per million requests = price per hour / (throughput &times; 3600) &times; 10<sup>6</sup>.
Queue = waiting for a handler thread; service = cpu + io (Server-Timing).</p>
</body>
</html>
"""


def _first(*vals: Number) -> Number:
    for v in vals:
        if v is not None:
            return v
    return None


# --------------------------------------------------------------------------------------------
# Command line


def _pick_label(explicit: str | None, side: Side) -> str:
    if explicit:
        return explicit
    return str(side.meta.get("label") or side.path.name)


def _pick_price(explicit: str | None, side: Side, flag: str) -> Price | None:
    spec = explicit if explicit else side.meta.get("price")
    if not spec:
        return None
    try:
        return parse_price(str(spec))
    except ValueError as err:
        raise ValueError(f"{flag}: {err}") from None


def compare(
    run_a: str,
    run_b: str,
    label_a: str | None = None,
    label_b: str | None = None,
    price_a: str | None = None,
    price_b: str | None = None,
    out: str | None = None,
    force: bool = False,
    min_effect: float = DEFAULT_MIN_EFFECT,
    noise: float = DEFAULT_NOISE,
    command: str | None = None,
) -> tuple[Path, Path, list[dict]]:
    a, b = load_side(run_a), load_side(run_b)
    a.label, b.label = _pick_label(label_a, a), _pick_label(label_b, b)
    if a.label == b.label:
        a.label, b.label = f"{a.label} A ({a.path.name})", f"{b.label} B ({b.path.name})"
    a.price = _pick_price(price_a, a, "--price-a")
    b.price = _pick_price(price_b, b, "--price-b")
    for side in (a, b):
        for r in side.runs + [side.merged]:
            r.label, r.price = side.label, side.price
    warnings = []
    diff = workload_differences(a.merged, b.merged)
    if diff:
        text = "the two sides differ in " + "; ".join(diff)
        if not force:
            raise ValueError(f"{text}. Compare like with like, or pass --force to compare anyway")
        warnings.append(
            text + " (compared anyway: --force); differences may come from the workload, not the platform."
        )
    for side in (a, b):
        for name, why in side.excluded:
            warnings.append(f"{side.label}: excluded run {name}: {why}.")
        warnings.extend(fingerprint_changes(side))
    rows = table_rows(a, b, noise, min_effect)
    notes = verdicts(a, b, rows, min_effect)
    stages = (stage_table(a), stage_table(b))
    if command is None:
        command = "python3 scripts/compare.py " + " ".join(shlex.quote(str(x)) for x in (run_a, run_b))
    if out:
        out_dir = Path(out)
    else:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"compare-{a.label}-vs-{b.label}")
        out_dir = a.path.parent / safe
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "comparison.md", out_dir / "comparison.html"
    md_path.write_text(render_markdown(a, b, rows, notes, stages, command, warnings), encoding="utf-8")
    html_path.write_text(render_html(a, b, rows, notes, stages, command, warnings), encoding="utf-8")
    return md_path, html_path, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Compare two k6 result folders (summary.json + meta.json) side by side.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
    )
    ap.add_argument("run_a", metavar="RUN_A", help="result folder A (the baseline)")
    ap.add_argument("run_b", metavar="RUN_B", help="result folder B")
    ap.add_argument("--label-a", help="name of A (default: meta.json label, else folder name)")
    ap.add_argument("--label-b", help="name of B")
    ap.add_argument("--price-a", help="A's price, e.g. 0.0971/h (default: meta.json price)")
    ap.add_argument("--price-b", help="B's price, e.g. fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4")
    ap.add_argument("--out", help="output folder (default: RUN_A's parent/compare-A-vs-B)")
    ap.add_argument(
        "--force", action="store_true", help="compare even when the scenarios, scales or parameters differ"
    )
    ap.add_argument(
        "--min-effect",
        type=float,
        default=DEFAULT_MIN_EFFECT,
        help="smallest relative difference reported as a finding (default 0.05)",
    )
    args = ap.parse_args(argv)
    if not 0 <= args.min_effect < 1:
        ap.error("--min-effect must be from 0 to 1")
    given = argv if argv is not None else sys.argv[1:]
    command = "python3 scripts/compare.py " + " ".join(shlex.quote(str(x)) for x in given)
    try:
        md_path, html_path, rows = compare(
            args.run_a,
            args.run_b,
            args.label_a,
            args.label_b,
            args.price_a,
            args.price_b,
            args.out,
            args.force,
            args.min_effect,
            command=command,
        )
    except (ValueError, OSError, json.JSONDecodeError) as err:
        print(f"compare.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {md_path}")
    print(f"wrote {html_path}")
    verdict = md_path.read_text(encoding="utf-8").split("## Verdict", 1)[1].split("\n\n", 2)[1]
    print(verdict.splitlines()[0].lstrip("- ").replace("**", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
