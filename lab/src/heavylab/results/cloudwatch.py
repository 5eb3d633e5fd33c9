"""CloudWatch beside k6: the run window's AWS metrics, fetched with one paginated GetMetricData and
stored with the run as cloudwatch.json.

What a team on ECS reads in the console, for the same minutes k6 measured:
- the service: AWS/ECS CPUUtilization and MemoryUtilization (average and maximum over its tasks);
- the load balancer: AWS/ApplicationELB TargetResponseTime (average, p99), RequestCount,
  HTTPCode_Target_5XX_Count and ProcessedBytes (what the ALB bills as processed bytes);
- Container Insights, when the cluster has it on: ECS/ContainerInsights CpuUtilized and
  CpuReserved, MemoryUtilized and MemoryReserved, NetworkRxBytes and NetworkTxBytes;
- EC2 container instances: AWS/EC2 CPUUtilization, and on burstable (T) instances
  CPUCreditBalance and CPUSurplusCreditBalance.

    heavy-lab cloudwatch RUN_DIR --region us-east-1 --cluster heavy-api --service heavy-api-fargate \
        --load-balancer app/heavy-api/50dc6c495c0c9188 [--target-group targetgroup/heavy-api/73e2d6bc24d8a067] \
        [--instance i-0abc...] [--container-insights]

The window is the run's (meta.json started_at..finished_at) widened to whole periods. Needs the IAM
permission cloudwatch:GetMetricData (docs/DEPLOY_ECS.md). heavylab.analysis.cloudwatch compares
these numbers with k6's and the server's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

FILE = "cloudwatch.json"


@dataclass(frozen=True)
class Query:
    id: str  # lowercase, unique: GetMetricData's Id
    label: str
    namespace: str
    metric: str
    dims: tuple[tuple[str, str], ...]
    stat: str
    unit: str


def queries(
    *,
    cluster: str | None = None,
    service: str | None = None,
    load_balancer: str | None = None,
    target_group: str | None = None,
    instances: list[str] | tuple[str, ...] = (),
    container_insights: bool = False,
) -> list[Query]:
    """Every metric the run's AWS resources have, as GetMetricData queries."""
    q: list[Query] = []
    if cluster and service:
        svc = (("ClusterName", cluster), ("ServiceName", service))
        q += [
            Query(
                "ecs_cpu_avg",
                "service CPU utilization (average)",
                "AWS/ECS",
                "CPUUtilization",
                svc,
                "Average",
                "Percent",
            ),
            Query(
                "ecs_cpu_max",
                "service CPU utilization (maximum)",
                "AWS/ECS",
                "CPUUtilization",
                svc,
                "Maximum",
                "Percent",
            ),
            Query(
                "ecs_mem_avg",
                "service memory utilization (average)",
                "AWS/ECS",
                "MemoryUtilization",
                svc,
                "Average",
                "Percent",
            ),
        ]
        if container_insights:
            ci = "ECS/ContainerInsights"
            q += [
                Query("ci_cpu_used", "task CPU used (CPU units)", ci, "CpuUtilized", svc, "Average", "None"),
                Query(
                    "ci_cpu_reserved",
                    "task CPU reserved (CPU units)",
                    ci,
                    "CpuReserved",
                    svc,
                    "Average",
                    "None",
                ),
                Query(
                    "ci_mem_used", "task memory used (MiB)", ci, "MemoryUtilized", svc, "Average", "Megabytes"
                ),
                Query(
                    "ci_mem_reserved",
                    "task memory reserved (MiB)",
                    ci,
                    "MemoryReserved",
                    svc,
                    "Average",
                    "Megabytes",
                ),
                Query(
                    "ci_net_rx",
                    "task network received (bytes/s)",
                    ci,
                    "NetworkRxBytes",
                    svc,
                    "Average",
                    "Bytes/Second",
                ),
                Query(
                    "ci_net_tx",
                    "task network sent (bytes/s)",
                    ci,
                    "NetworkTxBytes",
                    svc,
                    "Average",
                    "Bytes/Second",
                ),
            ]
    if load_balancer:
        lb = (("LoadBalancer", load_balancer),)
        tg = lb + ((("TargetGroup", target_group),) if target_group else ())
        elb = "AWS/ApplicationELB"
        q += [
            Query(
                "alb_latency_avg",
                "ALB target response time (average, s)",
                elb,
                "TargetResponseTime",
                tg,
                "Average",
                "Seconds",
            ),
            Query(
                "alb_latency_p99",
                "ALB target response time (p99, s)",
                elb,
                "TargetResponseTime",
                tg,
                "p99",
                "Seconds",
            ),
            Query("alb_requests", "ALB requests", elb, "RequestCount", tg, "Sum", "Count"),
            Query("alb_5xx", "ALB target 5xx answers", elb, "HTTPCode_Target_5XX_Count", tg, "Sum", "Count"),
            Query("alb_bytes", "ALB processed bytes", elb, "ProcessedBytes", lb, "Sum", "Bytes"),
        ]
    for i, instance in enumerate(instances):
        dims = (("InstanceId", instance),)
        q += [
            Query(
                f"ec2_cpu_{i}",
                f"{instance} CPU utilization",
                "AWS/EC2",
                "CPUUtilization",
                dims,
                "Average",
                "Percent",
            ),
            Query(
                f"ec2_credits_{i}",
                f"{instance} CPU credit balance",
                "AWS/EC2",
                "CPUCreditBalance",
                dims,
                "Average",
                "Count",
            ),
            Query(
                f"ec2_surplus_{i}",
                f"{instance} surplus credit balance",
                "AWS/EC2",
                "CPUSurplusCreditBalance",
                dims,
                "Average",
                "Count",
            ),
        ]
    return q


