"""CloudWatch beside k6: GetMetricData against recorded answers (botocore's Stubber, no AWS), and
the disagreements stated in words."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from heavylab.analysis import cloudwatch as cwa
from heavylab.results import cloudwatch as cw

DATA = Path(__file__).parent / "data" / "aws"
START = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 5, 10, 3, tzinfo=dt.UTC)


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("cloudwatch", region_name="us-east-1")


def recorded_pages(name: str) -> list[dict]:
    pages = json.loads((DATA / name).read_text())["pages"]
    for p in pages:
        for r in p["MetricDataResults"]:
            r["Timestamps"] = [dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in r["Timestamps"]]
    return pages


def fargate_queries():
    return cw.queries(
        cluster="heavy-api",
        service="heavy-api-fargate",
        load_balancer="app/heavy-api/50dc6c495c0c9188",
        target_group="targetgroup/heavy-api/73e2d6bc24d8a067",
    )


def test_fetch_follows_next_token_and_keeps_series_in_time_order(client):
    qs = fargate_queries()
    pages = recorded_pages("get-metric-data-fargate.json")
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            pages[0],
            {"MetricDataQueries": ANY, "StartTime": START, "EndTime": END, "ScanBy": "TimestampAscending"},
        )
        stub.add_response(
            "get_metric_data",
            pages[1],
            {
                "MetricDataQueries": ANY,
                "StartTime": START,
                "EndTime": END,
                "ScanBy": "TimestampAscending",
                "NextToken": "eyJwYWdlIjoyfQ==",
            },
        )
        data = cw.fetch(client, qs, START, END)
        stub.assert_no_pending_responses()
    cpu = data["series"]["ecs_cpu_max"]
    assert cpu["values"] == [99.1, 100.0, 100.0]
    assert cpu["timestamps"][0].startswith("2026-12-05T10:00:00")
    assert data["series"]["alb_requests"]["values"] == [1502.0, 1498.0, 1500.0]
    assert data["series"]["alb_5xx"]["values"] == []
    assert any("MaxMetricsExceeded" in m for m in data["messages"])


def test_queries_are_valid_get_metric_data_requests(client):
    # The Stubber validates each request against botocore's CloudWatch model.
    qs = cw.queries(
        cluster="c",
        service="s",
        load_balancer="app/a/1",
        instances=["i-0123456789abcdef0"],
        container_insights=True,
    )
    assert len({q.id for q in qs}) == len(qs)
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": []})
        cw.fetch(client, qs, START, END)
    assert {q.namespace for q in qs} == {"AWS/ECS", "ECS/ContainerInsights", "AWS/ApplicationELB", "AWS/EC2"}


def test_window_is_widened_to_whole_periods():
    s, e = cw.window(START.replace(second=17), END.replace(minute=2, second=3), 60)
    assert (s, e) == (START, END)


def test_quota_disagreement_is_stated_in_words(client):
    with Stubber(client) as stub:
        for p in recorded_pages("get-metric-data-fargate.json"):
            stub.add_response("get_metric_data", p)
        data = cw.fetch(client, fargate_queries(), START, END)
    text = cwa.findings(
        data, cwa.RunFacts(requests=4500, error_rate=0.0, p99_ms=1900, throttled_ms=41.2, cpu_wait_ms=0.3)
    )
    assert (
        "CloudWatch CPU 100 % while the server saw 41 ms of throttling per request: the task is at its CPU quota"
        in text
    )
    # k6's p99 1900 ms against the ALB's 840 ms: the time outside the target is named.
    assert any("between the generator and the target" in t for t in text)
    # 4500 requests on both sides: no request-count finding.
    assert not any("the ALB counted" in t for t in text)


def test_no_finding_where_they_agree_and_credit_balance_drop_is_named():
    agree = {
        "series": {
            "ecs_cpu_max": {"label": "cpu", "values": [60.0, 62.0]},
            "alb_requests": {"label": "req", "values": [1000.0, 1000.0]},
            "alb_latency_p99": {"label": "p99", "values": [0.2, 0.21]},
        }
    }
    assert (
        cwa.findings(agree, cwa.RunFacts(requests=2000, p99_ms=230, throttled_ms=0.0, cpu_wait_ms=1.0)) == []
    )
    credits = {
        "series": {"ec2_credits_0": {"label": "i-0abc CPU credit balance", "values": [120.0, 60.0, 4.0]}}
    }
    (line,) = cwa.findings(credits, cwa.RunFacts())
    assert line.startswith("i-0abc's CPU credit balance fell from 120 to 4 during the run")


def test_cli_names_the_missing_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cw.main([str(tmp_path), "--region", "us-east-1", "--cluster", "c", "--service", "s"])
    assert e.value.code == 2
    assert "has no meta.json" in capsys.readouterr().err
