"""Runs one k6 scenario from N load generators on ECS (Fargate tasks of deploy/loadgen-stack.yaml,
beside the target in its VPC), one execution segment each, and merges their raw samples into one
run folder exactly as `heavy-lab run --segments N` does locally:

  1. `k6 archive` packs the scenario with its options and -e variables (one immutable file per
     run), put at s3://BUCKET/runs/RUN_ID/test.tar and handed to the tasks as a presigned URL;
  2. one ECS RunTask per segment (RunTask's count cannot give each task its own segment): a
     container override sets K6_SEGMENT and the segment's name; if ECS cannot start one, the
     tasks already started are stopped;
  3. polls DescribeTasks until every task stopped (or --timeout), reads the containers' exit codes
     and the tasks' stopped reasons;
  4. downloads s3://BUCKET/runs/RUN_ID/, merges the segments exactly (heavy-lab merge), writes
     meta.json.

--dry-run prints every call (the k6 archive and each AWS request with its parameters, as JSON
that `aws ... --cli-input-json` also takes) and makes none. docs/DISTRIBUTED_LOAD.md is the guide
and names the IAM permissions the runner needs.

Exit status: the merged thresholds' (0 passed, 99 failed); 1 when a task or a step failed
(the reason named); 2 for bad usage.

Environment: K6 (the k6 binary for `k6 archive`; default the one scripts/setup.sh installs),
AWS_PROFILE / AWS_REGION and the rest of boto3's usual configuration."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from heavylab import aws, paths
from heavylab.results import merge as k6merge

NOMINAL_SECS = {  # the scenario's length at scale 1, graceful stop included
    "smoke": 40,
    "quick": 85,
    "load": 630,
    "spike": 200,
    "autoscale": 330,
    "constant-rate": 70,
    "ramping-rate": 80,
}
STARTED_BY = "heavy-api-loadtest"
PRESIGN_SECS = 7200
POLL_SECS = 6.0  # as the AWS CLI's tasks-stopped waiter
REQUIRED = ("base_url", "cluster", "subnets", "security_groups", "bucket")

# Replaced by the tests (a clock that does not wait).
clock = time.monotonic
sleep = time.sleep


class Usage(Exception):
    """Bad usage: exit 2."""


class Failed(Exception):
    """A task or a step failed: exit 1."""


def log(msg: str) -> None:
    print(f"[remote] {msg}", file=sys.stderr, flush=True)


# --- options ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors (unknown option, no value): exit 2
        raise Usage(message)


def parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="heavy-lab remote",
        usage="heavy-lab remote --base-url URL --segments N --cluster NAME --subnets IDS\n"
        "           --security-groups IDS --bucket NAME [OPTIONS] [-e KEY=VAL ...]",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, max_help_position=28, width=100
        ),
    )
    t = ap.add_argument_group("target and test")
    t.add_argument(
        "--base-url",
        metavar="URL",
        default="",
        help="the target as the generators reach it (the ALB's URL inside the VPC)",
    )
    t.add_argument(
        "--scenario",
        metavar="NAME",
        default="smoke",
        help="smoke | quick | load | spike | autoscale | constant-rate | ramping-rate (default: smoke)",
    )
    t.add_argument(
        "--segments",
        metavar="N",
        default="2",
        help="number of generator tasks, one execution segment each (default: 2)",
    )
    t.add_argument("--scale", metavar="F", default="1", help="DURATION_SCALE (default: 1)")
    t.add_argument(
        "-e",
        dest="k6_env",
        action="append",
        default=[],
        metavar="KEY=VAL",
        help="k6 variables, as for heavy-lab run (repeatable)",
    )
    e = ap.add_argument_group("ECS (the outputs of deploy/loadgen-stack.yaml)")
    e.add_argument(
        "--cluster", metavar="NAME", default="", help="the generators' cluster (output ClusterName)"
    )
    e.add_argument(
        "--task-definition",
        metavar="TD",
        default="heavy-api-loadgen",
        help="family[:revision] or ARN (default: heavy-api-loadgen)",
    )
    e.add_argument(
        "--subnets", metavar="IDS", default="", help="comma-separated subnet ids, in the target's VPC"
    )
    e.add_argument(
        "--security-groups",
        metavar="IDS",
        default="",
        help="comma-separated security group ids (output GeneratorSecurityGroupId)",
    )
    e.add_argument(
        "--assign-public-ip",
        metavar="X",
        default="DISABLED",
        help="ENABLED (public subnets without NAT) or DISABLED (default: DISABLED)",
    )
    e.add_argument(
        "--bucket", metavar="NAME", default="", help="the results bucket (output ResultsBucketName)"
    )
    e.add_argument(
        "--region",
        metavar="REGION",
        default="",
        help="the AWS region of every call (default: boto3's configuration)",
    )
    r = ap.add_argument_group("results")
    r.add_argument("--run-id", metavar="ID", default="", help="default: <scenario>-<UTC timestamp>-remote")
    r.add_argument(
        "--label", metavar="NAME", default="remote", help="platform label in meta.json (default: remote)"
    )
    r.add_argument("--price", metavar="SPEC", default="", help="the target's price, for heavy-lab compare")
    r.add_argument(
        "--results-dir", metavar="DIR", default="", help="parent of the run folder (default: results/)"
    )
    r.add_argument(
        "--timeout",
        metavar="SECS",
        default="",
        help="give up waiting for the tasks after SECS (default: the scenario's length x scale + 900)",
    )
    o = ap.add_argument_group("other")
    o.add_argument("--dry-run", action="store_true", help="print every k6 command and AWS call, make none")
    return ap


def validate(a: argparse.Namespace) -> argparse.Namespace:
    """Checks every option the way the bash version did; raises Usage naming the argument."""
    missing = ["--" + v.replace("_", "-") for v in REQUIRED if not getattr(a, v)]
    if missing:
        raise Usage("missing " + " ".join(missing))
    if a.scenario == "capacity":
        raise Usage(
            "--scenario capacity searches on one generator: use heavy-lab run (scripts/loadtest.sh) on a machine in the VPC"
        )
    if a.scenario not in NOMINAL_SECS:
        raise Usage(
            "--scenario must be smoke, quick, load, spike, autoscale, constant-rate or ramping-rate "
            f"(got '{a.scenario}')"
        )
    if not re.fullmatch(r"[1-9][0-9]*", a.segments) or int(a.segments) > 100:
        raise Usage(f"--segments must be an integer from 1 to 100 (got '{a.segments}')")
    a.segments = int(a.segments)
    if not re.fullmatch(r"[0-9]*\.?[0-9]+", a.scale) or float(a.scale) <= 0:
        raise Usage(f"--scale must be a positive number (got '{a.scale}')")
    if not re.fullmatch(r"https?://[^/]+/?", a.base_url):
        raise Usage(f"--base-url must look like http://host[:port] (got '{a.base_url}')")
    a.base_url = a.base_url.rstrip("/")
    host = a.base_url.split("://", 1)[1]
    if host.startswith(("localhost", "127.", "[::1]")):
        raise Usage(
            f"--base-url {a.base_url} is the generators' own loopback: give the target's address in the VPC"
        )
    if not re.fullmatch(r"subnet-[0-9a-f]+(,subnet-[0-9a-f]+)*", a.subnets):
        raise Usage(f"--subnets must be subnet-... ids separated by commas (got '{a.subnets}')")
    if not re.fullmatch(r"sg-[0-9a-f]+(,sg-[0-9a-f]+)*", a.security_groups):
        raise Usage(f"--security-groups must be sg-... ids separated by commas (got '{a.security_groups}')")
    if a.assign_public_ip not in ("ENABLED", "DISABLED"):
        raise Usage(f"--assign-public-ip must be ENABLED or DISABLED (got '{a.assign_public_ip}')")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", a.bucket):
        raise Usage(f"--bucket must be an S3 bucket name (got '{a.bucket}')")
    if a.region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", a.region):
        raise Usage(f"--region must look like us-east-1 (got '{a.region}')")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", a.label):
        raise Usage("--label may hold letters, digits, '.', '_' and '-' only")
    if a.timeout and not re.fullmatch(r"[1-9][0-9]*", a.timeout):
        raise Usage(f"--timeout must be a number of seconds (got '{a.timeout}')")
    for kv in a.k6_env:
        if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", kv):
            raise Usage(f"-e expects KEY=VAL (got '{kv}')")
    if not a.run_id:
        a.run_id = f"{a.scenario}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-remote"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", a.run_id):
        raise Usage("--run-id may hold letters, digits, '.', '_' and '-' only")
    a.timeout = int(a.timeout) if a.timeout else int(NOMINAL_SECS[a.scenario] * float(a.scale) + 900)
    a.results_dir = Path(a.results_dir) if a.results_dir else paths.RESULTS
    a.script = paths.K6_TESTS / f"{a.scenario}-test.js"
    if not a.script.is_file():
        raise Usage(f"missing {a.script}")
    return a


def segments(n: int) -> tuple[str, list[tuple[str, str, str]]]:
    """k6's segment sequence for n tasks, and each task's (from, to, name)."""
    cuts = ["0"] + [f"{i}/{n}" for i in range(1, n)] + ["1"]
    return ",".join(cuts), [(cuts[i], cuts[i + 1], f"segment-{i + 1}") for i in range(n)]


# --- AWS calls, real or printed --------------------------------------------------------------


class Calls:
    """Every AWS request goes through here: made with the clients of heavylab.aws, or, with
    --dry-run, printed (the operation and its parameters as JSON) and not made — no client is
    even created."""

    def __init__(self, region: str, dry_run: bool):
        self.region, self.dry_run = region, dry_run
        self._clients: dict | None = None

    def client(self, service: str):
        if self._clients is None:
            self._clients = aws.clients(self.region or None, "ecs", "s3")
        return self._clients[service]

    def show(self, service: str, op: str, params: dict, note: str = "") -> None:
        where = f" --region {self.region}" if self.region else ""
        print(f"+ {service} {op}{where} {json.dumps(params)}{note}", flush=True)

    def __call__(self, service: str, op: str, **params):
        if self.dry_run:
            self.show(service, op, {k: v for k, v in params.items() if k != "Body"})
            return None
        return getattr(self.client(service), op)(**params)


def overrides(url: str, seg: str, seq: str, run_id: str, name: str) -> dict:
    env = lambda d: [{"name": k, "value": v} for k, v in d.items()]
    return {
        "containerOverrides": [
            {
                "name": "k6",
                "environment": env({"K6_ARCHIVE_URL": url, "K6_SEGMENT": seg, "K6_SEGMENT_SEQUENCE": seq}),
            },
            {"name": "upload", "environment": env({"RUN_ID": run_id, "SEGMENT_NAME": name})},
        ]
    }


def task_outcome(task: dict) -> dict:
    """One stopped task as meta.json keeps it: the containers' exit codes and why it stopped."""
    containers = {c.get("name"): c for c in task.get("containers") or []}
    k6, upload = containers.get("k6") or {}, containers.get("upload") or {}
    return {
        "task_arn": task.get("taskArn"),
        "k6_exit_code": k6.get("exitCode"),
        "upload_exit_code": upload.get("exitCode"),
        "stopped_reason": task.get("stoppedReason", ""),
        "stop_code": task.get("stopCode"),
        # A container that never ran (image pull, resources) says why in its own reason.
        "container_reasons": {n: c["reason"] for n, c in containers.items() if c.get("reason")},
    }


