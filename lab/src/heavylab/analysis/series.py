"""A run's raw samples (samples.csv.gz): the slices that give a single run its spread, the time
series the report draws, and the per-stage table."""

from __future__ import annotations

import math

from heavylab.analysis.runs import HEAVY_ALIASES, Run, Side, cpu_per_request, median
from heavylab.results import samples as k6samples

SLICES = 5
_SAMPLES_CACHE: dict = {}

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
SERIES_METRICS = (
    "latency_total_ms",
    "custom_requests_total",
    "http_req_failed",
    "server_queue_ms",
    "server_total_ms",
    "server_cpu_ms",
    "custom_cpu_time_ms",
)


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


def nice_step(raw: float) -> float:
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
                if i >= 0:
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
            med[k] = median(xs) if xs else None
        out.append({"name": key[0], "start": key[1], "end": key[2], **med})
    return out
