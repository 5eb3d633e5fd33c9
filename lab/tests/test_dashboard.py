"""Tests of deploy/check_dashboard.py: the dashboard passes against the server's families, and
each rule fails when broken.   python3 -m unittest discover -s deploy -p 'test_*.py'"""

from __future__ import annotations

import copy
import json
import unittest

from heavylab import paths
from heavylab.deploy import dashboard as cd

# The # TYPE lines of a scrape of the server (scripts/check-deploy.sh checks against a live one).
SCRAPE = (
    "\n".join(
        f"# TYPE {n} {t}"
        for n, t in [
            ("heavy_api_requests_total", "counter"),
            ("heavy_api_request_duration_seconds", "histogram"),
            *[
                (f"heavy_api_request_{p}_seconds", "histogram")
                for p in ("queue", "cpu", "cpu_thread", "cpu_wait", "io", "fsync", "throttled", "steal")
            ],
            ("heavy_api_requests_in_flight", "gauge"),
            ("heavy_api_queue_depth", "gauge"),
            ("heavy_api_queue_full_total", "counter"),
            ("heavy_api_connections", "gauge"),
            ("heavy_api_connections_refused_total", "counter"),
            ("heavy_api_workers", "gauge"),
            ("heavy_api_workers_booted_total", "counter"),
            ("heavy_api_worker_exits_total", "counter"),
            ("heavy_api_timeouts_total", "counter"),
            ("heavy_api_listen_backlog", "gauge"),
            ("heavy_api_listen_backlog_max", "gauge"),
            ("heavy_api_process_cpu_seconds_total", "counter"),
            ("heavy_api_process_resident_memory_bytes", "gauge"),
            ("heavy_api_draining", "gauge"),
            ("heavy_api_build_info", "gauge"),
            ("heavy_api_platform_info", "gauge"),
        ]
    )
    + "\n"
)
DASHBOARD = json.loads((paths.DEPLOY / "grafana-dashboard.json").read_text())


def first_query(d: dict) -> dict:
    return next(p for p in d["panels"] if p.get("targets"))["targets"][0]


class DashboardTests(unittest.TestCase):
    def errors(self, d: dict) -> list[str]:
        return cd.check(d, cd.families(SCRAPE))

    def test_the_dashboard_passes(self):
        self.assertEqual(self.errors(DASHBOARD), [])

    def test_an_unknown_metric_fails(self):
        d = copy.deepcopy(DASHBOARD)
        first_query(d)["expr"] = (
            'sum by (platform) (rate(heavy_api_requests_totl{platform=~"$platform"}[5m]))'
        )
        self.assertTrue(
            any(e.startswith("family:") and "heavy_api_requests_totl" in e for e in self.errors(d)),
            self.errors(d),
        )

    def test_bucket_of_a_gauge_fails(self):
        d = copy.deepcopy(DASHBOARD)
        first_query(d)["expr"] = 'rate(heavy_api_queue_depth_bucket{platform=~"$platform"}[5m])'
        self.assertTrue(any("heavy_api_queue_depth_bucket" in e for e in self.errors(d)))

    def test_a_selector_without_the_platform_filter_fails(self):
        d = copy.deepcopy(DASHBOARD)
        first_query(d)["expr"] = "sum(rate(heavy_api_requests_total[5m]))"
        self.assertTrue(any(e.startswith("platform:") for e in self.errors(d)))

    def test_variables_and_datasource_are_required(self):
        d = copy.deepcopy(DASHBOARD)
        d["templating"]["list"] = []
        errs = self.errors(d)
        self.assertTrue(any(e.startswith("datasource:") for e in errs))
        self.assertTrue(any(e.startswith("platform:") for e in errs))
        d = copy.deepcopy(DASHBOARD)
        next(p for p in d["panels"] if p.get("targets"))["datasource"] = {"uid": "prom-1"}
        self.assertTrue(any(e.startswith("datasource:") for e in self.errors(d)))

    def test_empty_expr_and_duplicate_ids_fail(self):
        d = copy.deepcopy(DASHBOARD)
        first_query(d)["expr"] = ""
        self.assertTrue(any(e.startswith("expr:") for e in self.errors(d)))
        d = copy.deepcopy(DASHBOARD)
        d["panels"][2]["id"] = d["panels"][1]["id"]
        self.assertTrue(any(e.startswith("ids:") for e in self.errors(d)))

    def test_selectors(self):
        got = cd.selectors(
            "histogram_quantile(0.9, sum by (platform, le) (rate(x_bucket"
            '{platform=~"$platform", route="/a{b}"}[5m]))) / on (platform) '
            "group_left (cpu_model) y + count without (z) (w)"
        )
        self.assertEqual(got, [("x_bucket", '{platform=~"$platform", route="/a{b}"}'), ("y", ""), ("w", "")])


if __name__ == "__main__":
    unittest.main()
