"""The report's utilization, CloudWatch, data-transfer and burstable-instance parts (issue 24 items
3-6), on synthetic run folders: the recorded smoke run with metrics-samples.csv.gz written in the
scraper's format, a cloudwatch.json made from recorded GetMetricData answers, and prices from the
one table. No timing: every number is arithmetic on the files."""

from __future__ import annotations

import json
import re

import pytest
from conftest import platform_info, steady_scrapes
from mdtable import md_row

from heavylab.analysis import prices
from heavylab.report.compare import compare_many


def report(tmp_path, sides, **kw):
    c = compare_many(sides, tmp_path / "report", **kw)
    return c, c.md_path.read_text(), c.html_path.read_text()


def test_utilization_rows_have_the_measured_numbers_and_a_side_without_samples_is_not_measured(
    tmp_path, sampled_run
):
    # 0.5 CPUs used of a 0.5 quota on 2 usable CPUs; 60 MiB of a 256 MiB limit at its peak;
    # 20 kB/s in, 80 kB/s out; 10 heavy requests per second.
    a = sampled_run("quota", scrapes=steady_scrapes(cpus=0.5), info=platform_info(quota=0.5))
    b = sampled_run("plain", scrapes=None, info=platform_info(quota=None))
    c, md, html = report(tmp_path, [(None, a), (None, b)])
    assert md_row(md, "CPU used (CPUs, avg)")[1:3] == ["0.50", "not measured"]
    assert md_row(md, "CPU used, share of the usable CPUs (avg)")[1] == "25.00%"
    assert md_row(md, "CPU used, share of the CPU quota (avg)")[1] == "100.00%"
    # The cgroup's memory grows to 60 MiB: the windows' peaks (their spread) end there.
    assert md_row(md, "memory peak (MiB)")[1] == "60.00 (55.00–60.00)"
    assert md_row(md, "memory peak, share of the limit")[1].startswith(f"{100 * 60 / 256:.2f}% (")
    assert md_row(md, "HTTP receive rate (avg)")[1] == "20 kB/s"
    assert md_row(md, "HTTP send rate (avg)")[1] == "80 kB/s"
    # 12 intervals of 5 s: 60 s, 1.2 MB in, 4.8 MB out.
    assert md_row(md, "HTTP bytes received")[1] == "1.2 MB"
    assert md_row(md, "HTTP bytes sent")[1] == "4.8 MB"
    # 10 heavy requests per second on 0.5 CPUs: 20 per CPU-second.
    assert md_row(md, "requests per CPU-second")[1] == "20.00"
    # A side without samples: "not measured" everywhere, never a 0, and no difference judged.
    row = md_row(md, "requests per CPU-second")
    assert row[2] == "not measured" and row[4] == ""
    assert "plain: not measured (no metrics-samples.csv.gz" in md
    assert "quota: CPU from the cgroup's CPU usage; usable CPUs 2, CPU quota 0.5" in md
    titles = ("CPU used over time: share of the usable CPUs (dashed: of the CPU quota)", "Memory over time")
    for title in titles + ("HTTP bytes over time",):
        assert f'aria-label="{title}"' in html
    assert "Utilization over time" in html and "not measured" in html


def test_utilization_rows_are_judged_with_the_noise_rule(tmp_path, sampled_run):
    base = sampled_run("half", scrapes=steady_scrapes(cpus=0.5), info=platform_info(quota=None))
    # Twice the CPU for the same requests: beyond noise (steady, so the slices' ranges are tight).
    double = sampled_run("double", scrapes=steady_scrapes(cpus=1.0), info=platform_info(quota=None))
    # 4 % more CPU on average: within the minimum effect, so not a finding.
    near = sampled_run("near", scrapes=steady_scrapes(cpus=0.52), info=platform_info(quota=None))
    # 20 % more CPU on average, but swinging 0.2 to 1.0 CPUs: its windows' range overlaps, no finding.
    swings = [0.2, 1.0] * 6
    noisy = sampled_run("noisy", scrapes=steady_scrapes(cpus=swings), info=platform_info(quota=None))
    c, md, _ = report(tmp_path, [(None, base), (None, double), (None, near), (None, noisy)])
    assert c.differs("half", "double", row="CPU used (CPUs, avg)")
    assert c.differs("half", "double", row="requests per CPU-second")
    assert not c.differs("half", "near", row="CPU used (CPUs, avg)")
    assert not c.differs("half", "noisy", row="CPU used (CPUs, avg)")
    assert c.differs("half", "noisy", row="CPU used, share of the usable CPUs (peak)")  # 50 % against 25 %
    row = md_row(md, "CPU used (CPUs, avg)")
    assert row[1:5] == ["0.50", "1.00", "0.52", "0.60 (0.47–0.73)"]
    assert row[5:] == ["2.00x", "beyond noise", "1.04x", "≈", "1.20x", "≈"]
    assert md_row(md, "requests per CPU-second")[1:3] == ["20.00", "10.00"]
    # The spread of one run is its 5 windows of scrapes.
    cpu = c.stats("CPU used (CPUs, avg)")
    assert cpu[3].basis == "slices" and cpu[3].lo < 0.5 < cpu[3].hi


