"""k6's raw samples (`k6 run --out csv=FILE[.gz]`), read back and summarised exactly as k6 does.

Shared by scripts/compare.py (time series, per-stage tables, slices for the noise estimate) and
scripts/k6merge.py (one summary from the raw samples of several execution segments). Python 3.11
standard library only.

The statistics are k6's own: a Trend's percentile p is the linear interpolation between the two
closest ranks of the sorted samples (k6's TrendSink: index p x (n - 1)), a Counter's rate is its
count over the test's duration, a Rate is the share of non-zero samples. Because they are computed
from every sample, the percentiles of several files together are exact (no error bound needed).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HEAVY_TAG = "cpu-io-no-db"
# k6's built-in per-request metrics: the health probe (name=health) is left out of them.
HTTP_METRICS = {
    "http_reqs",
    "http_req_duration",
    "http_req_blocked",
    "http_req_connecting",
    "http_req_tls_handshaking",
    "http_req_sending",
    "http_req_waiting",
    "http_req_receiving",
    "http_req_failed",
    "data_sent",
    "data_received",
}
TREND_STATS = ("avg", "min", "med", "max", "p(50)", "p(90)", "p(95)", "p(99)", "count")
DEFAULT_TYPES = {
    "http_reqs": "counter",
    "http_req_failed": "rate",
    "checks": "rate",
    "data_sent": "counter",
    "data_received": "counter",
    "iterations": "counter",
    "dropped_iterations": "counter",
    "vus": "gauge",
    "vus_max": "gauge",
    "throttled_requests": "counter",
    "server_errors": "counter",
    "successful_requests": "counter",
    "custom_requests_total": "counter",
}


@dataclass
class Samples:
    """Every sample of one or more k6 CSV files: per metric, parallel lists of times (ms since the
    epoch), values and tags."""

    times: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    # Times and values are packed doubles (8 bytes each); tags point to shared dicts.
    def add(self, metric: str, t: float, v: float, tags: dict) -> None:
        if metric not in self.times:
            self.times[metric], self.values[metric], self.tags[metric] = (array("d"), array("d"), [])
        self.times[metric].append(t)
        self.values[metric].append(v)
        self.tags[metric].append(tags)

    def extend(self, other: Samples) -> None:
        for m in other.times:
            if m not in self.times:
                self.times[m], self.values[m], self.tags[m] = array("d"), array("d"), []
            self.times[m].extend(other.times[m])
            self.values[m].extend(other.values[m])
            self.tags[m].extend(other.tags[m])
        self.files += other.files

    def span(self) -> tuple[float | None, float | None]:
        lo = [min(ts) for ts in self.times.values() if ts]
        hi = [max(ts) for ts in self.times.values() if ts]
        return (min(lo) if lo else None, max(hi) if hi else None)

    def count(self) -> int:
        return sum(len(v) for v in self.values.values())


def _timestamp_ms(text: str) -> float:
    t = float(text)
    # k6 writes whole seconds unless K6_CSV_TIME_FORMAT=unix_milli (the runner sets it).
    if t < 1e11:
        return t * 1000.0
    if t > 1e14:  # micro- or nanoseconds
        while t > 1e14:
            t /= 1000.0
    return t


def read_csv(path: str | Path) -> Samples:
    """Reads one k6 CSV output file (gzip-compressed when it ends in .gz)."""
    p = Path(path)
    with open(p, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    # Streamed row by row: memory holds the samples, never the file's text.
    opener = gzip.open if gzipped else open
    with opener(p, "rt", encoding="utf-8", errors="replace", newline="") as text:
        return _read_rows(p, csv.reader(text))


def _read_rows(p: Path, reader) -> Samples:
    header = next(reader, None)
    if not header or header[:3] != ["metric_name", "timestamp", "metric_value"]:
        raise ValueError(f"{p} is not k6 CSV output (no metric_name,timestamp,metric_value header)")
    tag_cols = [(i, h) for i, h in enumerate(header) if i >= 3 and h not in ("extra_tags", "metadata")]
    out = Samples(files=[str(p)])
    # Samples share a handful of tag combinations: one dict per combination.
    tag_cache: dict = {}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < 3:
            raise ValueError(f"{p}:{lineno}: truncated row {row!r}")
        try:
            t, v = _timestamp_ms(row[1]), float(row[2])
        except ValueError:
            raise ValueError(f"{p}:{lineno}: bad timestamp or value in {row[:3]!r}") from None
        key = tuple(row[i] if i < len(row) else "" for i, _ in tag_cols)
        tags = tag_cache.get(key)
        if tags is None:
            tags = tag_cache[key] = {h: row[i] for i, h in tag_cols if i < len(row) and row[i] != ""}
        out.add(sys.intern(row[0]), t, v, tags)
    return out


def read_many(paths: Iterable[str | Path]) -> Samples:
    out = Samples()
    for p in paths:
        out.extend(read_csv(p))
    return out


# --------------------------------------------------------------------------------------------
# k6's statistics


def percentile(sorted_values: list[float], p: float) -> float | None:
    """k6's percentile (0 <= p <= 1): linear interpolation at index p x (n - 1)."""
    n = len(sorted_values)
    if n == 0:
        return None
    if p <= 0:
        return sorted_values[0]
    if p >= 1:
        return sorted_values[-1]
    index = p * (n - 1)
    lower = int(math.floor(index))
    if lower + 1 >= n:
        return sorted_values[-1]
    frac = index - lower
    return sorted_values[lower] + frac * (sorted_values[lower + 1] - sorted_values[lower])


