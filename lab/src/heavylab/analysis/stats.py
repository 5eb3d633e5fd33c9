"""A statistic of a side — its median, its spread and where the spread comes from — and the one
noise rule every row of the report is judged by.

The spread of a side is, in this order of preference:
- "runs": min–max over its runs (two or more runs of the side);
- "slices": one run: min–max over 5 slices of it (slice k holds the k-th fifth of every stage);
- "bracket": a capacity search: [highest sustained, lowest broken) — for the cost at capacity the
  same bracket turned into costs, so capacity and its cost are judged alike;
- "assumed": one run without raw samples: ±10 %.

The noise rule (`differs`): two sides differ only when their ranges do not overlap AND their
medians differ by more than the minimum effect (5 % by default). The standard library is enough:
with 1–5 runs per side, a bootstrap interval would only restate the min–max of so few values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from heavylab.analysis.fmt import fmt_value
from heavylab.analysis.prices import cost_per_million
from heavylab.analysis.runs import Run, Side, broken_of, capacity_of
from heavylab.analysis.series import slices

Number = Optional[float]
DEFAULT_NOISE = 0.10  # assumed spread of a single run without raw samples
DEFAULT_MIN_EFFECT = 0.05


@dataclass
class Stat:
    value: Number
    lo: Number
    hi: Number
    basis: str  # "runs", "slices", "bracket", "assumed" or "none"
    status: str = ""  # a capacity search's status, when it is not plainly "bracketed"

    def text(self, kind: str) -> str:
        if self.value is None:
            return "n/a"
        v = fmt_value(self.value, kind)
        if self.lo is None or self.hi is None or self.basis == "assumed":
            return v
        if self.basis == "bracket":
            if kind == "money":
                return v
            if self.status == "max-rate" or math.isinf(self.hi):
                return f"{v} or more"
            top = fmt_value(self.hi + 1e-9, kind)
            if self.status == "budget-spent":
                return f"between {v} and {top} (search budget spent)"
            return f"{v} (broke at {top})"
        lo, hi = fmt_value(self.lo, kind), fmt_value(self.hi, kind)
        return v if lo == hi == v else f"{v} ({lo}–{hi})"


NONE = Stat(None, None, None, "none")


def side_stat(side: Side, get: Callable[[Run], Number], noise: float = DEFAULT_NOISE) -> Stat:
    value = get(side.merged)
    if value is None:
        return NONE
    if len(side.runs) >= 2:
        vals = [v for v in (get(r) for r in side.runs) if v is not None]
        if len(vals) >= 2:
            return Stat(value, min(vals), max(vals), "runs")
    if side._slices is None:
        sl = slices(side.runs[0])
        for r in sl or []:
            r.price, r.transfer = side.price, side.merged.transfer
        side._slices = sl or []
    if side._slices:
        vals = [v for v in (get(r) for r in side._slices) if v is not None]
        if len(vals) >= 2:
            return Stat(value, min(min(vals), value), max(max(vals), value), "slices")
    return Stat(value, value * (1 - noise), value * (1 + noise), "assumed")


def differs(a: Stat, b: Stat, min_effect: float) -> bool:
    """A finding: the ranges do not overlap and the medians differ by more than min_effect."""
    if a.value is None or b.value is None or None in (a.lo, a.hi, b.lo, b.hi):
        return False
    if not (a.hi < b.lo or b.hi < a.lo):  # type: ignore[operator]
        return False
    base = max(abs(a.value), abs(b.value))
    return base > 0 and abs(a.value - b.value) / base > min_effect


def capacity_stat(side: Side) -> Stat:
    """Capacity with the search's bracket: at least the sustained rate, below the broken one."""
    caps = [r.capacity for r in side.runs if r.capacity and r.capacity.get("capacity_rps")]
    if not caps:
        return NONE
    lo = min(c["capacity_rps"] for c in caps)
    highs = [broken_of(c) for c in caps]
    hi = max(h if h is not None else math.inf for h in highs)
    statuses = {c.get("status") for c in caps} - {None, "bracketed"}
    status = "max-rate" if "max-rate" in statuses else ("budget-spent" if statuses else "")
    # The interval is [lo, hi): nudge the top so touching brackets do not count as apart.
    return Stat(capacity_of(side.merged), lo, hi - 1e-9 if hi != math.inf else math.inf, "bracket", status)


def cost_at_capacity_stat(side: Side) -> Stat:
    """The cost per million at capacity, its range the capacity bracket's: the same rule as capacity."""
    c = capacity_stat(side)
    price = side.price.hourly if side.price else None
    if c.value is None or price is None:
        return NONE
    # Data transfer is per request: the same at every rate of the bracket.
    t = side.merged.transfer
    extra = t.per_million if t is not None else 0.0  # type: ignore[attr-defined]
    hi_cost = cost_per_million(price, c.lo) + extra  # type: ignore[operator]
    lo_cost = (cost_per_million(price, c.hi) if c.hi not in (None, math.inf) else 0.0) + extra  # type: ignore[operator]
    return Stat(cost_per_million(price, c.value) + extra, lo_cost, hi_cost, "bracket")  # type: ignore[operator]


def spread_basis(side: Side) -> str:
    """Where a side's spread comes from, in words."""
    if side.runs and side.runs[0].capacity is not None:
        return (
            f"{len(side.runs)} capacity search(es): the bracket between the highest sustained "
            "and the lowest broken rate"
        )
    if len(side.runs) >= 2:
        return f"min–max over {len(side.runs)} runs"
    if side._slices:
        return "one run: min–max over 5 slices of it (each a fifth of every stage)"
    return "one run without raw samples: ±10 % assumed"
