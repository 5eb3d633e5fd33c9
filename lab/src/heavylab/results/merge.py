#!/usr/bin/env python3
"""Merge the raw outputs of N k6 processes (execution segments of one test) into one run.

    python3 scripts/k6merge.py --out RUN_DIR SEGMENT_DIR [SEGMENT_DIR ...]

Each SEGMENT_DIR holds what one `k6 run --execution-segment ...` of a k6-tests/ scenario left:
samples.csv.gz (k6's `--out csv`, required), summary.json (handleSummary(): the thresholds, the
metric types, the scenario's block) and optionally exit-code. RUN_DIR receives what a single
process would have written, computed from the union of every raw sample:

- summary.json: k6-style metrics (counters summed, rates over the whole run, Trend percentiles
  computed exactly from all samples with k6's own interpolation: no sketch, error bound 0), the
  thresholds of the scenario re-evaluated on the merged numbers, the root group's checks summed,
  and a `heavy_api` block recomputed (requests, throughput, errors, thresholds ...) with a
  `merge` entry saying how;
- summary.md: the readable version; samples.csv.gz: all samples in one file (header once), so
  scripts/compare.py reads a merged run like any run (time series, slices, per-stage tables).

The wrong way, which some distributed harnesses use — averaging the segments' own p95s — is
computed too and shown in summary.md next to the exact value, to make the difference visible.

Exit status: 0 when every merged threshold passed, 99 when one failed (k6's codes), 2 on bad
input. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
from pathlib import Path

from heavylab.results import samples as k6samples

HEAVY = k6samples.HEAVY_TAG
TRENDS = (
    "latency_total_ms",
    "server_queue_ms",
    "server_total_ms",
    "server_cpu_ms",
    "server_io_ms",
    "custom_cpu_time_ms",
    "custom_io_time_ms",
    "iteration_duration",
    "http_req_duration",
)


def _load(d: Path) -> tuple[dict, list]:
    s_path, c_path = d / "summary.json", d / "samples.csv.gz"
    if not c_path.is_file():
        c_path = d / "samples.csv"
    if not c_path.is_file():
        raise ValueError(f"{d}: no samples.csv.gz (run k6 with --out csv=...)")
    summary = {}
    if s_path.is_file():
        summary = json.loads(s_path.read_text(encoding="utf-8"))
    return summary, [c_path]


def write_samples(out: Path, files: list[Path]) -> int:
    """All segments' CSV rows in one gzip file, the header once; returns the row count."""
    header = None
    rows = 0
    with gzip.open(out, "wt", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst, lineterminator="\n")
        for f in files:
            with open(f, "rb") as probe:
                gzipped = probe.read(2) == b"\x1f\x8b"
            opener = gzip.open if gzipped else open
            with opener(f, "rt", encoding="utf-8", errors="replace", newline="") as src:
                reader = csv.reader(src)
                h = next(reader, None)
                if h is None:
                    continue
                if header is None:
                    header = h
                    writer.writerow(h)
                elif h != header:
                    raise ValueError(f"{f}: its CSV columns differ from the first segment's")
                for row in reader:
                    if row:
                        writer.writerow(row)
                        rows += 1
    return rows


