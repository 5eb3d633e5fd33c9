"""Unit tests of scripts/compare.py on small synthetic result folders.

python3 -m unittest discover -s scripts -p 'test_compare.py'
python3 scripts/test_compare.py
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import tempfile
import unittest
from pathlib import Path

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


def md_row(md: str, label: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{md}")


class PriceTests(unittest.TestCase):
    def test_hourly_forms(self):
        for spec in ("0.0971/h", "0.0971", "$0.0971/hour", "ec2:0.0971/h", " 0.0971 /hr "):
            self.assertAlmostEqual(compare.parse_price(spec).hourly, 0.0971, places=9, msg=spec)
        self.assertAlmostEqual(compare.parse_price("0.0971/hx3").hourly, 0.2913, places=9)

    def test_fargate_rates_and_task_size(self):
        p = compare.parse_price("fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4")
        self.assertAlmostEqual(p.hourly, 0.04048 * 2 + 0.004445 * 4, places=12)
        self.assertAlmostEqual(p.hourly, 0.09874, places=9)
        # ECS task-definition units: 2048 CPU units = 2 vCPU, 4096 MiB = 4 GB.
        units = compare.parse_price("fargate:vcpu=0.04048,gb=0.004445,cpu=2048,mem=4096")
        self.assertAlmostEqual(units.hourly, p.hourly, places=12)
        three = compare.parse_price("fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4,tasks=3")
        self.assertAlmostEqual(three.hourly, 3 * p.hourly, places=12)
        self.assertIn("Fargate", p.description)

    def test_bad_prices(self):
        for spec in (
            "cheap",
            "fargate:vcpu=0.04,gb=0.004",
            "fargate:vcpu=x,gb=1,cpu=1,mem=1",
            "fargate:vcpu=1,gb=1,cpu=1,mem=1,disk=3",
            "-1/h",
        ):
            with self.assertRaises(ValueError, msg=spec):
                compare.parse_price(spec)

    def test_cost_per_million(self):
        # 0.036 per hour at 10 req/s: 36,000 requests an hour -> 1.0 per million.
        self.assertAlmostEqual(compare.cost_per_million(0.036, 10.0), 1.0, places=12)
        self.assertAlmostEqual(compare.cost_per_million(0.0971, 20.0), 0.0971 / 72000 * 1e6, places=12)
        self.assertIsNone(compare.cost_per_million(None, 10.0))
        self.assertIsNone(compare.cost_per_million(0.1, 0.0))


class CompareTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
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

    def tearDown(self):
        self.tmp.cleanup()

    def run_main(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = compare.main([str(x) for x in args])
        return rc, out.getvalue(), err.getvalue()

    def test_markdown_numbers(self):
        out_dir = self.root / "cmp"
        rc, stdout, _ = self.run_main(self.a, self.b, "--out", out_dir)
        self.assertEqual(rc, 0)
        self.assertIn("comparison.md", stdout)
        md = (out_dir / "comparison.md").read_text()
        self.assertIn("# Comparison: ec2 vs fargate", md)
        self.assertEqual(md_row(md, "p50")[1:4], ["100.00", "150.00", "1.50x"])
        self.assertEqual(md_row(md, "p95")[1:4], ["200.00", "400.00", "2.00x"])
        self.assertEqual(md_row(md, "p99")[1:4], ["400.00", "1000.00", "2.50x"])
        self.assertEqual(md_row(md, "avg")[1:4], ["120.00", "200.00", "1.67x"])
        self.assertEqual(md_row(md, "throughput (req/s)")[1:4], ["20.00", "16.00", "0.80x"])
        self.assertEqual(md_row(md, "requests")[1:4], ["2000", "1600", "0.80x"])
        self.assertEqual(md_row(md, "failed requests")[1:3], ["0", "4"])
        self.assertEqual(md_row(md, "error rate")[1:3], ["0.00%", "0.25%"])
        self.assertEqual(md_row(md, "throttled (429)")[1:3], ["0", "2"])
        self.assertEqual(md_row(md, "server errors (5xx)")[1:3], ["0", "1"])
        self.assertEqual(md_row(md, "queue avg (waiting for a thread)")[1:4], ["5.00", "60.00", "12.00x"])
        self.assertEqual(md_row(md, "service avg (cpu + io)")[1:4], ["95.00", "100.00", "1.05x"])
        self.assertEqual(md_row(md, "queue share of server time")[1:3], ["5.00%", "37.50%"])
        # avg duration minus (queue + service): 120 - 100 = 20 ms; 200 - 160 = 40 ms.
        self.assertEqual(md_row(md, "outside the server avg (network, LB)")[1:3], ["20.00", "40.00"])
        self.assertEqual(md_row(md, "CPU time avg (cpu_time_sec)")[1:4], ["90.00", "99.00", "1.10x"])
        self.assertEqual(md_row(md, "IO time avg (io_time_sec)")[1:3], ["5.00", "6.00"])
        # Cost: EC2 0.0971/h at 20 req/s; Fargate 2 vCPU + 4 GB = 0.09874/h at 16 req/s.
        cost_a = 0.0971 / (20 * 3600) * 1e6
        cost_b = (0.04048 * 2 + 0.004445 * 4) / (16 * 3600) * 1e6
        row = md_row(md, "cost per million requests")
        self.assertEqual(row[1:3], [f"{cost_a:.4f}", f"{cost_b:.4f}"])
        self.assertEqual(row[3], f"{cost_b / cost_a:.2f}x")
        self.assertEqual(md_row(md, "price per hour")[1:3], ["0.0971", "0.0987"])
        self.assertEqual(md_row(md, "thresholds")[1], "all passed")
        self.assertIn("FAILED", md_row(md, "thresholds")[2])
        self.assertIn("queueing", md)  # the queue grew more than the service time
        self.assertIn("ec2 is cheaper", md)

    def test_cost_math_is_exact(self):
        _, _, rows = compare.compare(str(self.a), str(self.b), out=str(self.root / "c2"))
        by = {r["label"]: r for r in rows}
        self.assertAlmostEqual(by["cost per million requests"]["a"], 0.0971 / 72000 * 1e6)
        self.assertAlmostEqual(by["cost per million requests"]["b"], 0.09874 / 57600 * 1e6)
        self.assertAlmostEqual(by["p95"]["ratio"], 2.0)

    def test_flags_override_meta(self):
        out_dir = self.root / "cmp3"
        rc, _, _ = self.run_main(
            self.a,
            self.b,
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
        self.assertEqual(rc, 0)
        md = (out_dir / "comparison.md").read_text()
        self.assertIn("# Comparison: one vs two", md)
        # 0.072/h at 20 req/s = 1.0 per million; 0.036/h at 16 req/s = 0.625 per million.
        self.assertEqual(md_row(md, "cost per million requests")[1:4], ["1.0000", "0.6250", "0.62x"])

    def test_html_is_self_contained(self):
        out_dir = self.root / "cmp4"
        self.run_main(self.a, self.b, "--out", out_dir)
        page = (out_dir / "comparison.html").read_text()
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertGreaterEqual(page.count("<svg"), 3)
        self.assertIn("Request duration", page)
        self.assertIn("Throughput", page)
        # No external assets: no src= / href= / url( / @import anywhere.
        self.assertIsNone(re.search(r"\b(src|href)\s*=|url\(|@import", page))
        # Bars carry their values: p95 of fargate (400) is drawn.
        self.assertIn("fargate p95: 400.00 ms", page)

    def test_missing_server_timing_and_price(self):
        c = write_run(
            self.root,
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
        out_dir = self.root / "cmp5"
        rc, _, _ = self.run_main(self.a, c, "--out", out_dir)
        self.assertEqual(rc, 0)
        md = (out_dir / "comparison.md").read_text()
        self.assertEqual(md_row(md, "queue avg (waiting for a thread)")[2:4], ["n/a", "n/a"])
        self.assertEqual(md_row(md, "cost per million requests")[2], "n/a")
        self.assertIn("# Comparison: ec2 vs gunicorn", md)  # label falls back to the folder name

    def test_same_labels_are_told_apart(self):
        c = write_run(
            self.root, "smoke-c", json.loads((self.a / "summary.json").read_text()), {"label": "ec2"}
        )
        _, _, _ = compare.compare(str(self.a), str(c), out=str(self.root / "cmp6"))
        md = (self.root / "cmp6" / "comparison.md").read_text()
        self.assertIn("ec2 A (smoke-a)", md)
        self.assertIn("ec2 B (smoke-c)", md)

    def test_summary_export_format(self):
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
        c = write_run(self.root, "flat", flat, {"label": "flat"})
        _, _, rows = compare.compare(str(self.a), str(c), out=str(self.root / "cmp7"))
        by = {r["label"]: r for r in rows}
        self.assertEqual(by["p50"]["b"], 40.0)
        self.assertEqual(by["p95"]["b"], 80.0)
        self.assertIsNone(by["p99"]["b"])
        self.assertEqual(by["failed requests"]["b"], 3.0)
        self.assertEqual(by["error rate"]["b"], 0.01)
        self.assertEqual(by["throughput (req/s)"]["b"], 10.0)
        md = (self.root / "cmp7" / "comparison.md").read_text()
        self.assertEqual(md_row(md, "thresholds")[2], "all passed")

    def test_default_out_dir_and_warnings(self):
        meta_b = json.loads((self.b / "meta.json").read_text())
        meta_b["scenario"] = "quick"
        (self.b / "meta.json").write_text(json.dumps(meta_b))
        # Different scenarios are refused, with the difference named...
        rc, _, err = self.run_main(self.a, self.b)
        self.assertEqual(rc, 2)
        self.assertIn('differ in scenario ("smoke" vs "quick")', err)
        self.assertIn("--force", err)
        # ... and compared with a warning under --force.
        md_path, html_path, _ = compare.compare(str(self.a), str(self.b), force=True)
        self.assertEqual(md_path.parent, self.root / "compare-ec2-vs-fargate")
        self.assertTrue(html_path.is_file())
        self.assertIn("differ in scenario", md_path.read_text())

    def test_folder_of_runs_gives_medians(self):
        side = self.root / "ec2-runs"
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
        _, _, rows = compare.compare(str(side), str(self.b), out=str(self.root / "cmp8"))
        by = {r["label"]: r for r in rows}
        self.assertEqual(by["p95"]["a"], 200.0)
        self.assertEqual(by["throughput (req/s)"]["a"], 20.0)
        self.assertEqual(by["queue avg (waiting for a thread)"]["a"], 2.0)
        self.assertAlmostEqual(by["cost per million requests"]["a"], 0.0971 / 72000 * 1e6)
        md = (self.root / "cmp8" / "comparison.md").read_text()
        self.assertEqual(md_row(md, "runs")[1], "3 used (medians)")
        # The spread over three runs is shown: p95 200 (100-300).
        self.assertEqual(md_row(md, "p95")[1], "200.00 (100.00–300.00)")
        self.assertIn("FAILED", md_row(md, "thresholds")[1])  # failed in one of the three runs

    def test_folder_of_mixed_scenarios_is_refused(self):
        side = self.root / "mixed"
        write_run(
            side,
            "r1",
            json.loads((self.a / "summary.json").read_text()),
            {"label": "ec2", "scenario": "smoke"},
        )
        write_run(
            side,
            "r2",
            json.loads((self.a / "summary.json").read_text()),
            {"label": "ec2", "scenario": "quick"},
        )
        rc, _, err = self.run_main(side, self.b, "--out", self.root / "x")
        self.assertEqual(rc, 2)
        self.assertIn("differ in scenario", err)

    def test_bad_input(self):
        rc, _, err = self.run_main(self.a, self.root / "nope", "--out", self.root / "x")
        self.assertEqual(rc, 2)
        self.assertIn("not a result folder", err)
        rc, _, err = self.run_main(self.a, self.b, "--price-a", "cheap", "--out", self.root / "x")
        self.assertEqual(rc, 2)
        self.assertIn("--price-a", err)


class RecordedRunsTests(unittest.TestCase):
    """Real run folders recorded with scripts/loadtest.sh on a 2-core machine (see
    scripts/testdata/README.md): the verdict text must follow from them."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

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
        self.assertEqual(rc, 0, err.getvalue())
        md = (out / "comparison.md").read_text()
        return md.split("## Verdict", 1)[1].split("\n\n", 2)[1]

    def test_identical_servers_show_no_difference(self):
        v = self.verdict(RECORDED / "same1", RECORDED / "same2")
        self.assertIn("**Overall: no difference beyond noise**", v)
        self.assertIn("**Latency**: no difference beyond noise", v)
        self.assertIn("**CPU time per request**: no difference beyond noise", v)
        self.assertNotIn("vCPUs are slower", v)
        self.assertIn("Same image on both sides", v)
        self.assertIn("Same CPU model on both sides (AMD EPYC)", v)
        self.assertIn("5 slices", v)

    def test_aborted_run_is_excluded_with_its_reason(self):
        a = self.side("a", "same1", "aborted")
        out = self.root / "cmp-aborted"
        compare.compare(str(a), str(RECORDED / "same2"), out=str(out))
        md = (out / "comparison.md").read_text()
        self.assertIn("excluded run aborted: k6 aborted it (exit 108", md)
        runs = md_row(md, "runs")[1]
        self.assertTrue(runs.startswith("1 used; 1 excluded: aborted (k6 aborted it"), runs)
        self.assertIn("**Overall: no difference beyond noise**", md)
        # The aborted run's zero requests did not drag the median down.
        self.assertNotEqual(md_row(md, "requests")[1], "0")

    def test_a_run_that_never_started_is_excluded_with_its_reason(self):
        a = self.side("a", "same1")
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
        out = self.root / "cmp-dead"
        compare.compare(str(a), str(RECORDED / "same2"), out=str(out))
        md = (out / "comparison.md").read_text()
        self.assertIn("excluded run smoke-dead: the target was not healthy before the run", md)
        self.assertIn("1 used; 1 excluded: smoke-dead (the target was not healthy", md)

    def test_a_side_of_only_aborted_runs_is_refused(self):
        a = self.side("a", "aborted")
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = compare.main([str(a), str(RECORDED / "same2"), "--out", str(self.root / "x")])
        self.assertEqual(rc, 2)
        self.assertIn("no valid run to compare", err.getvalue())
        self.assertIn("exit 108", err.getvalue())

    def test_open_model_names_the_faster_server(self):
        v = self.verdict(RECORDED / "open-fast", RECORDED / "open-slow")
        self.assertIn("**Overall: fast is faster**", v)
        self.assertIn("**Latency**: slow is slower", v)
        self.assertIn("mostly queueing", v)
        self.assertIn("**Different server flags**", v)
        # The same arrival rate on both: the throughput follows it.
        self.assertIn("**Throughput**: no difference beyond noise", v)

    def test_capacity_order_and_cost_at_capacity(self):
        v = self.verdict(
            RECORDED / "capacity-fast",
            RECORDED / "capacity-slow",
            "--price-a",
            "0.0971/h",
            "--price-b",
            "0.0971/h",
        )
        self.assertIn("**Overall: fast is faster** (capacity", v)
        cap_a = json.loads((RECORDED / "capacity-fast" / "capacity.json").read_text())
        cap_b = json.loads((RECORDED / "capacity-slow" / "capacity.json").read_text())
        self.assertGreater(cap_a["capacity_rps"], cap_b["capacity_rps"])
        self.assertIn(f"**fast sustains {cap_a['capacity_rps'] / cap_b['capacity_rps']:.2f}x the rate**", v)
        self.assertIn("fast is cheaper at capacity", v)
        self.assertIn("not read as findings", v)
        md = (self.root / "cmp-capacity-fast-capacity-slow" / "comparison.md").read_text()
        row = md_row(md, "cost per million requests at capacity")
        self.assertEqual(row[1], f"{0.0971 / (cap_a['capacity_rps'] * 3600) * 1e6:.4f}")

    def test_different_workloads_are_refused_unless_forced(self):
        rc_err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(rc_err):
            rc = compare.main(
                [str(RECORDED / "same1"), str(RECORDED / "open-fast"), "--out", str(self.root / "x")]
            )
        self.assertEqual(rc, 2)
        msg = rc_err.getvalue()
        self.assertIn('scenario ("smoke" vs "constant-rate")', msg)
        self.assertIn("parameters", msg)
        self.assertIn("--force", msg)
        v = self.verdict(RECORDED / "same1", RECORDED / "open-fast", "--force")
        self.assertTrue(v)
        md = (self.root / "cmp-same1-open-fast" / "comparison.md").read_text()
        self.assertIn("(compared anyway: --force)", md)

    def test_unknown_fingerprint_is_not_called_the_same_image(self):
        a = self.side("a", "same1")
        meta = json.loads((a / "same1" / "meta.json").read_text())
        meta.update({"local_server": False, "local_server_fingerprint": None})
        (a / "same1" / "meta.json").write_text(json.dumps(meta))
        v = self.verdict(a / "same1", RECORDED / "same2")
        self.assertNotIn("Same image", v)
        self.assertIn("same image is unknown", v)

    def test_info_endpoint_fingerprint_is_used(self):
        a, b = self.side("a", "same1"), self.side("b", "same2")
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
        v = self.verdict(a / "same1", b / "same2")
        self.assertIn(
            "**Different CPU models**: same A (same1) Intel Xeon 8375C, same B (same2) AMD EPYC 7R13", v
        )
        self.assertIn("**Different images**", v)
        md = (self.root / "cmp-same1-same2" / "comparison.md").read_text()
        self.assertIn("| source | GET /heavy/info/ | GET /heavy/info/ |  |", md)
        self.assertIn("| launch type | EC2 | EC2 | same |", md)
        self.assertIn("| CPU model | Intel Xeon 8375C | AMD EPYC 7R13 | differs |", md)

    def test_short_and_checkless_runs_are_excluded(self):
        short = self.side("a", "same1")
        s = json.loads((short / "same1" / "summary.json").read_text())
        s["state"]["testRunDurationMs"] = 2000.0
        (short / "same1" / "summary.json").write_text(json.dumps(s))
        run = compare.load_run(short / "same1")
        self.assertRegex(compare.exclusion_reason(run), r"ran 2.0 s of the \d+ s its scenario plans")
        s["state"]["testRunDurationMs"] = 20000.0
        s["metrics"]["checks"]["values"].update({"passes": 0, "fails": 0})
        (short / "same1" / "summary.json").write_text(json.dumps(s))
        run = compare.load_run(short / "same1")
        self.assertIn("no check ran", compare.exclusion_reason(run))
        self.assertIsNone(compare.exclusion_reason(compare.load_run(RECORDED / "same2")))

    def test_html_has_time_series_with_plain_numbers(self):
        self.verdict(RECORDED / "open-fast", RECORDED / "open-slow")
        page = (self.root / "cmp-open-fast-open-slow" / "comparison.html").read_text()
        self.assertEqual(page.count('class="line-chart"'), 5)
        self.assertGreaterEqual(page.count("<polyline"), 10)
        for title in (
            "Latency over time",
            "Throughput over time",
            "Error rate over time",
            "Queue vs service time over time",
            "CPU time per request over time",
        ):
            self.assertIn(title, page)
        self.assertIn("time since the start of the scenario (s)", page)
        self.assertIsNone(re.search(r"\d[eE][+-]\d", page), "scientific notation in the page")
        self.assertNotIn("NaN", page)
        self.assertIsNone(re.search(r"\b(src|href)\s*=|url\(|@import", page))
        self.assertIn("<h2>Per stage</h2>", page)


