"""Which charts the HTML report draws, from a Comparison: bar charts of the summary numbers, the
time series of every side overlaid, and per capacity run the search (rate against p50/p99, the
SLO line and the bracket). The drawing itself is heavylab.report.charts."""

from __future__ import annotations

from heavylab.analysis import capacity as capsearch
from heavylab.analysis import resources, series
from heavylab.analysis.fmt import fmt_num
from heavylab.analysis.runs import capacity_of, cost, cost_at_capacity, cpu_per_request
from heavylab.report.charts import DASHES, SIDE_COLORS, svg_bars, svg_lines


def _color(i: int) -> str:
    return SIDE_COLORS[i % len(SIDE_COLORS)]


def _first(*vals):
    return next((v for v in vals if v is not None), None)


def bar_charts(c) -> list[str]:
    sides = c.sides
    charts = []
    if any(capacity_of(s.merged) is not None for s in sides):
        charts.append(
            svg_bars(
                "Capacity within the SLO",
                ["capacity"],
                [(s.label, [capacity_of(s.merged)]) for s in sides],
                "req/s",
            )
        )
        if any(cost_at_capacity(s.merged) is not None for s in sides):
            charts.append(
                svg_bars(
                    "Cost per million requests at capacity",
                    ["cost"],
                    [(s.label, [cost_at_capacity(s.merged)]) for s in sides],
                    "price",
                )
            )
    keys = ["p(50)", "p(90)", "p(95)", "p(99)", "avg"]
    charts.append(
        svg_bars(
            "Request duration" + (" (each side at its capacity)" if c.capacity_mode else ""),
            ["p50", "p90", "p95", "p99", "avg"],
            [(s.label, [s.merged.stat("http_req_duration", k) for k in keys]) for s in sides],
            "ms",
        )
    )
    charts.append(
        svg_bars(
            "Throughput",
            ["requests per second"],
            [(s.label, [s.merged.stat("http_reqs", "rate")]) for s in sides],
            "req/s",
        )
    )
    split = []
    for s in sides:
        m = s.merged
        io = _first(m.stat("server_io_ms", "avg"), m.stat("custom_io_time_ms", "avg"))
        split.append(
            (
                s.label,
                [m.stat("server_queue_ms", "avg"), m.stat("server_total_ms", "avg"), cpu_per_request(m), io],
            )
        )
    charts.append(svg_bars("Server time per request (avg)", ["queue", "service", "cpu", "io"], split, "ms"))
    if not c.capacity_mode and any(cost(s.merged) is not None for s in sides):
        charts.append(
            svg_bars(
                "Cost per million requests (at the load tested)",
                ["cost"],
                [(s.label, [cost(s.merged)]) for s in sides],
                "price",
            )
        )
    return charts


def series_charts(c) -> list[str]:
    """The time series of all sides overlaid, one color per side."""
    span = max(series.side_span(s) for s in c.sides)
    if span <= 0:
        return []
    bin_s = series.nice_step(span / 60.0)
    data = [(s.label, _color(i), series.time_series(s, bin_s)) for i, s in enumerate(c.sides)]
    if all(d is None for _, _, d in data):
        return []
    marks = []
    ref = next(s for s, (_, _, d) in zip(c.sides, data, strict=True) if d is not None)
    s0 = series.run_samples(ref.runs[0])
    if s0 is not None:
        marks = [(float(st["start_sec"]), str(st.get("name"))) for st in series.run_stages(ref.runs[0], s0)]

    def lines(keys: list[str]) -> list:
        return [
            (f"{label} {k}".strip(), color, DASHES.get(k, ""), d[k])
            for label, color, d in data
            if d is not None
            for k in keys
        ]

    def one(key: str) -> list:
        return [(label, color, "", d[key]) for label, color, d in data if d is not None]

    every = f" (per {fmt_num(bin_s)} s)"
    return [
        svg_lines(
            "Latency over time: p50, p95, p99" + every,
            "latency (ms)",
            lines(["p50", "p95", "p99"]),
            span,
            marks,
        ),
        svg_lines("Throughput over time" + every, "requests per second", one("rps"), span, marks),
        svg_lines("Error rate over time" + every, "failed requests (%)", one("err"), span, marks),
        svg_lines(
            "Queue vs service time over time (avg)" + every,
            "time (ms)",
            lines(["queue", "service"]),
            span,
            marks,
        ),
        svg_lines("CPU time per request over time (avg)" + every, "CPU time (ms)", one("cpu"), span, marks),
    ]


