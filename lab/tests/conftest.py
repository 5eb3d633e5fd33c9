"""Shared fixtures. Several test modules add theirs here: append, do not rewrite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

RECORDED_RUNS = Path(__file__).resolve().parent / "data" / "runs"


# --- recorded run folders (lab/tests/data/runs, see its README.md) ---------------------------


@pytest.fixture
def recorded() -> Path:
    """The folder of recorded run folders (read-only: copy before editing, see run_copy)."""
    return RECORDED_RUNS


@pytest.fixture
def run_copy(tmp_path):
    """run_copy("same1", into="a") copies a recorded run folder under tmp_path/into and returns it."""

    def copy(name: str, into: str = "copies", as_name: str | None = None) -> Path:
        dest = tmp_path / into / (as_name or name)
        shutil.copytree(RECORDED_RUNS / name, dest)
        return dest

    return copy


def _ecs_info(meta: dict, *, launch_type: str, pull_secs: float, ready_secs: float, arch: str) -> dict:
    """A /heavy/info/ answer of a server in an ECS task, with the task metadata's start-up times."""
    return {
        "server": {"name": "heavy-api", "version": "0.1.0", "workers": 4, "threads": 2, "ready_at": None},
        "platform": {
            "cpu_model": "AMD EPYC" if arch == "x86_64" else "Neoverse-V1",
            "architecture": arch,
            "logical_cpus": 2,
            "affinity_cpus": 2,
            "cpu_quota": 2.0 if launch_type == "FARGATE" else None,
            "memory_limit_bytes": 4294967296,
            "kernel": "6.1.0",
            "sha_extensions": True,
            "hypervisor": "kvm",
            "ecs": {
                "launch_type": launch_type,
                "availability_zone": "us-east-1a",
                "task_arn": f"arn:aws:ecs:us-east-1:123456789012:task/heavy/{launch_type.lower()}-{arch}",
                "family": f"heavy-api-{launch_type.lower()}",
                "revision": "3",
                "task_cpu": 2048,
                "task_memory_mib": 4096,
                "image_digest": "sha256:" + "ab" * 32,
                "PullStartedAt": "2026-12-01T10:00:00.000000000Z",
                "PullStoppedAt": f"2026-12-01T10:00:{pull_secs:09.6f}Z",
                "container": {
                    "CreatedAt": f"2026-12-01T10:00:{pull_secs + 0.5:09.6f}Z",
                    "StartedAt": f"2026-12-01T10:00:{pull_secs + 1.0:09.6f}Z",
                },
            },
        },
        "_ready_secs": ready_secs,
    }


