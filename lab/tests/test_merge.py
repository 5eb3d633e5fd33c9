"""Tests of scripts/k6merge.py: the merge of N segments' raw samples is exact, and the known wrong
way (the mean of per-segment percentiles) gives a visibly different answer on a skewed fixture.

    python3 -m unittest discover -s scripts -p 'test_k6merge.py'
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import random
import tempfile
import unittest
from pathlib import Path

from heavylab.results import merge as k6merge
from heavylab.results import samples as k6samples

HEADER = [
    "metric_name",
    "timestamp",
    "metric_value",
    "error_code",
    "expected_response",
    "group",
    "check",
    "method",
    "name",
    "scenario",
    "status",
    "extra_tags",
    "metadata",
]
T0 = 1_800_000_000_000  # ms


def reference_percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks, written independently of k6samples."""
    xs = sorted(values)
    pos = p * (len(xs) - 1)
    i = int(pos)
    return xs[i] if i + 1 == len(xs) else xs[i] + (pos - i) * (xs[i + 1] - xs[i])


def write_segment(
    d: Path, latencies: list[float], failures: int = 0, start_ms: int = T0, thresholds: dict | None = None
) -> None:
    """A segment folder as loadtest.sh leaves it: samples.csv.gz and summary.json."""
    d.mkdir(parents=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    # setup()'s health probe: outside the heavy metrics.
    w.writerow(["http_reqs", start_ms, 1, "", "true", "::setup", "", "GET", "health", "", "200", "", ""])
    w.writerow(
        ["http_req_duration", start_ms, 0.5, "", "true", "::setup", "", "GET", "health", "", "200", "", ""]
    )
    for i, lat in enumerate(latencies):
        t = start_ms + 10 + i * 50
        failed = 1 if i < failures else 0
        status = "500" if failed else "200"
        tags = ["", "false" if failed else "true", "", "", "GET", "cpu-io-no-db", "s", status, "", ""]
        for metric, value in (
            ("http_reqs", 1),
            ("http_req_duration", lat),
            ("http_req_failed", failed),
            ("latency_total_ms", lat),
            ("custom_requests_total", 1),
            ("successful_requests", 1 - failed),
            ("server_errors", failed),
            ("throttled_requests", 0),
        ):
            w.writerow([metric, t, value] + tags)
        w.writerow(["checks", t, 1 - failed, "", "", "", "status is 200", "", "", "s", "", "", ""])
    (d / "samples.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode()))
    seg_p95 = reference_percentile(latencies, 0.95)
    summary = {
        "state": {"testRunDurationMs": 50.0 * len(latencies) + 100},
        "setup_data": {"started_ms": start_ms},
        "root_group": {
            "checks": [{"name": "status is 200", "passes": len(latencies) - failures, "fails": failures}]
        },
        "metrics": {
            "latency_total_ms": {
                "type": "trend",
                "values": {
                    "p(95)": seg_p95,
                    "p(50)": reference_percentile(latencies, 0.5),
                    "p(99)": reference_percentile(latencies, 0.99),
                },
                "thresholds": (thresholds or {}).get("latency_total_ms", {}),
            },
            "http_req_failed{name:cpu-io-no-db}": {
                "type": "rate",
                "values": {},
                "thresholds": (thresholds or {}).get("failed", {}),
            },
            "vus_max": {"type": "gauge", "values": {"value": 2, "min": 2, "max": 2}},
        },
        "heavy_api": {"scenario": "constant-rate", "params": {"prime_limit": 1}},
    }
    (d / "summary.json").write_text(json.dumps(summary))


class MergeTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        rng = random.Random(12)
        # A skewed fixture: two fast segments with many requests, one slow with few.
        self.segments = [
            [rng.uniform(10, 30) for _ in range(400)],
            [rng.uniform(10, 30) for _ in range(400)],
            [rng.uniform(1000, 3000) for _ in range(100)],
        ]
        th = {"latency_total_ms": {"p(95)<2000": {"ok": True}}, "failed": {"rate<0.01": {"ok": True}}}
        self.dirs = []
        for i, lat in enumerate(self.segments):
            d = self.root / f"segment-{i + 1}"
            write_segment(d, lat, failures=3 if i == 2 else 0, start_ms=T0 + i, thresholds=th)
            self.dirs.append(d)

    def tearDown(self):
        self.tmp.cleanup()

    def run_merge(self) -> tuple[int, dict]:
        out = self.root / "merged"
        with contextlib.redirect_stdout(io.StringIO()):
            rc = k6merge.main(["--out", str(out)] + [str(d) for d in self.dirs])
        return rc, json.loads((out / "summary.json").read_text())

    def test_merged_percentiles_equal_those_of_all_samples(self):
        _, s = self.run_merge()
        every = [x for seg in self.segments for x in seg]
        got = s["metrics"]["latency_total_ms"]["values"]
        for p in (0.5, 0.95, 0.99):
            self.assertAlmostEqual(got[f"p({int(p * 100)})"], reference_percentile(every, p), places=9)
        self.assertEqual(got["count"], len(every))
        self.assertAlmostEqual(got["max"], max(every))

    def test_the_mean_of_segment_percentiles_is_visibly_wrong(self):
        _, s = self.run_merge()
        exact = s["metrics"]["latency_total_ms"]["values"]["p(95)"]
        wrong = s["heavy_api"]["merge"]["wrong_mean_of_segment_latency_percentiles"]["p(95)"]
        naive = sum(reference_percentile(seg, 0.95) for seg in self.segments) / 3
        self.assertAlmostEqual(wrong, naive)
        # 100 slow of 900 requests: the true p95 is among the slow ones (about 2,000 ms); the mean
        # of the segments' p95s (29, 29, about 2,900) is about 990 ms.
        self.assertGreater(exact, 1800)
        self.assertLess(wrong, 1100)
        self.assertGreater(abs(exact - wrong) / exact, 0.3)
        md = (self.root / "merged" / "summary.md").read_text()
        self.assertIn("mean of per-segment values", md)

    def test_counts_rates_and_thresholds_are_recomputed(self):
        rc, s = self.run_merge()
        ha = s["heavy_api"]
        self.assertEqual(ha["requests"], 900)
        self.assertEqual(ha["failed_requests"], 3)
        self.assertAlmostEqual(ha["error_rate"], 3 / 900)
        self.assertEqual(ha["server_errors"], 3)
        self.assertEqual(ha["max_vus"], 6)  # 2 VUs in each of 3 processes
        self.assertEqual(ha["segments"], 3)
        self.assertEqual(ha["started_ms"], T0)
        checks = s["root_group"]["checks"][0]
        self.assertEqual((checks["passes"], checks["fails"]), (897, 3))
        # The two fast segments passed p(95)<2000 on their own; the whole run does not: exit 99.
        self.assertEqual(rc, 99)
        by = {(t["metric"], t["threshold"]): t["ok"] for t in ha["thresholds"]}
        self.assertFalse(by[("latency_total_ms", "p(95)<2000")])
        self.assertTrue(by[("http_req_failed{name:cpu-io-no-db}", "rate<0.01")])
        # The health probes (one per segment) are outside the heavy metrics.
        self.assertEqual(s["metrics"]["http_reqs"]["values"]["count"], 903)

    def test_merged_samples_read_back(self):
        self.run_merge()
        merged = k6samples.read_csv(self.root / "merged" / "samples.csv.gz")
        _, vals = k6samples.select(merged, "latency_total_ms")
        self.assertEqual(len(vals), 900)

    def test_one_segment_reproduces_itself(self):
        out = self.root / "one"
        with contextlib.redirect_stdout(io.StringIO()):
            k6merge.main(["--out", str(out), str(self.dirs[2])])
        s = json.loads((out / "summary.json").read_text())
        self.assertAlmostEqual(
            s["metrics"]["latency_total_ms"]["values"]["p(95)"], reference_percentile(self.segments[2], 0.95)
        )

    def test_bad_input(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = k6merge.main(["--out", str(self.root / "x"), str(self.root / "nope")])
        self.assertEqual(rc, 2)
        self.assertIn("is not a folder", err.getvalue())
        empty = self.root / "empty"
        empty.mkdir()
        with contextlib.redirect_stderr(err):
            rc = k6merge.main(["--out", str(self.root / "x"), str(empty)])
        self.assertEqual(rc, 2)
        self.assertIn("no samples.csv.gz", err.getvalue())


if __name__ == "__main__":
    unittest.main()