def capacity_charts(c) -> list[str]:
    """Per capacity side: every step's p50 and p99 against its offered rate (filled: sustained,
    hollow: broken), the SLO's p99 line and the bracket [highest sustained, lowest broken]."""
    charts = []
    for i, side in enumerate(c.sides):
        if not side.is_capacity:
            continue
        color = _color(i)
        for search in capsearch.summary(side)["searches"]:
            steps = [s for s in search["steps"] if s["rate"] is not None]
            if not steps:
                continue
            slo = (search["slo"] or {}).get("p99_ms")
            by_rate = sorted(steps, key=lambda s: s["rate"])
            p50 = [(s["rate"], s["p50"]) for s in by_rate if s["p50"] is not None]
            p99 = [(s["rate"], s["p99"]) for s in by_rate if s["p99"] is not None]
            points = []
            for s in steps:
                tip = f"step {s['step']} {s['phase']} {fmt_num(s['rate'])} req/s: {s['verdict']} ({s['why']})"
                points.append((s["rate"], s["p99"], color, s["ok"], "p99 " + tip))
                points.append((s["rate"], s["p50"], "#555", s["ok"], "p50 " + tip))
            lo, hi = (search["bracket"] + [None, None])[:2]
            bands = []
            if lo is not None:
                top = hi if hi is not None else max(s["rate"] for s in steps)
                bands.append(
                    (lo, top, f"bracket {fmt_num(lo)}–{fmt_num(hi) if hi is not None else '?'} req/s")
                )
            x_max = max(s["rate"] for s in steps) * 1.1
            name = side.label + (f" ({search['run']})" if len(side.runs) > 1 else "")
            charts.append(
                svg_lines(
                    f"Capacity search of {name}: latency against the offered rate",
                    "latency (ms)",
                    [
                        (f"{side.label} p99", color, "", p99),
                        (f"{side.label} p50", "#555", DASHES["p50"], p50),
                    ],
                    x_max,
                    [],
                    x_label="offered arrival rate (req/s); filled: sustained, hollow: broken",
                    y_max=3 * slo if slo else None,
                    hlines=[(slo, f"SLO p99 {fmt_num(slo)} ms")] if slo else [],
                    bands=bands,
                    points=points,
                )
            )
    return charts


def utilization_charts(c) -> list[str]:
    """Per side over time (its first run with /metrics samples): CPU used as a share of the usable
    CPUs (and of the quota, dashed), memory, and the HTTP bytes rate in and out."""
    data = []
    for i, side in enumerate(c.sides):
        got = resources.side_util(side)
        if got is not None:
            data.append((side.label, _color(i), got[1]))
    if not data:
        return []
    span = max((pts[-1][0] for _, _, u in data for pts in u.series.values() if pts), default=0.0)
    pct = lambda pts: [(x, 100 * y) for x, y in pts]  # noqa: E731
    cpu, mem, net = [], [], []
    # As a share when every side knows its usable CPUs, else in CPUs (one unit per chart).
    shares = all("cpu_share_of_usable" in u.series for _, _, u in data)
    for label, color, u in data:
        if not shares and "cpu_used_cpus" in u.series:
            cpu.append((label, color, "", u.series["cpu_used_cpus"]))
        if shares and "cpu_share_of_usable" in u.series:
            cpu.append((label, color, "", pct(u.series["cpu_share_of_usable"])))
        if shares and "cpu_share_of_quota" in u.series:
            cpu.append((f"{label}, of its quota", color, DASHES["p95"], pct(u.series["cpu_share_of_quota"])))
        if "memory_bytes" in u.series:
            mem.append((label, color, "", [(x, y / (1 << 20)) for x, y in u.series["memory_bytes"]]))
        for key, name, dash in (("http_in", "in", DASHES["p95"]), ("http_out", "out", "")):
            pts = u.series.get(f"{key}_bytes_per_sec") or []
            if pts:
                net.append((f"{label} {name}", color, dash, [(x, y / 1e6) for x, y in pts]))
    x_label = "time since the first /metrics scrape (s)"
    charts = []
    if cpu:
        title = "CPU used over time" + (
            ": share of the usable CPUs (dashed: of the CPU quota)" if shares else " (CPUs)"
        )
        y = "CPU used (%)" if shares else "CPU used (CPUs)"
        charts.append(svg_lines(title, y, cpu, span, [], x_label=x_label))
    if mem:
        charts.append(svg_lines("Memory over time", "memory (MiB)", mem, span, [], x_label=x_label))
    if net:
        charts.append(svg_lines("HTTP bytes over time", "MB per second", net, span, [], x_label=x_label))
    return charts


