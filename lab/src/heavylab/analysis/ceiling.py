"""What limits a target: the CPUs it can use, what one request costs it, their quotient (the CPU
ceiling), and the capacity search's result in one line against that ceiling. Pure arithmetic over
/heavy/info/ and a /metrics scrape."""

from __future__ import annotations

from heavylab.results.metrics import parse


def fmt_rate(r: float | None) -> str:
    """A rate as people write it: 1840, 61.3, 5.5 (never 1.84e+03)."""
    if r is None:
        return "n/a"
    return f"{r:.0f}" if abs(r) >= 100 else f"{r:.3g}"


def usable_cpus(info: dict | None) -> tuple[float, str] | None:
    """The CPUs the target can use, from /heavy/info/: its affinity, capped by its cgroup quota and
    by its handler threads; with the reason for the number."""
    p = (info or {}).get("platform") or {}
    cpus = p.get("affinity_cpus") or p.get("logical_cpus")
    quota = p.get("cpu_quota")
    if not isinstance(cpus, (int, float)) or cpus <= 0:
        return None
    usable, source = float(cpus), "CPU affinity"
    if isinstance(quota, (int, float)) and 0 < quota < usable:
        usable, source = float(quota), "cgroup CPU quota"
    # heavy-api computes on its handler threads only: fewer threads than CPUs leave CPUs idle.
    server = (info or {}).get("server") or {}
    workers, threads = server.get("workers"), server.get("threads")
    if isinstance(workers, int) and isinstance(threads, int) and 0 < workers * threads < usable:
        usable, source = float(workers * threads), f"{workers} x {threads} handler threads"
    return usable, source


def metrics_totals(text: str | None) -> dict | None:
    """From a Prometheus scrape of heavy-api: its processes' CPU seconds and its heavy requests."""
    rows = parse(text or "")
    cpu = [v for name, _, v in rows if name == "heavy_api_process_cpu_seconds_total"]
    if not cpu:
        return None
    reqs = sum(
        v
        for name, labels, v in rows
        if name == "heavy_api_requests_total" and 'route="/heavy/cpu-io-no-db/"' in labels
    )
    return {"cpu_secs": sum(cpu), "requests": reqs}


def ceiling_of(info: dict | None, probe: dict) -> dict | None:
    cpus = usable_cpus(info)
    cpu_ms = probe.get("cpu_ms_per_request")
    if not cpus or not cpu_ms or cpu_ms <= 0:
        return None
    return {
        "rps": cpus[0] / (cpu_ms / 1000),
        "cpus": cpus[0],
        "cpus_source": cpus[1],
        "cpu_ms_per_request": cpu_ms,
        "source": probe.get("cpu_source"),
    }


def statement(result: dict) -> str:
    """The result in one line, the way the runner prints it and the report quotes it."""
    lo, hi, status = result["capacity_rps"], result["broken_rps"], result["status"]
    slo = result["slo"]
    slo_text = f"SLO p99 < {slo['p99_ms']:g} ms, errors < {slo['errors_pct']:g} %"
    ceiling = result.get("ceiling")
    ceil_text = ""
    if ceiling:
        ceil_text = (
            f"this target's CPU ceiling of {fmt_rate(ceiling['rps'])} req/s "
            f"({ceiling['cpus']:g} CPUs / {ceiling['cpu_ms_per_request']:.3g} ms CPU per request)"
        )
    if status == "none-sustained":
        return f"capacity: below {hi:g} req/s: even the lowest rate tried broke the SLO ({slo_text})"
    if status == "aborted" or lo is None:
        return "capacity: unknown (the search was aborted)"
    if status == "budget-spent" and hi is not None:
        head = f"capacity: between {lo:g} and {hi:g} req/s (search budget spent)"
        return head + (f"; {ceil_text}" if ceil_text else "") + f" ({slo_text})"
    head = f"capacity: {lo:g} req/s"
    if status == "max-rate":
        head += " or more (--max-rate reached)"
    head += f" at p99 {result['p99_ms_at_capacity']:.0f} ms"
    if ceiling:
        head += f" = {100 * lo / ceiling['rps']:.0f} % of {ceil_text}"
    return f"{head} ({slo_text})"
