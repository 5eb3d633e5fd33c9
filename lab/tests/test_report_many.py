"""The N-platform report: three or more sides in one report, the rankings, the one noise rule,
labels, start-up from the ECS metadata, the capacity search's steps and chart, the prices, and the
compare_many() API. Recorded or edited run folders only: nothing here depends on machine speed."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from mdtable import md_row

from heavylab.analysis import prices
from heavylab.report import compare


def verdict(md: str) -> str:
    return md.split("## Verdict", 1)[1].split("\n\n", 2)[1]


@pytest.fixture
def three(capacity_run):
    """Three capacity runs: big (40, broke at 42), mid (24, broke at 25), small (12, broke at 12.5)."""
    return [
        capacity_run("big", 40.0, 42.0),
        capacity_run("mid", 24.0, 25.0, ecs=("FARGATE", 12.5, 3.25, "arm64")),
        capacity_run("small", 12.0, 12.5, throttled_ms=300.0, cpu_wait_ms=400.0),
    ]


def test_three_sides_give_one_report(three, tmp_path):
    c = compare.compare_many(
        [(None, p) for p in three],
        tmp_path / "out",
        prices={"big": "ec2:c7g.large", "mid": "fargate-arm64:cpu=2,mem=4", "small": "ec2:t4g.medium"},
    )
    md, page = c.md_path.read_text(), c.html_path.read_text()
    assert md.startswith("# Capacity comparison: big vs mid vs small")
    # A column per platform; each other side against the baseline (the first).
    assert md_row(md, "metric")[1:6] == ["big", "mid", "small", "mid/big", "mid vs big"]
    assert md_row(md, "capacity (req/s within the SLO)")[1:4] == [
        "40 (broke at 42)",
        "24 (broke at 25)",
        "12 (broke at 12.5)",
    ]
    assert "## Each side against big (the baseline)" in md
    # One self-contained page: three capacity charts, nothing loaded from anywhere.
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('aria-label="Capacity search of ') == 3
    assert re.search(r"\b(src|href)\s*=|url\(|@import", page) is None
    assert "(A)" not in md and "(B)" not in md and "(A)" not in page


def test_ranking_by_capacity_and_cost(three, tmp_path):
    c = compare.compare_many(
        [("small", three[2]), ("big", three[0]), ("mid", three[1])],
        tmp_path / "out",
        prices={"big": "0.40/h", "mid": "0.10/h", "small": "0.10/h"},
    )
    assert [p.label for p in c.ranking] == ["big", "mid", "small"]
    assert [p.rank for p in c.ranking] == [1, 2, 3]
    assert c.ranking[1].vs_best == "beyond noise"
    # Cost at capacity: 0.10/h at 24 req/s is cheapest, 0.40/h at 40 req/s dearest.
    assert [p.label for p in c.ranking_cost] == ["mid", "small", "big"]
    v = verdict(c.md_path.read_text())
    assert v.startswith("- **Ranking by capacity**: 1. big 40 (broke at 42) req/s; 2. mid")
    assert "**Ranking by cost per million requests at capacity**: 1. mid" in v
    # big's run has no CPU split: nothing may be claimed about causes.
    assert "**mid against big**: capacity worse beyond noise; the runs carry no CPU split" in v
    assert c.causes["mid"] == [] and c.split_measured["mid"] is False


def test_overlapping_brackets_share_a_rank(capacity_run, tmp_path):
    a, b = capacity_run("a", 24.0, 25.0), capacity_run("b", 24.5, 26.0)
    c = compare.compare_many([(None, a), (None, b)], tmp_path / "o", write=False)
    assert [p.rank for p in c.ranking] == [1, 1]
    assert not c.differs("a", "b")


def test_one_noise_rule_for_capacity_and_cost(capacity_run, tmp_path):
    """Cost at capacity is judged by the capacity bracket like capacity; the cost per million at the
    step's own rate is not shown beside it (it would be judged by another rule)."""
    a, b = capacity_run("a", 40.0, 42.0), capacity_run("b", 24.0, 25.0)
    c = compare.compare_many([(None, a), (None, b)], tmp_path / "o", prices={"a": "0.1/h", "b": "0.1/h"})
    md = c.md_path.read_text()
    assert md_row(md, "capacity (req/s within the SLO)")[4] == "beyond noise"
    assert md_row(md, "cost per million requests at capacity")[4] == "beyond noise"
    assert "| cost per million requests |" not in md
    # Rows measured at each side's own rate are never "≈" (equal): they are not compared.
    assert md_row(md, "throughput (req/s)")[4] == "not compared"
    assert md_row(md, "p95")[4] == "not compared"
    # Overlapping brackets: neither capacity nor its cost differs.
    d = capacity_run("d", 24.5, 26.0)
    c = compare.compare_many([(None, b), (None, d)], tmp_path / "o2", prices={"b": "0.1/h", "d": "0.1/h"})
    md = c.md_path.read_text()
    assert md_row(md, "capacity (req/s within the SLO)")[4] == "≈"
    assert md_row(md, "cost per million requests at capacity")[4] == "≈"


