"""Verdicts: what the numbers say, in sentences — for a pair of sides (each other side against the
reference), the ranking of N sides, and why a side is slower: the server's own split of the CPU
phase (Server-Timing cpu_thread, cpu_wait, throttled, steal) names throttling, waiting for a core,
steal or slower CPU, each only when its own row differs beyond noise by the rule of every row
(heavylab.analysis.stats.differs) and in the slower side's direction."""

from __future__ import annotations

from dataclasses import dataclass, field

from heavylab.analysis.fingerprint import pair_flags, platform_sentences
from heavylab.analysis.runs import Side
from heavylab.analysis.stats import differs, spread_basis
from heavylab.analysis.table import CPU_THREAD, CPU_WAIT, STEAL, THROTTLED, find

# The causes as the public API names them (Comparison.causes), by their row.
CAUSE_NAMES = {
    THROTTLED: "throttling",
    STEAL: "steal",
    CPU_THREAD: "slower CPU",
    CPU_WAIT: "waiting for a core",
}


def _better(row: dict, la: str, lb: str) -> str | None:
    """The label of the side that is better in a row with a finding."""
    if not row or not row["finding"] or row["a"] is None or row["b"] is None:
        return None
    b_lower = row["b"] < row["a"]
    return lb if b_lower == bool(row["lower_is_better"]) else la


def spread_note(sides: list[Side]) -> str:
    return "Spread: " + "; ".join(f"{s.label}: {spread_basis(s)}" for s in sides) + "."


