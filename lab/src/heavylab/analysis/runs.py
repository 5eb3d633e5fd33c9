"""Run folders as the report reads them: one run (summary.json, meta.json, capacity.json), the
runs of one side (a folder of run folders), which runs do not count and why, and the medians
over a side's runs.

A run folder is what `heavy-lab run` writes; a side is one platform's runs. A run that did not
really run is excluded with its reason: the target was down before k6 started (no summary.json,
meta.json's aborted_before_start), k6 aborted (exit 108) or died (any exit but 0 and 99), no
check ran, it is shorter than its scenario's plan, or a capacity search sustained no rate."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from heavylab.analysis.prices import Price, cost_per_million

Number = Optional[float]
# Metrics whose heavy-request version (without the health probe of setup()) is preferred.
HEAVY_ALIASES = {
    "http_req_duration": "latency_total_ms",
    "http_reqs": "custom_requests_total",
    "http_req_failed": "http_req_failed{name:cpu-io-no-db}",
}


@dataclass
class Run:
    path: Path
    summary: dict
    meta: dict
    label: str = ""
    price: Price | None = None
    metrics: dict = field(default_factory=dict)
    capacity: dict | None = None
    # A capacity run's step at its limit (the lowest broken rate): where the platform's limit
    # shows, so the CPU split that says why a capacity is lower is read there.
    at_limit: Run | None = None
    transfer: object = None  # heavylab.analysis.resources.Transfer: the bytes per request, priced

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
        return self.ha.get("test_run_duration_sec")

    @property
    def ha(self) -> dict:
        return self.summary.get("heavy_api") or {}


def load_run(p: Path) -> Run:
    summary_path = p / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    meta = json.loads((p / "meta.json").read_text(encoding="utf-8")) if (p / "meta.json").is_file() else {}
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"{summary_path} has no 'metrics' object (not a k6 summary)")
    capacity = None
    at_limit = None
    if (p / "capacity.json").is_file():
        capacity = json.loads((p / "capacity.json").read_text(encoding="utf-8"))
        at_limit = _limit_run(p, capacity)
    return Run(path=p, summary=summary, meta=meta, metrics=metrics, capacity=capacity, at_limit=at_limit)


def _limit_run(p: Path, capacity: dict) -> Run | None:
    """The run of a capacity search's step at its limit, when its folder holds a readable summary
    with the server's CPU split; else None (the report then reads every side at capacity)."""
    step = limit_step_dir(capacity)
    if not step or not (p / step / "summary.json").is_file():
        return None
    try:
        run = load_run(p / step)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        print(f"warning: {p / step}: its summary cannot be read ({e}); the CPU split is read at capacity")
        return None
    return run if run.stat("server_cpu_thread_ms", "avg") is not None else None


def split_at_limit(sides: list) -> bool:
    """Whether a comparison reads the CPU split at each side's limit: only if every run of every
    side has its limit step, so that no two sides are read at different points of their search.
    Otherwise every run's limit step is set aside and the split is read at capacity."""
    runs = [r for s in sides for r in [*s.runs, s.merged]]
    if runs and all(r.at_limit is not None for r in runs):
        return True
    for r in runs:
        r.at_limit = None
    return False


def limit_step_dir(capacity: dict) -> str | None:
    """The folder of a capacity search's step at its limit: the last broken step at the lowest
    broken rate (None when nothing broke, or the search predates step folders)."""
    broken = broken_of(capacity)
    at = [
        s
        for s in capacity.get("steps") or []
        if broken is not None and s.get("rate") == broken and s.get("ok") is False and s.get("dir")
    ]
    return str(at[-1]["dir"]) if at else None


def exclusion_reason(run: Run) -> str | None:
    """Why a run must not be counted (None when it is a real run)."""
    rc = run.meta.get("k6_exit_code")
    if run.capacity is not None:
        if run.capacity.get("capacity_rps") is None:
            status = run.capacity.get("status")
            return "the capacity search found no sustained rate" + (f" ({status})" if status else "")
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


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


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


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def merge_runs(path: Path, runs: list[Run]) -> Run:
    """One Run whose every statistic is the median over several runs of the same scenario; a
    threshold passes only if it passed in every run."""
    norm = [_normalized(r) for r in runs]
    metrics: dict = {}
    for name in sorted({n for m in norm for n in m}):
        present = [m[name] for m in norm if name in m]
        values = {}
        for k in {k for m in present for k in m["values"]}:
            nums = [float(m["values"][k]) for m in present if _number(m["values"].get(k))]
            if nums:
                values[k] = median(nums)
        thresholds: dict = {}
        for m in present:
            for expr, res in m["thresholds"].items():
                thresholds[expr] = {"ok": thresholds.get(expr, {"ok": True})["ok"] and res["ok"]}
        metrics[name] = {"values": values}
        if thresholds:
            metrics[name]["thresholds"] = thresholds
    durations = [r.summary.get("state", {}).get("testRunDurationMs") for r in runs]
    durations = [float(d) for d in durations if _number(d)]
    summary = {
        "metrics": metrics,
        "state": {"testRunDurationMs": median(durations)} if durations else {},
        "heavy_api": runs[0].summary.get("heavy_api") or {},
    }
    meta = dict(runs[0].meta)
    meta["runs"] = [str(r.path.name) for r in runs]
    capacity = None
    caps = [r.capacity for r in runs if r.capacity and r.capacity.get("capacity_rps") is not None]
    if caps:
        capacity = dict(caps[0])
        capacity["capacity_rps"] = median([c["capacity_rps"] for c in caps])
    limits = [r.at_limit for r in runs if r.at_limit is not None]
    at_limit = merge_runs(path, limits) if limits and len(limits) == len(runs) else None
    return Run(path=path, summary=summary, meta=meta, metrics=metrics, capacity=capacity, at_limit=at_limit)


