"""What the report reads beside k6's summary, per run: the server's utilization (metrics-samples.csv.gz,
heavylab.analysis.utilization), CloudWatch (cloudwatch.json, heavylab.analysis.cloudwatch), the
bytes a run moved per request (priced by heavylab.analysis.prices), and whether a side runs on a
burstable T instance.

Statistics follow the one noise rule (heavylab.analysis.stats.differs); their spread: min–max over
a side's runs; one run: min–max over 5 consecutive windows of its /metrics scrapes (utilization),
or ±10 % assumed (CloudWatch: a few 1-minute datapoints are too few to slice). A side without the
file has no value: the report shows "not measured", never 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from heavylab.analysis import cloudwatch as cwa
from heavylab.analysis import utilization as ut
from heavylab.analysis.fingerprint import info_of
from heavylab.analysis.prices import TransferAssumptions, transfer_per_million
from heavylab.analysis.runs import Run, Side, median
from heavylab.analysis.stats import NONE, Stat

Number = Optional[float]
CW_FILE = "cloudwatch.json"
NOT_MEASURED = "not measured"
_CW_CACHE: dict = {}


# --- utilization ----------------------------------------------------------------------------


def processes_only(run: Run) -> bool:
    """A server the runner started on this machine shares its cgroup with k6 (and whatever else
    runs there): its CPU and memory are its processes', not the cgroup's."""
    return bool(run.meta.get("local_server"))


def util_rows(run: Run) -> list:
    return ut.load(run.path, info_of(run.meta), processes_only(run))[0]


def util_of(run: Run) -> ut.Utilization | None:
    return ut.load(run.path, info_of(run.meta), processes_only(run))[1]


def util_value(key: str, scale: float = 1.0) -> Callable[[ut.Utilization], Number]:
    def get(u: ut.Utilization) -> Number:
        v = u.summary().get(key)
        return None if v is None else v * scale

    return get


def util_stat(side: Side, get: Callable[[ut.Utilization], Number], noise: float) -> Stat:
    """A utilization quantity of a side: the median over its runs with samples, spread as the
    module docstring says."""
    per_run = [(r, util_of(r)) for r in side.runs]
    vals = [v for v in (get(u) for _, u in per_run if u is not None) if v is not None]
    if not vals:
        return NONE
    value = median(vals)
    if len(vals) >= 2:
        return Stat(value, min(vals), max(vals), "runs")
    run = next(r for r, u in per_run if u is not None and get(u) is not None)
    parts = [get(u) for u in ut.slices(util_rows(run), info_of(run.meta), processes_only=processes_only(run))]
    parts = [v for v in parts if v is not None]
    if len(parts) >= 2:
        return Stat(value, min(parts + [value]), max(parts + [value]), "slices")
    return Stat(value, value * (1 - noise), value * (1 + noise), "assumed")


def side_util(side: Side) -> tuple[Run, ut.Utilization] | None:
    """The first run of a side with samples (what the over-time charts draw)."""
    for r in side.runs:
        u = util_of(r)
        if u is not None:
            return r, u
    return None


# --- CloudWatch -----------------------------------------------------------------------------


def cloudwatch_of(run: Run) -> dict | None:
    f = run.path / CW_FILE
    key = str(f)
    if key not in _CW_CACHE:
        try:
            _CW_CACHE[key] = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
        except (OSError, ValueError):
            _CW_CACHE[key] = None
    return _CW_CACHE[key]


def cw_summary(run: Run) -> dict:
    cw = cloudwatch_of(run)
    return cwa.summary(cw) if cw else {}


def cw_value(sid: str, field: str, scale: float = 1.0) -> Callable[[Run], Number]:
    """A CloudWatch series' summary field of a run (ids: heavylab.results.cloudwatch.queries;
    "ec2_cpu" / "ec2_credits" take the first instance's)."""

    def get(run: Run) -> Number:
        s = cw_summary(run)
        key = sid
        if sid in ("ec2_cpu", "ec2_credits"):
            key = next((k for k in sorted(s) if k.startswith(sid + "_")), "")
        v = (s.get(key) or {}).get(field)
        return None if v is None else v * scale

    return get