def verdicts(a: Side, b: Side, rows: list[dict], with_platform: bool = True) -> list[str]:
    """The verdict lines of side b against side a (the reference), from their pair rows."""
    la, lb = a.label, b.label
    notes: list[str] = []
    flags = pair_flags(a, b)
    platform = platform_sentences([a, b]) if with_platform else []
    wins: dict = {la: [], lb: []}

    cap = find(rows, "capacity (req/s within the SLO)")
    if cap and cap["a"] is not None and cap["b"] is not None:
        slo = (a.runs[0].capacity or {}).get("slo") or {}
        slo_text = f"SLO p99 < {slo.get('p99_ms', 2000):g} ms, errors < {slo.get('errors_pct', 1):g} %"
        faster = _better(cap, la, lb)
        if faster:
            hi_side, lo_side = (cap["a"], cap["b"]) if faster == la else (cap["b"], cap["a"])
            notes.append(
                f"**Capacity**: {la} {cap['a_text']} req/s, {lb} {cap['b_text']} req/s "
                f"({slo_text}): **{faster} sustains {hi_side / lo_side:.2f}x the rate**, "
                "beyond the search's resolution."
            )
            wins[faster].append("capacity")
        else:
            notes.append(
                f"**Capacity**: {la} {cap['a_text']} req/s, {lb} {cap['b_text']} req/s "
                f"({slo_text}): no difference beyond the search's resolution."
            )
        cc = find(rows, "cost per million requests at capacity")
        if cc and cc["a"] is not None and cc["b"] is not None:
            cheaper = la if cc["a"] < cc["b"] else lb
            verdict = (
                f"{cheaper} is cheaper at capacity"
                if cc["finding"]
                else "no difference beyond the search's resolution"
            )
            notes.append(
                f"**Cost per million requests at capacity**: {la} {cc['a_text']}, {lb} "
                f"{cc['b_text']}: {verdict}."
            )
        elif a.price is None or b.price is None:
            notes.append(
                "Cost at capacity: give each side a price (--price LABEL=SPEC, or --price to heavy-lab run)."
            )

    if cap and cap["a"] is not None and cap["b"] is not None:
        faster = _better(cap, la, lb)
        if faster:
            slower = lb if faster == la else la
            why = cpu_truth(a, b, rows, slower, {"label": "capacity", "headline": "capacity is lower"})
            if why:
                notes.append(why)
        notes.append(
            "The other numbers describe each side's step at its own capacity (different "
            "arrival rates), so they are shown but not read as findings; the CPU split per "
            "request is compared "
            + (
                "at each side's limit (its step at the lowest broken rate)"
                if a.merged.at_limit is not None
                else "at each side's step at capacity"
            )
            + ", to say why a capacity is lower."
        )
        return _overall(wins, la, lb) + notes + platform + ([spread_note([a, b])] if with_platform else [])

    lat = [find(rows, k) for k in ("p50", "p95", "p99")]
    lat = [r for r in lat if r and r["a"] is not None and r["b"] is not None]
    found = [r for r in lat if r["finding"]]
    if lat:
        detail = ", ".join(f"{r['label']} {r['a_text']} vs {r['b_text']} ms" for r in lat)
        if found:
            sides = {_better(r, la, lb) for r in found}
            if len(sides) == 1:
                faster = sides.pop()
                slower = lb if faster == la else la
                notes.append(
                    f"**Latency**: {slower} is slower ({la} vs {lb}: {detail}); beyond "
                    f"noise in {', '.join(r['label'] for r in found)}."
                )
                wins[faster].append("latency")
                slowest = next((r for r in found if r["label"] == "p95"), found[0])
                why = cpu_truth(a, b, rows, slower, slowest)
                if why:
                    notes.append(why)
            else:
                notes.append(f"**Latency**: mixed ({detail}): neither side is faster at every percentile.")
        else:
            notes.append(f"**Latency**: no difference beyond noise ({la} vs {lb}: {detail}).")
        if not found or len({_better(r, la, lb) for r in found}) > 1:
            split = cpu_truth(a, b, rows, None, None)
            if split:
                notes.append(split)

    thr = find(rows, "throughput (req/s)")
    if thr and thr["a"] is not None and thr["b"] is not None:
        if thr["finding"]:
            more = _better(thr, la, lb)
            notes.append(
                f"**Throughput**: {more} served more ({la} {thr['a_text']}, {lb} {thr['b_text']} req/s)."
            )
            wins[more].append("throughput")
        else:
            notes.append(
                f"**Throughput**: no difference beyond noise ({la} {thr['a_text']}, {lb} "
                f"{thr['b_text']} req/s)"
                + ("; with a fixed load (VUs or arrival rate) it follows the offered load" if not cap else "")
                + "."
            )

    err = find(rows, "error rate")
    if err and err["a"] is not None and err["b"] is not None and (err["a"] or err["b"]):
        if err["finding"]:
            notes.append(
                f"**Errors**: {la} {err['a_text']}, {lb} {err['b_text']}: "
                f"{_better(err, la, lb)} fails less; latency and throughput of a side "
                "with failures understate its real cost."
            )
        else:
            notes.append(
                f"**Errors**: {la} {err['a_text']}, {lb} {err['b_text']}: no difference beyond noise."
            )

    q, sv = find(rows, "queue avg (waiting for a thread)"), find(rows, "service avg (cpu + io)")
    if q and sv and None not in (q["a"], q["b"], sv["a"], sv["b"]):
        dq, ds = q["b"] - q["a"], sv["b"] - sv["a"]
        if q["finding"] and (not sv["finding"] or abs(dq) > abs(ds)):
            notes.append(
                f"**Queue vs service**: the difference is mostly queueing ({dq:+.1f} ms "
                f"avg queue vs {ds:+.1f} ms service, {lb} minus {la}): one side is "
                "saturated — more requests than handler threads and cores — rather than "
                "slower per request; add tasks or capacity there."
            )
        elif sv["finding"]:
            notes.append(
                f"**Queue vs service**: the difference is mostly service time ({ds:+.1f} "
                f"ms avg vs {dq:+.1f} ms queue, {lb} minus {la}): the work itself runs "
                "slower on one side (slower or shared CPU, slower storage), not just "
                "waiting."
            )
        else:
            notes.append("**Queue vs service**: no difference beyond noise in either.")
    elif q is not None:
        notes.append("Queue vs service time: n/a (no Server-Timing in at least one side).")

    cpu_rows = [find(rows, "CPU time avg (Server-Timing)"), find(rows, "CPU time avg (cpu_time_sec)")]
    cpu = next((r for r in cpu_rows if r and r["a"] is not None and r["b"] is not None), None)
    if cpu:
        if cpu["finding"]:
            slow = lb if cpu["b"] > cpu["a"] else la
            rc = max(cpu["a"], cpu["b"]) / min(cpu["a"], cpu["b"]) if min(cpu["a"], cpu["b"]) else 0
            if flags["same_cpu"] is False:
                why = (
                    "the two sides run different CPU models, so per-core speed differs "
                    "(compare at equal concurrency before blaming sharing or throttling)"
                )
            elif flags["same_cpu"] is True:
                why = (
                    "with the same CPU model, the difference is sharing (steal from "
                    "neighbours), throttling to the task's CPU share, or more requests at once "
                    "than cores"
                )
            else:
                why = (
                    "the CPU models are unknown, so this may be a slower processor, sharing, "
                    "throttling, or more requests at once than cores"
                )
            split = [find(rows, k) for k in (CPU_THREAD, CPU_WAIT)]
            if all(r and r["a"] is not None and r["b"] is not None for r in split):
                why = (
                    "the server measured where it went: "
                    + ", ".join(
                        f"{r['label'].split(' avg')[0]} {r['a_text']} vs {r['b_text']}" for r in split
                    )
                    + " ms (the CPU split names the cause)"
                )
                if flags["same_cpu"] is False:
                    why += "; the CPU models differ"
            if flags["same_image"] is False:
                why += "; the images differ too, so the code may differ"
            notes.append(
                f"**CPU time per request** is {rc:.2f}x on {slow} ({la} {cpu['a_text']}, "
                f"{lb} {cpu['b_text']} ms): {why}."
            )
        else:
            notes.append(
                f"**CPU time per request**: no difference beyond noise ({la} "
                f"{cpu['a_text']}, {lb} {cpu['b_text']} ms)."
            )

    ct = find(rows, "cost per million requests")
    if ct and ct["a"] is not None and ct["b"] is not None and not cap:
        cheaper = la if ct["a"] < ct["b"] else lb
        tail = f"{cheaper} is cheaper at the load tested" if ct["finding"] else "no difference beyond noise"
        notes.append(
            f"**Cost per million requests** at the load tested: {la} {ct['a_text']}, {lb} "
            f"{ct['b_text']}: {tail} (with a fixed load the throughput follows the offered "
            "load; the capacity scenario gives the cost at capacity)."
        )
    elif ct and not cap and (a.price is None or b.price is None):
        notes.append(
            "Cost: give each side a price (--price LABEL=SPEC, or --price to heavy-lab run) to compare "
            "cost per million requests."
        )

    return _overall(wins, la, lb) + notes + platform + ([spread_note([a, b])] if with_platform else [])