def test_cloudwatch_rows_charts_and_the_quota_sentence(tmp_path, sampled_run, recorded_cloudwatch):
    a = sampled_run(
        "fargate",
        scrapes=steady_scrapes(cpus=0.5),
        info=platform_info(quota=0.5),
        cloudwatch=recorded_cloudwatch,
        summary_extra={"server_throttled_ms": 41.2, "server_cpu_wait_ms": 0.3},
        start_ms=1_796_464_805_000.0,  # 2026-12-05T10:00:05Z, in the CloudWatch window
    )
    b = sampled_run("local", scrapes=steady_scrapes(cpus=0.5), info=platform_info(quota=None))
    c, md, html = report(tmp_path, [(None, a), (None, b)])
    assert md_row(md, "service CPU utilization (max)")[1:3] == ["100.00%", "not measured"]
    assert md_row(md, "service CPU utilization (avg)")[1] == f"{(97.8 + 99.6 + 99.9) / 3:.2f}%"
    assert md_row(md, "ALB target response time p99 (ms, worst period)")[1] == "840.00"
    assert md_row(md, "ALB requests")[1] == "4500"
    assert md_row(md, "ALB processed bytes")[1] == "2.52 MB"  # 1,260,301 + 1,257,034 bytes
    line = next(v for v in c.verdict if "CloudWatch, fargate" in v)
    assert (
        "CloudWatch CPU 100 % while the server saw 41 ms of throttling per request: the task is at its CPU quota"
        in line
    )
    assert c.cloudwatch and "at its CPU quota" in " ".join(c.to_dict()["cloudwatch_findings"])
    assert (
        'aria-label="CPU: CloudWatch beside the server&#x27;s own"' in html
        or "CloudWatch beside the server" in html
    )
    assert "ALB p99" in html and "k6 p99" in html
    # The bytes per request come from the ALB's ProcessedBytes when CloudWatch has them.
    assert md_row(md, "bytes per request (in + out)")[1] == f"{(1260301 + 1257034) / 4500:.0f}"
    assert "fargate: 559 bytes per request (in + out), from the ALB's ProcessedBytes" in md


def test_cost_per_million_includes_data_transfer_with_the_bytes_shown(tmp_path, sampled_run):
    # No samples: k6's data_sent + data_received per request.
    a = sampled_run("k6-bytes", price="0.0971/h")
    # Samples: the server's HTTP bytes per heavy request, 100 kB/s over 10 req/s = 10,000 bytes.
    b = sampled_run(
        "server-bytes", price="0.0971/h", scrapes=steady_scrapes(rx_per_s=20_000, tx_per_s=80_000)
    )
    c, md, _ = report(tmp_path, [(None, a), (None, b)])
    m = json.loads((a / "summary.json").read_text())["metrics"]
    per_req = (m["data_sent"]["values"]["count"] + m["data_received"]["values"]["count"]) / m[
        "custom_requests_total"
    ]["values"]["count"]
    assumptions = prices.TransferAssumptions()
    t_a = prices.transfer_per_million(per_req, None, assumptions)
    t_b = prices.transfer_per_million(10_000, 8_000, assumptions)
    # 10,000 bytes per request, a million requests = 9.31 GB at the ALB's 0.008/GB (behind an ALB
    # no byte is billed as inter-AZ by default); with --cross-az 0.5, half of it at 0.01 each way.
    assert t_b == pytest.approx(1e10 / (1 << 30) * 0.008)
    half = prices.TransferAssumptions(cross_az_share=0.5)
    assert prices.transfer_per_million(10_000, 8_000, half) == pytest.approx(
        1e10 / (1 << 30) * (0.008 + 0.5 * 2 * 0.01)
    )
    assert md_row(md, "bytes per request (in + out)")[1:3] == [f"{per_req:.0f}", "10000"]
    assert md_row(md, "data transfer per million requests")[1:3] == [f"{t_a:.4f}", f"{t_b:.4f}"]
    rps = m["custom_requests_total"]["values"]["rate"]
    compute = 0.0971 / (rps * 3600) * 1e6
    assert md_row(md, "cost per million requests")[2].startswith(f"{compute + t_b:.4f}")
    share = md_row(md, "transfer share of the cost")[2]
    assert share == f"{100 * t_b / (compute + t_b):.2f}%"
    assert "server-bytes: 10,000 bytes per request (in + out), from the server's HTTP bytes" in md
    assert "8,000 of them answers" in md
    assert "no internet egress" in md and "ALB processed bytes" in md
    # --egress prices the answers' bytes too.
    c2 = compare_many(
        [(None, a), (None, b)],
        tmp_path / "egress",
        transfer=prices.TransferAssumptions(egress=True),
    )
    t_e = c2.side("server-bytes").merged.transfer.per_million
    assert t_e == pytest.approx(t_b + 8_000 * 1e6 / (1 << 30) * 0.09)
    assert "internet egress of the answers at 0.09 per GB" in c2.md_path.read_text()


