"""The server's /metrics sampled during a run, off the load generator's hot path.

A background thread GETs the metrics URL every few seconds (2 s timeout, at most 4 MiB read) and
appends the samples of the families utilization needs to METRICS_FILE, gzipped CSV like k6's
samples: `timestamp_ms,metric,labels,value`. A scrape that fails is counted, not fatal: an older
server without /metrics, or one scraped on --metrics-bind, simply leaves fewer rows.

    with Sampler("http://127.0.0.1:8000/metrics", run_dir / METRICS_FILE, every=5):
        run_k6(...)
"""

from __future__ import annotations

import csv
import gzip
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from heavylab.results.metrics import parse

MAX_BYTES = 4 << 20


class Sampler:
    def __init__(self, url: str, path: Path, every: float = 5.0, timeout: float = 2.0):
        self.url, self.path, self.every, self.timeout = url, Path(path), every, timeout
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._file = gzip.open(self.path, "wt", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(["timestamp_ms", "metric", "labels", "value"])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        self.scrape_once()  # the run's last word
        self._file.close()
        if self.scrapes == 0:
            self.path.unlink(missing_ok=True)

    def scrape_once(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as r:
                text = r.read(MAX_BYTES).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError):
            self.failures += 1
            return False
        now = round(time.time() * 1000)
        rows = parse(text)
        if not rows:
            self.failures += 1
            return False
        for metric, labels, value in rows:
            self._csv.writerow([now, metric, labels, repr(value)])
        self._file.flush()
        self.scrapes += 1
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scrape_once()
            self._stop.wait(self.every)
