"""Tests of `heavy-lab dashboard` (deploy/dashboard.py): the dashboard passes against the server's
families (a fixed list, and a live scrape of the release binary), and each rule fails when broken."""

from __future__ import annotations

import copy
import json
import re

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


def errors(d: dict) -> list[str]:
    return cd.check(d, cd.families(SCRAPE))


def test_the_dashboard_passes():
    assert errors(DASHBOARD) == []


def test_an_unknown_metric_fails():
    d = copy.deepcopy(DASHBOARD)
    first_query(d)["expr"] = 'sum by (platform) (rate(heavy_api_requests_totl{platform=~"$platform"}[5m]))'
    assert any(e.startswith("family:") and "heavy_api_requests_totl" in e for e in errors(d)), errors(d)


def test_bucket_of_a_gauge_fails():
    d = copy.deepcopy(DASHBOARD)
    first_query(d)["expr"] = 'rate(heavy_api_queue_depth_bucket{platform=~"$platform"}[5m])'
    assert any("heavy_api_queue_depth_bucket" in e for e in errors(d))


def test_a_selector_without_the_platform_filter_fails():
    d = copy.deepcopy(DASHBOARD)
    first_query(d)["expr"] = "sum(rate(heavy_api_requests_total[5m]))"
    assert any(e.startswith("platform:") for e in errors(d))


def test_variables_and_datasource_are_required():
    d = copy.deepcopy(DASHBOARD)
    d["templating"]["list"] = []
    errs = errors(d)
    assert any(e.startswith("datasource:") for e in errs)
    assert any(e.startswith("platform:") for e in errs)
    d = copy.deepcopy(DASHBOARD)
    next(p for p in d["panels"] if p.get("targets"))["datasource"] = {"uid": "prom-1"}
    assert any(e.startswith("datasource:") for e in errors(d))


def test_empty_expr_and_duplicate_ids_fail():
    d = copy.deepcopy(DASHBOARD)
    first_query(d)["expr"] = ""
    assert any(e.startswith("expr:") for e in errors(d))
    d = copy.deepcopy(DASHBOARD)
    d["panels"][2]["id"] = d["panels"][1]["id"]
    assert any(e.startswith("ids:") for e in errors(d))


def test_selectors():
    got = cd.selectors(
        "histogram_quantile(0.9, sum by (platform, le) (rate(x_bucket"
        '{platform=~"$platform", route="/a{b}"}[5m]))) / on (platform) '
        "group_left (cpu_model) y + count without (z) (w)"
    )
    assert got == [("x_bucket", '{platform=~"$platform", route="/a{b}"}'), ("y", ""), ("w", "")]


# --- against a live scrape of the release binary (check-deploy.sh does it with the static one)


def test_the_dashboard_passes_a_live_scrape(live_server, capsys):
    assert cd.main(["--url", live_server]) == 0
    assert "all in the server's" in capsys.readouterr().out


def test_a_misspelt_metric_fails_against_a_live_scrape(live_server, tmp_path, capsys):
    wrong = (paths.DEPLOY / "grafana-dashboard.json").read_text()
    wrong = wrong.replace(
        "heavy_api_request_cpu_wait_seconds_sum", "heavy_api_request_cpu_waiting_seconds_sum"
    )
    (tmp_path / "wrong.json").write_text(wrong)
    assert cd.main(["--url", live_server, "--dashboard", str(tmp_path / "wrong.json")]) == 1
    assert re.search(r"family: .*heavy_api_request_cpu_waiting_seconds_sum", capsys.readouterr().err)
