#!/usr/bin/env python3
"""Makes the edited recorded runs of lab/tests/data/runs/ from the real ones (see README.md):

    .venv/bin/python lab/tests/data/edit_runs.py

cpu-steal  = cpu-base with a constant 150 ms of host steal in every heavy request: added to
             server_steal_ms and, as stolen time is counted, to cpu_wait, cpu, total and the
             request duration; its fingerprint says Fargate (ECS metadata).
cpu-slow   = cpu-base with a much slower core: 100 ms more CPU time for the same work in every heavy
             request (cpu_thread about 4x; cpu, total, the body's cpu_time_sec and the request duration);
             its fingerprint names another CPU model and ECS on EC2.
The raw samples (samples.csv.gz) are edited, and every trend of summary.json that changed is
recomputed from them with heavylab.results.samples, so the summary and the samples agree.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import shutil
from pathlib import Path

from heavylab.results import samples as k6samples

HERE = Path(__file__).resolve().parent

RUNS = HERE / "runs"
HEAVY = "cpu-io-no-db"
# Metrics that hold a heavy request's time from the start of its CPU phase onwards.
DOWNSTREAM = (
    "server_cpu_ms",
    "server_total_ms",
    "latency_total_ms",
    "latency_server_ms",
    "http_req_duration",
    "http_req_waiting",
    "iteration_duration",
)

ECS_FARGATE = {
    "launch_type": "FARGATE",
    "availability_zone": "us-east-1a",
    "cluster": "heavy-api",
    "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/heavy-api/0f3c",
    "family": "heavy-api-fargate",
    "revision": "7",
    "task_cpu": 2048,
    "task_memory_mib": 4096,
    "platform_version": "1.4.0",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/heavy-api:latest",
    "image_digest": "sha256:4f1a0c2d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d",
}


def edit(src: str, dst: str, add: dict, label: str, platform: dict) -> None:
    s, d = RUNS / src, RUNS / dst
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(s, d)
    with gzip.open(s / "samples.csv.gz", "rt", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    name_i, value_i, tag_i = header.index("metric_name"), header.index("metric_value"), header.index("name")
    for row in rows[1:]:
        metric = row[name_i]
        if metric.startswith("http_req") and row[tag_i] != HEAVY:
            continue  # the health probe of setup() stays as it was
        if metric in add:
            row[value_i] = f"{float(row[value_i]) + add[metric]:.6f}"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    # mtime=0: the same bytes on every run of this script.
    with open(d / "samples.csv.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue().encode())

    summary = json.loads((s / "summary.json").read_text())
    samples = k6samples.read_csv(d / "samples.csv.gz")
    seconds = summary["state"]["testRunDurationMs"] / 1000.0
    types = {n: m.get("type") for n, m in summary["metrics"].items()}
    keys = [k for k in summary["metrics"] if k.split("{")[0] in add]
    fresh = k6samples.summarize(
        samples,
        types,
        seconds,
        heavy_only=False,
        extra_keys=[k for k in keys if "{" in k],
        only=keys + [k.split("{")[0] for k in keys],
    )
    for k in keys:
        if k in fresh:
            values = summary["metrics"][k]["values"]
            values.update({x: v for x, v in fresh[k]["values"].items() if x in values})
    (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    meta = json.loads((s / "meta.json").read_text())
    meta["label"] = label
    for when in ("server_info_before", "server_info_after"):
        info = copy.deepcopy(meta[when])
        info["platform"].update(platform)
        meta[when] = info
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def main() -> None:
    steal = 150.0
    edit(
        "cpu-base",
        "cpu-steal",
        {"server_steal_ms": steal, "server_cpu_wait_ms": steal, **{m: steal for m in DOWNSTREAM}},
        "steal",
        {
            "hypervisor": "kvm",
            "machine": "Amazon EC2",
            "cpu_quota": 2.0,
            "memory_limit_bytes": 4294967296,
            "ecs": ECS_FARGATE,
        },
    )
    slower = 100.0
    ec2 = dict(
        ECS_FARGATE,
        launch_type="EC2",
        platform_version=None,
        family="heavy-api-ec2",
        availability_zone="us-east-1b",
        task_arn="arn:aws:ecs:us-east-1:123456789012:task/heavy-api/9b2e",
    )
    edit(
        "cpu-base",
        "cpu-slow",
        {"server_cpu_thread_ms": slower, "custom_cpu_time_ms": slower, **{m: slower for m in DOWNSTREAM}},
        "slowcpu",
        {
            "cpu_model": "Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz",
            "hypervisor": "kvm",
            "machine": "m5.large",
            "cpu_quota": 2.0,
            "memory_limit_bytes": 4294967296,
            "ecs": ec2,
        },
    )


if __name__ == "__main__":
    main()