def why(t: dict) -> str:
    parts = [f"{n}: {r}" for n, r in t["container_reasons"].items()]
    if t["stopped_reason"]:
        parts.append(t["stopped_reason"])
    return "; ".join(parts) or "no reason given"


# --- the run ---------------------------------------------------------------------------------


def k6_binary(dry_run: bool) -> str:
    if os.environ.get("K6"):
        return os.environ["K6"]
    if dry_run:
        return "k6"
    from heavylab.run.runner import find_k6

    return find_k6()


def run(a: argparse.Namespace) -> int:
    calls = Calls(a.region, a.dry_run)
    out = a.results_dir / a.run_id
    prefix = f"runs/{a.run_id}"
    seq, segs = segments(a.segments)
    log(f"run {a.run_id}: {a.scenario} on {a.segments} generator task(s) against {a.base_url}")
    k6 = k6_binary(a.dry_run)
    started: list[str] = []
    finished = False
    try:
        with tempfile.TemporaryDirectory(prefix="heavy-remote-") as work:
            # 1. the k6 archive, put in the bucket, and a presigned URL for the tasks.
            archive = Path(work) / "test.tar"
            cmd = [
                k6,
                "archive",
                "--quiet",
                "-e",
                f"BASE_URL={a.base_url}",
                "-e",
                f"DURATION_SCALE={a.scale}",
            ]
            for kv in a.k6_env:
                cmd += ["-e", kv]
            cmd += ["-O", str(archive), str(a.script)]
            if a.dry_run:
                print("+ " + shlex.join(cmd), flush=True)
            else:
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0 or not archive.is_file():
                    raise Failed(f"k6 archive failed (bad -e value?): {(done.stderr or done.stdout).strip()}")
            body = b"" if a.dry_run else archive.read_bytes()
            try:
                calls("s3", "put_object", Bucket=a.bucket, Key=f"{prefix}/test.tar", Body=body)
            except (aws.ClientError, aws.BotoCoreError) as err:
                raise Failed(
                    f"cannot upload the k6 archive to s3://{a.bucket}/{prefix}/test.tar: {aws.describe_error(err)}"
                ) from err
            get = {"Bucket": a.bucket, "Key": f"{prefix}/test.tar"}
            if a.dry_run:
                calls.show(
                    "s3",
                    "generate_presigned_url",
                    {"ClientMethod": "get_object", "Params": get, "ExpiresIn": PRESIGN_SECS},
                    "  (signed locally: no request)",
                )
                url = f"<presigned URL of s3://{a.bucket}/{prefix}/test.tar>"
            else:
                url = calls.client("s3").generate_presigned_url(
                    "get_object", Params=get, ExpiresIn=PRESIGN_SECS
                )

        # 2. one task per segment.
        network = {
            "awsvpcConfiguration": {
                "subnets": a.subnets.split(","),
                "securityGroups": a.security_groups.split(","),
                "assignPublicIp": a.assign_public_ip,
            }
        }
        started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i, (lo, hi, name) in enumerate(segs, start=1):
            params = dict(
                cluster=a.cluster,
                taskDefinition=a.task_definition,
                launchType="FARGATE",
                count=1,
                startedBy=STARTED_BY,
                networkConfiguration=network,
                overrides=overrides(url, f"{lo}:{hi}", seq, a.run_id, name),
            )
            try:
                answer = calls("ecs", "run_task", **params)
            except (aws.ClientError, aws.BotoCoreError) as err:
                raise Failed(f"ECS did not start {name}: {aws.describe_error(err)}") from err
            if a.dry_run:
                started.append(f"<task-arn-{i}>")
                continue
            tasks, failures = answer.get("tasks") or [], answer.get("failures") or []
            if failures or not tasks:
                reason = "; ".join(
                    " ".join(str(f.get(k, "")) for k in ("arn", "reason", "detail") if f.get(k))
                    for f in failures
                )
                raise Failed(f"ECS did not start {name}: {reason or 'no task in the answer'}")
            started.append(tasks[0]["taskArn"])
            log(f"{name} ({lo}:{hi}): {tasks[0]['taskArn']}")

        # 3. wait for every task to stop.
        described = wait(calls, a, started)
        if a.dry_run:
            started = []
        else:
            outcomes = [task_outcome(t) for t in described]
            started = []  # all stopped: nothing to stop on the way out
            for t in outcomes:
                log(
                    f"task {t['task_arn']} k6 {t['k6_exit_code']} upload {t['upload_exit_code']} "
                    f"stopped: {t['stopped_reason'] or '-'}"
                )
            bad = [t for t in outcomes if t["upload_exit_code"] != 0]
            if bad:
                raise Failed(
                    "a task's upload container did not exit 0, so its results are not in S3: "
                    + " | ".join(
                        f"{t['task_arn']} (upload exit {t['upload_exit_code']}): {why(t)}" for t in bad
                    )
                )

        # 4. download, merge, meta.json.
        seg_dirs = [out / name for _, _, name in segs]
        download(calls, a, prefix, out)
        merge_cmd = ["--out", str(out), *map(str, seg_dirs)]
        if a.dry_run:
            print("+ heavy-lab merge " + " ".join(merge_cmd), flush=True)
            log("dry run: nothing was run")
            finished = True
            return 0
        for d in seg_dirs:
            if not (d / "samples.csv.gz").is_file():
                raise Failed(f"{d} has no samples.csv.gz: the segment's k6 wrote nothing (see k6.log there)")
        merge_rc = k6merge.main(merge_cmd)
        if merge_rc not in (0, 99):
            raise Failed(f"the merge failed (exit {merge_rc})")
        bad_k6 = [t for t in outcomes if t["k6_exit_code"] not in (0, 99)]
        rc = 1 if bad_k6 else merge_rc
        write_meta(a, out, outcomes, started_at, rc, k6)
        log(f"merged run: {out}")
        finished = True
        if bad_k6:
            log(
                "error: a segment's k6 did not finish its run: "
                + ", ".join(f"{t['task_arn']} exited {t['k6_exit_code']} ({why(t)})" for t in bad_k6)
            )
            return 1
        return merge_rc
    finally:
        if not finished and started:
            stop(calls, a, started)