@pytest.fixture
def capacity_run(tmp_path):
    """capacity_run(label, capacity, broken, ...) -> a capacity run folder in the NEW capacity.json
    schema (status, bracket, statement, ceiling, steps with phase), made from the recorded
    capacity-fast run: its summary is the step at capacity, its steps climb to `capacity`,
    break at `broken`, and are confirmed. ecs=("FARGATE", pull_secs, ready_secs, arch) puts a
    /heavy/info/ answer with ECS start-up times into meta.json (a server not started by the runner).
    """

    def make(
        label: str,
        capacity: float,
        broken: float | None,
        *,
        status: str = "bracketed",
        ecs: tuple | None = None,
        throttled_ms: float | None = None,
        cpu_wait_ms: float | None = None,
        at_limit: dict | None = None,
        options: dict | None = None,
    ) -> Path:
        d = tmp_path / "capacity" / label
        shutil.copytree(RECORDED_RUNS / "capacity-fast", d)
        meta = json.loads((d / "meta.json").read_text())
        meta["label"] = label
        if ecs:
            launch, pull, ready, arch = ecs
            info = _ecs_info(meta, launch_type=launch, pull_secs=pull, ready_secs=ready, arch=arch)
            ready_at = f"2026-12-01T10:00:{pull + 1.0 + info.pop('_ready_secs'):09.6f}Z"
            info["server"]["ready_at"] = ready_at
            meta.update(
                {
                    "local_server": False,
                    "server_command": None,
                    "local_server_fingerprint": None,
                    "base_url": "http://heavy-alb.example",
                    "server_info_before": info,
                    "server_info_after": info,
                }
            )
        (d / "meta.json").write_text(json.dumps(meta))
        summary = json.loads((d / "summary.json").read_text())
        split = {"server_throttled_ms": throttled_ms, "server_cpu_wait_ms": cpu_wait_ms}
        (d / "summary.json").write_text(json.dumps(_with_split(summary, split)))
        rates = [capacity / 4, capacity / 2, capacity] + ([broken] if broken else [])
        phases = ["probe", "climb", "bisect"] + (["bisect"] if broken else [])
        steps = []
        for i, (rate, phase) in enumerate(zip(rates, phases, strict=True), 1):
            ok = broken is None or rate < broken
            p99 = 90.0 + 400.0 * rate / capacity if ok else 2600.0
            steps.append(
                {
                    "step": i,
                    "phase": phase,
                    "rate": rate,
                    "secs": 5.0,
                    "sent": int(rate * 4),
                    "requests": int(rate * 5),
                    "throughput_rps": rate if ok else rate * 0.8,
                    "p50_ms": 80.0 + 20.0 * rate / capacity if ok else 1200.0,
                    "p99_ms": p99,
                    "error_rate": 0.0,
                    "dropped_iterations": 0 if ok else 7,
                    "ok": ok,
                    "reasons": [] if ok else [f"p99 {p99:.0f} ms >= SLO 2000 ms", "k6 dropped 7 requests"],
                    "dir": f"steps/{i:02d}-{rate:g}rps",
                }
            )
        if broken:
            steps.append({**steps[2], "step": len(steps) + 1, "phase": "confirm"})
            # The step at the limit (the broken one) carries the CPU split the report explains
            # a capacity with: the split at capacity (with a cpu_thread, which a server with the
            # split always sends, when any part is given), `at_limit`'s averages put over it.
            limit = d / steps[3]["dir"]
            limit.mkdir(parents=True)
            given = at_limit or any(v is not None for v in split.values())
            at = {**({"server_cpu_thread_ms": 3.7} if given else {}), **split, **(at_limit or {})}
            (limit / "summary.json").write_text(json.dumps(_with_split(summary, at)))
        if status == "budget-spent":
            statement = f"capacity: between {capacity:g} and {broken:g} req/s (search budget spent)"
        else:
            statement = (
                f"capacity: {capacity:g} req/s at p99 490 ms = 80 % of this target's CPU ceiling of "
                f"{capacity / 0.8:.3g} req/s (2 CPUs / 33 ms CPU per request)"
            )
        cap = {
            "slo": {"p99_ms": 2000.0, "errors_pct": 1.0},
            "status": status,
            "capacity_rps": capacity,
            "bracket": [capacity, broken],
            "bracket_width_pct": round(100 * (broken / capacity - 1), 2) if broken else None,
            "precise": bool(broken and broken / capacity - 1 <= 0.05),
            "statement": statement,
            "p50_ms_at_capacity": 100.0,
            "p99_ms_at_capacity": 490.0,
            "throughput_rps_at_capacity": capacity,
            "error_rate_at_capacity": 0.0,
            "ceiling": {
                "rps": capacity / 0.8,
                "cpus": 2.0,
                "cpus_source": "cgroup CPU quota",
                "cpu_ms_per_request": 33.0,
                "source": "server-timing",
            },
            "headroom_pct": 80.0,
            "contradictions": [],
            "search_secs": 140.0,
            "budget_secs": 300.0,
            "step_secs": 5,
            "precision": 0.05,
            "options": options
            or {
                "slo_p99_ms": 2000.0,
                "slo_errors_pct": 1.0,
                "start_rate": None,
                "max_rate": 100000.0,
                "step_secs": 15.0,
                "budget_secs": 300.0,
                "precision": 0.05,
                "max_steps": 30,
            },
            "steps": steps,
        }
        (d / "capacity.json").write_text(json.dumps(cap, indent=1))
        return d

    return make