# The causes the server measures, in the order they are named: (row, what a higher value on the
# slower side means).
CAUSES = [
    (
        THROTTLED,
        "it was throttled to its CPU quota (throttled up: the cgroup's CFS quota ran out within a period)",
    ),
    (STEAL, "it lost time to steal (steal up: the hypervisor ran other guests on its vCPUs)"),
    (
        CPU_THREAD,
        "its requests got slower CPU (cpu_thread per request up: the same work took more "
        "CPU time, a slower or shared core)",
    ),
    (
        CPU_WAIT,
        "its requests waited for a core (cpu_wait up: more runnable threads than the CPUs it may use)",
    ),
]


def cpu_truth(a: Side, b: Side, rows: list[dict], slower: str | None, lat_row: dict | None) -> str | None:
    """Why one side is slower, from the server's own split of the CPU phase: each cause named only
    when its row differs beyond noise (the report's rule) and in the slower side's direction."""
    la, lb = a.label, b.label
    present = [
        (r, what)
        for r, what in ((find(rows, k), w) for k, w in CAUSES)
        if r and r["a"] is not None and r["b"] is not None
    ]
    if not present:
        return None

    def delta(r: dict, side: str) -> float:
        return (r["b"] - r["a"]) if side == lb else (r["a"] - r["b"])

    def amount(r: dict, side: str) -> str:
        if r["label"] == CPU_THREAD and min(r["a"], r["b"]) > 0:
            hi, lo = (r["b"], r["a"]) if side == lb else (r["a"], r["b"])
            return f"{hi / lo:.2f}x, {la} {r['a_text']} vs {lb} {r['b_text']} ms"
        return f"{delta(r, side):+.1f} ms per request avg, {la} {r['a_text']} vs {lb} {r['b_text']}"

    found = [(r, what) for r, what in present if r["finding"]]
    if slower is not None and lat_row is not None:
        causes = [(r, what) for r, what in found if delta(r, slower) > 0]
        head = lat_row.get("headline") or f"{lat_row['label']} is higher"
        if causes:
            named = {r["label"] for r, _ in causes}
            parts = []
            for r, what in causes:
                if r["label"] == CPU_WAIT and named & {THROTTLED, STEAL}:
                    what += ", which includes the throttled or stolen time: a thread that may not run waits"
                parts.append(f"{what} — {amount(r, slower)}")
            return (
                f"**Why {head} on {slower}** (the server's CPU split, beyond noise): "
                + "; ".join(parts)
                + "."
            )
        order = [CPU_THREAD, CPU_WAIT, THROTTLED, STEAL]
        names = ", ".join(
            r["label"].split(" avg")[0] for r, _ in sorted(present, key=lambda x: order.index(x[0]["label"]))
        )
        other = [r for r, _ in found]
        tail = (
            "; "
            + ", ".join(
                f"{r['label'].split(' avg')[0]} is higher on {lb if r['b'] > r['a'] else la}" for r in other
            )
            if other
            else ""
        )
        return (
            f"**Why {head} on {slower}**: not the CPU phase — {names} show no "
            f"difference beyond noise in {slower}'s direction{tail}; look at the queue, "
            "I/O (fsync) and the network."
        )
    if found:
        return (
            "**CPU split**: "
            + "; ".join(
                f"{r['label'].split(' avg')[0]} is higher on {lb if r['b'] > r['a'] else la} "
                f"({la} {r['a_text']}, {lb} {r['b_text']} ms)"
                for r, _ in found
            )
            + ", beyond noise, without a latency difference beyond noise."
        )
    return "**CPU split**: cpu_thread, cpu_wait, throttled and steal show no difference beyond noise."