def wait(calls: Calls, a: argparse.Namespace, arns: list[str]) -> list[dict]:
    """DescribeTasks every POLL_SECS until every task is STOPPED; the tasks as ECS last described
    them. Gives up (Failed) after --timeout seconds."""
    if a.dry_run:
        calls("ecs", "describe_tasks", cluster=a.cluster, tasks=arns)
        print(
            f"  (again every {POLL_SECS:g} s until every task is STOPPED, at most {a.timeout} s)", flush=True
        )
        return []
    deadline = clock() + a.timeout
    last_note = clock()
    while True:
        try:
            answer = calls("ecs", "describe_tasks", cluster=a.cluster, tasks=arns)
        except (aws.ClientError, aws.BotoCoreError) as err:
            raise Failed(f"DescribeTasks failed: {aws.describe_error(err)}") from err
        failures = answer.get("failures") or []
        if failures:
            raise Failed(
                "DescribeTasks: "
                + "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in failures)
            )
        tasks = answer.get("tasks") or []
        if len(tasks) != len(arns):
            raise Failed(f"DescribeTasks returned {len(tasks)} of {len(arns)} tasks")
        running = [t for t in tasks if t.get("lastStatus") != "STOPPED"]
        if not running:
            order = {arn: i for i, arn in enumerate(arns)}
            return sorted(tasks, key=lambda t: order.get(t.get("taskArn"), len(order)))
        if clock() >= deadline:
            states = ", ".join(f"{t.get('taskArn')} {t.get('lastStatus')}" for t in running)
            raise Failed(f"the tasks did not stop within {a.timeout} s (still: {states})")
        if clock() - last_note >= 60:
            log(f"{len(running)} of {len(arns)} task(s) still running; waiting")
            last_note = clock()
        sleep(POLL_SECS)


