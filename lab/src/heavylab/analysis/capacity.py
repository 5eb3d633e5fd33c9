"""A capacity run's search as the report shows it, from capacity.json — the current schema
(heavylab.run.capacity: status, bracket, statement, ceiling, steps with phase and reasons) and the
older one of the recorded runs (capacity_rps, broken_rps, steps without phase): every step with
its verdict and why, the one-line statement, the ceiling, and the search's options as flags."""

from __future__ import annotations

from heavylab.analysis.fmt import fmt_num
from heavylab.analysis.runs import Side, broken_of

# The search's options as `heavy-lab capacity` spells them, in the order of its --help.
OPTION_FLAGS = (
    ("slo_p99_ms", "--slo-p99-ms"),
    ("slo_errors_pct", "--slo-errors-pct"),
    ("start_rate", "--start-rate"),
    ("max_rate", "--max-rate"),
    ("step_secs", "--step-secs"),
    ("budget_secs", "--budget-secs"),
    ("precision", "--precision"),
    ("max_steps", "--max-steps"),
)


def steps(capacity: dict) -> list[dict]:
    """Every step, normalized: step, phase, rate, sent, served, p50, p99, errors (a fraction),
    dropped, ok, verdict ("sustained" / "broken") and why (the reasons, joined)."""
    out = []
    for i, s in enumerate(capacity.get("steps") or [], 1):
        ok = bool(s.get("ok"))
        reasons = [str(r) for r in s.get("reasons") or []]
        out.append(
            {
                "step": s.get("step", i),
                "phase": s.get("phase") or "",
                "rate": s.get("rate"),
                "sent": s.get("sent", s.get("requests")),
                "served": s.get("throughput_rps", s.get("served_rps")),
                "p50": s.get("p50_ms"),
                "p99": s.get("p99_ms"),
                "errors": s.get("error_rate"),
                "dropped": s.get("dropped_iterations"),
                "ok": ok,
                "verdict": "sustained" if ok else "broken",
                # The current search also judges steadiness (heavylab.analysis.steady); the old did not.
                "why": "; ".join(reasons)
                if reasons
                else ("n/a" if not ok else "within the SLO, steady" if "phase" in s else "within the SLO"),
            }
        )
    return out


def statement(capacity: dict) -> str:
    """The search's one-line result (the new schema writes it; the old one is worded here)."""
    if capacity.get("statement"):
        return str(capacity["statement"])
    lo, hi = capacity.get("capacity_rps"), broken_of(capacity)
    if lo is None:
        return "capacity: none sustained"
    slo = capacity.get("slo") or {}
    text = f"capacity: {fmt_num(lo)} req/s"
    text += f" (broke at {fmt_num(hi)} req/s)" if hi is not None else " (no rate broke it)"
    if slo:
        text += f" (SLO p99 < {slo.get('p99_ms', 2000):g} ms, errors < {slo.get('errors_pct', 1):g} %)"
    return text


def ceiling_text(capacity: dict) -> str:
    c = capacity.get("ceiling")
    if not isinstance(c, dict) or not c.get("rps"):
        return "n/a (no CPU per request or usable CPUs measured)"
    text = (
        f"{fmt_num(c['rps'])} req/s = {c.get('cpus', 0):g} CPUs ({c.get('cpus_source') or 'n/a'}) / "
        f"{fmt_num(c.get('cpu_ms_per_request'))} ms CPU per request ({c.get('source') or 'n/a'})"
    )
    if capacity.get("headroom_pct") is not None:
        text += f"; capacity is {capacity['headroom_pct']:g} % of it"
    return text


def options(side: Side) -> dict:
    """The search's options: capacity.json's "options", else meta.json's, else the old file's."""
    run = side.runs[0]
    cap = run.capacity or {}
    for source in (cap.get("options"), run.meta.get("capacity_options"), run.meta.get("capacity")):
        if isinstance(source, dict) and source:
            return dict(source)
    old = {k: cap.get(k) for k in ("start_rate", "max_rate", "step_secs", "precision", "budget_secs")}
    slo = cap.get("slo") or {}
    old.update({"slo_p99_ms": slo.get("p99_ms"), "slo_errors_pct": slo.get("errors_pct")})
    return {k: v for k, v in old.items() if v is not None}


def option_flags(side: Side) -> list[str]:
    """The options as command-line words, every recorded one (defaults included: what was used)."""
    opts = options(side)
    words = []
    for key, flag in OPTION_FLAGS:
        v = opts.get(key)
        if v is None:
            continue
        words += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    return words


def summary(side: Side) -> dict:
    """What the report shows of a side's search(es): per run its statement, status, bracket,
    ceiling, contradictions, time spent and steps."""
    out = []
    for r in side.runs:
        c = r.capacity or {}
        bracket = c.get("bracket") or [c.get("capacity_rps"), broken_of(c)]
        out.append(
            {
                "run": r.path.name,
                "statement": statement(c),
                "status": c.get("status") or ("bracketed" if broken_of(c) is not None else "max-rate"),
                "bracket": bracket,
                "bracket_width_pct": c.get("bracket_width_pct"),
                "precise": c.get("precise"),
                "ceiling": ceiling_text(c),
                "contradictions": [str(x) for x in c.get("contradictions") or []],
                "transients": [str(x) for x in c.get("transients") or []],
                "search_secs": c.get("search_secs"),
                "budget_secs": c.get("budget_secs"),
                "slo": c.get("slo") or {},
                "steps": steps(c),
            }
        )
    return {"label": side.label, "searches": out}