def _with_split(summary: dict, split: dict) -> dict:
    """The summary with the server's CPU split trends set to the given averages."""
    out = json.loads(json.dumps(summary))
    for name, value in split.items():
        if value is not None:
            out["metrics"][name] = {
                "type": "trend",
                "contains": "time",
                "values": {"avg": value, "p(50)": value, "p(95)": value, "max": value, "min": value},
            }
    return out


# --- a running heavy-api (target/release/heavy-api; the test command builds it first) --------


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The release binary serving on a free loopback port: its base URL. Stopped after the module."""
    import re
    import subprocess
    import time
    import urllib.request

    from heavylab import paths

    if not paths.HEAVY_BIN.is_file():
        pytest.fail(f"{paths.HEAVY_BIN} is missing: run `cargo build --release` first")
    d = tmp_path_factory.mktemp("live-server")
    log = d / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(paths.HEAVY_BIN), "--bind", "127.0.0.1:0", "--workers", "1", "--threads", "2"]
            + ["--io-file", str(d / "io.bin")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=d,
        )
    try:
        deadline = time.monotonic() + 10
        base = None
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            if m:
                try:
                    urllib.request.urlopen(f"{m.group(1)}/heavy/health/", timeout=2).read()
                    base = m.group(1)
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        if base is None:
            pytest.fail("heavy-api did not answer within 10 s:\n" + log.read_text(errors="replace"))
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- run folders with the server's /metrics sampled during the run (issue 24) ----------------


def write_metrics_samples(
    path: Path, scrapes: list[dict], *, start_ms: float = 1_764_390_784_000.0, every_s=5.0
):
    """metrics-samples.csv.gz in the scraper's format (heavylab.results.metrics: gzipped CSV
    timestamp_ms,metric,labels,value), one scrape per dict {metric or (metric, labels): value}."""
    import csv
    import gzip

    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp_ms", "metric", "labels", "value"])
        for i, scrape in enumerate(scrapes):
            t = round(start_ms + i * every_s * 1000)
            for key, value in scrape.items():
                metric, labels = key if isinstance(key, tuple) else (key, "")
                w.writerow([t, metric, labels, repr(float(value))])


def steady_scrapes(
    n: int = 13,
    every_s: float = 5.0,
    *,
    cpus: float | list = 0.5,
    memory: float = 60 << 20,
    rx_per_s: float = 20_000.0,
    tx_per_s: float = 80_000.0,
    heavy_per_s: float = 10.0,
    cgroup: bool = True,
    cgroup_extra_cpus: float = 0.0,
) -> list[dict]:
    """n scrapes every every_s seconds of a server using `cpus` CPUs (a list: per interval),
    answering heavy_per_s heavy requests per second and moving rx/tx bytes per second."""
    out, cpu = [], 100.0
    for i in range(n):
        if i:
            cpu += (cpus[i - 1] if isinstance(cpus, list) else cpus) * every_s
        heavy = 1000 + heavy_per_s * every_s * i
        s = {
            ("heavy_api_process_cpu_seconds_total", 'pid="1",role="master"'): 1.0,
            ("heavy_api_process_cpu_seconds_total", 'pid="2",role="worker"'): cpu - 1.0,
            ("heavy_api_process_resident_memory_bytes", 'pid="2",role="worker"'): memory / 2,
            ("heavy_api_requests_total", 'route="/heavy/cpu-io-no-db/",method="GET",status="200"'): heavy,
            ("heavy_api_requests_total", 'route="/heavy/health/",method="GET",status="200"'): 3.0,
            "heavy_api_http_received_bytes_total": 5e6 + rx_per_s * every_s * i,
            "heavy_api_http_sent_bytes_total": 9e6 + tx_per_s * every_s * i,
        }
        if cgroup:
            s["heavy_api_cgroup_cpu_usage_seconds_total"] = cpu + cgroup_extra_cpus * every_s * i
            s["heavy_api_cgroup_memory_usage_bytes"] = memory * (0.9 + 0.1 * i / max(1, n - 1))
        out.append(s)
    return out


def platform_info(
    *, usable: float = 2, quota: float | None = 0.5, memory_limit: float | None = 256 << 20, **extra
) -> dict:
    """A GET /heavy/info/ answer with the limits utilization is measured against."""
    return {
        "server": {"name": "heavy-api", "version": "0.1.0", "workers": 1, "threads": 2},
        "platform": {
            "cpu_model": "Test CPU",
            "architecture": "x86_64",
            "logical_cpus": 2,
            "affinity_cpus": usable,
            "cpu_quota": quota,
            "memory_limit_bytes": memory_limit,
            "kernel": "6.1.0",
            **extra,
        },
    }


@pytest.fixture
def sampled_run(tmp_path):
    """sampled_run(label, scrapes=..., info=..., price=..., cloudwatch=..., summary_extra=...,
    into=...) -> a copy of the recorded smoke run `same1` with metrics-samples.csv.gz (None: without
    it), /heavy/info/ in meta.json, and optionally a cloudwatch.json and Server-Timing averages."""

    def make(
        label: str,
        *,
        scrapes: list[dict] | None = None,
        info: dict | None = None,
        price: str | None = None,
        cloudwatch: dict | None = None,
        summary_extra: dict | None = None,
        into: str = "sampled",
        meta_extra: dict | None = None,
        start_ms: float = 1_764_390_784_000.0,
    ) -> Path:
        d = tmp_path / into / label
        shutil.copytree(RECORDED_RUNS / "same1", d)
        meta = json.loads((d / "meta.json").read_text())
        meta.update({"label": label, "price": price, "server_info_before": info, "server_info_after": info})
        if info is not None:  # a server in its own container or task, not started by the runner
            meta.update({"local_server": False, "local_server_fingerprint": None})
        meta.update(meta_extra or {})
        (d / "meta.json").write_text(json.dumps(meta))
        if scrapes is not None:
            write_metrics_samples(d / "metrics-samples.csv.gz", scrapes, start_ms=start_ms)
        if cloudwatch is not None:
            (d / "cloudwatch.json").write_text(json.dumps(cloudwatch))
        if summary_extra:
            summary = json.loads((d / "summary.json").read_text())
            for name, avg in summary_extra.items():
                summary["metrics"][name] = {
                    "type": "trend",
                    "contains": "time",
                    "values": {"avg": avg, "p(50)": avg, "p(95)": avg, "max": avg, "min": avg},
                }
            (d / "summary.json").write_text(json.dumps(summary))
        return d

    return make


@pytest.fixture
def recorded_cloudwatch(monkeypatch) -> dict:
    """cloudwatch.json as `heavy-lab cloudwatch` stores it, made by fetch() from the recorded
    GetMetricData answers of a throttled Fargate service (tests/data/aws, botocore's Stubber)."""
    import datetime as dt

    import boto3
    from botocore.stub import Stubber

    from heavylab.results import cloudwatch as cw

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("cloudwatch", region_name="us-east-1")
    pages = json.loads((Path(__file__).parent / "data" / "aws" / "get-metric-data-fargate.json").read_text())
    qs = cw.queries(
        cluster="heavy-api",
        service="heavy-api-fargate",
        load_balancer="app/heavy-api/50dc6c495c0c9188",
        target_group="targetgroup/heavy-api/73e2d6bc24d8a067",
    )
    start = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)
    with Stubber(client) as stub:
        for p in pages["pages"]:
            for r in p["MetricDataResults"]:
                r["Timestamps"] = [
                    dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in r["Timestamps"]
                ]
            stub.add_response("get_metric_data", p)
        data = cw.fetch(client, qs, start, start + dt.timedelta(minutes=3))
    data["region"] = "us-east-1"
    return data