def workload(run: Run) -> dict:
    """What must be equal between runs (of a side, and between sides) for a comparison to mean
    anything: {what: value}, a value None when the run's metadata does not say."""
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
    if meta.get("aborted_before_start"):
        return str(meta["aborted_before_start"])
    return f"k6 wrote no summary.json (exit code {meta.get('k6_exit_code')})"


@dataclass
class Side:
    """One platform: its valid runs, the excluded ones with why, and the medians over its runs."""

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

    @property
    def is_capacity(self) -> bool:
        return self.merged.capacity is not None


def load_side(path: str | os.PathLike) -> Side:
    """A result folder, or a folder of result folders (the runs of one side)."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{p} is not a result folder")
    runs, excluded = [], []
    if (p / "summary.json").is_file():
        all_runs = [load_run(p)]
    elif (p / "meta.json").is_file():
        all_runs = []
        excluded.append((p.name, _no_summary_reason(p)))
    else:
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / "summary.json").is_file())
        # Run folders without a summary (the target was down before k6 started, or k6 died)
        # are listed as excluded, with the reason their meta.json gives.
        for d in sorted(p.iterdir()):
            if d.is_dir() and (d / "meta.json").is_file() and not (d / "summary.json").is_file():
                excluded.append((d.name, _no_summary_reason(d)))
        if not subs and not excluded:
            raise ValueError(f"{p} has no summary.json (nor sub-folders with one)")
        all_runs = [load_run(d) for d in subs]
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
# Numbers derived from a run's statistics


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


def transfer_per_million(r: Run) -> Number:
    t = r.transfer
    return t.per_million if t is not None else None  # type: ignore[attr-defined]


def _with_transfer(compute: Number, r: Run) -> Number:
    """Compute cost per million plus the data transfer's, when the run's bytes are known."""
    if compute is None:
        return None
    return compute + (transfer_per_million(r) or 0.0)


def compute_cost(r: Run) -> Number:
    return cost_per_million(r.price.hourly if r.price else None, r.stat("http_reqs", "rate"))


def cost(r: Run) -> Number:
    """Cost per million requests at the load tested: the platform's price plus data transfer."""
    return _with_transfer(compute_cost(r), r)


def transfer_share(r: Run) -> Number:
    total, t = cost(r), transfer_per_million(r)
    return t / total if total and t is not None else None


def transfer_share_at_capacity(r: Run) -> Number:
    total, t = cost_at_capacity(r), transfer_per_million(r)
    return t / total if total and t is not None else None


def bytes_per_request(r: Run) -> Number:
    return r.transfer.bytes_per_request if r.transfer is not None else None  # type: ignore[attr-defined]


def capacity_of(r: Run) -> Number:
    v = (r.capacity or {}).get("capacity_rps")
    return float(v) if _number(v) else None


def broken_of(capacity: dict) -> Number:
    """The lowest broken rate of a capacity search: the bracket's top (old files: broken_rps)."""
    v = capacity.get("broken_rps")
    if not _number(v):
        bracket = capacity.get("bracket") or [None, None]
        v = bracket[1] if len(bracket) > 1 else None
    return float(v) if _number(v) else None


def split_stat(name: str, key: str):
    """A statistic of the server's CPU split: a capacity run's at its limit (see Run.at_limit),
    any other run's over the run."""
    return lambda r: (r.at_limit or r).stat(name, key)


def cost_at_capacity(r: Run) -> Number:
    return _with_transfer(cost_per_million(r.price.hourly if r.price else None, capacity_of(r)), r)


def cpu_per_request(r: Run) -> Number:
    """Server-Timing's CPU phase (to the microsecond), else the body's cpu_time_sec (10 ms steps)."""
    v = r.stat("server_cpu_ms", "avg")
    return v if v is not None else r.stat("custom_cpu_time_ms", "avg")
