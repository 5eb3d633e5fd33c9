"""The capacity search's strategy, apart from k6: which rate to try next, and when to stop.

`find_capacity(try_rate, estimate, ...)` calls `try_rate(rate, phase) -> bool` (True: the step
sustained the rate) and returns an `Outcome`. No I/O here, so the strategy is tested against
simulated targets (lab/tests/test_search.py).

1. **Bracket** around the estimate: the first step at 90 % of it; up by 20 % while steps sustain,
   down by 25 % while they break, until one rate sustained and a higher one broke.
2. **Bisect** (geometric midpoint, three significant digits) until the bracket is within
   `precision` (5 %: hi <= lo x 1.05).
3. **Confirm** the boundary: the highest sustained and the lowest broken rate are each run once
   more. A rate counts as sustained only if every run of it sustained; a contradiction is recorded
   and the bracket is recomputed (so it widens below the contradicted rate), then bisected again.
4. The first broken step far below the estimate (under half of it) is retried once before it
   counts: one bad step there is more likely a hiccup than the capacity. (Only the first: when the
   estimate itself is that wrong, retrying every step would double the search.)
5. Every step asks `may_run()` first (the time budget); when it says no, the outcome says how far
   the search got ("budget-spent"), never a single number from a wide bracket.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

START_SHARE = 0.9
UP = 1.2
DOWN = 0.75
FAR_BELOW = 0.5


def nice_rate(r: float) -> float:
    """Three significant digits: rates a reader can repeat (123 req/s, 4.56 req/s)."""
    if r <= 0:
        return 0.0
    digits = 3 - int(math.floor(math.log10(r))) - 1
    return round(r, digits)


@dataclass
class Outcome:
    lo: float | None  # highest rate sustained on every run, below every broken rate
    hi: float | None  # lowest rate that broke
    status: str  # bracketed | budget-spent | max-rate | none-sustained
    confirmed: bool
    contradictions: list[str] = field(default_factory=list)
    transients: list[str] = field(default_factory=list)
    history: list[tuple[float, str, bool]] = field(default_factory=list)

    @property
    def width(self) -> float | None:
        """The bracket's width as a share of its low end (0.05 = 5 %)."""
        if self.lo and self.hi:
            return self.hi / self.lo - 1
        return None


class _Runs:
    """Every verdict per rate, and the bracket they imply."""

    def __init__(self) -> None:
        self.by_rate: dict[float, list[bool]] = {}

    def add(self, rate: float, ok: bool) -> None:
        self.by_rate.setdefault(rate, []).append(ok)

    def sustained(self, rate: float) -> bool:
        return all(self.by_rate[rate])

    def bracket(self) -> tuple[float | None, float | None]:
        broken = [r for r in self.by_rate if not self.sustained(r)]
        hi = min(broken) if broken else None
        held = [r for r in self.by_rate if self.sustained(r) and (hi is None or r < hi)]
        return (max(held) if held else None), hi


def find_capacity(
    try_rate: Callable[[float, str], bool],
    estimate: float,
    *,
    precision: float = 0.05,
    max_rate: float = 100_000.0,
    min_rate: float = 0.05,
    may_run: Callable[[], bool] = lambda: True,
) -> Outcome:
    runs = _Runs()
    out = Outcome(None, None, "budget-spent", False)
    estimate = max(min_rate, min(estimate, max_rate))

    def step(rate: float, phase: str) -> bool | None:
        if not may_run():
            return None
        ok = try_rate(rate, phase)
        out.history.append((rate, phase, ok))
        far_below = rate < FAR_BELOW * estimate and rate not in runs.by_rate
        if not ok and far_below and not any(p == "retry" for _, p, _ in out.history):
            if not may_run():
                runs.add(rate, ok)
                return ok
            again = try_rate(rate, "retry")
            out.history.append((rate, "retry", again))
            if again:
                out.transients.append(
                    f"{rate:g} req/s broke once far below the estimate of {estimate:.3g} req/s and held on a retry"
                )
                runs.add(rate, True)
                return True
        runs.add(rate, ok)
        return ok

    def finish(status: str, confirmed: bool = False) -> Outcome:
        out.lo, out.hi = runs.bracket()
        out.status, out.confirmed = status, confirmed
        return out

    # 1. Bracket.
    rate = nice_rate(min(max_rate, START_SHARE * estimate))
    while True:
        ok = step(rate, "climb")
        if ok is None:
            return finish("budget-spent")
        lo, hi = runs.bracket()
        if lo is not None and hi is not None:
            break
        if hi is None:  # everything so far held: go up
            if rate >= max_rate:
                return finish("max-rate", confirmed=True)
            rate = nice_rate(min(max_rate, rate * UP))
        else:  # nothing held yet: go down
            rate = nice_rate(rate * DOWN)
            if rate < min_rate:
                return finish("none-sustained", confirmed=True)

    # 2.-3. Bisect, confirm, and bisect again after a contradiction.
    while True:
        lo, hi = runs.bracket()
        if lo is None:  # a contradiction took away the only sustained rate: step below
            rate = nice_rate(hi * DOWN)
            if rate < min_rate:
                return finish("none-sustained", confirmed=True)
            if step(rate, "climb") is None:
                return finish("budget-spent")
            continue
        if hi / lo - 1 > precision:
            mid = nice_rate(math.sqrt(lo * hi))
            if lo < mid < hi:
                if step(mid, "bisect") is None:
                    return finish("budget-spent")
                continue
        # Precise (or no rate fits between lo and hi at three digits): confirm both ends.
        pending = [r for r in (lo, hi) if len(runs.by_rate[r]) < 2]
        if not pending:
            return finish("bracketed" if hi / lo - 1 <= precision else "budget-spent", confirmed=True)
        for r in pending:
            before = runs.sustained(r)
            ok = step(r, "confirm")
            if ok is None:
                return finish("budget-spent")
            if ok != before:
                first, second = ("sustained", "broke") if before else ("broke", "sustained")
                out.contradictions.append(
                    f"{r:g} req/s {first} once and {second} on its confirmation run: counted as broken"
                )
                break  # the bracket changed: bisect again