def _overall(wins: dict, la: str, lb: str) -> list[str]:
    if wins[la] and not wins[lb]:
        overall = f"**Overall: {la} is faster** ({', '.join(wins[la])}, beyond noise)."
    elif wins[lb] and not wins[la]:
        overall = f"**Overall: {lb} is faster** ({', '.join(wins[lb])}, beyond noise)."
    elif wins[la] and wins[lb]:
        overall = (
            f"**Overall: mixed**: {la} is better in {', '.join(wins[la])}, {lb} in {', '.join(wins[lb])}."
        )
    else:
        overall = "**Overall: no difference beyond noise** in capacity, latency or throughput."
    return [overall]


def split_measured(rows: list[dict]) -> bool:
    """Whether both sides of a pair carry the server's CPU split (any cause row with two values)."""
    return any(
        r is not None and r["a"] is not None and r["b"] is not None
        for r in (find(rows, k) for k in CAUSE_NAMES)
    )


def named_causes(rows: list[dict], slower_is_b: bool = True) -> list[str]:
    """The causes (CAUSE_NAMES) behind the slower side of a pair: each cause row that differs
    beyond noise, higher on the slower side."""
    out = []
    for label, name in CAUSE_NAMES.items():
        r = find(rows, label)
        if not r or r["a"] is None or r["b"] is None or not r["finding"]:
            continue
        if (r["b"] > r["a"]) == slower_is_b:
            out.append(name)
    return out


# --------------------------------------------------------------------------------------------
# N sides: the ranking


@dataclass
class Place:
    """One side's place in a ranking."""

    label: str
    rank: int  # equal ranks: no difference beyond noise from the side ranked just above
    value: float | None
    text: str
    vs_best: str  # "best", "beyond noise" or "within noise" (against the first side ranked)
    vs_previous: str = ""  # "beyond noise" or "within noise" against the side just above
    extra: dict = field(default_factory=dict)


def rank(labels: list[str], stats: list, fmt, lower_is_better: bool, min_effect: float) -> list[Place]:
    """Orders sides by a statistic (sides without it last, unranked); a side shares the rank of the
    one above it unless the two differ beyond noise (the report's rule)."""
    known = [(lab, st) for lab, st in zip(labels, stats, strict=True) if st.value is not None]
    known.sort(key=lambda x: x[1].value if lower_is_better else -x[1].value)
    out: list[Place] = []
    for i, (lab, st) in enumerate(known):
        if i == 0:
            out.append(Place(lab, 1, st.value, st.text(fmt), "best"))
            continue
        apart_prev = differs(known[i - 1][1], st, min_effect)
        apart_best = differs(known[0][1], st, min_effect)
        out.append(
            Place(
                lab,
                out[-1].rank + 1 if apart_prev else out[-1].rank,
                st.value,
                st.text(fmt),
                "beyond noise" if apart_best else "within noise",
                "beyond noise" if apart_prev else "within noise",
            )
        )
    return out


def ranking_sentence(title: str, places: list[Place], unit: str) -> str:
    """ "1. a 56 req/s; 2. b 30 req/s (worse than the one above, beyond noise); ..."."""
    if not places:
        return ""
    parts = []
    for p in places:
        if p.vs_best == "best":
            note = ""
        elif p.vs_previous == "within noise":
            note = " (no difference beyond noise from the one above)"
        else:
            note = " (worse than the one above, beyond noise)"
        parts.append(f"{p.rank}. {p.label} {p.text}{unit}{note}")
    return f"**{title}**: " + "; ".join(parts) + "."
