"""The report's rows: what is compared (ROWS), each side's statistic per row, and a pair of sides
judged row by row with the one noise rule (heavylab.analysis.stats.differs).

In a capacity comparison every side's other numbers come from its own step at capacity — each at
a different arrival rate — so those rows are shown, marked "not compared", and never counted as
findings, except the CPU split per request (why a capacity is lower); the cost per million at the load tested is left out there (the cost at capacity says it,
by the capacity bracket's rule)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from heavylab.analysis import runs as R
from heavylab.analysis.fmt import fmt_ratio, fmt_value, ratio
from heavylab.analysis.runs import Run, Side
from heavylab.analysis.stats import Stat, capacity_stat, cost_at_capacity_stat, differs, side_stat

Number = Optional[float]


@dataclass
class Row:
    section: str
    label: str
    get: Callable[[Run], Number]
    fmt: str  # "ms", "int", "rate", "pct", "money", "num"
    lower_is_better: bool | None = True  # None: shown, never compared (duration, VUs, price)


def _s(name: str, key: str) -> Callable[[Run], Number]:
    return lambda r: r.stat(name, key)


# The server's split of the CPU phase (Server-Timing cpu_thread, cpu_wait, throttled, steal).
CPU_THREAD = "cpu_thread avg (CPU the thread got)"
CPU_WAIT = "cpu_wait avg (waiting for a core)"
THROTTLED = "throttled avg (cgroup CFS throttling)"
STEAL = "steal avg (host steal time)"
CAPACITY = "capacity (req/s within the SLO)"
COST_AT_CAPACITY = "cost per million requests at capacity"
COST = "cost per million requests"

ROWS: list[Row] = [
    Row("Capacity", CAPACITY, R.capacity_of, "rate", False),
    Row("Capacity", COST_AT_CAPACITY, R.cost_at_capacity, "money"),
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
    Row("Server time (ms)", "queue share of server time", R.queue_share, "pct"),
    Row("Server time (ms)", "outside the server avg (network, LB)", R.outside_server, "ms"),
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
    Row("Cost", COST, R.cost, "money"),
]
# Rows left out when no side has them (runs of servers or scripts without these numbers).
OPTIONAL = {r.label for r in ROWS if r.section in ("Capacity", "CPU truth (ms per request)")} | {
    "fsync avg (inside io)"
}


def row_stat(side: Side, row: Row, noise: float) -> Stat:
    if row.label == CAPACITY:
        return capacity_stat(side)
    if row.label == COST_AT_CAPACITY:
        return cost_at_capacity_stat(side)
    return side_stat(side, row.get, noise)


def capacity_mode(sides: list[Side]) -> bool:
    return all(R.capacity_of(s.merged) is not None for s in sides)


def side_stats(sides: list[Side], noise: float) -> list[tuple[Row, list[Stat]]]:
    """Every row shown, with each side's statistic (in the order of `sides`)."""
    cap = capacity_mode(sides)
    out = []
    for row in ROWS:
        if cap and row.label == COST:
            continue  # the cost at capacity says it, by the capacity bracket's rule
        stats = [row_stat(s, row, noise) for s in sides]
        if row.label in OPTIONAL and all(st.value is None for st in stats):
            continue
        out.append((row, stats))
    return out


def cell_text(row: Row, st: Stat) -> str:
    """Rows that are not compared (duration, VUs, request count) show the value alone."""
    return st.text(row.fmt) if row.lower_is_better is not None else fmt_value(st.value, row.fmt)


# What stays comparable between two sides at different arrival rates (each at its own capacity):
# the capacity itself and the CPU split per request, which says why one capacity is lower.
PER_RATE_FREE = ("Capacity", "CPU truth (ms per request)")


def pair_rows(table: list[tuple[Row, list[Stat]]], i: int, j: int, compared_all: bool, min_effect: float):
    """Side i (A, the reference) against side j (B), row by row: the dicts the verdicts and the
    tables read. compared_all is False in a capacity comparison: only PER_RATE_FREE rows count."""
    rows = []
    for row, stats in table:
        sa, sb = stats[i], stats[j]
        compared = row.lower_is_better is not None and (compared_all or row.section in PER_RATE_FREE)
        rows.append(
            {
                "section": row.section,
                "label": row.label,
                "a": sa.value,
                "b": sb.value,
                "a_stat": sa,
                "b_stat": sb,
                "a_text": cell_text(row, sa),
                "b_text": cell_text(row, sb),
                "ratio": ratio(sa.value, sb.value),
                "ratio_text": fmt_ratio(ratio(sa.value, sb.value)),
                "lower_is_better": row.lower_is_better,
                "compared": compared,
                "finding": compared and differs(sa, sb, min_effect),
                "fmt": row.fmt,
            }
        )
    return rows


def mark(row: dict) -> str:
    """The difference column: one rule for every row."""
    if row["lower_is_better"] is None or row["a"] is None or row["b"] is None:
        return ""
    if not row["compared"]:
        return "not compared"
    return "beyond noise" if row["finding"] else "≈"


def find(rows: list[dict], label: str) -> dict | None:
    return next((r for r in rows if r["label"] == label), None)
