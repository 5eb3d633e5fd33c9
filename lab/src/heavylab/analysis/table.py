"""The report's rows: what is compared (ROWS), each side's statistic per row, and a pair of sides
judged row by row with the one noise rule (heavylab.analysis.stats.differs).

In a capacity comparison every side's other numbers come from its own step at capacity — each at
a different arrival rate — so those rows are shown, marked "not compared", and never counted as
findings, except the CPU split per request (why a capacity is lower), which is read at each side's
limit: its step at the lowest broken rate, where the limit shows (Run.at_limit). The cost per
million at the load tested is left out there (the cost at capacity says it, by the capacity
bracket's rule)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from heavylab.analysis import resources as RS
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
    # A statistic of its own (side, noise) -> Stat, for numbers not in k6's summary.
    stat: Callable[[Side, float], Stat] | None = None
    missing: str = "n/a"  # a side without the number


def _u(key: str, scale: float = 1.0) -> dict:
    """A utilization row's getter and statistic (heavylab.analysis.resources)."""
    get = RS.util_value(key, scale)

    def on_run(r: Run) -> Number:
        u = RS.util_of(r)
        return get(u) if u is not None else None

    return {
        "get": on_run,
        "stat": lambda side, noise: RS.util_stat(side, get, noise),
        "missing": RS.NOT_MEASURED,
    }


