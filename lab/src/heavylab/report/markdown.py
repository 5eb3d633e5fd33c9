"""comparison.md: the verdict, the runs' facts, the platforms, the capacity search, the tables with
a column per side, and the per-stage table. Also the facts both renderers share (run_facts,
run_command, the column headers), so the HTML says exactly what the markdown says."""

from __future__ import annotations

import shlex

from heavylab.analysis import capacity as capsearch
from heavylab.analysis import fingerprint as fp
from heavylab.analysis import resources
from heavylab.analysis.fmt import fmt_num, fmt_value
from heavylab.analysis.runs import Side
from heavylab.analysis.table import mark

FOOTNOTE = (
    'Values are medians with their min–max; "beyond noise" marks a difference larger than both '
    'sides\' spread and than the minimum effect, the one rule of every row; "not compared": each '
    "side's number comes from its own step at capacity, at a different rate. Cost per million "
    "requests = price per hour / (throughput x 3600) x 1e6 + data transfer per million (bytes per "
    "request priced as the Data transfer section says). Utilization and CloudWatch rows: "
    '"not measured" where a side has no metrics-samples.csv.gz or cloudwatch.json. Queue = waiting for a '
    "handler thread, "
    "service = cpu + io (both from the `Server-Timing` header); see docs/COMPARISON.md."
)


def title(c) -> str:
    kind = "Capacity comparison" if c.capacity_mode else "Comparison"
    return f"{kind}: " + " vs ".join(c.labels)


def run_command(side: Side) -> str:
    """The command that produced a side's runs (from meta.json; a capacity run's search options
    from its capacity.json or meta.json)."""
    m = side.runs[0].meta
    if not m:
        return "n/a (no meta.json)"
    if side.is_capacity:
        cmd = ["heavy-lab", "capacity"]
    else:
        cmd = ["heavy-lab", "run", "--scenario", str(m.get("scenario", "?"))]
    if m.get("duration_scale") not in (None, 1, 1.0):
        cmd += ["--scale", f"{m['duration_scale']:g}"]
    if m.get("segments") and m["segments"] > 1:
        cmd += ["--segments", str(m["segments"])]
    if m.get("local_server"):
        if m.get("server_args"):
            cmd += ["--server-args", m["server_args"]]
    else:
        cmd += ["--base-url", str(m.get("base_url"))]
    if side.is_capacity:
        cmd += capsearch.option_flags(side)
    for kv in m.get("k6_env") or []:
        cmd += ["-e", kv]
    if m.get("label"):
        cmd += ["--label", m["label"]]
    if m.get("price"):
        cmd += ["--price", m["price"]]
    text = " ".join(shlex.quote(c) for c in cmd)
    return text + (f"   (x{len(side.runs)} runs)" if len(side.runs) > 1 else "")


def run_facts(side: Side) -> list[tuple[str, str]]:
    r = side.merged
    m = r.meta
    th = r.thresholds()
    if not th:
        passed = "n/a"
    elif all(ok for _, _, ok in th):
        passed = "all passed"
    else:
        passed = "FAILED: " + ", ".join(f"{n} {e}" for n, e, ok in th if not ok)
    ha = r.ha
    params = ha.get("params") or {}
    param_text = ", ".join(f"{k}={v}" for k, v in params.items()) if params else "n/a"
    extras = [
        f"MIX={ha['mix']} (SEED={ha.get('seed')})" if ha.get("mix") else "",
        f"io_sync={ha['io_sync']}" if ha.get("io_sync") else "",
        f"arrival rate {ha['rate_per_sec']:g} req/s"
        if isinstance(ha.get("rate_per_sec"), (int, float)) and r.capacity is None
        else "",
    ]
    param_text += "".join(f"; {x}" for x in extras if x)
    used = f"{len(side.runs)} used" + (" (medians)" if len(side.runs) > 1 else "")
    if side.excluded:
        used += f"; {len(side.excluded)} excluded: " + "; ".join(f"{n} ({why})" for n, why in side.excluded)
    return [
        ("folder", str(side.path)),
        ("runs", used),
        ("scenario", str(m.get("scenario", ha.get("scenario", "n/a")))),
        ("duration scale", str(m.get("duration_scale", ha.get("duration_scale", "n/a")))),
        ("parameters", param_text),
        ("target", str(m.get("base_url", ha.get("base_url", "n/a")))),
        ("server command", str(m.get("server_command") or "n/a (not started by the runner)")),
        ("started", str(m.get("started_at", "n/a"))),
        ("git commit", str(m.get("git_commit", "n/a"))[:12]),
        ("price", side.price.description if side.price else "n/a"),
        ("thresholds", passed),
        ("command", run_command(side)),
    ]