def trend_values(values: list[float], stats: Iterable[str] = TREND_STATS) -> dict:
    vs = sorted(values)
    out: dict = {}
    for s in stats:
        if s == "count":
            out[s] = len(vs)
        elif not vs:
            continue
        elif s == "avg":
            out[s] = math.fsum(vs) / len(vs)
        elif s == "min":
            out[s] = vs[0]
        elif s == "max":
            out[s] = vs[-1]
        elif s == "med":
            out[s] = percentile(vs, 0.5)
        else:
            m = re.fullmatch(r"p\((\d+(?:\.\d+)?)\)", s)
            if m:
                out[s] = percentile(vs, float(m.group(1)) / 100.0)
    return out


def metric_values(
    kind: str, values: list[float], duration_s: float, stats: Iterable[str] = TREND_STATS
) -> dict:
    if kind == "trend":
        return trend_values(values, stats)
    if kind == "counter":
        total = math.fsum(values)
        return {"count": total, "rate": total / duration_s if duration_s > 0 else 0.0}
    if kind == "rate":
        passes = sum(1 for v in values if v != 0)
        return {
            "rate": passes / len(values) if values else 0.0,
            "passes": passes,
            "fails": len(values) - passes,
        }
    # gauge: the last value, with min and max
    if not values:
        return {}
    return {"value": values[-1], "min": min(values), "max": max(values)}


def parse_metric_key(key: str) -> tuple[str, dict]:
    """'http_req_failed{name:cpu-io-no-db}' -> ('http_req_failed', {'name': 'cpu-io-no-db'})."""
    m = re.fullmatch(r"([^{}]+)(?:\{(.*)\})?", key.strip())
    if not m:
        raise ValueError(f"bad metric name {key!r}")
    tags = {}
    if m.group(2):
        for part in m.group(2).split(","):
            k, _, v = part.partition(":")
            tags[k.strip()] = v.strip().strip('"')
    return m.group(1), tags


def select(
    samples: Samples,
    metric: str,
    tags: dict | None = None,
    windows: list | None = None,
    heavy_only: bool = False,
) -> tuple[list[float], list[float]]:
    """Times and values of one metric, optionally filtered by tags and by time windows
    [(from_ms, to_ms), ...] (each half-open)."""
    ts = samples.times.get(metric, [])
    vs = samples.values.get(metric, [])
    tg = samples.tags.get(metric, [])
    out_t: list[float] = []
    out_v: list[float] = []
    skip_health = heavy_only and metric in HTTP_METRICS
    for t, v, tag in zip(ts, vs, tg, strict=False):
        if windows is not None and not any(a <= t < b for a, b in windows):
            continue
        if skip_health and tag.get("name") != HEAVY_TAG:
            continue
        if tags and any(tag.get(k) != v2 for k, v2 in tags.items()):
            continue
        out_t.append(t)
        out_v.append(v)
    return out_t, out_v


def summarize(
    samples: Samples,
    types: dict,
    duration_s: float,
    windows: list | None = None,
    heavy_only: bool = True,
    extra_keys: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> dict:
    """A k6-style metrics object ({name: {"type", "values"}}) from the samples in time windows
    (all of them without windows). With heavy_only, k6's built-in HTTP metrics count heavy
    requests only (the health probe of setup() is left out). extra_keys adds sub-metrics such as
    'http_req_failed{name:...}'; only limits the metrics computed."""
    out: dict = {}
    names = set(samples.times) | {parse_metric_key(k)[0] for k in extra_keys}
    if only is not None:
        names &= set(only)
    for name in sorted(names):
        kind = types.get(name) or DEFAULT_TYPES.get(name) or "trend"
        _, vs = select(samples, name, None, windows, heavy_only)
        if not vs and kind != "counter":
            continue
        out[name] = {"type": kind, "values": metric_values(kind, vs, duration_s)}
    for key in extra_keys:
        name, tags = parse_metric_key(key)
        if not tags or (only is not None and key not in set(only) and name not in set(only)):
            continue
        kind = types.get(name) or DEFAULT_TYPES.get(name) or "trend"
        _, vs = select(samples, name, tags, windows, False)
        out[key] = {"type": kind, "values": metric_values(kind, vs, duration_s)}
    return out


# --------------------------------------------------------------------------------------------
# Thresholds


_THRESHOLD = re.compile(
    r"^\s*(avg|min|max|med|count|rate|value|p\(\d+(?:\.\d+)?\))\s*"
    r"(<=|>=|==|!=|<|>|===)\s*(-?\d+(?:\.\d+)?)\s*$"
)


def evaluate_threshold(expr: str, values: dict) -> bool:
    """k6's threshold expression ('p(95)<2000', 'rate<0.01', 'count<=0') against a metric's
    values. A statistic the metric lacks (no samples) passes, as in k6."""
    m = _THRESHOLD.match(expr)
    if not m:
        raise ValueError(f"unsupported threshold expression {expr!r}")
    stat, op, limit = m.group(1), m.group(2), float(m.group(3))
    v = values.get(stat)
    if stat == "med" and v is None:
        v = values.get("p(50)")
    if v is None:
        return True
    return {
        "<": v < limit,
        "<=": v <= limit,
        ">": v > limit,
        ">=": v >= limit,
        "==": v == limit,
        "===": v == limit,
        "!=": v != limit,
    }[op]