def _cw(get: Callable[[Run], Number]) -> dict:
    return {"get": get, "stat": lambda side, noise: RS.run_stat(side, get, noise), "missing": RS.NOT_MEASURED}


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
UTILIZATION = "Utilization (the server's /metrics during the run)"
CLOUDWATCH = "CloudWatch (the run's window)"
REQ_PER_CPU = "requests per CPU-second"
BYTES_PER_REQUEST = "bytes per request (in + out)"
TRANSFER = "data transfer per million requests"

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
    Row("CPU truth (ms per request)", CPU_THREAD, R.split_stat("server_cpu_thread_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", CPU_WAIT, R.split_stat("server_cpu_wait_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", "cpu_wait p95", R.split_stat("server_cpu_wait_ms", "p(95)"), "ms"),
    Row("CPU truth (ms per request)", THROTTLED, R.split_stat("server_throttled_ms", "avg"), "ms"),
    Row("CPU truth (ms per request)", STEAL, R.split_stat("server_steal_ms", "avg"), "ms"),
    Row(UTILIZATION, "CPU used (CPUs, avg)", fmt="num", **_u("cpu_used_cpus_avg")),
    Row(UTILIZATION, "CPU used, share of the usable CPUs (avg)", fmt="pct", **_u("cpu_share_of_usable_avg")),
    Row(UTILIZATION, "CPU used, share of the usable CPUs (peak)", fmt="pct", **_u("cpu_share_of_usable_max")),
    Row(UTILIZATION, "CPU used, share of the CPU quota (avg)", fmt="pct", **_u("cpu_share_of_quota_avg")),
    Row(UTILIZATION, "memory peak (MiB)", fmt="num", **_u("memory_bytes_max", 1 / (1 << 20))),
    Row(UTILIZATION, "memory peak, share of the limit", fmt="pct", **_u("memory_share_of_limit_max")),
    Row(UTILIZATION, "HTTP bytes received", fmt="bytes", lower_is_better=None, **_u("http_in_bytes")),
    Row(UTILIZATION, "HTTP bytes sent", fmt="bytes", lower_is_better=None, **_u("http_out_bytes")),
    Row(
        UTILIZATION,
        "HTTP receive rate (avg)",
        fmt="bytes/s",
        lower_is_better=None,
        **_u("http_in_bytes_per_sec_avg"),
    ),
    Row(
        UTILIZATION,
        "HTTP send rate (avg)",
        fmt="bytes/s",
        lower_is_better=None,
        **_u("http_out_bytes_per_sec_avg"),
    ),
    Row(UTILIZATION, "interface bytes in", fmt="bytes", lower_is_better=None, **_u("net_in_bytes")),
    Row(UTILIZATION, "interface bytes out", fmt="bytes", lower_is_better=None, **_u("net_out_bytes")),
    Row(
        UTILIZATION,
        "interface in rate (avg)",
        fmt="bytes/s",
        lower_is_better=None,
        **_u("net_in_bytes_per_sec_avg"),
    ),
    Row(
        UTILIZATION,
        "interface out rate (avg)",
        fmt="bytes/s",
        lower_is_better=None,
        **_u("net_out_bytes_per_sec_avg"),
    ),
    Row(UTILIZATION, REQ_PER_CPU, fmt="num", lower_is_better=False, **_u("requests_per_cpu_second")),
    Row(
        CLOUDWATCH, "service CPU utilization (avg)", fmt="pct", **_cw(RS.cw_value("ecs_cpu_avg", "avg", 0.01))
    ),
    Row(
        CLOUDWATCH, "service CPU utilization (max)", fmt="pct", **_cw(RS.cw_value("ecs_cpu_max", "max", 0.01))
    ),
    Row(
        CLOUDWATCH,
        "service memory utilization (avg)",
        fmt="pct",
        **_cw(RS.cw_value("ecs_mem_avg", "avg", 0.01)),
    ),
    Row(CLOUDWATCH, "Container Insights CPU used / reserved (avg)", fmt="pct", **_cw(RS.ci_cpu_share)),
    Row(
        CLOUDWATCH,
        "Container Insights memory used (MiB avg)",
        fmt="num",
        **_cw(RS.cw_value("ci_mem_used", "avg")),
    ),
    Row(
        CLOUDWATCH,
        "Container Insights network in (avg)",
        fmt="bytes/s",
        lower_is_better=None,
        **_cw(RS.cw_value("ci_net_rx", "avg")),
    ),
    Row(
        CLOUDWATCH,
        "Container Insights network out (avg)",
        fmt="bytes/s",
        lower_is_better=None,
        **_cw(RS.cw_value("ci_net_tx", "avg")),
    ),
    Row(
        CLOUDWATCH,
        "ALB target response time p99 (ms, worst period)",
        fmt="ms",
        **_cw(RS.cw_value("alb_latency_p99", "max", 1000)),
    ),
    Row(
        CLOUDWATCH,
        "ALB target response time avg (ms)",
        fmt="ms",
        **_cw(RS.cw_value("alb_latency_avg", "avg", 1000)),
    ),
    Row(
        CLOUDWATCH, "ALB requests", fmt="int", lower_is_better=None, **_cw(RS.cw_value("alb_requests", "sum"))
    ),
    Row(CLOUDWATCH, "ALB target 5xx answers", fmt="int", **_cw(RS.cw_value("alb_5xx", "sum"))),
    Row(
        CLOUDWATCH,
        "ALB processed bytes",
        fmt="bytes",
        lower_is_better=None,
        **_cw(RS.cw_value("alb_bytes", "sum")),
    ),
    Row(CLOUDWATCH, "EC2 CPU utilization (max)", fmt="pct", **_cw(RS.cw_value("ec2_cpu", "max", 0.01))),
    Row(
        CLOUDWATCH,
        "EC2 CPU credit balance at the start",
        fmt="num",
        lower_is_better=None,
        **_cw(RS.cw_value("ec2_credits", "first")),
    ),
    Row(
        CLOUDWATCH,
        "EC2 CPU credit balance at the end",
        fmt="num",
        lower_is_better=None,
        **_cw(RS.cw_value("ec2_credits", "last")),
    ),
    Row("Cost", "price per hour", lambda r: r.price.hourly if r.price else None, "money", None),
    Row("Cost", BYTES_PER_REQUEST, R.bytes_per_request, "int"),
    Row("Cost", TRANSFER, R.transfer_per_million, "money"),
    Row("Cost", COST, R.cost, "money"),
    Row("Cost", "transfer share of the cost", R.transfer_share, "pct", None),
    Row("Cost", "transfer share of the cost at capacity", R.transfer_share_at_capacity, "pct", None),
]
# Rows left out when no side has them (runs of servers or scripts without these numbers).
OPTIONAL = {
    r.label for r in ROWS if r.section in ("Capacity", "CPU truth (ms per request)", UTILIZATION, CLOUDWATCH)
} | {
    "fsync avg (inside io)",
    BYTES_PER_REQUEST,
    TRANSFER,
    "transfer share of the cost",
    "transfer share of the cost at capacity",
}


def row_stat(side: Side, row: Row, noise: float) -> Stat:
    if row.label == CAPACITY:
        return capacity_stat(side)
    if row.label == COST_AT_CAPACITY:
        return cost_at_capacity_stat(side)
    if row.stat is not None:
        return row.stat(side, noise)
    return side_stat(side, row.get, noise)


def capacity_mode(sides: list[Side]) -> bool:
    return all(R.capacity_of(s.merged) is not None for s in sides)


def side_stats(sides: list[Side], noise: float) -> list[tuple[Row, list[Stat]]]:
    """Every row shown, with each side's statistic (in the order of `sides`)."""
    cap = capacity_mode(sides)
    out = []
    for row in ROWS:
        if cap and row.label in (COST, "transfer share of the cost"):
            continue
        if not cap and row.label == "transfer share of the cost at capacity":
            continue  # the cost at capacity says it, by the capacity bracket's rule
        stats = [row_stat(s, row, noise) for s in sides]
        if row.label in OPTIONAL and all(st.value is None for st in stats):
            continue
        out.append((row, stats))
    return out


def cell_text(row: Row, st: Stat) -> str:
    """Rows that are not compared (duration, VUs, request count) show the value alone."""
    if st.value is None:
        return row.missing
    return st.text(row.fmt) if row.lower_is_better is not None else fmt_value(st.value, row.fmt)


# What stays comparable between two sides at different arrival rates (each at its own capacity):
# the capacity itself and the CPU split per request, which says why one capacity is lower.
PER_RATE_FREE = ("Capacity", "CPU truth (ms per request)")
# Rows of other sections that are per request, so comparable at different rates too.
PER_RATE_FREE_ROWS = (REQ_PER_CPU, BYTES_PER_REQUEST, TRANSFER)


def pair_rows(table: list[tuple[Row, list[Stat]]], i: int, j: int, compared_all: bool, min_effect: float):
    """Side i (A, the reference) against side j (B), row by row: the dicts the verdicts and the
    tables read. compared_all is False in a capacity comparison: only PER_RATE_FREE rows count."""
    rows = []
    for row, stats in table:
        sa, sb = stats[i], stats[j]
        compared = row.lower_is_better is not None and (
            compared_all or row.section in PER_RATE_FREE or row.label in PER_RATE_FREE_ROWS
        )
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