def ci_cpu_share(run: Run) -> Number:
    s = cw_summary(run)
    used, reserved = (s.get("ci_cpu_used") or {}).get("avg"), (s.get("ci_cpu_reserved") or {}).get("avg")
    return used / reserved if used is not None and reserved else None


def run_stat(side: Side, get: Callable[[Run], Number], noise: float) -> Stat:
    """A per-run-file quantity (CloudWatch): median over the runs; one run: ±noise assumed."""
    vals = [v for v in (get(r) for r in side.runs) if v is not None]
    if not vals:
        return NONE
    value = median(vals)
    if len(vals) >= 2:
        return Stat(value, min(vals), max(vals), "runs")
    return Stat(value, value * (1 - noise), value * (1 + noise), "assumed")


def run_facts(run: Run) -> cwa.RunFacts:
    """What k6 and the server measured in a run, for the CloudWatch disagreement sentences."""
    req = run.stat("http_reqs", "count")
    # A capacity run's summary is its step at capacity, CloudWatch's window the whole search:
    # their counts and p99 are not the same requests' (the CPU facts still compare).
    search = run.capacity is not None
    return cwa.RunFacts(
        requests=int(req) if req is not None and not search else None,
        error_rate=run.stat("http_req_failed", "rate"),
        p99_ms=None if search else run.stat("http_req_duration", "p(99)"),
        throttled_ms=run.stat("server_throttled_ms", "avg"),
        cpu_wait_ms=run.stat("server_cpu_wait_ms", "avg"),
    )


def cloudwatch_findings(side: Side) -> list[str]:
    """The disagreements of each run's CloudWatch with k6 and the server, as sentences."""
    out = []
    for r in side.runs:
        cw = cloudwatch_of(r)
        if not cw:
            continue
        where = f"{side.label}" + (f" ({r.path.name})" if len(side.runs) > 1 else "")
        out += [f"**CloudWatch, {where}**: {x}." for x in cwa.findings(cw, run_facts(r))]
    return out


# --- data transfer --------------------------------------------------------------------------


@dataclass
class Transfer:
    """The bytes one request moved (requests and answers), where they were counted, and their
    cost per million requests under the report's assumptions."""

    bytes_per_request: float
    bytes_out_per_request: Number
    source: str
    per_million: float


def bytes_of(run: Run) -> tuple[Number, Number, str]:
    """(bytes per request in + out, answer bytes per request, source): the ALB's ProcessedBytes
    per ALB request when CloudWatch has them, else the server's HTTP bytes per heavy request when
    /metrics was sampled, else k6's data_sent + data_received per request."""
    k6_in, k6_out = run.stat("data_sent", "count"), run.stat("data_received", "count")
    k6_req = run.stat("http_reqs", "count")
    k6_total = (k6_in + k6_out) / k6_req if k6_in is not None and k6_out is not None and k6_req else None
    u = util_of(run)
    server_total = u.totals.get("http_bytes_per_request") if u is not None else None
    # The answers' share of the bytes (egress prices only them): the server's count, else k6's.
    if server_total and u is not None:
        out_share = u.totals["http_out_bytes"] / (u.totals["http_in_bytes"] + u.totals["http_out_bytes"])
    elif k6_total:
        out_share = k6_out / (k6_in + k6_out)  # type: ignore[operator]
    else:
        out_share = None
    s = cw_summary(run)
    alb_bytes, alb_req = (s.get("alb_bytes") or {}).get("sum"), (s.get("alb_requests") or {}).get("sum")
    if alb_bytes and alb_req:
        total, source = alb_bytes / alb_req, "the ALB's ProcessedBytes per ALB request (CloudWatch)"
    elif server_total is not None:
        total, source = server_total, "the server's HTTP bytes per heavy request (/metrics)"
    elif k6_total is not None:
        total, source = k6_total, "k6's data_sent + data_received per request"
    else:
        return None, None, ""
    return total, (total * out_share if out_share is not None else None), source