def download(calls: Calls, a: argparse.Namespace, prefix: str, out: Path) -> None:
    """Every object under s3://BUCKET/PREFIX/ into out/, keeping the relative paths."""
    if a.dry_run:
        calls("s3", "list_objects_v2", Bucket=a.bucket, Prefix=f"{prefix}/")
        calls.show(
            "s3", "get_object", {"Bucket": a.bucket, "Key": f"{prefix}/<each key listed>"}, f"  -> {out}/"
        )
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Failed(f"cannot create {out}: {err}") from err
    s3 = calls.client("s3")
    n = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=f"{prefix}/"):
            for obj in page.get("Contents") or []:
                rel = obj["Key"][len(prefix) + 1 :]
                dest = (out / rel).resolve()
                if not rel or rel.endswith("/") or out.resolve() not in dest.parents:
                    continue  # a folder marker, or a key that would leave the run folder
                dest.parent.mkdir(parents=True, exist_ok=True)
                body = s3.get_object(Bucket=a.bucket, Key=obj["Key"])["Body"]
                with open(dest, "wb") as f:
                    shutil.copyfileobj(body, f, 1 << 20)
                n += 1
    except (aws.ClientError, aws.BotoCoreError, OSError) as err:
        raise Failed(f"cannot download s3://{a.bucket}/{prefix}/: {aws.describe_error(err)}") from err
    log(f"downloaded {n} file(s) from s3://{a.bucket}/{prefix}/ into {out}")


