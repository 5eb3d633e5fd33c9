"""The server's /metrics samples kept with a run: the file's name and format (gzipped CSV,
`timestamp_ms,metric,labels,value`, like k6's samples), the families kept, and the parsing of a
Prometheus text scrape. heavylab.run.scraper writes the file; heavylab.analysis reads it."""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

METRICS_FILE = "metrics-samples.csv.gz"
# The families kept: process, cgroup and network usage, bytes, requests and the gauges.
KEEP = re.compile(
    r"^heavy_api_(process_|cgroup_|http_|network_|requests_total|requests_in_flight|queue_depth|connections)"
)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse(text: str, keep=KEEP) -> list[tuple[str, str, float]]:
    """(metric, labels, value) of every kept sample in a Prometheus text scrape."""
    out = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if not m or not keep.match(m.group(1)):
            continue
        try:
            out.append((m.group(1), (m.group(2) or "")[1:-1], float(m.group(3))))
        except ValueError:
            continue
    return out


def read(path: Path) -> list[tuple[float, str, str, float]]:
    """The rows of a METRICS_FILE: (timestamp_ms, metric, labels, value)."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        next(r, None)
        return [(float(t), m, lab, float(v)) for t, m, lab, v in r]