def test_cost_follows_throughput_by_the_same_rule(recorded, tmp_path):
    c = compare.compare_many(
        [(None, recorded / "open-fast"), (None, recorded / "open-slow")],
        tmp_path / "o",
        prices={0: "0.1/h", 1: "0.1/h"},
    )
    md = c.md_path.read_text()
    assert md_row(md, "cost per million requests")[4] == md_row(md, "throughput (req/s)")[4]


def test_labels_from_arguments_meta_and_duplicates(recorded, run_copy, tmp_path):
    c = compare.compare_many(
        [("ec2-x86", recorded / "same1"), (None, recorded / "same2"), (None, run_copy("same1", "x"))],
        tmp_path / "o",
    )
    # A label given wins; a plain path takes meta.json's; equal labels are told apart by position.
    assert c.labels == ["ec2-x86", "same B (same2)", "same C (same1)"]
    assert "# Comparison: ec2-x86 vs same B (same2) vs same C (same1)" in c.md_path.read_text()


def test_cli_takes_labelled_folders_and_prices(recorded, tmp_path, capsys):
    rc = compare.main(
        [
            f"fast={recorded / 'open-fast'}",
            f"slow={recorded / 'open-slow'}",
            "--price",
            "fast=ec2:m6i.large",
            "--price",
            "slow=fargate-x86:cpu=2,mem=4",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    md = (tmp_path / "o" / "comparison.md").read_text()
    assert md_row(md, "price per hour")[1:3] == ["0.0960", "0.0987"]
    assert "EC2 m6i.large" in md_row(md, "price")[1]
    rc = compare.main([str(recorded / "open-fast"), str(recorded / "open-slow"), "--price", "nobody=0.1/h"])
    assert rc == 2
    assert "unknown side" in capsys.readouterr().err


def test_start_up_from_the_ecs_metadata(capacity_run, tmp_path):
    a = capacity_run("ec2", 24.0, 25.0)
    b = capacity_run("fargate", 24.0, 25.0, ecs=("FARGATE", 12.5, 3.25, "x86_64"))
    c = compare.compare_many([(None, a), (None, b)], tmp_path / "o")
    md = c.md_path.read_text()
    assert md_row(md, "image pull (s)")[1:] == ["n/a", "12.5", ""]
    assert md_row(md, "container start (s)")[2] == "0.5"
    assert md_row(md, "start to ready (s)")[2] == "3.2"
    assert md_row(md, "launch type")[1:3] == ["n/a", "FARGATE"]
    assert (
        "Start-up from the ECS task metadata (part of how fast a platform scales out): ec2: n/a; "
        "fargate: image pull 12.5 s, container start 0.5 s, start to ready 3.2 s." in verdict(md)
    )


def test_a_server_started_outside_the_runner_is_not_said_to_lack_info(recorded, run_copy, tmp_path):
    """meta.json of a run against a server the runner did not start: local_server false, no local
    fingerprint, /heavy/info/ in server_info_before — its platform table shows what /heavy/info/
    said, so no sentence may claim it has none."""
    b = run_copy("cpu-base", "b")
    meta = json.loads((b / "meta.json").read_text())
    meta.update({"local_server": False, "local_server_fingerprint": None, "server_command": None})
    (b / "meta.json").write_text(json.dumps(meta))
    c = compare.compare_many([(None, recorded / "cpu-base"), ("outside", b)], tmp_path / "o")
    md = c.md_path.read_text()
    assert md_row(md, "source")[1:3] == ["GET /heavy/info/", "GET /heavy/info/"]
    assert "no /heavy/info/" not in md
    assert "answered no GET /heavy/info/" not in md
    assert "outside: its GET /heavy/info/ names no image digest (not on ECS)" in md
    assert "started outside the runner" in md


def test_capacity_steps_table_chart_and_command(capacity_run, tmp_path):
    opts = {
        "slo_p99_ms": 2000.0,
        "start_rate": 6.0,
        "budget_secs": 120.0,
        "precision": 0.05,
        "step_secs": 15.0,
    }
    a = capacity_run("a", 24.0, 25.0, options=opts)
    b = capacity_run("b", 12.0, 20.0, status="budget-spent", options=opts)
    cap = json.loads((b / "capacity.json").read_text())
    cap["contradictions"] = ["16 req/s held on its re-run after breaking: the bracket widened"]
    cap["transients"] = ["3 req/s broke far below the estimate and held when retried"]
    (b / "capacity.json").write_text(json.dumps(cap))
    c = compare.compare_many([(None, a), (None, b)], tmp_path / "o")
    md, page = c.md_path.read_text(), c.html_path.read_text()
    assert "## Capacity search" in md
    steps = [line for line in md.splitlines() if line.startswith("| a | ")]
    assert len(steps) == 5  # probe, climb, bisect, the broken bisect step, confirm
    assert steps[3].split(" | ")[1:5] == ["4", "bisect", "25", "100"]
    assert "| broken | p99 2600 ms >= SLO 2000 ms; k6 dropped 7 requests |" in steps[3]
    assert "| sustained | within the SLO, steady |" in steps[0]
    assert "capacity: between 12 and 20 req/s (search budget spent)" in md
    assert "  - contradiction: 16 req/s held on its re-run after breaking: the bracket widened" in md
    assert "  - retried: 3 req/s broke far below the estimate and held when retried" in md
    assert "contradiction: 16 req/s held" in page
    assert md_row(md, "capacity (req/s within the SLO)")[2] == "between 12 and 20 (search budget spent)"
    assert "ceiling: 30 req/s = 2 CPUs (cgroup CPU quota) / 33 ms CPU per request (server-timing)" in md
    command = md_row(md, "command")[1]
    assert command.startswith("heavy-lab capacity ")
    assert "--start-rate 6 --step-secs 15 --budget-secs 120 --precision 0.05" in command
    # The chart: rate against p50/p99, the SLO line and the bracket, one per side.
    assert page.count('aria-label="Capacity search of ') == 2
    assert "SLO p99 2,000 ms" in page
    assert "bracket 24–25 req/s" in page
    assert "offered arrival rate (req/s)" in page


def test_old_capacity_files_still_read(recorded, tmp_path):
    c = compare.compare_many(
        [(None, recorded / "capacity-fast"), (None, recorded / "capacity-slow")], tmp_path / "o"
    )
    md = c.md_path.read_text()
    assert "# Capacity comparison: fast vs slow" in md
    assert "capacity: 24 req/s (broke at 28 req/s)" in md
    assert "--start-rate 4" in md_row(md, "command")[1]
    assert [p.label for p in c.ranking] == ["fast", "slow"]


def test_api_names_causes_against_the_best(recorded, tmp_path):
    c = compare.compare_many(
        [
            (None, recorded / "cpu-quota"),
            (None, recorded / "cpu-steal"),
            (None, recorded / "cpu-base"),
            (None, recorded / "cpu-slow"),
        ],
        tmp_path / "o",
    )
    assert c.ranking[0].label == "base"
    assert c.causes["quota"] == ["throttling", "waiting for a core"]
    assert c.causes["steal"] == ["steal"]
    assert c.causes["slowcpu"] == ["slower CPU"]
    assert c.causes["base"] == []
    assert c.differs("base", "quota")
    assert c.differs("base", "steal", row="p50")
    assert "**quota against base**" in "\n".join(c.verdict)


def test_same_run_twice_differs_in_nothing(run_copy, tmp_path):
    c = compare.compare_many(
        [
            ("one", run_copy("cpu-base", "a")),
            ("two", run_copy("cpu-base", "b")),
            ("three", run_copy("cpu-base", "c")),
        ],
        tmp_path / "o",
    )
    assert [p.rank for p in c.ranking] == [1, 1, 1]
    assert all(not v for v in c.causes.values())
    assert not any(
        c.differs("one", x, row=r) for x in ("two", "three") for r in ("p50", "p95", "throughput (req/s)")
    )


def test_html_escapes_what_it_shows(run_copy, recorded, tmp_path):
    c = compare.compare_many([("<b>x</b>", recorded / "same1"), ("y&z", recorded / "same2")], tmp_path / "o")
    page = c.html_path.read_text()
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "y&amp;z" in page


def test_price_table_specs():
    assert prices.parse_price("ec2:c7g.large").hourly == pytest.approx(0.0725)
    assert prices.parse_price("ec2:m6i.large@us-west-2x3").hourly == pytest.approx(0.288)
    arm = prices.parse_price("fargate-arm64:cpu=2,mem=4")
    assert arm.hourly == pytest.approx(2 * 0.03238 + 4 * 0.00356)
    assert prices.PRICES_TAKEN in arm.description
    assert prices.parse_price("fargate-x86:cpu=2048,mem=4096").hourly == pytest.approx(0.09874)
    # Without rates, "fargate:" means the x86 rates of the table.
    assert prices.parse_price("fargate:cpu=2,mem=4").hourly == pytest.approx(0.09874)
    for bad in (
        "ec2:z9.huge",
        "ec2:m6i.large@mars-1",
        "fargate-arm64:vcpu=1,gb=1,cpu=1,mem=1",
        "fargate-sparc:cpu=1,mem=1",
    ):
        with pytest.raises(ValueError):
            prices.parse_price(bad)
    table = prices.price_table_markdown()
    assert "`ec2:c7g.large`" in table and "`fargate-arm64:cpu=2,mem=4`" in table


def test_an_answer_that_is_not_json_is_no_fingerprint(recorded, run_copy, tmp_path):
    b = run_copy("same2", "b")
    meta = json.loads((b / "meta.json").read_text())
    meta.update(
        {
            "local_server": False,
            "local_server_fingerprint": None,
            "server_info_before": {"unparsed": "<html>Not Found</html>"},
            "server_info_after": None,
        }
    )
    (b / "meta.json").write_text(json.dumps(meta))
    c = compare.compare_many([(None, recorded / "same1"), ("other", b)], tmp_path / "o")
    md = c.md_path.read_text()
    assert md_row(md, "source")[1:3] == ["the local host (server started by the runner)", "n/a"]
    assert "other: its server answered no GET /heavy/info/ and was not started by the runner" in md


def test_the_cpu_split_is_read_at_each_sides_limit(capacity_run, tmp_path):
    """A quota is rarely exhausted below the limit: at its step at capacity the quota side shows
    no throttling, at its lowest broken rate it does. The cause is read there (the platform lab's
    quota once ranked last with no cause named)."""
    dedicated = capacity_run(
        "dedicated", 265.0, 277.0, throttled_ms=0.0, cpu_wait_ms=0.3, at_limit={"server_cpu_wait_ms": 0.4}
    )
    quota = capacity_run(
        "quota",
        117.0,
        140.0,
        status="budget-spent",
        throttled_ms=0.0,
        cpu_wait_ms=0.01,
        at_limit={"server_throttled_ms": 3.7, "server_cpu_wait_ms": 3.0},
    )
    c = compare.compare_many([(None, dedicated), (None, quota)], tmp_path / "o")
    assert c.causes["quota"] == ["throttling", "waiting for a core"]
    md = c.md_path.read_text()
    assert md_row(md, "throttled avg (cgroup CFS throttling)")[1:3] == ["0.00", "3.70"]
    assert md_row(md, "cpu_wait avg (waiting for a core)")[1:3] == ["0.40", "3.00"]
    # One side without its steps (an older search): every side is read at capacity, and the
    # report says so — never one side at its limit and the other at capacity.
    shutil.rmtree(quota / "steps")
    c = compare.compare_many([(None, dedicated), (None, quota)], tmp_path / "o2")
    assert c.causes["quota"] == []
    md = c.md_path.read_text()
    assert md_row(md, "cpu_wait avg (waiting for a core)")[1:3] == ["0.30", "0.01"]
    assert "read at each side's step at capacity, not at its limit" in md
    assert any("compared at each side's step at capacity" in v for v in c.verdict), c.verdict
    # A limit step whose summary is not readable counts as missing, with a warning.
    (dedicated / "steps" / "04-277rps" / "summary.json").write_text("{")
    assert compare.load_run(dedicated).at_limit is None


def test_no_cause_is_named_for_a_side_within_noise_of_the_best(capacity_run, tmp_path):
    """The same platform twice: its split may differ at the limit, but its capacity does not
    beyond noise, so there is nothing to explain (the lab once named "waiting for a core" here)."""
    a = capacity_run("dedicated", 265.0, 277.0, cpu_wait_ms=0.3, at_limit={"server_cpu_wait_ms": 0.3})
    b = capacity_run("again", 266.0, 277.0, cpu_wait_ms=0.3, at_limit={"server_cpu_wait_ms": 2.0})
    c = compare.compare_many([(None, a), (None, b)], tmp_path / "o")
    assert [p.vs_best for p in c.ranking] == ["best", "within noise"]
    assert c.causes == {"dedicated": [], "again": []}
    assert md_row(c.md_path.read_text(), "cpu_wait avg (waiting for a core)")[4] == "beyond noise"


def test_a_lower_capacity_is_explained_by_the_cpu_split(capacity_run, tmp_path):
    """Capacity runs each at their own rate: latency is not compared, the CPU split per request is,
    and names why the throttled side holds less."""
    dedicated = capacity_run("dedicated", 40.0, 42.0, throttled_ms=0.0, cpu_wait_ms=5.0)
    quota = capacity_run("quota", 12.0, 12.5, throttled_ms=300.0, cpu_wait_ms=400.0)
    neighbour = capacity_run("neighbour", 20.0, 21.0, throttled_ms=0.0, cpu_wait_ms=150.0)
    c = compare.compare_many([(None, quota), (None, dedicated), (None, neighbour)], tmp_path / "o")
    assert [p.label for p in c.ranking] == ["dedicated", "neighbour", "quota"]
    assert c.causes == {
        "quota": ["throttling", "waiting for a core"],
        "dedicated": [],
        "neighbour": ["waiting for a core"],
    }
    v = "\n".join(c.verdict)
    assert (
        "**quota against dedicated**: capacity worse beyond noise; the server's CPU split names throttling, waiting for a core."
        in v
    )
    # Two sides: the pair's own verdict says why the capacity is lower.
    c2 = compare.compare_many([(None, dedicated), (None, quota)], tmp_path / "o2")
    assert any(line.startswith("**Why capacity is lower on quota**") for line in c2.verdict), c2.verdict
    md = c2.md_path.read_text()
    assert md_row(md, "throttled avg (cgroup CFS throttling)")[4] == "beyond noise"
    assert md_row(md, "p95")[4] == "not compared"


def test_html_tags_are_balanced(three, tmp_path):
    from html.parser import HTMLParser

    class Balance(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.errors = [], []

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "br"):
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if not self.stack or self.stack[-1] != tag:
                self.errors.append((tag, self.stack[-3:]))
            elif self.stack:
                self.stack.pop()

    c = compare.compare_many([(None, p) for p in three], tmp_path / "o")
    b = Balance()
    b.feed(c.html_path.read_text())
    assert b.errors == [] and b.stack == []


def test_comparison_json_for_machines(three, tmp_path):
    c = compare.compare_many([(None, p) for p in three], tmp_path / "o")
    data = json.loads((tmp_path / "o" / "comparison.json").read_text())
    assert data["ranking_by"] == "capacity"
    assert [p["label"] for p in data["ranking"]] == ["big", "mid", "small"]
    assert data["ranking"][1]["vs_best"] == "beyond noise"
    assert data["capacity"]["mid"]["statement"].startswith("capacity: 24 req/s at p99 490 ms")
    assert data["verdict"] == c.verdict


def test_a_side_of_two_capacity_searches(capacity_run, tmp_path):
    import shutil

    one = capacity_run("a", 24.0, 25.0)
    side = tmp_path / "side-a"
    shutil.copytree(one, side / "r1")
    shutil.copytree(one, side / "r2")
    cap = json.loads((side / "r2" / "capacity.json").read_text())
    cap.update(
        {"capacity_rps": 22.0, "bracket": [22.0, 23.0], "statement": "capacity: 22 req/s at p99 480 ms"}
    )
    (side / "r2" / "capacity.json").write_text(json.dumps(cap))
    b = capacity_run("b", 12.0, 13.0)
    c = compare.compare_many([(None, side), (None, b)], tmp_path / "o")
    md = c.md_path.read_text()
    # The median capacity, and the bracket over both searches: at least 22, broke by 25.
    assert md_row(md, "capacity (req/s within the SLO)")[1] == "23 (broke at 25)"
    assert md_row(md, "runs")[1] == "2 used (medians)"
    assert "- **a** (r1): capacity: 24 req/s" in md and "- **a** (r2): capacity: 22 req/s at p99 480 ms" in md
    assert c.html_path.read_text().count('aria-label="Capacity search of a (r') == 2