def _cw_points(cw: dict, sid: str, t0: float, scale: float = 1.0) -> list:
    """A CloudWatch series as (seconds since t0, value), each datapoint in the middle of the
    period it sums up (CloudWatch stamps a period with its start)."""
    s = (cw.get("series") or {}).get(sid) or {}
    half = float(cw.get("period_secs") or 60) / 2
    out = []
    for t, v in zip(s.get("timestamps") or [], s.get("values") or [], strict=False):
        when = _epoch(t)
        if when is not None:
            out.append((max(0.0, when - t0) + half, v * scale))
    return out


def _epoch(text) -> float | None:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def cloudwatch_charts(c) -> list[str]:
    """Per side with cloudwatch.json (its first run): CloudWatch's CPU beside the server's own CPU
    share, the ALB's p99 beside k6's, and the CPU credit balance of a T instance."""
    cpu, lat, credits, k6_p99 = [], [], [], []
    for i, side in enumerate(c.sides):
        run = next((r for r in side.runs if resources.cloudwatch_of(r)), None)
        if run is None:
            continue
        cw = resources.cloudwatch_of(run) or {}
        color = _color(i)
        t0 = _epoch((cw.get("window") or {}).get("start")) or 0.0
        for sid, name, dash in (
            ("ecs_cpu_max", "CloudWatch CPU max", ""),
            ("ecs_cpu_avg", "CloudWatch CPU avg", "2,3"),
        ):
            pts = _cw_points(cw, sid, t0)
            if pts:
                cpu.append((f"{side.label} {name}", color, dash, pts))
        for sid in sorted(cw.get("series") or {}):
            if sid.startswith("ec2_cpu_"):
                cpu.append((f"{side.label} EC2 CPU", color, "", _cw_points(cw, sid, t0)))
            if sid.startswith("ec2_credits_") and _cw_points(cw, sid, t0):
                credits.append((f"{side.label} CPUCreditBalance", color, "", _cw_points(cw, sid, t0)))
        u = resources.util_of(run)
        if u is not None:
            rows = resources.util_rows(run)
            first = min(r[0] for r in rows) / 1000.0
            key = "cpu_share_of_quota" if "cpu_share_of_quota" in u.series else "cpu_share_of_usable"
            # On CloudWatch's time axis; scrapes outside its window are left out.
            pts = [(first - t0 + x, 100 * y) for x, y in u.series.get(key) or [] if first - t0 + x >= 0]
            if pts:
                what = "quota" if key == "cpu_share_of_quota" else "usable CPUs"
                cpu.append((f"{side.label} server CPU (share of {what})", color, DASHES["p95"], pts))
        pts = _cw_points(cw, "alb_latency_p99", t0, 1000.0)
        if pts:
            lat.append((f"{side.label} ALB p99", color, "", pts))
            p99 = run.stat("http_req_duration", "p(99)")
            if p99 is not None:
                k6_p99.append((p99, f"{side.label} k6 p99 {fmt_num(p99)} ms"))
    cw_pts = [x for _, _, _, pts in cpu + lat + credits for x, _ in pts]
    if not cw_pts:
        return []
    span = max(cw_pts) + 60.0
    x_label = "time since the start of the CloudWatch window (s)"
    charts = []
    if cpu:
        charts.append(
            svg_lines("CPU: CloudWatch beside the server's own", "CPU (%)", cpu, span, [], x_label=x_label)
        )
    if lat:
        charts.append(
            svg_lines(
                "Latency: the ALB's p99 per period beside k6's run p99",
                "ms",
                lat,
                span,
                [],
                x_label=x_label,
                hlines=k6_p99,
            )
        )
    if credits:
        charts.append(
            svg_lines(
                "CPU credit balance (burstable instances)", "credits", credits, span, [], x_label=x_label
            )
        )
    return charts