def merge(segment_dirs: list[Path], out: Path) -> dict:
    if not segment_dirs:
        raise ValueError("no segment folders given")
    summaries, files = [], []
    for d in segment_dirs:
        if not d.is_dir():
            raise ValueError(f"{d} is not a folder")
        s, f = _load(d)
        summaries.append(s)
        files += f
    samples = k6samples.read_many(files)
    if samples.count() == 0:
        raise ValueError("the segments hold no samples")
    types: dict = {}
    threshold_exprs: dict = {}
    for s in summaries:
        for name, m in (s.get("metrics") or {}).items():
            if isinstance(m, dict):
                if isinstance(m.get("type"), str):
                    types.setdefault(name.split("{")[0], m["type"])
                for expr in m.get("thresholds") or {}:
                    threshold_exprs.setdefault(name, [])
                    if expr not in threshold_exprs[name]:
                        threshold_exprs[name].append(expr)
    durations = [float((s.get("state") or {}).get("testRunDurationMs") or 0) for s in summaries]
    lo, hi = samples.span()
    duration_ms = max(durations + [(hi or 0) - (lo or 0)])
    duration_s = max(duration_ms / 1000.0, 1e-9)

    extra = [k for k in threshold_exprs if "{" in k]
    metrics = k6samples.summarize(samples, types, duration_s, heavy_only=False, extra_keys=extra)
    # Gauges: the VUs of parallel processes add up.
    for gauge in ("vus", "vus_max"):
        per = [((s.get("metrics") or {}).get(gauge) or {}).get("values") or {} for s in summaries]
        if any(per):
            metrics[gauge] = {
                "type": "gauge",
                "values": {
                    "value": sum(p.get("value", 0) for p in per),
                    "min": sum(p.get("min", 0) for p in per),
                    "max": sum(p.get("max", 0) for p in per),
                },
            }
    for name, m in metrics.items():
        m["contains"] = "time" if name in TRENDS or name.endswith("_ms") else "default"
    all_ok = True
    thresholds_out = []
    for name, exprs in sorted(threshold_exprs.items()):
        values = (metrics.get(name) or {}).get("values") or {}
        metrics.setdefault(name, {"type": types.get(name.split("{")[0], "trend"), "values": values})
        metrics[name]["thresholds"] = {}
        for expr in exprs:
            ok = k6samples.evaluate_threshold(expr, values)
            metrics[name]["thresholds"][expr] = {"ok": ok}
            thresholds_out.append({"metric": name, "threshold": expr, "ok": ok})
            all_ok = all_ok and ok
    thresholds_out.sort(key=lambda t: t["metric"] + t["threshold"])

    # The root group's checks, summed by name.
    checks: dict = {}
    for s in summaries:
        for c in (s.get("root_group") or {}).get("checks") or []:
            entry = checks.setdefault(c["name"], {"name": c["name"], "passes": 0, "fails": 0})
            entry["passes"] += c.get("passes", 0)
            entry["fails"] += c.get("fails", 0)

    v = lambda name: (metrics.get(name) or {}).get("values") or {}  # noqa: E731
    base = next((s.get("heavy_api") for s in summaries if s.get("heavy_api")), {}) or {}
    failed_key = f"http_req_failed{{name:{HEAVY}}}"
    sent = v("custom_requests_total")
    ok200 = v("successful_requests")
    failed = metrics.get(failed_key, {}).get("values")
    if failed is None:
        _, fv = k6samples.select(samples, "http_req_failed", {"name": HEAVY})
        failed = k6samples.metric_values("rate", fv, duration_s)
    starts = [s.get("setup_data", {}).get("started_ms") for s in summaries]
    starts = [t for t in starts if isinstance(t, (int, float))]
    requests = sent.get("count", 0)
    wrong = {}
    for stat in ("p(50)", "p(95)", "p(99)"):
        per = [
            (((s.get("metrics") or {}).get("latency_total_ms") or {}).get("values") or {}).get(stat)
            for s in summaries
        ]
        per = [x for x in per if isinstance(x, (int, float))]
        if per:
            wrong[stat] = math.fsum(per) / len(per)
    ha = dict(base)
    ha.update(
        {
            "segments": len(segment_dirs),
            "test_run_duration_sec": duration_s,
            "started_ms": min(starts) if starts else None,
            "requests": requests,
            "throughput_rps": sent.get("rate", 0.0),
            "successful_requests": ok200.get("count", 0),
            "failed_requests": failed.get("passes", 0),
            "error_rate": failed.get("rate", 0.0),
            "throttled_requests": v("throttled_requests").get("count", 0),
            "server_errors": v("server_errors").get("count", 0),
            "dropped_iterations": v("dropped_iterations").get("count", 0),
            "checks_rate": v("checks").get("rate"),
            "checks_count": v("checks").get("passes", 0) + v("checks").get("fails", 0),
            "max_vus": v("vus_max").get("max", 0),
            "thresholds": thresholds_out,
            "thresholds_passed": all_ok,
            "merge": {
                "method": "exact: every statistic computed from the union of the segments' raw "
                "samples (k6's percentile interpolation); error bound 0",
                "segments": [str(d) for d in segment_dirs],
                "samples": samples.count(),
                "wrong_mean_of_segment_latency_percentiles": wrong,
            },
        }
    )
    summary = {
        "root_group": {"name": "", "path": "", "groups": [], "checks": list(checks.values())},
        "options": (summaries[0].get("options") if summaries else {}) or {},
        "state": {"testRunDurationMs": duration_ms},
        "metrics": metrics,
        "setup_data": {"started_ms": ha["started_ms"]},
        "heavy_api": ha,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    write_samples(out / "samples.csv.gz", files)
    (out / "summary.md").write_text(markdown(summary), encoding="utf-8")
    return summary


def _n(x) -> str:
    return "n/a" if not isinstance(x, (int, float)) else f"{x:.2f}"


def markdown(summary: dict) -> str:
    ha, m = summary["heavy_api"], summary["metrics"]
    lines = [
        f"# k6 summary: {ha.get('scenario', 'run')} ({ha['segments']} segments, merged)",
        "",
        f"- thresholds: **{'all passed' if ha['thresholds_passed'] else 'FAILED'}**",
        f"- merge: {ha['merge']['method']}; {ha['merge']['samples']} samples",
        "",
        "| requests | throughput (req/s) | failed | error rate | 429 | 5xx | dropped | max VUs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {ha['requests']:.0f} | {_n(ha['throughput_rps'])} | {ha['failed_requests']} | "
        f"{ha['error_rate'] * 100:.2f}% | {ha['throttled_requests']:.0f} | "
        f"{ha['server_errors']:.0f} | {ha['dropped_iterations']:.0f} | {ha['max_vus']:.0f} |",
        "",
        "## Latency (ms), exact over all segments",
        "",
        "| metric | p50 | p90 | p95 | p99 | avg | max | count |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in TRENDS:
        t = (m.get(name) or {}).get("values")
        if t:
            lines.append(
                f"| `{name}` | {_n(t.get('p(50)'))} | {_n(t.get('p(90)'))} | "
                f"{_n(t.get('p(95)'))} | {_n(t.get('p(99)'))} | {_n(t.get('avg'))} | "
                f"{_n(t.get('max'))} | {t.get('count', 0)} |"
            )
    wrong = ha["merge"]["wrong_mean_of_segment_latency_percentiles"]
    if wrong:
        exact = (m.get("latency_total_ms") or {}).get("values") or {}
        lines += [
            "",
            "The wrong way, for comparison: the mean of the segments' own percentiles "
            "of `latency_total_ms` — not a percentile of anything.",
            "",
            "| statistic | exact (all samples) | mean of per-segment values |",
            "| --- | ---: | ---: |",
        ]
        for k, w in wrong.items():
            lines.append(f"| {k} | {_n(exact.get(k))} | {_n(w)} |")
    lines += [
        "",
        "## Thresholds (re-evaluated on the merged numbers)",
        "",
        "| metric | threshold | result |",
        "| --- | --- | --- |",
    ]
    for t in ha["thresholds"]:
        lines.append(f"| `{t['metric']}` | `{t['threshold']}` | {'passed' if t['ok'] else '**FAILED**'} |")
    checks = summary["root_group"]["checks"]
    if checks:
        lines += ["", "## Checks", "", "| check | passed | failed |", "| --- | ---: | ---: |"]
        lines += [f"| {c['name']} | {c['passes']} | {c['fails']} |" for c in checks]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--out", required=True, type=Path, help="the merged run folder")
    ap.add_argument("segments", nargs="+", type=Path, help="segment folders")
    a = ap.parse_args(argv)
    try:
        summary = merge(a.segments, a.out)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        print(f"k6merge.py: error: {err}", file=sys.stderr)
        return 2
    ha = summary["heavy_api"]
    lat = (summary["metrics"].get("latency_total_ms") or {}).get("values") or {}
    print(
        f"[merge] {ha['segments']} segments, {ha['merge']['samples']} samples: "
        f"{ha['requests']:.0f} requests, {ha['throughput_rps']:.2f} req/s, p50 "
        f"{_n(lat.get('p(50)'))} ms, p95 {_n(lat.get('p(95)'))} ms, p99 "
        f"{_n(lat.get('p(99)'))} ms (exact), thresholds "
        f"{'passed' if ha['thresholds_passed'] else 'FAILED'}"
    )
    return 0 if ha["thresholds_passed"] else 99


if __name__ == "__main__":
    sys.exit(main())