def facts_rows(c) -> list[tuple[str, list[str]]]:
    facts = [dict(run_facts(s)) for s in c.sides]
    keys = [k for k, _ in run_facts(c.sides[0])]
    return [(k, [f.get(k, "n/a") for f in facts]) for k in keys]


def pair_columns(c) -> list[tuple[str, str]]:
    """Per side other than the baseline: (ratio header, difference header)."""
    base = c.baseline.label
    if len(c.sides) == 2:
        return [(f"{c.sides[1].label}/{base}", "difference")]
    return [(f"{s.label}/{base}", f"{s.label} vs {base}") for s in c.sides[1:]]


def table_sections(c) -> list[tuple[str, list[tuple[str, list[str], list[tuple[str, str, str]]]]]]:
    """[(section, [(metric, [cell per side], [(ratio, mark, css) per other side])])]."""
    sections: list = []
    for idx, (row, _stats) in enumerate(c.table):
        if not sections or sections[-1][0] != row.section:
            sections.append((row.section, []))
        pairs = []
        for other in c.sides[1:]:
            pr = c.pairs[other.label][idx]
            css = ""
            if pr["finding"]:
                worse = (pr["b"] > pr["a"]) == bool(pr["lower_is_better"])
                css = "worse" if worse else "better"
            pairs.append((pr["ratio_text"], mark(pr), css))
        cells = [c.pairs[c.sides[1].label][idx]["a_text"]] + [
            c.pairs[s.label][idx]["b_text"] for s in c.sides[1:]
        ]
        sections[-1][1].append((row.label, cells, pairs))
    return sections


def stage_rows(c) -> list[list[str]]:
    out = []
    for side in c.sides:
        for s in c.stages.get(side.label) or []:
            out.append(
                [
                    side.label,
                    str(s["name"]),
                    f"{fmt_num(s['start'])}–{fmt_num(s['end'])}",
                    fmt_num(s["requests"]),
                    fmt_num(s["rps"]),
                    fmt_num(s["p50"]),
                    fmt_num(s["p95"]),
                    fmt_num(s["p99"]),
                    fmt_value(s["err"], "pct"),
                    fmt_num(s["queue"]),
                    fmt_num(s["service"]),
                    fmt_num(s["cpu"]),
                ]
            )
    return out