class CpuSplitTests(unittest.TestCase):
    """The verdict's "why": recorded runs of a server with the CPU split in Server-Timing
    (cpu-base, cpu-quota: real; cpu-steal, cpu-slow: edited copies of cpu-base, see
    scripts/testdata/README.md)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def report(self, a: Path, b: Path) -> tuple[str, str]:
        out = self.root / f"cmp-{a.name}-{b.name}"
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = compare.main([str(a), str(b), "--out", str(out)])
        self.assertEqual(rc, 0, err.getvalue())
        md = (out / "comparison.md").read_text()
        return md.split("## Verdict", 1)[1].split("\n\n", 2)[1], md

    def why(self, verdict: str) -> str:
        lines = [x for x in verdict.splitlines() if x.startswith("- **Why ")]
        self.assertEqual(len(lines), 1, verdict)
        return lines[0]

    def test_a_cpu_quota_is_named_throttling_and_waiting(self):
        v, md = self.report(RECORDED / "cpu-base", RECORDED / "cpu-quota")
        self.assertIn("**Latency**: quota is slower", v)
        why = self.why(v)
        self.assertTrue(
            why.startswith(
                "- **Why p95 is higher on quota** (the server's CPU split, "
                "beyond noise): it was throttled to its CPU quota"
            ),
            why,
        )
        self.assertIn("its requests waited for a core", why)
        self.assertIn("which includes the throttled or stolen time", why)
        self.assertNotIn("steal", why.split("throttled or stolen")[0].split("quota)")[-1])
        self.assertNotIn("lost time to steal", why)
        self.assertNotIn("slower CPU", why)
        self.assertIn("the server measured where it went: cpu_thread", v)
        self.assertEqual(md_row(md, "throttled avg (cgroup CFS throttling)")[4], "beyond noise")
        self.assertEqual(md_row(md, "cpu_thread avg (CPU the thread got)")[4], "≈")
        self.assertEqual(md_row(md, "CPU quota")[1:], ["none", "0.1 CPUs", "differs"])

    def test_steal_is_named_and_nothing_else(self):
        v, md = self.report(RECORDED / "cpu-base", RECORDED / "cpu-steal")
        why = self.why(v)
        self.assertIn("**Why p50 is higher on steal**", why)
        self.assertIn(
            "it lost time to steal (steal up: the hypervisor ran other guests on its "
            "vCPUs) — +150.0 ms per request avg, base 0.00 vs steal 150.00.",
            why,
        )
        for other in ("throttled to", "slower CPU", "waited for a core"):
            self.assertNotIn(other, why)
        self.assertEqual(md_row(md, "steal avg (host steal time)")[4], "beyond noise")

    def test_a_slower_core_is_named_slower_cpu(self):
        v, md = self.report(RECORDED / "cpu-base", RECORDED / "cpu-slow")
        why = self.why(v)
        self.assertIn("**Why p50 is higher on slowcpu**", why)
        self.assertIn("its requests got slower CPU (cpu_thread per request up", why)
        self.assertIn("3.98x, base 33.52", why)
        for other in ("throttled to", "steal", "waited for a core"):
            self.assertNotIn(other, why)
        self.assertIn("**Different CPU models**: base AMD EPYC, slowcpu Intel(R) Xeon(R) Platinum 8175M", v)

    def test_the_same_run_twice_names_no_cause(self):
        a, b = self.root / "a", self.root / "b"
        shutil.copytree(RECORDED / "cpu-base", a / "cpu-base")
        shutil.copytree(RECORDED / "cpu-base", b / "cpu-base")
        v, _ = self.report(a / "cpu-base", b / "cpu-base")
        self.assertNotIn("**Why", v)
        self.assertIn(
            "- **CPU split**: cpu_thread, cpu_wait, throttled and steal show no difference beyond noise.", v
        )

    def test_slower_without_a_cpu_cause_says_so(self):
        # cpu-steal with its steal and cpu_wait put back to the base's: slower, no CPU cause.
        b = self.root / "b" / "cpu-steal"
        shutil.copytree(RECORDED / "cpu-steal", b)
        (b / "samples.csv.gz").unlink()  # B's spread: +-10 % assumed
        base = json.loads((RECORDED / "cpu-base" / "summary.json").read_text())
        s = json.loads((b / "summary.json").read_text())
        for name in ("server_steal_ms", "server_cpu_wait_ms"):
            s["metrics"][name] = base["metrics"][name]
        (b / "summary.json").write_text(json.dumps(s))
        v, _ = self.report(RECORDED / "cpu-base", b)
        why = self.why(v)
        self.assertIn(
            "**Why p50 is higher on steal**: not the CPU phase — cpu_thread, cpu_wait, "
            "throttled, steal show no difference beyond noise in steal's direction",
            why,
        )
        self.assertIn("look at the queue, I/O (fsync) and the network", why)

    def test_runs_without_the_split_get_no_cpu_split_line(self):
        v, md = self.report(RECORDED / "open-fast", RECORDED / "open-slow")
        self.assertNotIn("**Why", v)
        self.assertNotIn("CPU split", v)
        self.assertNotIn("## CPU truth", md)
        self.assertNotIn("fsync avg", md)

    def test_fingerprints_side_by_side(self):
        _, md = self.report(RECORDED / "cpu-steal", RECORDED / "cpu-slow")
        self.assertIn("## Platforms", md)
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
            self.assertEqual(md_row(md, row)[1:], want, row)
        digest = md_row(md, "image digest")
        self.assertEqual(digest[1], digest[2])
        self.assertTrue(digest[1].startswith("sha256:4f1a0c2d"))
        _, md = self.report(RECORDED / "cpu-base", RECORDED / "cpu-steal")
        self.assertEqual(md_row(md, "ECS")[1:], ["not on ECS", "n/a", ""])
        # A local server's binary hash stands in for the image digest.
        self.assertEqual(len(md_row(md, "image digest")[1]), 64)

    def test_a_platform_change_during_a_run_is_a_warning(self):
        a = self.root / "a" / "cpu-slow"
        shutil.copytree(RECORDED / "cpu-slow", a)
        meta = json.loads((a / "meta.json").read_text())
        meta["server_info_after"]["platform"]["ecs"]["task_arn"] = "arn:aws:ecs:…:task/other"
        (a / "meta.json").write_text(json.dumps(meta))
        _, md = self.report(a, RECORDED / "cpu-steal")
        self.assertIn("the platform changed during the run (task_arn", md)
        self.assertIn("> **Warning:** slowcpu: run cpu-slow:", md)


class PlainNumbers(unittest.TestCase):
    def test_fmt_num(self):
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
            self.assertEqual(compare.fmt_num(v), want, v)


class K6SamplesTests(unittest.TestCase):
    def test_percentile_matches_k6(self):
        from heavylab.results import samples as k6samples

        vs = [1.0, 2.0, 3.0, 4.0, 10.0]
        self.assertEqual(k6samples.percentile(vs, 0.5), 3.0)
        self.assertAlmostEqual(k6samples.percentile(vs, 0.95), 4.0 + 0.8 * 6.0)
        self.assertEqual(k6samples.percentile(vs, 1.0), 10.0)
        self.assertIsNone(k6samples.percentile([], 0.5))

    def test_recorded_samples_reproduce_the_k6_summary(self):
        from heavylab.results import samples as k6samples

        d = RECORDED / "same1"
        summary = json.loads((d / "summary.json").read_text())
        samples = k6samples.read_csv(d / "samples.csv.gz")
        got = k6samples.summarize(samples, {}, 1.0, only=["latency_total_ms"])
        want = summary["metrics"]["latency_total_ms"]["values"]
        for k in ("p(50)", "p(95)", "p(99)", "max", "count"):
            self.assertAlmostEqual(got["latency_total_ms"]["values"][k], want[k], places=3, msg=k)

    def test_thresholds(self):
        from heavylab.results import samples as k6samples

        self.assertTrue(k6samples.evaluate_threshold("p(95)<2000", {"p(95)": 1999.9}))
        self.assertFalse(k6samples.evaluate_threshold("p(95)<2000", {"p(95)": 2000}))
        self.assertTrue(k6samples.evaluate_threshold("count<=0", {"count": 0}))
        self.assertFalse(k6samples.evaluate_threshold("rate>20", {"rate": 19}))
        self.assertTrue(k6samples.evaluate_threshold("rate<0.01", {}))
        with self.assertRaises(ValueError):
            k6samples.evaluate_threshold("p95 < 3", {})


if __name__ == "__main__":
    unittest.main()
