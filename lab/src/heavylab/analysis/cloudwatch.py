"""CloudWatch against k6 and the server: summary numbers of each CloudWatch series, and sentences
where they disagree beyond noise — each disagreement is itself a finding:

- CloudWatch CPU near 100 % while the server measured CFS throttling per request: the task is at
  its quota (Fargate's vCPU share, or a task-level CPU limit);
- CloudWatch CPU low while requests waited for a core: a period average hides the bursts;
- the ALB counted a different number of requests than k6 sent, or 5xx answers k6 did not see;
- the ALB's p99 far below k6's: the time is spent between the generator and the target;
- a burstable instance's CPU credit balance fell during the run: its capacity depends on it.

Input: a run folder's cloudwatch.json (heavylab.results.cloudwatch) and the run's own facts.
"""

from __future__ import annotations

from dataclasses import dataclass

# A disagreement is stated only beyond these margins (1-minute averages are coarse).
CPU_BUSY_PCT = 90.0
CPU_IDLE_PCT = 50.0
THROTTLED_MS = 1.0
CPU_WAIT_MS = 5.0
COUNT_SHARE = 0.05
LATENCY_FACTOR = 1.5
LATENCY_FLOOR_MS = 50.0
CREDIT_DROP_SHARE = 0.25


@dataclass
class RunFacts:
    """What k6 and the server measured in the same run (None where not measured)."""

    requests: int | None = None
    error_rate: float | None = None
    p99_ms: float | None = None
    throttled_ms: float | None = None  # Server-Timing throttled, average per request
    cpu_wait_ms: float | None = None  # Server-Timing cpu_wait, average per request


def summary(cw: dict) -> dict[str, dict]:
    """Per series: label, unit, datapoints, average, maximum, sum, first and last value."""
    out = {}
    for sid, s in (cw.get("series") or {}).items():
        v = s.get("values") or []
        out[sid] = {
            "label": s.get("label", sid),
            "unit": s.get("unit"),
            "points": len(v),
            "avg": sum(v) / len(v) if v else None,
            "max": max(v) if v else None,
            "sum": sum(v) if v else None,
            "first": v[0] if v else None,
            "last": v[-1] if v else None,
        }
    return out


def _cpu_pct(s: dict) -> tuple[float | None, str]:
    """The busiest CPU utilization CloudWatch shows for the target, and what it is."""
    if s.get("ci_cpu_used", {}).get("max") is not None and s.get("ci_cpu_reserved", {}).get("avg"):
        return 100 * s["ci_cpu_used"]["max"] / s["ci_cpu_reserved"]["avg"], "Container Insights CPU"
    if s.get("ecs_cpu_max", {}).get("max") is not None:
        return s["ecs_cpu_max"]["max"], "CloudWatch CPU"
    ec2 = [x["max"] for k, x in s.items() if k.startswith("ec2_cpu_") and x["max"] is not None]
    if ec2:
        return max(ec2), "CloudWatch EC2 CPU"
    return None, ""


def findings(cw: dict, run: RunFacts) -> list[str]:
    s = summary(cw)
    out: list[str] = []
    cpu, what = _cpu_pct(s)
    if cpu is not None and run.throttled_ms is not None:
        if cpu >= CPU_BUSY_PCT and run.throttled_ms >= THROTTLED_MS:
            out.append(
                f"{what} {cpu:.0f} % while the server saw {run.throttled_ms:.0f} ms of throttling per "
                "request: the task is at its CPU quota"
            )
        elif cpu >= CPU_BUSY_PCT and run.throttled_ms < THROTTLED_MS:
            out.append(
                f"{what} {cpu:.0f} % with no throttling seen by the server: the task used its CPUs fully, unthrottled"
            )
    if (
        cpu is not None
        and cpu < CPU_IDLE_PCT
        and run.cpu_wait_ms is not None
        and run.cpu_wait_ms >= CPU_WAIT_MS
    ):
        out.append(
            f"{what} {cpu:.0f} % looks idle, yet requests waited {run.cpu_wait_ms:.0f} ms for a core: "
            "a period average hides the bursts (or a neighbour takes the cores)"
        )
    alb = s.get("alb_requests", {}).get("sum")
    if alb is not None and run.requests:
        if abs(alb - run.requests) > COUNT_SHARE * run.requests:
            out.append(
                f"the ALB counted {alb:.0f} requests, k6 sent {run.requests}: other traffic in the window, "
                "or requests that never reached the target"
            )
    fivexx = s.get("alb_5xx", {}).get("sum")
    if fivexx and run.error_rate is not None and run.requests and fivexx > run.error_rate * run.requests + 1:
        out.append(
            f"the ALB saw {fivexx:.0f} target 5xx answers; k6 counted {run.error_rate * run.requests:.0f} failures"
        )
    alb_p99 = s.get("alb_latency_p99", {}).get("max")
    if alb_p99 is not None and run.p99_ms is not None:
        alb_ms = 1000 * alb_p99
        if run.p99_ms > LATENCY_FACTOR * alb_ms and run.p99_ms - alb_ms > LATENCY_FLOOR_MS:
            out.append(
                f"k6's p99 {run.p99_ms:.0f} ms against the ALB's {alb_ms:.0f} ms: "
                f"{run.p99_ms - alb_ms:.0f} ms are spent between the generator and the target"
            )
    for k, x in s.items():
        if k.startswith("ec2_credits_") and x["first"] and x["last"] is not None:
            if x["last"] < (1 - CREDIT_DROP_SHARE) * x["first"]:
                instance = x["label"].split()[0]
                out.append(
                    f"{instance}'s CPU credit balance fell from {x['first']:.0f} to {x['last']:.0f} during the run: "
                    "a burstable instance slows to its baseline when it runs out; its capacity depends on the balance"
                )
    return out
