#!/usr/bin/env python3
"""Compare two k6 result folders side by side (e.g. ECS on EC2 against Fargate).

    python3 scripts/compare.py RUN_A RUN_B [--label-a ec2 --label-b fargate]
        [--price-a 0.0971/h] [--price-b fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4] [--out DIR]

Each RUN is a folder written by scripts/loadtest.sh: summary.json (from the k6 scripts'
handleSummary(), or any k6 summary, including --summary-export's flat format) and, optionally,
meta.json (label, price, scenario). A RUN may also be a folder of such folders (the N runs of one
platform, e.g. loadtest.sh --results-dir results/ec2): every statistic is then the median over
its runs. Writes DIR/comparison.md and a self-contained DIR/comparison.html (inline SVG charts,
no external assets). Python 3.11 standard library only.

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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

Number = Optional[float]


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
        for part in low[len("fargate:"):].split(","):
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
        raise ValueError(
            f"bad price {spec!r}: use 0.0971/h or fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4"
        )
    count = int(m.group(2)) if m.group(2) else 1
    hourly = float(m.group(1)) * count
    desc = f"{float(m.group(1)):g}/h" + (f" x {count}" if count != 1 else "") + (
        f" = {hourly:.5f}/h" if count != 1 else ""
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
    price: Optional[Price] = None
    metrics: dict = field(default_factory=dict)

    def values(self, name: str) -> dict:
        """A metric's values, from handleSummary() data ({"values": {...}}) or the flat
        --summary-export format."""
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
    return Run(path=p, summary=summary, meta=meta, metrics=metrics)


def _normalized(run: Run) -> dict:
    """The run's metrics as {name: {"values": {...}, "thresholds": {expr: {"ok": bool}}}}."""
    out = {}
    for name, m in run.metrics.items():
        if not isinstance(m, dict):
            continue
        th = m.get("thresholds") if isinstance(m.get("thresholds"), dict) else {}
        out[name] = {
            "values": run.values(name),
            # The flat --summary-export format marks a crossed threshold true.
            "thresholds": {e: ({"ok": bool(r.get("ok"))} if isinstance(r, dict) else {"ok": not r})
                           for e, r in th.items()},
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
            nums = [m["values"][k] for m in present
                    if isinstance(m["values"].get(k), (int, float))
                    and not isinstance(m["values"].get(k), bool)]
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
    for key in ("scenario", "duration_scale", "label"):
        seen = {json.dumps(r.meta.get(key)) for r in runs}
        if len(seen) > 1:
            raise ValueError(f"{path}: its runs differ in {key} ({', '.join(sorted(seen))})")
    return Run(path=path, summary=summary, meta=meta, metrics=metrics)


def load_run(path: str | os.PathLike) -> Run:
    """A result folder, or a folder of result folders (the runs of one side: their medians)."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{p} is not a result folder")
    if (p / "summary.json").is_file():
        return _load_single(p)
    subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / "summary.json").is_file())
    if not subs:
        raise ValueError(f"{p} has no summary.json (nor sub-folders with one)")
    if len(subs) == 1:
        return _load_single(subs[0])
    return merge_runs(p, [_load_single(d) for d in subs])


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


@dataclass
class Row:
    section: str
    label: str
    get: Callable[[Run], Number]
    fmt: str  # "ms", "int", "rate", "pct", "money", "num"
    lower_is_better: Optional[bool] = True


def _s(name: str, key: str) -> Callable[[Run], Number]:
    return lambda r: r.stat(name, key)


ROWS: list[Row] = [
    Row("Load", "test duration (s)", lambda r: r.duration_sec(), "num", None),
    Row("Load", "max VUs", _s("vus_max", "max"), "int", None),
    Row("Load", "requests", _s("http_reqs", "count"), "int", False),
    Row("Load", "throughput (req/s)", _s("http_reqs", "rate"), "rate", False),
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
    Row("Cost", "price per hour", lambda r: r.price.hourly if r.price else None, "money"),
    Row("Cost", "cost per million requests", cost, "money"),
]


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


def table_rows(a: Run, b: Run) -> list[dict]:
    rows = []
    for row in ROWS:
        va, vb = row.get(a), row.get(b)
        rows.append({
            "section": row.section,
            "label": row.label,
            "a": va,
            "b": vb,
            "a_text": fmt_value(va, row.fmt),
            "b_text": fmt_value(vb, row.fmt),
            "ratio": ratio(va, vb),
            "ratio_text": fmt_ratio(ratio(va, vb)),
            "lower_is_better": row.lower_is_better,
        })
    return rows


# --------------------------------------------------------------------------------------------
# Reading the numbers


def observations(a: Run, b: Run) -> list[str]:
    notes: list[str] = []
    la, lb = a.label, b.label
    for key in ("scenario", "duration_scale"):
        va, vb = a.meta.get(key), b.meta.get(key)
        if va is not None and vb is not None and va != vb:
            notes.append(f"**Warning:** the runs differ in {key} ({la}: {va}, {lb}: {vb}); "
                         "compare runs of the same scenario and scale.")
    pa, pb = a.stat("http_req_duration", "p(95)"), b.stat("http_req_duration", "p(95)")
    r95 = ratio(pa, pb)
    if r95 is not None:
        notes.append(f"p95 latency: {lb} {fmt_value(pb, 'ms')} ms vs {la} {fmt_value(pa, 'ms')} ms "
                     f"({fmt_ratio(r95)}).")
    ta, tb = a.stat("http_reqs", "rate"), b.stat("http_reqs", "rate")
    if ratio(ta, tb) is not None:
        notes.append(f"Throughput: {lb} {fmt_value(tb, 'rate')} req/s vs {la} "
                     f"{fmt_value(ta, 'rate')} req/s ({fmt_ratio(ratio(ta, tb))}).")
    qa, qb = a.stat("server_queue_ms", "avg"), b.stat("server_queue_ms", "avg")
    sa, sb = a.stat("server_total_ms", "avg"), b.stat("server_total_ms", "avg")
    if None not in (qa, qb, sa, sb):
        dq, ds = qb - qa, sb - sa  # type: ignore[operator]
        if abs(dq) + abs(ds) > 0:
            if abs(dq) > abs(ds):
                notes.append(
                    f"Most of the difference in server time is queueing ({dq:+.1f} ms avg queue vs "
                    f"{ds:+.1f} ms service, {lb} minus {la}): one side is saturated — more "
                    "requests than handler threads and cores — rather than slower per request; "
                    "add tasks or capacity there.")
            else:
                notes.append(
                    f"Most of the difference in server time is service time ({ds:+.1f} ms avg vs "
                    f"{dq:+.1f} ms queue, {lb} minus {la}): the work itself runs slower on one "
                    "side (slower or shared CPU, slower storage), not just waiting.")
    else:
        notes.append("Queue vs service time: n/a (no Server-Timing in at least one run).")
    ca, cb = a.stat("custom_cpu_time_ms", "avg"), b.stat("custom_cpu_time_ms", "avg")
    rc = ratio(ca, cb)
    if rc is not None:
        if rc > 1.15:
            notes.append(f"CPU time per request is {fmt_ratio(rc)} on {lb}: with the same image, "
                         "its vCPUs are slower, shared (steal) or throttled, or it ran more "
                         "requests at once than it has cores.")
        elif rc < 1 / 1.15:
            notes.append(f"CPU time per request is {fmt_ratio(1 / rc)} on {la} compared with {lb}: "
                         f"with the same image, {la}'s vCPUs are slower, shared (steal) or "
                         "throttled, or it ran more requests at once than it has cores.")
        else:
            notes.append(f"CPU time per request is about the same ({fmt_ratio(rc)}): the vCPUs "
                         "deliver similar work.")
    ea = (a.stat("http_req_failed", "count") or 0) + (a.stat("throttled_requests", "count") or 0)
    eb = (b.stat("http_req_failed", "count") or 0) + (b.stat("throttled_requests", "count") or 0)
    if ea or eb:
        notes.append(f"Failures: {la} {ea:.0f} failed/throttled, {lb} {eb:.0f}; latency and "
                     "throughput of a run with failures understate its real cost.")
    ka, kb = cost(a), cost(b)
    if ka is not None and kb is not None:
        cheaper = la if ka < kb else lb
        notes.append(f"Cost per million requests: {la} {ka:.4f}, {lb} {kb:.4f} "
                     f"({fmt_ratio(ratio(ka, kb))}); {cheaper} is cheaper at the load tested.")
    elif a.price is None or b.price is None:
        notes.append("Cost: give --price-a and --price-b (or --price to loadtest.sh) to compare "
                     "cost per million requests.")
    return notes


# --------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def run_facts(r: Run) -> list[tuple[str, str]]:
    m = r.meta
    th = r.thresholds()
    passed = "n/a" if not th else ("all passed" if all(ok for _, _, ok in th) else
                                   "FAILED: " + ", ".join(f"{n} {e}" for n, e, ok in th if not ok))
    ha = r.summary.get("heavy_api") or {}
    params = ha.get("params") or {}
    param_text = ", ".join(f"{k}={v}" for k, v in params.items()) if params else "n/a"
    runs = m.get("runs")
    return [
        ("folder", str(r.path)),
        ("runs", f"{len(runs)} (medians)" if runs else "1"),
        ("scenario", str(m.get("scenario", ha.get("scenario", "n/a")))),
        ("duration scale", str(m.get("duration_scale", ha.get("duration_scale", "n/a")))),
        ("parameters", param_text),
        ("target", str(m.get("base_url", ha.get("base_url", "n/a")))),
        ("started", str(m.get("started_at", "n/a"))),
        ("git commit", str(m.get("git_commit", "n/a"))[:12]),
        ("price", r.price.description if r.price else "n/a"),
        ("thresholds", passed),
    ]


def render_markdown(a: Run, b: Run, rows: list[dict], notes: list[str]) -> str:
    out = [f"# Comparison: {a.label} vs {b.label}", ""]
    out += [f"| | {_md_escape(a.label)} (A) | {_md_escape(b.label)} (B) |", "| --- | --- | --- |"]
    for (k, va), (_, vb) in zip(run_facts(a), run_facts(b)):
        out.append(f"| {k} | {_md_escape(va)} | {_md_escape(vb)} |")
    out.append("")
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            out += ["", f"## {section}", "",
                    f"| metric | {_md_escape(a.label)} (A) | {_md_escape(b.label)} (B) | B/A |",
                    "| --- | ---: | ---: | ---: |"]
        out.append(f"| {row['label']} | {row['a_text']} | {row['b_text']} | {row['ratio_text']} |")
    out += ["", "## Reading the numbers", ""]
    out += [f"- {n}" for n in notes]
    out += ["", "Cost per million requests = price per hour / (throughput x 3600) x 1e6. With a "
            "fixed number of VUs the throughput follows the offered load, so this is the cost at "
            "the load tested; for cost efficiency compare the highest throughput each side "
            "sustains within its thresholds. Queue = waiting for a handler thread, service = "
            "cpu + io (both from the `Server-Timing` header); see docs/COMPARISON.md.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# HTML with inline SVG

COLORS = ("#2f6db5", "#e07b28")


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def svg_bars(title: str, categories: list[str], series: list[tuple[str, list[Number]]],
             unit: str) -> str:
    """A grouped bar chart: one group per category, one bar per series."""
    width, height = 480, 280
    left, right, top, bottom = 64, 16, 40, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    vals = [v for _, vs in series for v in vs if v is not None]
    vmax = _nice_max(max(vals) if vals else 1.0)
    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{e(title)}">',
             f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" '
             f'font-weight="bold">{e(title)}</text>']
    for i in range(5):
        val = vmax * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                     f'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{val:g}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2})">{e(unit)}</text>')
    group_w = plot_w / max(1, len(categories))
    bar_w = min(group_w * 0.7 / max(1, len(series)), 90.0)
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + (group_w - bar_w * len(series)) / 2
        for si, (name, vs) in enumerate(series):
            v = vs[ci]
            x = gx + si * bar_w
            color = COLORS[si % len(COLORS)]
            if v is None:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" '
                             f'text-anchor="middle" font-size="10">n/a</text>')
                continue
            h = plot_h * min(v, vmax) / vmax
            y = top + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{e(name)} {e(cat)}: {v:.2f} {e(unit)}</title>'
                         '</rect>')
            parts.append(f'<text x="{x + (bar_w - 2) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                         f'font-size="10">{v:.3g}</text>')
        parts.append(f'<text x="{left + ci * group_w + group_w / 2:.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle" font-size="12">{e(cat)}</text>')
    lx = left
    for si, (name, _) in enumerate(series):
        parts.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" '
                     f'fill="{COLORS[si % len(COLORS)]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 12}" font-size="12">{e(name)}</text>')
        lx += 24 + 8 * len(name)
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
                 'stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def _first(*vals: Number) -> Number:
    """The first value that is not None (Server-Timing's precise ms before the body's 10 ms steps)."""
    for v in vals:
        if v is not None:
            return v
    return None


def render_html(a: Run, b: Run, rows: list[dict], notes: list[str]) -> str:
    e = html.escape
    pct_keys = ["p(50)", "p(90)", "p(95)", "p(99)", "avg"]
    latency = svg_bars(
        "Request duration",
        ["p50", "p90", "p95", "p99", "avg"],
        [(a.label, [a.stat("http_req_duration", k) for k in pct_keys]),
         (b.label, [b.stat("http_req_duration", k) for k in pct_keys])],
        "ms")
    throughput = svg_bars(
        "Throughput", ["requests per second"],
        [(a.label, [a.stat("http_reqs", "rate")]), (b.label, [b.stat("http_reqs", "rate")])],
        "req/s")
    server = svg_bars(
        "Server time per request (avg)", ["queue", "service", "cpu", "io"],
        [(r.label, [r.stat("server_queue_ms", "avg"), r.stat("server_total_ms", "avg"),
                    _first(r.stat("server_cpu_ms", "avg"), r.stat("custom_cpu_time_ms", "avg")),
                    _first(r.stat("server_io_ms", "avg"), r.stat("custom_io_time_ms", "avg"))])
         for r in (a, b)],
        "ms")
    charts = [latency, throughput, server]
    if cost(a) is not None or cost(b) is not None:
        charts.append(svg_bars("Cost per million requests", ["cost"],
                               [(a.label, [cost(a)]), (b.label, [cost(b)])], "price"))
    facts = "".join(
        f"<tr><th>{e(k)}</th><td>{e(va)}</td><td>{e(vb)}</td></tr>"
        for (k, va), (_, vb) in zip(run_facts(a), run_facts(b)))
    body_rows = []
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            body_rows.append(f'<tr class="section"><th colspan="4">{e(section)}</th></tr>')
        cls = ""
        r = row["ratio"]
        if r is not None and row["lower_is_better"] is not None and abs(r - 1) > 0.10:
            worse = (r > 1) == row["lower_is_better"]
            cls = ' class="worse"' if worse else ' class="better"'
        body_rows.append(f"<tr><td>{e(row['label'])}</td><td>{e(row['a_text'])}</td>"
                         f"<td>{e(row['b_text'])}</td><td{cls}>{e(row['ratio_text'])}</td></tr>")
    notes_html = "".join(f"<li>{e(n).replace('**', '')}</li>" for n in notes)
    style = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
table.numbers td:nth-child(n+2) { text-align: right; font-variant-numeric: tabular-nums; }
table.facts td { overflow-wrap: anywhere; }
tr.section th { background: #f0f0f0; }
td.worse { color: #b00020; font-weight: bold; }
td.better { color: #1b7f3a; font-weight: bold; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.charts svg { flex: 0 0 auto; max-width: 100%; height: auto; font-family: system-ui, sans-serif; }
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
<table class="facts"><tr><th></th><th>{e(a.label)} (A)</th><th>{e(b.label)} (B)</th></tr>{facts}</table>
<div class="charts">
{''.join(charts)}
</div>
<table class="numbers">
<tr><th>metric</th><th>{e(a.label)} (A)</th><th>{e(b.label)} (B)</th><th>B/A</th></tr>
{''.join(body_rows)}
</table>
<h2>Reading the numbers</h2>
<ul>{notes_html}</ul>
<p>Cost per million requests = price per hour / (throughput &times; 3600) &times; 10<sup>6</sup>:
the cost at the load tested (with a fixed number of VUs the throughput follows the offered load).
Queue = waiting for a handler thread; service = cpu + io (Server-Timing). B/A in red: B is worse by
more than 10%; in green: better.</p>
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# Command line


def _pick_label(explicit: Optional[str], run: Run) -> str:
    if explicit:
        return explicit
    return str(run.meta.get("label") or run.path.name)


def _pick_price(explicit: Optional[str], run: Run, flag: str) -> Optional[Price]:
    spec = explicit if explicit else run.meta.get("price")
    if not spec:
        return None
    try:
        return parse_price(str(spec))
    except ValueError as err:
        raise ValueError(f"{flag}: {err}") from None


def compare(run_a: str, run_b: str, label_a: Optional[str] = None, label_b: Optional[str] = None,
            price_a: Optional[str] = None, price_b: Optional[str] = None,
            out: Optional[str] = None) -> tuple[Path, Path, list[dict]]:
    a, b = load_run(run_a), load_run(run_b)
    a.label, b.label = _pick_label(label_a, a), _pick_label(label_b, b)
    if a.label == b.label:
        a.label, b.label = f"{a.label} A ({a.path.name})", f"{b.label} B ({b.path.name})"
    a.price = _pick_price(price_a, a, "--price-a")
    b.price = _pick_price(price_b, b, "--price-b")
    rows = table_rows(a, b)
    notes = observations(a, b)
    if out:
        out_dir = Path(out)
    else:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"compare-{a.label}-vs-{b.label}")
        out_dir = a.path.parent / safe
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "comparison.md", out_dir / "comparison.html"
    md_path.write_text(render_markdown(a, b, rows, notes), encoding="utf-8")
    html_path.write_text(render_html(a, b, rows, notes), encoding="utf-8")
    return md_path, html_path, rows


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description="Compare two k6 result folders (summary.json + meta.json) side by side.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None)
    ap.add_argument("run_a", metavar="RUN_A", help="result folder A (the baseline)")
    ap.add_argument("run_b", metavar="RUN_B", help="result folder B")
    ap.add_argument("--label-a", help="name of A (default: meta.json label, else folder name)")
    ap.add_argument("--label-b", help="name of B")
    ap.add_argument("--price-a", help="A's price, e.g. 0.0971/h (default: meta.json price)")
    ap.add_argument("--price-b", help="B's price, e.g. fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4")
    ap.add_argument("--out", help="output folder (default: RUN_A's parent/compare-A-vs-B)")
    args = ap.parse_args(argv)
    try:
        md_path, html_path, rows = compare(args.run_a, args.run_b, args.label_a, args.label_b,
                                           args.price_a, args.price_b, args.out)
    except (ValueError, OSError, json.JSONDecodeError) as err:
        print(f"compare.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {md_path}")
    print(f"wrote {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