def stop(calls: Calls, a: argparse.Namespace, arns: list[str]) -> None:
    for arn in arns:
        log(f"stopping {arn}")
        try:
            calls(
                "ecs", "stop_task", cluster=a.cluster, task=arn, reason=f"heavy-lab remote {a.run_id} aborted"
            )
        except Exception as err:  # stopping is best effort: the run failed already
            log(f"could not stop {arn}: {aws.describe_error(err)}")


def write_meta(
    a: argparse.Namespace, out: Path, outcomes: list[dict], started_at: str, rc: int, k6: str
) -> None:
    from heavylab.run.runner import git_facts

    try:
        k6_version = subprocess.run([k6, "version"], capture_output=True, text=True, timeout=30).stdout
        k6_version = k6_version.splitlines()[0] if k6_version else ""
    except (OSError, subprocess.TimeoutExpired):
        k6_version = ""
    meta = {
        "scenario": a.scenario,
        "script": f"k6-tests/{a.scenario}-test.js",
        "duration_scale": float(a.scale),
        "base_url": a.base_url,
        "local_server": False,
        "server_command": None,
        "server_args": "",
        "server_exit_code": None,
        "label": a.label,
        "price": a.price or None,
        "k6_env": list(a.k6_env),
        "segments": a.segments,
        "samples": "samples.csv.gz",
        "started_at": started_at,
        "finished_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git_facts()[0],
        "k6_version": k6_version,
        "k6_exit_code": rc,
        "remote": {
            "run_id": a.run_id,
            "cluster": a.cluster,
            "task_definition": a.task_definition,
            "bucket": a.bucket,
            "region": a.region or None,
            "tasks": outcomes,
        },
        "server_info_before": None,
        "server_info_after": None,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    try:
        a = validate(ap.parse_args(argv))
    except Usage as err:
        ap.print_usage(sys.stderr)
        log(f"error: {err}")
        return 2
    # TERM ends the run like Ctrl-C: the tasks already started are stopped on the way out.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(a)
    except Failed as err:
        log(f"error: {err}")
        return 1
    except aws.AwsError as err:
        log(f"error: {err}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
