"""The capacity search's arithmetic: usable CPUs, the CPU ceiling, the one-line result."""

from __future__ import annotations

from heavylab.analysis.ceiling import ceiling_of, metrics_totals, statement, usable_cpus


def test_usable_cpus_is_the_tightest_of_affinity_quota_and_threads():
    def info(affinity, quota, workers, threads):
        return {
            "platform": {"affinity_cpus": affinity, "logical_cpus": 8, "cpu_quota": quota},
            "server": {"workers": workers, "threads": threads},
        }

    assert usable_cpus(info(2, None, 4, 2)) == (2.0, "CPU affinity")
    assert usable_cpus(info(2, 0.5, 4, 2)) == (0.5, "cgroup CPU quota")
    assert usable_cpus(info(2, None, 1, 1)) == (1.0, "1 x 1 handler threads")
    assert usable_cpus(None) is None


SCRAPE = """# TYPE heavy_api_process_cpu_seconds_total counter
heavy_api_process_cpu_seconds_total{pid="10",role="master"} 0.5
heavy_api_process_cpu_seconds_total{pid="11",role="worker"} 2.25
heavy_api_requests_total{route="/heavy/cpu-io-no-db/",method="GET",status="200"} 90
heavy_api_requests_total{route="/heavy/cpu-io-no-db/",method="GET",status="400"} 10
heavy_api_requests_total{route="/heavy/health/",method="GET",status="200"} 5
"""


def test_metrics_totals_adds_every_process_and_heavy_requests_only():
    assert metrics_totals(SCRAPE) == {"cpu_secs": 2.75, "requests": 100.0}
    assert metrics_totals("some_other_server_metric 1\n") is None
    assert metrics_totals(None) is None


def test_ceiling_and_statement_name_cpus_and_cpu_per_request():
    info = {"platform": {"affinity_cpus": 2, "cpu_quota": None}, "server": {"workers": 4, "threads": 2}}
    ceiling = ceiling_of(info, {"cpu_ms_per_request": 32.6, "cpu_source": "process CPU"})
    assert round(ceiling["rps"], 1) == 61.3
    result = {
        "capacity_rps": 56.0,
        "broken_rps": 58.0,
        "status": "bracketed",
        "slo": {"p99_ms": 2000.0, "errors_pct": 1.0},
        "ceiling": ceiling,
        "p99_ms_at_capacity": 840.2,
    }
    assert statement(result) == (
        "capacity: 56 req/s at p99 840 ms = 91 % of this target's CPU ceiling of 61.3 req/s "
        "(2 CPUs / 32.6 ms CPU per request) (SLO p99 < 2000 ms, errors < 1 %)"
    )
    result["status"] = "budget-spent"
    result["broken_rps"] = 700.0
    result["capacity_rps"] = 480.0
    assert statement(result).startswith("capacity: between 480 and 700 req/s (search budget spent)")
    result.update(status="none-sustained", capacity_rps=None, broken_rps=2.0)
    assert statement(result).startswith("capacity: below 2 req/s")
    # Without /heavy/info/ (another server) there is no ceiling, and the line says nothing of one.
    result.update(status="bracketed", capacity_rps=56.0, broken_rps=58.0, ceiling=None)
    assert "ceiling" not in statement(result)