def transfer_of(run: Run, a: TransferAssumptions) -> Transfer | None:
    total, out, source = bytes_of(run)
    if total is None:
        return None
    return Transfer(total, out, source, transfer_per_million(total, out, a) or 0.0)


def attach_transfer(side: Side, a: TransferAssumptions) -> None:
    """Each run's Transfer, and the median over them on the side's merged run (slices of one run
    take it from stats.side_stat through the merged run)."""
    found = [t for t in (transfer_of(r, a) for r in side.runs) if t is not None]
    for r in side.runs:
        r.transfer = transfer_of(r, a)
    if not found:
        side.merged.transfer = None
        return
    bpr = median([t.bytes_per_request for t in found])
    outs = [t.bytes_out_per_request for t in found if t.bytes_out_per_request is not None]
    out = median(outs) if outs else None
    sources = sorted({t.source for t in found})
    side.merged.transfer = Transfer(bpr, out, "; ".join(sources), transfer_per_million(bpr, out, a) or 0.0)


# --- burstable instances --------------------------------------------------------------------

_T_FAMILY = re.compile(r"^t\d+[a-z]*\.[a-z0-9]+$")


def instance_type(side: Side) -> tuple[str | None, str]:
    """The EC2 instance type of a side and where it was read: /heavy/info/, meta.json, the price."""
    info = info_of(side.meta) or {}
    plat = info.get("platform") or {}
    if isinstance(plat.get("instance_type"), str) and plat["instance_type"]:
        return plat["instance_type"], "GET /heavy/info/"
    if isinstance(side.meta.get("instance_type"), str) and side.meta["instance_type"]:
        return side.meta["instance_type"], "meta.json"
    spec = str(side.meta.get("price") or "")
    if side.price is not None and side.price.description.startswith("EC2 "):
        spec = "ec2:" + side.price.description.split()[1]
    m = re.match(r"ec2:([a-z0-9]+\.[a-z0-9]+)", spec.strip().lower())
    if m:
        return m.group(1), "the price spec"
    return None, ""


def unlimited_mode(side: Side) -> bool | None:
    """Whether a T instance runs in unlimited mode, where the metadata says so (else None)."""
    plat = (info_of(side.meta) or {}).get("platform") or {}
    for source in (plat, side.meta):
        v = source.get("cpu_credits") or source.get("credit_specification")
        if isinstance(v, str) and v:
            return v.lower() == "unlimited"
        if isinstance(source.get("unlimited"), bool):
            return source["unlimited"]
    return None


def burstable_warning(side: Side) -> str | None:
    itype, where = instance_type(side)
    plat = (info_of(side.meta) or {}).get("platform") or {}
    if not (itype and _T_FAMILY.match(itype)) and plat.get("burstable") is not True:
        return None
    unl = unlimited_mode(side)
    mode = {
        True: "it runs in unlimited mode: it keeps its speed and bills the surplus credits",
        False: "it runs in standard mode: out of credits it slows to its baseline",
        None: "whether it runs in unlimited mode is not known (standard mode slows to the baseline "
        "out of credits; unlimited bills the surplus instead)",
    }[unl]
    text = (
        f"{side.label} runs on {itype or 'a T-family instance'} (from {where or 'GET /heavy/info/'}), a "
        f"burstable instance: its capacity depends on its CPU credit balance; {mode}."
    )
    balances = [cw_value("ec2_credits", f)(r) for r in side.runs for f in ("first", "last")]
    if any(v is not None for v in balances):
        first = next(v for v in balances if v is not None)
        last = [v for v in balances if v is not None][-1]
        text += f" CloudWatch's CPUCreditBalance went from {first:.0f} to {last:.0f} during the run(s)."
    else:
        text += (
            " The run has no CPUCreditBalance: fetch it with `heavy-lab cloudwatch RUN --instance ID` "
            "to see whether the credits lasted."
        )
    return text