def _request(q: Query, period: int) -> dict:
    return {
        "Id": q.id,
        "Label": q.label,
        "MetricStat": {
            "Metric": {
                "Namespace": q.namespace,
                "MetricName": q.metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in q.dims],
            },
            "Period": period,
            "Stat": q.stat,
        },
        "ReturnData": True,
    }


def window(started: dt.datetime, finished: dt.datetime, period: int) -> tuple[dt.datetime, dt.datetime]:
    """The run's window widened to whole periods (CloudWatch aligns datapoints to them)."""
    ts = int(started.timestamp()) // period * period
    te = math.ceil(finished.timestamp() / period) * period
    return (dt.datetime.fromtimestamp(ts, dt.UTC), dt.datetime.fromtimestamp(max(te, ts + period), dt.UTC))


def fetch(client, qs: list[Query], start: dt.datetime, end: dt.datetime, period: int = 60) -> dict:
    """GetMetricData for every query over [start, end), following NextToken; the series in time
    order, keyed by query id."""
    series = {
        q.id: {
            "label": q.label,
            "namespace": q.namespace,
            "metric": q.metric,
            "dimensions": dict(q.dims),
            "stat": q.stat,
            "unit": q.unit,
            "timestamps": [],
            "values": [],
        }
        for q in qs
    }
    messages: list[str] = []
    # GetMetricData takes at most 500 queries a call; a run has a few dozen.
    token = None
    while True:
        kwargs = {
            "MetricDataQueries": [_request(q, period) for q in qs],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        if token:
            kwargs["NextToken"] = token
        page = client.get_metric_data(**kwargs)
        for r in page.get("MetricDataResults", []):
            s = series.get(r["Id"])
            if s is None:
                continue
            s["timestamps"] += [t.astimezone(dt.UTC).isoformat() for t in r.get("Timestamps", [])]
            s["values"] += list(r.get("Values", []))
            if r.get("StatusCode") not in (None, "Complete", "PartialData"):
                messages.append(f"{r['Id']}: {r.get('StatusCode')}")
        messages += [f"{m.get('Code')}: {m.get('Value')}" for m in page.get("Messages", [])]
        token = page.get("NextToken")
        if not token:
            break
    for s in series.values():
        pairs = sorted(zip(s["timestamps"], s["values"], strict=True))
        s["timestamps"], s["values"] = [t for t, _ in pairs], [v for _, v in pairs]
    return {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "period_secs": period,
        "series": series,
        "messages": messages,
    }


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="heavy-lab cloudwatch",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("run_dir", type=Path, help="a run folder (its meta.json gives the window)")
    ap.add_argument("--region", required=True)
    ap.add_argument("--cluster", help="the target's ECS cluster (with --service)")
    ap.add_argument("--service", help="the target's ECS service (with --cluster)")
    ap.add_argument("--load-balancer", help="the ALB's dimension value, app/NAME/ID")
    ap.add_argument("--target-group", help="the target group's dimension value, targetgroup/NAME/ID")
    ap.add_argument(
        "--instance", action="append", default=[], help="an EC2 container instance id (repeatable)"
    )
    ap.add_argument("--container-insights", action="store_true", help="the cluster has Container Insights on")
    ap.add_argument(
        "--period", type=int, default=60, help="seconds per datapoint: 60, or 1/5/10/30 for high resolution"
    )
    a = ap.parse_args(argv)
    if bool(a.cluster) != bool(a.service):
        ap.error("--cluster and --service go together")
    if a.period not in (1, 5, 10, 30) and a.period % 60:
        ap.error(f"--period must be 1, 5, 10, 30 or a multiple of 60 (got {a.period})")
    meta_path = a.run_dir / "meta.json"
    if not meta_path.is_file():
        ap.error(f"{a.run_dir} has no meta.json: not a run folder")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    try:
        start, end = window(_when(meta["started_at"]), _when(meta["finished_at"]), a.period)
    except (KeyError, TypeError, ValueError):
        ap.error(f"{meta_path} has no started_at/finished_at times")
    qs = queries(
        cluster=a.cluster,
        service=a.service,
        load_balancer=a.load_balancer,
        target_group=a.target_group,
        instances=a.instance,
        container_insights=a.container_insights,
    )
    if not qs:
        ap.error("nothing to fetch: give --cluster/--service, --load-balancer or --instance")
    from heavylab import aws  # the one place AWS clients are made (region, retries, timeouts)

    try:
        client = aws.clients(a.region, "cloudwatch")["cloudwatch"]
        data = fetch(client, qs, start, end, a.period)
    except Exception as err:  # botocore's errors: no credentials, access denied, throttled
        print(f"heavy-lab cloudwatch: error: {aws.describe_error(err)}", file=sys.stderr)
        return 1
    data["region"] = a.region
    (a.run_dir / FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    got = sum(1 for s in data["series"].values() if s["values"])
    print(
        f"cloudwatch: {got} of {len(qs)} series with data, {start:%H:%M}-{end:%H:%M} UTC -> {a.run_dir / FILE}"
    )
    for m in data["messages"]:
        print(f"cloudwatch: note: {m}", file=sys.stderr)
    return 0
