"""The capacity search's strategy against simulated targets whose capacity is known."""

from __future__ import annotations

import random

import pytest

from heavylab.run import search


def target(capacity: float, flaky: dict[float, list[bool]] | None = None):
    """A target that holds every rate up to `capacity`; `flaky` scripts the verdicts of some rates."""
    calls: list[tuple[float, str]] = []
    scripted = {k: list(v) for k, v in (flaky or {}).items()}

    def try_rate(rate: float, phase: str) -> bool:
        calls.append((rate, phase))
        if scripted.get(rate):
            return scripted[rate].pop(0)
        return rate <= capacity

    return try_rate, calls


@pytest.mark.parametrize("capacity", [0.7, 5.5, 13, 61, 128, 512, 900, 4321])
@pytest.mark.parametrize("estimate_error", [0.5, 0.8, 1.0, 1.3, 2.0])
def test_brackets_within_precision_and_holds_the_capacity(capacity, estimate_error):
    try_rate, calls = target(capacity)
    out = search.find_capacity(try_rate, capacity * estimate_error, precision=0.05)
    assert out.status == "bracketed", out
    assert out.lo <= capacity < out.hi
    assert out.hi <= out.lo * 1.05 + 1e-9
    assert out.confirmed
    # Both ends were run twice; a good estimate needs few steps.
    assert sum(1 for r, _ in calls if r == out.lo) == 2
    assert sum(1 for r, _ in calls if r == out.hi) == 2
    if estimate_error == 1.0:
        assert len(calls) <= 8, calls


def test_never_reports_a_rate_above_one_that_broke():
    # 80 req/s "held" once by luck above a broken 75: the capacity stays below 75.
    try_rate, _ = target(70, flaky={80.0: [True, True]})
    out = search.find_capacity(try_rate, 80, precision=0.05)
    assert out.hi is not None and out.lo < out.hi <= 80
    assert out.lo <= 70


def test_a_contradiction_at_the_top_is_counted_as_broken_and_reported():
    # 100 holds on its first run (the search's bracket says [100, 105]) and breaks on its
    # confirmation: the capacity falls below 100 and the contradiction is named.
    try_rate, calls = target(97, flaky={100.0: [True, False]})
    out = search.find_capacity(try_rate, 100 / 0.9, precision=0.05)
    assert out.contradictions and "100 req/s sustained once and broke" in out.contradictions[0]
    assert out.lo <= 97 < out.hi <= 100
    assert out.status == "bracketed"


def test_a_broken_step_far_below_the_estimate_is_retried():
    # The estimate says 200, the capacity is 95: stepping down, a hiccup breaks 75.8 once.
    try_rate, calls = target(95, flaky={75.8: [False]})
    out = search.find_capacity(try_rate, 200, precision=0.05)
    assert calls[:5] == [(180, "climb"), (135, "climb"), (101, "climb"), (75.8, "climb"), (75.8, "retry")]
    assert out.transients and "75.8 req/s broke once" in out.transients[0]
    assert out.lo <= 95 < out.hi
    assert sum(1 for _, p in calls if p == "retry") == 1


def test_budget_spent_gives_the_bracket_not_a_number():
    try_rate, _ = target(500)
    budget = iter([True, True, True])  # three steps, then the budget is spent
    out = search.find_capacity(try_rate, 300, precision=0.05, may_run=lambda: next(budget, False))
    assert out.status == "budget-spent"
    assert not out.confirmed


def test_max_rate_and_none_sustained():
    try_rate, _ = target(10_000)
    out = search.find_capacity(try_rate, 100, max_rate=150)
    assert out.status == "max-rate" and out.lo == 150 and out.hi is None
    try_rate, _ = target(0.0)
    out = search.find_capacity(try_rate, 10, min_rate=1)
    assert out.status == "none-sustained" and out.lo is None


def test_noisy_target_still_brackets_or_says_it_could_not():
    # Each verdict flips with 10 % probability within 3 % of the capacity: the result is either a
    # 5 % bracket or says the budget ran out; it never claims a rate that broke.
    rng = random.Random(7)
    for _ in range(50):
        cap = rng.uniform(5, 2000)

        def try_rate(rate: float, phase: str, cap=cap) -> bool:
            ok = rate <= cap
            if abs(rate / cap - 1) < 0.03 and rng.random() < 0.1:
                ok = not ok
            return ok

        steps = iter(range(30))
        out = search.find_capacity(
            try_rate, cap * rng.uniform(0.5, 2), may_run=lambda s=steps: next(s, None) is not None
        )
        assert out.status in ("bracketed", "budget-spent")
        if out.status == "bracketed":
            assert out.hi <= out.lo * 1.05 + 1e-9
            assert out.lo <= cap * 1.03


def test_nice_rate():
    assert search.nice_rate(123.456) == 123
    assert search.nice_rate(4.5678) == 4.57
    assert search.nice_rate(0.012345) == 0.0123
