"""The report of two sides (heavy-lab compare A B) on synthetic and recorded run folders: the
numbers, the verdict text that follows from them, the prices. Plain pytest functions; the
N-platform report is tested in test_report_many.py."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from mdtable import md_row

from heavylab.analysis import prices
from heavylab.report import compare

RECORDED = Path(__file__).resolve().parent / "data" / "runs"


def trend(p50, p90, p95, p99, avg, mx, count=100, thresholds=None):
    m = {
        "type": "trend",
        "contains": "time",
        "values": {
            "p(50)": p50,
            "med": p50,
            "p(90)": p90,
            "p(95)": p95,
            "p(99)": p99,
            "avg": avg,
            "max": mx,
            "min": 0.0,
            "count": count,
        },
    }
    if thresholds:
        m["thresholds"] = thresholds
    return m


def handle_summary_data(
    rps,
    duration_s,
    p,
    queue,
    service,
    cpu,
    io_ms,
    failed=0,
    throttled=0,
    s5xx=0,
    thresholds_ok=True,
    server_timing=True,
):
    count = round(rps * duration_s)
    metrics = {
        "http_reqs": {"type": "counter", "contains": "default", "values": {"count": count, "rate": rps}},
        "http_req_duration": trend(*p, count=count, thresholds={"p(95)<2000": {"ok": thresholds_ok}}),
        "http_req_failed": {
            "type": "rate",
            "contains": "default",
            "values": {"rate": failed / count, "passes": failed, "fails": count - failed},
        },
        "checks": {
            "type": "rate",
            "contains": "default",
            "values": {"rate": 1.0, "passes": 2 * count, "fails": 0},
        },
        "throttled_requests": {
            "type": "counter",
            "contains": "default",
            "values": {"count": throttled, "rate": throttled / duration_s},
        },
        "server_errors": {
            "type": "counter",
            "contains": "default",
            "values": {"count": s5xx, "rate": s5xx / duration_s},
        },
        "vus_max": {"type": "gauge", "contains": "default", "values": {"value": 10, "min": 10, "max": 10}},
        "custom_cpu_time_ms": trend(cpu, cpu, cpu, cpu, cpu, cpu),
        "custom_io_time_ms": trend(io_ms, io_ms, io_ms, io_ms, io_ms, io_ms),
    }
    if server_timing:
        metrics["server_queue_ms"] = trend(queue, queue, queue * 2, queue * 3, queue, queue * 4)
        metrics["server_total_ms"] = trend(service, service, service, service, service, service)
    return {
        "state": {"testRunDurationMs": duration_s * 1000.0},
        "metrics": metrics,
        "root_group": {"name": "", "checks": [], "groups": []},
        "options": {},
    }


def write_run(root: Path, name: str, summary: dict, meta: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps(summary))
    if meta is not None:
        (d / "meta.json").write_text(json.dumps(meta))
    return d


def test_hourly_forms():
    for spec in ("0.0971/h", "0.0971", "$0.0971/hour", "ec2:0.0971/h", " 0.0971 /hr "):
        assert compare.parse_price(spec).hourly == pytest.approx(0.0971, abs=1e-9), spec
    assert compare.parse_price("0.0971/hx3").hourly == pytest.approx(0.2913, abs=1e-9)


def test_fargate_rates_and_task_size():
    p = compare.parse_price("fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4")
    assert p.hourly == pytest.approx(0.04048 * 2 + 0.004445 * 4, abs=1e-12)
    assert p.hourly == pytest.approx(0.09874, abs=1e-9)
    # ECS task-definition units: 2048 CPU units = 2 vCPU, 4096 MiB = 4 GB.
    units = compare.parse_price("fargate:vcpu=0.04048,gb=0.004445,cpu=2048,mem=4096")
    assert units.hourly == pytest.approx(p.hourly, abs=1e-12)
    three = compare.parse_price("fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4,tasks=3")
    assert three.hourly == pytest.approx(3 * p.hourly, abs=1e-12)
    assert "Fargate" in p.description


def test_bad_prices():
    for spec in (
        "cheap",
        "fargate:vcpu=0.04,gb=0.004",
        "fargate:vcpu=x,gb=1,cpu=1,mem=1",
        "fargate:vcpu=1,gb=1,cpu=1,mem=1,disk=3",
        "-1/h",
    ):
        with pytest.raises(ValueError):
            compare.parse_price(spec)


def test_cost_per_million():
    # 0.036 per hour at 10 req/s: 36,000 requests an hour -> 1.0 per million.
    assert compare.cost_per_million(0.036, 10.0) == pytest.approx(1.0, abs=1e-12)
    assert compare.cost_per_million(0.0971, 20.0) == pytest.approx(0.0971 / 72000 * 1e6, abs=1e-12)
    assert compare.cost_per_million(None, 10.0) is None
    assert compare.cost_per_million(0.1, 0.0) is None


class Synthetic:
    def __init__(self, root: Path):
        self.root = root
        self.a = write_run(
            self.root,
            "smoke-a",
            handle_summary_data(
                rps=20.0,
                duration_s=100,
                p=(100, 150, 200, 400, 120, 900),
                queue=5.0,
                service=95.0,
                cpu=90.0,
                io_ms=5.0,
            ),
            {"label": "ec2", "scenario": "smoke", "duration_scale": 1, "price": "0.0971/h"},
        )
        self.b = write_run(
            self.root,
            "smoke-b",
            handle_summary_data(
                rps=16.0,
                duration_s=100,
                p=(150, 300, 400, 1000, 200, 2000),
                queue=60.0,
                service=100.0,
                cpu=99.0,
                io_ms=6.0,
                failed=4,
                throttled=2,
                s5xx=1,
                thresholds_ok=False,
            ),
            {
                "label": "fargate",
                "scenario": "smoke",
                "duration_scale": 1,
                "price": "fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4",
            },
        )

    def run_main(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = compare.main([str(x) for x in args])
        return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def ctx(tmp_path) -> Synthetic:
    return Synthetic(tmp_path)


def test_markdown_numbers(ctx):
    out_dir = ctx.root / "cmp"
    rc, stdout, _ = ctx.run_main(ctx.a, ctx.b, "--out", out_dir)
    assert rc == 0
    assert "comparison.md" in stdout
    md = (out_dir / "comparison.md").read_text()
    assert "# Comparison: ec2 vs fargate" in md
    assert md_row(md, "p50")[1:4] == ["100.00", "150.00", "1.50x"]
    assert md_row(md, "p95")[1:4] == ["200.00", "400.00", "2.00x"]
    assert md_row(md, "p99")[1:4] == ["400.00", "1000.00", "2.50x"]
    assert md_row(md, "avg")[1:4] == ["120.00", "200.00", "1.67x"]
    assert md_row(md, "throughput (req/s)")[1:4] == ["20", "16", "0.80x"]
    assert md_row(md, "requests")[1:4] == ["2000", "1600", "0.80x"]
    assert md_row(md, "failed requests")[1:3] == ["0", "4"]
    assert md_row(md, "error rate")[1:3] == ["0.00%", "0.25%"]
    assert md_row(md, "throttled (429)")[1:3] == ["0", "2"]
    assert md_row(md, "server errors (5xx)")[1:3] == ["0", "1"]
    assert md_row(md, "queue avg (waiting for a thread)")[1:4] == ["5.00", "60.00", "12.00x"]
    assert md_row(md, "service avg (cpu + io)")[1:4] == ["95.00", "100.00", "1.05x"]
    assert md_row(md, "queue share of server time")[1:3] == ["5.00%", "37.50%"]
    # avg duration minus (queue + service): 120 - 100 = 20 ms; 200 - 160 = 40 ms.
    assert md_row(md, "outside the server avg (network, LB)")[1:3] == ["20.00", "40.00"]
    assert md_row(md, "CPU time avg (cpu_time_sec)")[1:4] == ["90.00", "99.00", "1.10x"]
    assert md_row(md, "IO time avg (io_time_sec)")[1:3] == ["5.00", "6.00"]
    # Cost: EC2 0.0971/h at 20 req/s; Fargate 2 vCPU + 4 GB = 0.09874/h at 16 req/s.
    cost_a = 0.0971 / (20 * 3600) * 1e6
    cost_b = (0.04048 * 2 + 0.004445 * 4) / (16 * 3600) * 1e6
    row = md_row(md, "cost per million requests")
    assert row[1:3] == [f"{cost_a:.4f}", f"{cost_b:.4f}"]
    assert row[3] == f"{cost_b / cost_a:.2f}x"
    assert md_row(md, "price per hour")[1:3] == ["0.0971", "0.0987"]
    assert md_row(md, "thresholds")[1] == "all passed"
    assert "FAILED" in md_row(md, "thresholds")[2]
    assert "queueing" in md  # the queue grew more than the service time
    assert "ec2 is cheaper" in md


def test_cost_math_is_exact(ctx):
    _, _, rows = compare.compare(str(ctx.a), str(ctx.b), out=str(ctx.root / "c2"))
    by = {r["label"]: r for r in rows}
    assert by["cost per million requests"]["a"] == pytest.approx(0.0971 / 72000 * 1e6, abs=1e-7)
    assert by["cost per million requests"]["b"] == pytest.approx(0.09874 / 57600 * 1e6, abs=1e-7)
    assert by["p95"]["ratio"] == pytest.approx(2.0, abs=1e-7)


def test_flags_override_meta(ctx):
    out_dir = ctx.root / "cmp3"
    rc, _, _ = ctx.run_main(
        ctx.a,
        ctx.b,
        "--label-a",
        "one",
        "--label-b",
        "two",
        "--price-a",
        "0.072/h",
        "--price-b",
        "0.036",
        "--out",
        out_dir,
    )
    assert rc == 0
    md = (out_dir / "comparison.md").read_text()
    assert "# Comparison: one vs two" in md
    # 0.072/h at 20 req/s = 1.0 per million; 0.036/h at 16 req/s = 0.625 per million.
    assert md_row(md, "cost per million requests")[1:4] == ["1.0000", "0.6250", "0.62x"]


def test_html_is_self_contained(ctx):
    out_dir = ctx.root / "cmp4"
    ctx.run_main(ctx.a, ctx.b, "--out", out_dir)
    page = (out_dir / "comparison.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3
    assert "Request duration" in page
    assert "Throughput" in page
    # No external assets: no src= / href= / url( / @import anywhere.
    assert re.search(r"\b(src|href)\s*=|url\(|@import", page) is None
    # Bars carry their values: p95 of fargate (400) is drawn.
    assert "fargate p95: 400.00 ms" in page


def test_missing_server_timing_and_price(ctx):
    c = write_run(
        ctx.root,
        "gunicorn",
        handle_summary_data(
            rps=10.0,
            duration_s=30,
            p=(90, 100, 110, 120, 95, 130),
            queue=0,
            service=0,
            cpu=90.0,
            io_ms=1.0,
            server_timing=False,
        ),
    )
    out_dir = ctx.root / "cmp5"
    rc, _, _ = ctx.run_main(ctx.a, c, "--out", out_dir)
    assert rc == 0
    md = (out_dir / "comparison.md").read_text()
    assert md_row(md, "queue avg (waiting for a thread)")[2:4] == ["n/a", "n/a"]
    assert md_row(md, "cost per million requests")[2] == "n/a"
    assert "# Comparison: ec2 vs gunicorn" in md  # label falls back to the folder name


def test_same_labels_are_told_apart(ctx):
    c = write_run(ctx.root, "smoke-c", json.loads((ctx.a / "summary.json").read_text()), {"label": "ec2"})
    _, _, _ = compare.compare(str(ctx.a), str(c), out=str(ctx.root / "cmp6"))
    md = (ctx.root / "cmp6" / "comparison.md").read_text()
    assert "ec2 A (smoke-a)" in md
    assert "ec2 B (smoke-c)" in md


def test_summary_export_format(ctx):
    flat = {
        "metrics": {
            "http_reqs": {"count": 300, "rate": 10.0},
            "http_req_duration": {
                "avg": 50.0,
                "med": 40.0,
                "p(90)": 70.0,
                "p(95)": 80.0,
                "max": 99.0,
                "thresholds": {"p(95)<2000": False},
            },
            "http_req_failed": {"passes": 3, "fails": 297, "value": 0.01},
        }
    }
    c = write_run(ctx.root, "flat", flat, {"label": "flat"})
    _, _, rows = compare.compare(str(ctx.a), str(c), out=str(ctx.root / "cmp7"))
    by = {r["label"]: r for r in rows}
    assert by["p50"]["b"] == 40.0
    assert by["p95"]["b"] == 80.0
    assert by["p99"]["b"] is None
    assert by["failed requests"]["b"] == 3.0
    assert by["error rate"]["b"] == 0.01
    assert by["throughput (req/s)"]["b"] == 10.0
    md = (ctx.root / "cmp7" / "comparison.md").read_text()
    assert md_row(md, "thresholds")[2] == "all passed"


def test_default_out_dir_and_warnings(ctx):
    meta_b = json.loads((ctx.b / "meta.json").read_text())
    meta_b["scenario"] = "quick"
    (ctx.b / "meta.json").write_text(json.dumps(meta_b))
    # Different scenarios are refused, with the difference named...
    rc, _, err = ctx.run_main(ctx.a, ctx.b)
    assert rc == 2
    assert 'differ in scenario ("smoke" vs "quick")' in err
    assert "--force" in err
    # ... and compared with a warning under --force.
    md_path, html_path, _ = compare.compare(str(ctx.a), str(ctx.b), force=True)
    assert md_path.parent == ctx.root / "compare-ec2-vs-fargate"
    assert html_path.is_file()
    assert "differ in scenario" in md_path.read_text()


def test_folder_of_runs_gives_medians(ctx):
    side = ctx.root / "ec2-runs"
    for i, (p95, rps, ok) in enumerate([(300, 18.0, True), (100, 22.0, True), (200, 20.0, False)]):
        write_run(
            side,
            f"quick-{i}",
            handle_summary_data(
                rps=rps,
                duration_s=75,
                p=(50, 90, p95, 500, 60, 900),
                queue=1.0 + i,
                service=90.0,
                cpu=88.0,
                io_ms=2.0,
                thresholds_ok=ok,
            ),
            {"label": "ec2", "scenario": "smoke", "duration_scale": 1, "price": "0.0971/h"},
        )
    _, _, rows = compare.compare(str(side), str(ctx.b), out=str(ctx.root / "cmp8"))
    by = {r["label"]: r for r in rows}
    assert by["p95"]["a"] == 200.0
    assert by["throughput (req/s)"]["a"] == 20.0
    assert by["queue avg (waiting for a thread)"]["a"] == 2.0
    assert by["cost per million requests"]["a"] == pytest.approx(0.0971 / 72000 * 1e6, abs=1e-7)
    md = (ctx.root / "cmp8" / "comparison.md").read_text()
    assert md_row(md, "runs")[1] == "3 used (medians)"
    # The spread over three runs is shown: p95 200 (100-300).
    assert md_row(md, "p95")[1] == "200.00 (100.00–300.00)"
    assert "FAILED" in md_row(md, "thresholds")[1]  # failed in one of the three runs


def test_folder_of_mixed_scenarios_is_refused(ctx):
    side = ctx.root / "mixed"
    write_run(
        side,
        "r1",
        json.loads((ctx.a / "summary.json").read_text()),
        {"label": "ec2", "scenario": "smoke"},
    )
    write_run(
        side,
        "r2",
        json.loads((ctx.a / "summary.json").read_text()),
        {"label": "ec2", "scenario": "quick"},
    )
    rc, _, err = ctx.run_main(side, ctx.b, "--out", ctx.root / "x")
    assert rc == 2
    assert "differ in scenario" in err


def test_bad_input(ctx):
    rc, _, err = ctx.run_main(ctx.a, ctx.root / "nope", "--out", ctx.root / "x")
    assert rc == 2
    assert "not a result folder" in err
    rc, _, err = ctx.run_main(ctx.a, ctx.b, "--price-a", "cheap", "--out", ctx.root / "x")
    assert rc == 2
    assert "--price-a" in err


class Recorded:
    """Real run folders recorded with heavy-lab run on a 2-core machine (see
    lab/tests/data/README.md): the verdict text must follow from them."""

    def __init__(self, root: Path):
        self.root = root

    def side(self, name: str, *runs: str) -> Path:
        d = self.root / name
        for r in runs:
            shutil.copytree(RECORDED / r, d / r)
        return d

    def verdict(self, a: Path, b: Path, *extra: str) -> str:
        out = self.root / f"cmp-{a.name}-{b.name}"
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = compare.main([str(a), str(b), "--out", str(out), *extra])
        assert rc == 0, err.getvalue()
        md = (out / "comparison.md").read_text()
        return md.split("## Verdict", 1)[1].split("\n\n", 2)[1]


@pytest.fixture
def rec(tmp_path) -> Recorded:
    return Recorded(tmp_path)


def test_identical_servers_show_no_difference(rec):
    v = rec.verdict(RECORDED / "same1", RECORDED / "same2")
    assert "**Overall: no difference beyond noise**" in v
    assert "**Latency**: no difference beyond noise" in v
    assert "**CPU time per request**: no difference beyond noise" in v
    assert "vCPUs are slower" not in v
    assert "Same image on both sides" in v
    assert "Same CPU model on both sides (AMD EPYC)" in v
    assert "5 slices" in v


def test_aborted_run_is_excluded_with_its_reason(rec):
    a = rec.side("a", "same1", "aborted")
    out = rec.root / "cmp-aborted"
    compare.compare(str(a), str(RECORDED / "same2"), out=str(out))
    md = (out / "comparison.md").read_text()
    assert "excluded run aborted: k6 aborted it (exit 108" in md
    runs = md_row(md, "runs")[1]
    assert runs.startswith("1 used; 1 excluded: aborted (k6 aborted it"), runs
    assert "**Overall: no difference beyond noise**" in md
    # The aborted run's zero requests did not drag the median down.
    assert md_row(md, "requests")[1] != "0"


def test_a_run_that_never_started_is_excluded_with_its_reason(rec):
    a = rec.side("a", "same1")
    dead = a / "smoke-dead"
    dead.mkdir()
    (dead / "meta.json").write_text(
        json.dumps(
            {
                "scenario": "smoke",
                "label": "same",
                "k6_exit_code": None,
                "aborted_before_start": "the target was not healthy before the run: GET "
                "http://127.0.0.1:9/heavy/health/ -> [Errno 111] Connection refused",
            }
        )
    )
    out = rec.root / "cmp-dead"
    compare.compare(str(a), str(RECORDED / "same2"), out=str(out))
    md = (out / "comparison.md").read_text()
    assert "excluded run smoke-dead: the target was not healthy before the run" in md
    assert "1 used; 1 excluded: smoke-dead (the target was not healthy" in md


def test_a_side_of_only_aborted_runs_is_refused(rec):
    a = rec.side("a", "aborted")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = compare.main([str(a), str(RECORDED / "same2"), "--out", str(rec.root / "x")])
    assert rc == 2
    assert "no valid run to compare" in err.getvalue()
    assert "exit 108" in err.getvalue()


def test_open_model_names_the_faster_server(rec):
    v = rec.verdict(RECORDED / "open-fast", RECORDED / "open-slow")
    assert "**Overall: fast is faster**" in v
    assert "**Latency**: slow is slower" in v
    assert "mostly queueing" in v
    assert "**Different server flags**" in v
    # The same arrival rate on both: the throughput follows it.
    assert "**Throughput**: no difference beyond noise" in v


def test_capacity_order_and_cost_at_capacity(rec):
    v = rec.verdict(
        RECORDED / "capacity-fast",
        RECORDED / "capacity-slow",
        "--price-a",
        "0.0971/h",
        "--price-b",
        "0.0971/h",
    )
    assert "**Overall: fast is faster** (capacity" in v
    cap_a = json.loads((RECORDED / "capacity-fast" / "capacity.json").read_text())
    cap_b = json.loads((RECORDED / "capacity-slow" / "capacity.json").read_text())
    assert cap_a["capacity_rps"] > cap_b["capacity_rps"]
    assert f"**fast sustains {cap_a['capacity_rps'] / cap_b['capacity_rps']:.2f}x the rate**" in v
    assert "fast is cheaper at capacity" in v
    assert "not read as findings" in v
    md = (rec.root / "cmp-capacity-fast-capacity-slow" / "comparison.md").read_text()
    row = md_row(md, "cost per million requests at capacity")
    # The platform's price at capacity plus the data transfer of k6's bytes per request (ALB
    # processed bytes and the default cross-AZ share: heavylab.analysis.prices).
    m = json.loads((RECORDED / "capacity-fast" / "summary.json").read_text())["metrics"]
    requests = m["custom_requests_total"]["values"]["count"]
    per_request = (m["data_sent"]["values"]["count"] + m["data_received"]["values"]["count"]) / requests
    transfer = prices.transfer_per_million(per_request, None, prices.TransferAssumptions())
    assert md_row(md, "bytes per request (in + out)")[1] == f"{per_request:.0f}"
    assert md_row(md, "data transfer per million requests")[1] == f"{transfer:.4f}"
    assert row[1] == f"{0.0971 / (cap_a['capacity_rps'] * 3600) * 1e6 + transfer:.4f}"
    at_capacity = 0.0971 / (cap_a["capacity_rps"] * 3600) * 1e6 + transfer
    assert md_row(md, "transfer share of the cost at capacity")[1] == f"{100 * transfer / at_capacity:.2f}%"


def test_different_workloads_are_refused_unless_forced(rec):
    rc_err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(rc_err):
        rc = compare.main(
            [str(RECORDED / "same1"), str(RECORDED / "open-fast"), "--out", str(rec.root / "x")]
        )
    assert rc == 2
    msg = rc_err.getvalue()
    assert 'scenario ("smoke" vs "constant-rate")' in msg
    assert "parameters" in msg
    assert "--force" in msg
    v = rec.verdict(RECORDED / "same1", RECORDED / "open-fast", "--force")
    assert v
    md = (rec.root / "cmp-same1-open-fast" / "comparison.md").read_text()
    assert "(compared anyway: --force)" in md


def test_unknown_fingerprint_is_not_called_the_same_image(rec):
    a = rec.side("a", "same1")
    meta = json.loads((a / "same1" / "meta.json").read_text())
    meta.update({"local_server": False, "local_server_fingerprint": None})
    (a / "same1" / "meta.json").write_text(json.dumps(meta))
    v = rec.verdict(a / "same1", RECORDED / "same2")
    assert "Same image" not in v
    assert "same image is unknown" in v


def test_info_endpoint_fingerprint_is_used(rec):
    a, b = rec.side("a", "same1"), rec.side("b", "same2")
    for side, model, digest in (
        (a / "same1", "Intel Xeon 8375C", "sha256:aaa1"),
        (b / "same2", "AMD EPYC 7R13", "sha256:bbb2"),
    ):
        meta = json.loads((side / "meta.json").read_text())
        meta["server_info_before"] = {
            "cpu": {"model": "x", "cpu_model": model},
            "ecs": {"image_digest": digest, "launch_type": "EC2"},
        }
        (side / "meta.json").write_text(json.dumps(meta))
    v = rec.verdict(a / "same1", b / "same2")
    assert "**Different CPU models**: same A (same1) Intel Xeon 8375C, same B (same2) AMD EPYC 7R13" in v
    assert "**Different images**" in v
    md = (rec.root / "cmp-same1-same2" / "comparison.md").read_text()
    assert "| source | GET /heavy/info/ | GET /heavy/info/ |  |" in md
    assert "| launch type | EC2 | EC2 | same |" in md
    assert "| CPU model | Intel Xeon 8375C | AMD EPYC 7R13 | differs |" in md


def test_short_and_checkless_runs_are_excluded(rec):
    short = rec.side("a", "same1")
    s = json.loads((short / "same1" / "summary.json").read_text())
    s["state"]["testRunDurationMs"] = 2000.0
    (short / "same1" / "summary.json").write_text(json.dumps(s))
    run = compare.load_run(short / "same1")
    assert re.search(r"ran 2.0 s of the \d+ s its scenario plans", compare.exclusion_reason(run))
    s["state"]["testRunDurationMs"] = 20000.0
    s["metrics"]["checks"]["values"].update({"passes": 0, "fails": 0})
    (short / "same1" / "summary.json").write_text(json.dumps(s))
    run = compare.load_run(short / "same1")
    assert "no check ran" in compare.exclusion_reason(run)
    assert compare.exclusion_reason(compare.load_run(RECORDED / "same2")) is None


def test_html_has_time_series_with_plain_numbers(rec):
    rec.verdict(RECORDED / "open-fast", RECORDED / "open-slow")
    page = (rec.root / "cmp-open-fast-open-slow" / "comparison.html").read_text()
    assert page.count('class="line-chart"') == 5
    assert page.count("<polyline") >= 10
    for title in (
        "Latency over time",
        "Throughput over time",
        "Error rate over time",
        "Queue vs service time over time",
        "CPU time per request over time",
    ):
        assert title in page
    assert "time since the start of the scenario (s)" in page
    assert re.search(r"\d[eE][+-]\d", page) is None, "scientific notation in the page"
    assert "NaN" not in page
    assert re.search(r"\b(src|href)\s*=|url\(|@import", page) is None
    assert "<h2>Per stage</h2>" in page


class CpuSplit:
    """The verdict's "why": recorded runs of a server with the CPU split in Server-Timing
    (cpu-base, cpu-quota: real; cpu-steal, cpu-slow: edited copies of cpu-base, see
    lab/tests/data/README.md)."""

    def __init__(self, root: Path):
        self.root = root

    def report(self, a: Path, b: Path) -> tuple[str, str]:
        out = self.root / f"cmp-{a.name}-{b.name}"
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = compare.main([str(a), str(b), "--out", str(out)])
        assert rc == 0, err.getvalue()
        md = (out / "comparison.md").read_text()
        return md.split("## Verdict", 1)[1].split("\n\n", 2)[1], md

    def why(self, verdict: str) -> str:
        lines = [x for x in verdict.splitlines() if x.startswith("- **Why ")]
        assert len(lines) == 1, verdict
        return lines[0]


@pytest.fixture
def cpu(tmp_path) -> CpuSplit:
    return CpuSplit(tmp_path)


def test_a_cpu_quota_is_named_throttling_and_waiting(cpu):
    v, md = cpu.report(RECORDED / "cpu-base", RECORDED / "cpu-quota")
    assert "**Latency**: quota is slower" in v
    why = cpu.why(v)
    assert why.startswith(
        "- **Why p95 is higher on quota** (the server's CPU split, "
        "beyond noise): it was throttled to its CPU quota"
    ), why
    assert "its requests waited for a core" in why
    assert "which includes the throttled or stolen time" in why
    assert "steal" not in why.split("throttled or stolen")[0].split("quota)")[-1]
    assert "lost time to steal" not in why
    assert "slower CPU" not in why
    assert "the server measured where it went: cpu_thread" in v
    assert md_row(md, "throttled avg (cgroup CFS throttling)")[4] == "beyond noise"
    assert md_row(md, "cpu_thread avg (CPU the thread got)")[4] == "≈"
    assert md_row(md, "CPU quota")[1:] == ["none", "0.1 CPUs", "differs"]


def test_steal_is_named_and_nothing_else(cpu):
    v, md = cpu.report(RECORDED / "cpu-base", RECORDED / "cpu-steal")
    why = cpu.why(v)
    assert "**Why p50 is higher on steal**" in why
    assert (
        "it lost time to steal (steal up: the hypervisor ran other guests on its "
        "vCPUs) — +150.0 ms per request avg, base 0.00 vs steal 150.00."
    ) in why
    for other in ("throttled to", "slower CPU", "waited for a core"):
        assert other not in why
    assert md_row(md, "steal avg (host steal time)")[4] == "beyond noise"


def test_a_slower_core_is_named_slower_cpu(cpu):
    v, md = cpu.report(RECORDED / "cpu-base", RECORDED / "cpu-slow")
    why = cpu.why(v)
    assert "**Why p50 is higher on slowcpu**" in why
    assert "its requests got slower CPU (cpu_thread per request up" in why
    assert "3.98x, base 33.52" in why
    for other in ("throttled to", "steal", "waited for a core"):
        assert other not in why
    assert "**Different CPU models**: base AMD EPYC, slowcpu Intel(R) Xeon(R) Platinum 8175M" in v


def test_the_same_run_twice_names_no_cause(cpu):
    a, b = cpu.root / "a", cpu.root / "b"
    shutil.copytree(RECORDED / "cpu-base", a / "cpu-base")
    shutil.copytree(RECORDED / "cpu-base", b / "cpu-base")
    v, _ = cpu.report(a / "cpu-base", b / "cpu-base")
    assert "**Why" not in v
    assert "- **CPU split**: cpu_thread, cpu_wait, throttled and steal show no difference beyond noise." in v


def test_slower_without_a_cpu_cause_says_so(cpu):
    # cpu-steal with its steal and cpu_wait put back to the base's: slower, no CPU cause.
    b = cpu.root / "b" / "cpu-steal"
    shutil.copytree(RECORDED / "cpu-steal", b)
    (b / "samples.csv.gz").unlink()  # B's spread: +-10 % assumed
    base = json.loads((RECORDED / "cpu-base" / "summary.json").read_text())
    s = json.loads((b / "summary.json").read_text())
    for name in ("server_steal_ms", "server_cpu_wait_ms"):
        s["metrics"][name] = base["metrics"][name]
    (b / "summary.json").write_text(json.dumps(s))
    v, _ = cpu.report(RECORDED / "cpu-base", b)
    why = cpu.why(v)
    assert (
        "**Why p50 is higher on steal**: not the CPU phase — cpu_thread, cpu_wait, "
        "throttled, steal show no difference beyond noise in steal's direction"
    ) in why
    assert "look at the queue, I/O (fsync) and the network" in why


def test_runs_without_the_split_get_no_cpu_split_line(cpu):
    v, md = cpu.report(RECORDED / "open-fast", RECORDED / "open-slow")
    assert "**Why" not in v
    assert "CPU split" not in v
    assert "## CPU truth" not in md
    assert "fsync avg" not in md


def test_fingerprints_side_by_side(cpu):
    _, md = cpu.report(RECORDED / "cpu-steal", RECORDED / "cpu-slow")
    assert "## Platforms" in md
    for row, want in (
        ("launch type", ["FARGATE", "EC2", "differs"]),
        ("availability zone", ["us-east-1a", "us-east-1b", "differs"]),
        ("task size", ["2048 CPU units, 4096 MiB"] * 2 + ["same"]),
        ("platform version", ["1.4.0", "n/a", ""]),
        ("memory limit", ["4 GiB", "4 GiB", "same"]),
        ("SHA extensions", ["yes", "yes", "same"]),
        ("usable CPUs (affinity)", ["2", "2", "same"]),
        ("task definition", ["heavy-api-fargate:7", "heavy-api-ec2:7", "differs"]),
    ):
        assert md_row(md, row)[1:] == want, row
    digest = md_row(md, "image digest")
    assert digest[1] == digest[2]
    assert digest[1].startswith("sha256:4f1a0c2d")
    _, md = cpu.report(RECORDED / "cpu-base", RECORDED / "cpu-steal")
    assert md_row(md, "ECS")[1:] == ["not on ECS", "n/a", ""]
    # A local server's binary hash stands in for the image digest.
    assert len(md_row(md, "image digest")[1]) == 64


def test_a_platform_change_during_a_run_is_a_warning(cpu):
    a = cpu.root / "a" / "cpu-slow"
    shutil.copytree(RECORDED / "cpu-slow", a)
    meta = json.loads((a / "meta.json").read_text())
    meta["server_info_after"]["platform"]["ecs"]["task_arn"] = "arn:aws:ecs:…:task/other"
    (a / "meta.json").write_text(json.dumps(meta))
    _, md = cpu.report(a, RECORDED / "cpu-steal")
    assert "the platform changed during the run (task_arn" in md
    assert "> **Warning:** slowcpu: run cpu-slow:" in md


def test_fmt_num():
    cases = {
        1234.5: "1,234",
        0: "0",
        0.5: "0.5",
        0.0123: "0.012",
        12.34: "12.3",
        2.0: "2",
        150000.0: "150,000",
        None: "n/a",
    }
    for v, want in cases.items():
        assert compare.fmt_num(v) == want, v


def test_percentile_matches_k6():
    from heavylab.results import samples as k6samples

    vs = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert k6samples.percentile(vs, 0.5) == 3.0
    assert k6samples.percentile(vs, 0.95) == pytest.approx(4.0 + 0.8 * 6.0, abs=1e-7)
    assert k6samples.percentile(vs, 1.0) == 10.0
    assert k6samples.percentile([], 0.5) is None


def test_recorded_samples_reproduce_the_k6_summary():
    from heavylab.results import samples as k6samples

    d = RECORDED / "same1"
    summary = json.loads((d / "summary.json").read_text())
    samples = k6samples.read_csv(d / "samples.csv.gz")
    got = k6samples.summarize(samples, {}, 1.0, only=["latency_total_ms"])
    want = summary["metrics"]["latency_total_ms"]["values"]
    for k in ("p(50)", "p(95)", "p(99)", "max", "count"):
        assert got["latency_total_ms"]["values"][k] == pytest.approx(want[k], abs=1e-3), k


def test_thresholds():
    from heavylab.results import samples as k6samples

    assert k6samples.evaluate_threshold("p(95)<2000", {"p(95)": 1999.9})
    assert not k6samples.evaluate_threshold("p(95)<2000", {"p(95)": 2000})
    assert k6samples.evaluate_threshold("count<=0", {"count": 0})
    assert not k6samples.evaluate_threshold("rate>20", {"rate": 19})
    assert k6samples.evaluate_threshold("rate<0.01", {})
    with pytest.raises(ValueError):
        k6samples.evaluate_threshold("p95 < 3", {})
