"""Utilization from /metrics sampled during a run: the sampler against a real HTTP server, the
arithmetic against synthetic scrapes."""

from __future__ import annotations

import http.server
import threading

import pytest

from heavylab.analysis import utilization as ut
from heavylab.results import metrics
from heavylab.run import scraper

SCRAPE = """# HELP heavy_api_process_cpu_seconds_total CPU.
# TYPE heavy_api_process_cpu_seconds_total counter
heavy_api_process_cpu_seconds_total{{pid="1",role="master"}} {master}
heavy_api_process_cpu_seconds_total{{pid="2",role="worker"}} {worker}
heavy_api_process_resident_memory_bytes{{pid="1",role="master"}} 10000000
heavy_api_process_resident_memory_bytes{{pid="2",role="worker"}} 20000000
heavy_api_requests_total{{route="/heavy/cpu-io-no-db/",method="GET",status="200"}} {heavy}
heavy_api_requests_total{{route="/heavy/health/",method="GET",status="200"}} 7
heavy_api_http_received_bytes_total {rx}
heavy_api_http_sent_bytes_total {tx}
heavy_api_workers 1
"""


def scrape(master, worker, heavy, rx, tx):
    return SCRAPE.format(master=master, worker=worker, heavy=heavy, rx=rx, tx=tx)


def rows_of(texts, every_ms=5000):
    rows = []
    for i, text in enumerate(texts):
        rows += [(1_000_000.0 + i * every_ms, m, lab, v) for m, lab, v in metrics.parse(text)]
    return rows


def test_parse_keeps_the_utilization_families_only():
    got = metrics.parse(scrape(1, 2, 3, 4, 5))
    names = {m for m, _, _ in got}
    assert "heavy_api_workers" not in names
    assert {
        "heavy_api_process_cpu_seconds_total",
        "heavy_api_http_sent_bytes_total",
        "heavy_api_requests_total",
    } <= names


def test_cpu_share_memory_network_and_requests_per_cpu_second():
    info = {"platform": {"affinity_cpus": 2, "cpu_quota": 0.5, "memory_limit_bytes": 100_000_000}}
    # Every 5 s: 2.5 CPU-seconds more (0.5 CPUs used), 100 heavy requests, 1 MB in, 4 MB out.
    texts = [scrape(1.0, 10.0 + 2.5 * i, 100 * i, 1e6 * i, 4e6 * i) for i in range(4)]
    u = ut.utilization(rows_of(texts), info)
    s = u.summary()
    assert s["cpu_used_cpus_avg"] == pytest.approx(0.5)
    assert s["cpu_share_of_usable_avg"] == pytest.approx(0.25)
    assert s["cpu_share_of_quota_avg"] == pytest.approx(1.0)
    assert s["memory_bytes_max"] == 30_000_000
    assert s["memory_share_of_limit_max"] == pytest.approx(0.3)
    assert s["http_in_bytes_per_sec_avg"] == pytest.approx(200_000)
    assert s["http_out_bytes"] == 12e6
    assert s["requests_per_cpu_second"] == pytest.approx(300 / 7.5)
    assert u.cpu_source == "the server's processes' CPU"


def test_a_recycled_worker_never_gives_negative_cpu():
    texts = [scrape(1.0, 50.0, 0, 0, 0), scrape(1.0, 0.5, 10, 0, 0)]  # the worker restarted
    u = ut.utilization(rows_of(texts), None)
    assert u.series["cpu_used_cpus"] == [(5.0, 0.0)]


def test_one_scrape_says_nothing_over_time():
    assert ut.utilization(rows_of([scrape(1, 2, 3, 4, 5)]), None) is None


def test_sampler_scrapes_a_real_server_and_writes_gzipped_csv(tmp_path):
    served = {"n": 0}

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served["n"] += 1
            body = scrape(1.0, float(served["n"]), served["n"], 0, 0).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        path = tmp_path / metrics.METRICS_FILE
        # every=3600: the first scrape at start, the last at exit; nothing timed in between.
        with scraper.Sampler(f"http://127.0.0.1:{srv.server_address[1]}/metrics", path, every=3600) as s:
            pass
        assert s.scrapes == 2 and s.failures == 0
        rows = metrics.read(path)
        assert {m for _, m, _, _ in rows} >= {
            "heavy_api_process_cpu_seconds_total",
            "heavy_api_requests_total",
        }
        assert len({t for t, _, _, _ in rows}) <= 2
    finally:
        srv.shutdown()
        srv.server_close()


def test_sampler_without_a_server_leaves_no_file(tmp_path):
    path = tmp_path / metrics.METRICS_FILE
    with scraper.Sampler("http://127.0.0.1:9/metrics", path, every=3600, timeout=0.5) as s:
        pass
    assert s.scrapes == 0 and s.failures == 2
    assert not path.exists()