def test_three_sides_render_every_part(tmp_path, sampled_run, recorded_cloudwatch):
    sides = [
        (None, sampled_run("one", scrapes=steady_scrapes(cpus=0.5), price="ec2:m6i.large")),
        (None, sampled_run("two", scrapes=steady_scrapes(cpus=1.0), price="fargate-x86:cpu=1,mem=2")),
        (None, sampled_run("three", cloudwatch=recorded_cloudwatch, price="0.05/h")),
    ]
    c, md, html = report(tmp_path, sides)
    assert md_row(md, "CPU used (CPUs, avg)")[1:4] == ["0.50", "1.00", "not measured"]
    assert md_row(md, "service CPU utilization (max)")[1:4] == ["not measured", "not measured", "100.00%"]
    header = next(line for line in md.splitlines() if line.startswith("| metric |"))
    assert "two vs one" in header and "three vs one" in header
    assert len(re.findall(r'aria-label="CPU used over time \(CPUs\)"', html)) == 1
    assert "three: 559 bytes per request" in md
    assert json.loads((tmp_path / "report" / "comparison.json").read_text())["transfer"]["sides"]["one"]


def test_burstable_instance_warning(tmp_path, sampled_run):
    credits = {
        "window": {"start": "2026-12-05T10:00:00+00:00", "end": "2026-12-05T10:03:00+00:00"},
        "series": {
            "ec2_credits_0": {
                "label": "i-0abc CPU credit balance",
                "timestamps": [f"2026-12-05T10:0{i}:00+00:00" for i in range(3)],
                "values": [120.0, 60.0, 4.0],
            }
        },
    }
    t3 = sampled_run("t3", price="ec2:t3.large", cloudwatch=credits)
    info = platform_info(instance_type="t4g.medium", burstable=True)
    t4g = sampled_run("t4g", info=info, meta_extra={"cpu_credits": "unlimited"})
    m6i = sampled_run("m6i", price="ec2:m6i.large")
    c, md, html = report(tmp_path, [(None, m6i), (None, t3), (None, t4g)])
    warn = [w for w in c.warnings if "burstable" in w]
    assert len(warn) == 2
    assert warn[0].startswith("t3 runs on t3.large (from the price spec), a burstable instance")
    assert "whether it runs in unlimited mode is not known" in warn[0]
    assert "CPUCreditBalance went from 120 to 4" in warn[0]
    assert "t4g.medium (from GET /heavy/info/)" in warn[1] and "unlimited mode" in warn[1]
    assert "to see whether the credits lasted" in warn[1]
    assert "m6i" not in " ".join(warn)
    assert 'aria-label="CPU credit balance (burstable instances)"' in html
    assert "its capacity depends on its CPU credit balance" in md
    assert md_row(md, "EC2 instance type")[1:4] == ["n/a", "n/a", "t4g.medium"]
    assert md_row(md, "burstable (CPU credits)")[3] == "yes"


def test_a_server_started_beside_k6_is_measured_by_its_processes_not_the_shared_cgroup(tmp_path, sampled_run):
    # The runner's own server shares the machine's cgroup with k6: the cgroup saw 1.5 CPUs, the
    # server's processes 0.5. The report takes the processes'.
    scrapes = steady_scrapes(cpus=0.5, cgroup_extra_cpus=1.0, memory=80 << 20)
    local = sampled_run("local", scrapes=scrapes)  # the recorded run's meta: local_server true
    other = sampled_run("task", scrapes=scrapes, info=platform_info(quota=None))
    c, md, _ = report(tmp_path, [(None, local), (None, other)])
    assert md_row(md, "CPU used (CPUs, avg)")[1:3] == ["0.50", "1.50"]
    # Memory: the processes' resident memory (half of it here), not the cgroup's.
    assert md_row(md, "memory peak (MiB)")[1] == "40.00"
    assert "local: CPU from the server's processes' CPU (the runner started the server beside k6" in md


def test_a_side_of_several_runs_takes_the_median_and_the_runs_spread(tmp_path, sampled_run):
    info = platform_info(quota=None)
    for name, cpus in (("r1", 0.5), ("r2", 0.6), ("r3", 0.7)):
        sampled_run(
            name, scrapes=steady_scrapes(cpus=cpus), info=info, into="multi", meta_extra={"label": "multi"}
        )
    one = sampled_run("one", scrapes=steady_scrapes(cpus=0.3), info=info)
    c, md, _ = report(tmp_path, [(None, one), (None, tmp_path / "multi")])
    assert md_row(md, "CPU used (CPUs, avg)")[1:5] == ["0.30", "0.60 (0.50–0.70)", "2.00x", "beyond noise"]
    assert c.stats("CPU used (CPUs, avg)")[1].basis == "runs"