STAGE_HEADER = ["side", "stage", "s", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
STAGE_HEADER += ["queue ms", "service ms", "CPU ms"]
STEP_HEADER = ["side", "step", "phase", "rate (req/s)", "sent", "served (req/s)", "p50 ms", "p99 ms"]
STEP_HEADER += ["errors", "verdict", "why"]


def capacity_searches(c) -> list[dict]:
    return [capsearch.summary(s) for s in c.sides if s.is_capacity]


def step_rows(search_side: dict) -> list[list[str]]:
    out = []
    for search in search_side["searches"]:
        for st in search["steps"]:
            out.append(
                [
                    search_side["label"],
                    str(st["step"]),
                    st["phase"] or "",
                    fmt_num(st["rate"]),
                    fmt_num(st["sent"]),
                    fmt_num(st["served"]),
                    fmt_num(st["p50"]),
                    fmt_num(st["p99"]),
                    fmt_value(st["errors"], "pct"),
                    st["verdict"],
                    st["why"],
                ]
            )
    return out


def utilization_notes(c) -> list[str]:
    """Per side: where its utilization comes from, or that it was not measured."""
    out = []
    for side in c.sides:
        got = resources.side_util(side)
        if got is None:
            out.append(
                f"{side.label}: not measured (no metrics-samples.csv.gz: a runner before issue 24, or a "
                "server without /metrics)."
            )
            continue
        run, u = got
        s = u.summary()
        lim = [
            f"usable CPUs {u.usable_cpus:g}" if u.usable_cpus else "usable CPUs unknown",
            f"CPU quota {u.quota_cpus:g}" if u.quota_cpus else "no CPU quota",
            f"memory limit {u.memory_limit_bytes / (1 << 20):.0f} MiB"
            if u.memory_limit_bytes
            else "no memory limit",
        ]
        secs = s.get("window_secs") or 0
        local = (
            " (the runner started the server beside k6: their cgroup is not the server's own, so CPU "
            "and memory are its processes')"
            if resources.processes_only(run)
            else ""
        )
        out.append(
            f"{side.label}: CPU from {u.cpu_source}{local}; {', '.join(lim)}; {secs:.0f} s of scrapes"
            + (f" (charts: run {run.path.name})" if len(side.runs) > 1 else "")
            + "."
        )
    return out


def transfer_lines(c) -> list[str]:
    """The bytes each side moved per request, where they were counted, and the assumptions priced."""
    out = []
    for side in c.sides:
        t = side.merged.transfer
        if t is None:
            out.append(
                f"{side.label}: bytes not measured (no k6 data_sent/data_received, samples or CloudWatch)."
            )
            continue
        text = f"{side.label}: {fmt_num(t.bytes_per_request)} bytes per request (in + out), from {t.source}"
        if t.bytes_out_per_request is not None:
            text += f", {fmt_num(t.bytes_out_per_request)} of them answers"
        text += f"; {t.per_million:.4f} per million requests."
        out.append(text)
    out.append("Priced as: " + "; ".join(c.transfer.sentences()) + ".")
    out.append(
        "Cost per million requests (and at capacity) = the platform's price per hour / (throughput x 3600) "
        "x 1e6 + the data transfer per million. The bytes are HTTP bytes (k6 and the server count no TCP/IP "
        "or TLS headers; the ALB's ProcessedBytes do count TLS)."
    )
    return out


def _e(text: str) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    out = ["| " + " | ".join(_e(h) for h in header) + " |"]
    out.append("| " + " | ".join("---" if i < right_from else "---:" for i in range(len(header))) + " |")
    out += ["| " + " | ".join(_e(x) for x in r) + " |" for r in rows]
    return out


def render_markdown(c) -> str:
    labels = c.labels
    out = [f"# {title(c)}", "", f"Made by `{c.command}`.", ""]
    for w in c.warnings:
        out += [f"> **Warning:** {w}", ""]
    out += ["## Verdict", ""] + [f"- {n}" for n in c.verdict] + [""]
    if len(c.sides) > 2:
        out += [f"## Each side against {c.baseline.label} (the baseline)", ""]
        for other in c.sides[1:]:
            out += [f"### {other.label}", ""] + [f"- {n}" for n in c.pair_verdicts[other.label]] + [""]
    out += _table([""] + labels, [[k, *vals] for k, vals in facts_rows(c)], right_from=99) + [""]
    plat = fp.platform_rows(c.sides)
    if plat:
        out += [
            "## Platforms",
            "",
            "What each side's server reported about the machine under it (`GET /heavy/info/` before "
            "the run; for a local server without it, the host); start-up from the ECS task metadata.",
            "",
        ]
        out += _table(["platform", *labels, ""], [[k, *vals, m] for k, vals, m in plat], right_from=99) + [""]
    searches = capacity_searches(c)
    if searches:
        out += ["## Capacity search", ""]
        for ss in searches:
            for s in ss["searches"]:
                out.append(f"- **{ss['label']}** ({s['run']}): {s['statement']}")
                out.append(f"  - ceiling: {s['ceiling']}")
                spent = f"{fmt_num(s['search_secs'])} s" if s["search_secs"] is not None else "n/a"
                if s["budget_secs"]:
                    spent += f" of a {fmt_num(s['budget_secs'])} s budget"
                out.append(f"  - status: {s['status']}; search time {spent}")
                for x in s["contradictions"]:
                    out.append(f"  - contradiction: {x}")
                for x in s["transients"]:
                    out.append(f"  - retried: {x}")
        out += ["", "Every step of each search (the verdict leaves out each step's warm-up):", ""]
        out += _table(STEP_HEADER, [r for ss in searches for r in step_rows(ss)], right_from=3) + [""]
    for section, rows in table_sections(c):
        header = ["metric", *labels] + [h for pair in pair_columns(c) for h in pair]
        body = [[metric, *cells] + [x for p in pairs for x in p[:2]] for metric, cells, pairs in rows]
        out += ["", f"## {section}", ""] + _table(header, body)
    if any(r.section == "Cost" for r, _ in c.table) or any(s.merged.transfer for s in c.sides):
        out += ["", "## Data transfer", ""] + [f"- {x}" for x in transfer_lines(c)]
    if any(r.section.startswith("Utilization") for r, _ in c.table):
        out += ["", "## Utilization sources", ""] + [f"- {x}" for x in utilization_notes(c)]
    stages = stage_rows(c)
    if stages:
        out += ["", "## Per stage (medians over the runs; from the raw samples)", ""]
        out += _table(STAGE_HEADER, stages, right_from=3)
    out += ["", FOOTNOTE, ""]
    return "\n".join(out)
