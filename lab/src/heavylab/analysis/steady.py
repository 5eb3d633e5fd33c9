"""Is one capacity step steady? The verdict of a constant-arrival-rate step from its raw samples.

A step sustains its rate only if, after a warm-up that is left out of the verdict:
- its p99 latency and its error rate are within the SLO,
- k6 dropped no request (it always had a VU free: requests did not pile up in the generator),
- the target served what was offered (answers completed in the window >= 98 % of the schedule,
  less two answers for the window's edges): a target 2 % behind builds a queue that never drains,
  and a capacity quoted from such a step is above what the target served,
- and latency did not keep growing across the step: the median of the last third is not both
  1.5x and a noticeable amount (10 ms, or 2.5 % of the SLO) above the first third's. A queue that
  grows for the whole step passes a short step's p99 and still means the rate is not held.

Pure functions over `heavylab.results.samples.Samples`: no k6, no network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import median

from heavylab.results import samples as k6samples

# The answers counted against the schedule: at least this share must complete in the window.
MIN_SERVED_SHARE = 0.98
# Latency growth across a step that marks a growing queue: both factor and amount.
GROWTH_FACTOR = 1.5
GROWTH_FLOOR_MS = 10.0
GROWTH_SLO_SHARE = 0.025


def warmup_secs(step_secs: float) -> float:
    """The start of a step left out of its verdict: connections, VUs and caches warm up there."""
    return min(max(2.0, 0.2 * step_secs), step_secs / 2)


@dataclass
class StepStats:
    rate: float
    secs: float
    warmup_secs: float
    sent: int  # heavy requests answered within the judged window
    served_rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    error_rate: float
    dropped_iterations: int
    first_p50_ms: float | None  # median latency of the window's first and last thirds
    last_p50_ms: float | None
    cpu_thread_ms: float | None = None  # Server-Timing averages, when the target sends them
    cpu_wait_ms: float | None = None
    throttled_ms: float | None = None
    queue_ms: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _heavy(tags: dict) -> bool:
    return tags.get("name", k6samples.HEAVY_TAG) == k6samples.HEAVY_TAG


def _avg(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def step_stats(s: k6samples.Samples, rate: float, secs: float, warmup: float | None = None) -> StepStats:
    """The numbers of one step, from the samples of its k6 run, over [origin + warmup, origin + secs]
    (origin: when the first request started)."""
    warm = warmup_secs(secs) if warmup is None else warmup
    lat_t = s.times.get("latency_total_ms", [])
    lat_v = s.values.get("latency_total_ms", [])
    lat_tags = s.tags.get("latency_total_ms", [])
    reqs = [(t, v) for t, v, tg in zip(lat_t, lat_v, lat_tags, strict=False) if _heavy(tg)]
    origin = min((t - v for t, v in reqs), default=None)
    dropped = int(sum(s.values.get("dropped_iterations", [])))
    if origin is None:
        return StepStats(rate, secs, warm, 0, None, None, None, 1.0, dropped, None, None)
    lo, hi = origin + warm * 1000.0, origin + secs * 1000.0
    # A request belongs to the window it started in; its answer may come after the window.
    window = sorted((t - v, v) for t, v in reqs if lo <= t - v < hi)
    values = sorted(v for _, v in window)
    # Served: answers completed inside the window, against the requests scheduled in it.
    completed = sum(1 for t, _ in reqs if lo <= t < hi)
    span = (hi - lo) / 1000.0
    third = len(window) // 3
    first = median(v for _, v in window[:third]) if third else None
    last = median(v for _, v in window[-third:]) if third else None

    failed_t = s.times.get("http_req_failed", [])
    failed = [
        v
        for t, v, tg in zip(
            failed_t, s.values.get("http_req_failed", []), s.tags.get("http_req_failed", []), strict=False
        )
        if _heavy(tg) and lo <= t < hi + 60_000
    ]

    def window_avg(metric: str) -> float | None:
        ts, vs = s.times.get(metric, []), s.values.get(metric, [])
        return _avg([v for t, v in zip(ts, vs, strict=False) if lo <= t < hi])

    return StepStats(
        rate=rate,
        secs=secs,
        warmup_secs=warm,
        sent=len(window),
        served_rps=completed / span if span > 0 else None,
        p50_ms=k6samples.percentile(values, 0.5),
        p99_ms=k6samples.percentile(values, 0.99),
        error_rate=(sum(1 for v in failed if v) / len(failed)) if failed else (0.0 if window else 1.0),
        dropped_iterations=dropped,
        first_p50_ms=first,
        last_p50_ms=last,
        cpu_thread_ms=window_avg("server_cpu_thread_ms"),
        cpu_wait_ms=window_avg("server_cpu_wait_ms"),
        throttled_ms=window_avg("server_throttled_ms"),
        queue_ms=window_avg("server_queue_ms"),
    )


def judge(st: StepStats, slo_p99_ms: float, slo_errors: float) -> StepStats:
    """Fills st.reasons with every way the step broke (empty: sustained). slo_errors is a fraction."""
    r = st.reasons
    r.clear()
    scheduled = st.rate * (st.secs - st.warmup_secs)
    if st.sent == 0 or st.p99_ms is None:
        r.append("no request was answered")
        return st
    if st.p99_ms >= slo_p99_ms:
        r.append(f"p99 {st.p99_ms:.0f} ms >= SLO {slo_p99_ms:g} ms")
    if st.error_rate >= slo_errors:
        r.append(f"errors {st.error_rate * 100:.2f} % >= SLO {slo_errors * 100:g} %")
    if st.dropped_iterations > 0:
        r.append(f"k6 dropped {st.dropped_iterations} requests (no VU free: requests piled up)")
    served = st.served_rps or 0.0
    if served * (st.secs - st.warmup_secs) < MIN_SERVED_SHARE * scheduled - 2:
        r.append(
            f"served {served:.0f} of {st.rate:g} req/s offered"
            if served >= 100
            else f"served {served:.3g} of {st.rate:g} req/s offered"
        )
    if st.first_p50_ms is not None and st.last_p50_ms is not None:
        floor = max(GROWTH_FLOOR_MS, GROWTH_SLO_SHARE * slo_p99_ms)
        if st.last_p50_ms > GROWTH_FACTOR * st.first_p50_ms and st.last_p50_ms - st.first_p50_ms > floor:
            r.append(
                f"latency kept growing: median {st.first_p50_ms:.0f} ms in the first third, "
                f"{st.last_p50_ms:.0f} ms in the last (a growing queue)"
            )
    return st
