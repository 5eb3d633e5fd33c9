#!/usr/bin/env python3
"""Checks deploy/grafana-dashboard.json against the metric families a real heavy-api exposes.

    heavy-lab dashboard --url http://127.0.0.1:8000 | --metrics metrics.prom [--dashboard FILE]

The families come from a running server (--url: scripts/check-deploy.sh asks the static binary)
or from a saved scrape of GET /metrics (Prometheus text format 0.0.4). The rules, each printed with its id on failure:
  json          the file is a JSON object with panels and a title
  datasource    a templated Prometheus datasource variable, used by every panel and query
  platform      a `platform` variable, and every metric selector filters on platform=~"$platform"
                (so two deployments can be put side by side)
  expr          every query of every panel has a PromQL expression
  family        every metric a query names is a series of a family in the scrape (a histogram
                family X gives X_bucket, X_sum and X_count)
  ids           panel ids are unique
Exit status 0 when every rule holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from pathlib import Path

from heavylab import paths

# PromQL words that are not metric names: keywords, aggregation modifiers, set operators.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
    # aggregation operators, which may take their by/without clause before the "("
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def families(scrape: str) -> dict:
    """{family: type} from the # TYPE lines of a text-format scrape."""
    out = {}
    for line in scrape.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            out[parts[2]] = parts[3]
    return out


def series_names(fams: dict) -> set:
    names = set()
    for name, kind in fams.items():
        names.add(name)
        if kind in ("histogram", "summary"):
            names.update({f"{name}_sum", f"{name}_count"})
        if kind == "histogram":
            names.add(f"{name}_bucket")
        if kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
    return names


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, its {matchers} text or "") for every metric a PromQL expression names."""
    blank = lambda m: " " * len(m.group(0))  # noqa: E731 - same length: indices stay aligned
    text = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + "_" * (len(m.group(0)) - 2) + '"', expr)
    text = re.sub(r"\[[^\]]*\]", blank, text)  # range and subquery brackets
    # Label lists of by/without/on/ignoring/group_*: label names, not metrics.
    text = re.sub(
        r"\b(by|on|without|ignoring|group_left|group_right)(\s*\([^)]*\))",
        lambda m: m.group(1) + " " * len(m.group(2)),
        text,
    )
    out = []
    i = 0
    while i < len(text):
        if text[i] == "{":  # matchers of a selector without a name ({__name__=...}): skipped
            i = text.index("}", i) + 1
            continue
        m = IDENT.match(text, i)
        if not m or (i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_.$:")):
            i += 1
            continue
        name, j = m.group(0), m.end()
        k = j
        while k < len(text) and text[k].isspace():
            k += 1
        if (k < len(text) and text[k] == "(") or name.lower() in KEYWORDS:
            i = j
            continue
        matchers = ""
        if k < len(text) and text[k] == "{":
            end = text.index("}", k)
            matchers = expr[k : end + 1]
            j = end + 1
        out.append((name, matchers))
        i = j
    return out


def check(dashboard: dict, fams: dict) -> list[str]:
    errors = []
    if (
        not isinstance(dashboard, dict)
        or not isinstance(dashboard.get("panels"), list)
        or not dashboard.get("title")
    ):
        return ["json: the dashboard must be a JSON object with a title and panels"]
    variables = {v.get("name"): v for v in (dashboard.get("templating") or {}).get("list") or []}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("datasource: no templated Prometheus datasource variable named datasource")
    if "platform" not in variables:
        errors.append("platform: no `platform` template variable")
    names = series_names(fams)
    ids = []
    panels = []
    for p in dashboard["panels"]:
        panels.append(p)
        panels.extend(p.get("panels") or [])  # collapsed rows hold their panels
    for p in panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", f"panel {p.get('id')}")
        ids.append(p.get("id"))
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            errors.append(f"datasource: panel {title!r} does not use ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"expr: panel {title!r} has no queries")
        for t in targets:
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                errors.append(f"expr: panel {title!r} query {t.get('refId')} has no expr")
                continue
            if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
                errors.append(f"datasource: panel {title!r} query {t.get('refId')} uses another datasource")
            found = selectors(expr)
            if not found:
                errors.append(f"expr: panel {title!r} query {t.get('refId')} names no metric")
            for name, matchers in found:
                if name not in names:
                    errors.append(
                        f"family: panel {title!r} names {name}, which the server does "
                        "not expose (not a series of any family in the scrape)"
                    )
                if 'platform=~"$platform"' not in matchers:
                    errors.append(
                        f'platform: panel {title!r}: {name} does not filter on platform=~"$platform"'
                    )
    dup = {i for i in ids if ids.count(i) > 1}
    if dup or None in ids:
        errors.append(
            f"ids: panel ids must be set and unique (duplicates: {sorted(d for d in dup if d is not None)})"
        )
    return errors


def scrape(base: str) -> str:
    """GET /metrics of a running server, after one light heavy request."""
    base = base.rstrip("/")
    light = f"{base}/heavy/cpu-io-no-db/?prime_limit=1000&hash_rounds=10&io_kb=1"
    with urllib.request.urlopen(light, timeout=30) as resp:  # noqa: S310 (http to our server)
        resp.read()
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:  # noqa: S310
        return resp.read().decode("utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="heavy-lab dashboard", description=__doc__.split("\n\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics", help="a scrape of GET /metrics (text format) in a file")
    source.add_argument(
        "--url",
        help="a running heavy-api (e.g. http://127.0.0.1:8000): one light heavy request first, so "
        "every histogram has a sample, then GET /metrics",
    )
    ap.add_argument("--dashboard", default=str(paths.DEPLOY / "grafana-dashboard.json"))
    args = ap.parse_args(argv)
    where = args.metrics or f"{args.url}/metrics"
    try:
        text = scrape(args.url) if args.url else Path(args.metrics).read_text(encoding="utf-8")
    except OSError as err:
        print(f"check_dashboard: cannot read {where}: {err}", file=sys.stderr)
        return 1
    fams = families(text)
    if not fams:
        print(f"check_dashboard: {where} has no # TYPE lines (not a /metrics scrape)", file=sys.stderr)
        return 1
    try:
        dashboard = json.loads(Path(args.dashboard).read_text(encoding="utf-8"))
    except ValueError as err:
        print(f"check_dashboard: json: {args.dashboard}: {err}", file=sys.stderr)
        return 1
    errors = check(dashboard, fams)
    for e in errors:
        print(f"check_dashboard: {e}", file=sys.stderr)
    if errors:
        return 1
    queries = sum(len(p.get("targets") or []) for p in dashboard["panels"])
    used = {
        n
        for p in dashboard["panels"]
        for t in p.get("targets") or []
        for n, _ in selectors(t.get("expr", ""))
    }
    print(
        f"check_dashboard: {args.dashboard}: {len(dashboard['panels'])} panels, {queries} "
        f"queries, {len(used)} series names, all in the server's {len(fams)} families"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
