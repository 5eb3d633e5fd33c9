"""`heavy-lab remote` against recorded AWS answers: the real boto3 clients of heavylab.aws,
wrapped in botocore's Stubber, answer with the responses under data/aws/remote/ (the shapes ECS
and S3 return: RunTask, DescribeTasks with stopped containers and exit codes, PutObject,
ListObjectsV2, GetObject) and the downloaded segments are the recorded 3-segment run of
data/segments/. Nothing reaches AWS: fake credentials, no config files, and a Stubber raises on
any call it was not given an answer for."""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from heavylab import aws
from heavylab.run import remote

DATA = Path(__file__).resolve().parent / "data"
AWS = DATA / "aws" / "remote"
SEGMENTS = DATA / "segments"
BUCKET = "heavy-api-loadgen-results-123456789012"
CLUSTER = "heavy-api-loadgen"
BASE_URL = "http://internal-heavy-alb-1234.us-east-1.elb.amazonaws.com:8080"
ARCHIVE = b"stub archive\n\n"  # 14 bytes, as listed in list-objects-v2.json


def recorded(name: str):
    return json.loads((AWS / name).read_text())


def common(segments: int = 3, run_id: str = "r1") -> list[str]:
    return [
        "--base-url",
        BASE_URL,
        "--cluster",
        CLUSTER,
        "--subnets",
        "subnet-0a1b,subnet-2c3d",
        "--security-groups",
        "sg-0123",
        "--bucket",
        BUCKET,
        "--region",
        "us-east-1",
        "--scenario",
        "constant-rate",
        "-e",
        "RATE=30",
        "-e",
        "DURATION=2m",
        "--label",
        "fargate",
        "--segments",
        str(segments),
        "--run-id",
        run_id,
    ]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Fake credentials and region, no AWS config files, no instance metadata; a stub k6 that
    writes the archive and answers `k6 version` (and logs its argv)."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    k6 = tmp_path / "k6"
    k6.write_text(
        "#!/bin/sh\n"
        f'echo "k6 $*" >>"{tmp_path}/k6.log"\n'
        'if [ "$1" = version ]; then echo "k6 v1.1.0 (stub)"; exit 0; fi\n'
        'while [ $# -gt 0 ]; do [ "$1" = -O ] && printf "stub archive\\n\\n" >"$2"; shift; done\n'
    )
    k6.chmod(0o755)
    monkeypatch.setenv("K6", str(k6))
    monkeypatch.setattr(remote, "sleep", lambda s: None)


class Stubs:
    """The real ECS and S3 clients, each behind a Stubber; every RunTask's parameters recorded."""

    def __init__(self):
        made = aws.clients("us-east-1", "ecs", "s3")
        self.clients = made
        self.ecs, self.s3 = Stubber(made["ecs"]), Stubber(made["s3"])
        self.run_task_params: list[dict] = []
        made["ecs"].meta.events.register(
            "provide-client-params.ecs.RunTask",
            lambda params, **_: self.run_task_params.append(copy.deepcopy(params)),
        )
        self.regions: list[str | None] = []

    def factory(self, region, *services):
        self.regions.append(region)
        return {s: self.clients[s] for s in services}

    # --- the answers, in the order the runner asks --------------------------------------------

    def put_archive(self, run_id="r1"):
        self.s3.add_response(
            "put_object",
            recorded("put-object.json"),
            {"Bucket": BUCKET, "Key": f"runs/{run_id}/test.tar", "Body": ANY},
        )

    def run_tasks(self, n):
        for answer in recorded("run-task.json")[:n]:
            self.ecs.add_response(
                "run_task",
                answer,
                {
                    "cluster": CLUSTER,
                    "taskDefinition": "heavy-api-loadgen",
                    "launchType": "FARGATE",
                    "count": 1,
                    "startedBy": "heavy-api-loadtest",
                    "networkConfiguration": ANY,
                    "overrides": ANY,
                },
            )

    def describe(self, name, n):
        answer = recorded(name)
        answer["tasks"] = answer["tasks"][:n]
        arns = [t["taskArn"] for t in answer["tasks"]]
        self.ecs.add_response("describe_tasks", answer, {"cluster": CLUSTER, "tasks": arns})

    def stop(self, arn):
        task = copy.deepcopy(recorded("describe-tasks-running.json")["tasks"][0])
        task.update(taskArn=arn, desiredStatus="STOPPED", stoppedReason="heavy-lab remote r1 aborted")
        self.ecs.add_response("stop_task", {"task": task}, {"cluster": CLUSTER, "task": arn, "reason": ANY})

    def download(self, run_id="r1"):
        listing = recorded("list-objects-v2.json")
        self.s3.add_response("list_objects_v2", listing, {"Bucket": BUCKET, "Prefix": f"runs/{run_id}/"})
        for obj in listing["Contents"]:
            rel = obj["Key"].split("/", 2)[2]
            body = ARCHIVE if rel == "test.tar" else (SEGMENTS / rel).read_bytes()
            answer = {
                "Body": StreamingBody(io.BytesIO(body), len(body)),
                "ContentLength": len(body),
                "ContentType": "binary/octet-stream",
                "ETag": obj["ETag"],
                "LastModified": obj["LastModified"],
                "AcceptRanges": "bytes",
                "ServerSideEncryption": "AES256",
            }
            self.s3.add_response("get_object", answer, {"Bucket": BUCKET, "Key": obj["Key"]})

    def __enter__(self):
        self.ecs.activate()
        self.s3.activate()
        return self

    def __exit__(self, *exc):
        self.ecs.deactivate()
        self.s3.deactivate()


@pytest.fixture
def stubs(monkeypatch):
    s = Stubs()
    monkeypatch.setattr(remote.aws, "clients", s.factory)
    with s:
        yield s


def run(tmp_path, capsys, *args) -> tuple[int, str, str]:
    rc = remote.main(["--results-dir", str(tmp_path / "results"), *args])
    out, err = capsys.readouterr()
    return rc, out, err


# --- the happy path ---------------------------------------------------------------------------


def test_three_segments_are_started_waited_for_downloaded_and_merged(tmp_path, capsys, stubs):
    stubs.put_archive()
    stubs.run_tasks(3)
    stubs.describe("describe-tasks-running.json", 3)
    stubs.describe("describe-tasks-stopped.json", 3)
    stubs.download()

    rc, out, err = run(tmp_path, capsys, *common())

    assert rc == 0, err
    stubs.ecs.assert_no_pending_responses()
    stubs.s3.assert_no_pending_responses()
    assert stubs.regions == ["us-east-1"]
    # One RunTask per segment, each with its own segment, the shared sequence, the archive's
    # presigned URL and the upload's run id and segment name.
    assert len(stubs.run_task_params) == 3
    for i, (params, seg) in enumerate(
        zip(stubs.run_task_params, ["0:1/3", "1/3:2/3", "2/3:1"], strict=True), 1
    ):
        env = {
            c["name"]: {e["name"]: e["value"] for e in c["environment"]}
            for c in params["overrides"]["containerOverrides"]
        }
        assert env["k6"]["K6_SEGMENT"] == seg
        assert env["k6"]["K6_SEGMENT_SEQUENCE"] == "0,1/3,2/3,1"
        url = env["k6"]["K6_ARCHIVE_URL"]
        assert url.startswith(f"https://{BUCKET}.s3.amazonaws.com/runs/r1/test.tar?"), url
        assert "X-Amz-Expires=7200" in url and "X-Amz-Signature=" in url
        assert env["upload"] == {"RUN_ID": "r1", "SEGMENT_NAME": f"segment-{i}"}
        assert params["networkConfiguration"] == {
            "awsvpcConfiguration": {
                "subnets": ["subnet-0a1b", "subnet-2c3d"],
                "securityGroups": ["sg-0123"],
                "assignPublicIp": "DISABLED",
            }
        }
    # The archive holds BASE_URL, the scale and every -e.
    k6_calls = (tmp_path / "k6.log").read_text().splitlines()
    assert k6_calls[0].startswith(
        f"k6 archive --quiet -e BASE_URL={BASE_URL} -e DURATION_SCALE=1 -e RATE=30 -e DURATION=2m -O "
    )
    assert k6_calls[0].endswith("k6-tests/constant-rate-test.js")
    # The merge: one summary over the three downloaded segments, and meta.json.
    d = tmp_path / "results" / "r1"
    assert (d / "test.tar").read_bytes() == ARCHIVE
    summary = json.loads((d / "summary.json").read_text())
    per_segment = [
        json.loads((d / f"segment-{i}/summary.json").read_text())["heavy_api"]["requests"] for i in (1, 2, 3)
    ]
    assert summary["heavy_api"]["segments"] == 3
    assert summary["heavy_api"]["requests"] == sum(per_segment)
    meta = json.loads((d / "meta.json").read_text())
    assert meta["segments"] == 3 and meta["label"] == "fargate" and meta["k6_exit_code"] == 0
    assert meta["k6_env"] == ["RATE=30", "DURATION=2m"] and meta["k6_version"] == "k6 v1.1.0 (stub)"
    assert [t["task_arn"] for t in meta["remote"]["tasks"]] == [
        a["tasks"][0]["taskArn"] for a in recorded("run-task.json")
    ]
    assert [t["k6_exit_code"] for t in meta["remote"]["tasks"]] == [0, 0, 0]
    assert meta["remote"]["tasks"][0]["stopped_reason"] == "Essential container in task exited"
    assert "[merge] 3 segments" in out


# --- tasks that fail --------------------------------------------------------------------------


def test_a_task_ecs_cannot_start_stops_the_started_ones_and_names_the_reason(tmp_path, capsys, stubs):
    stubs.put_archive()
    stubs.run_tasks(1)
    stubs.ecs.add_response("run_task", recorded("run-task-failure.json"))
    stubs.stop(recorded("run-task.json")[0]["tasks"][0]["taskArn"])

    rc, _, err = run(tmp_path, capsys, *common())

    assert rc == 1
    assert "ECS did not start segment-2" in err and "RESOURCE:ENI" in err
    assert "stopping arn:aws:ecs:us-east-1:123456789012:task/heavy-api-loadgen/" in err
    stubs.ecs.assert_no_pending_responses()  # the stop was made; nothing downloaded
    assert not (tmp_path / "results" / "r1").exists()


def test_a_segment_whose_k6_aborted_fails_the_run_after_the_merge(tmp_path, capsys, stubs):
    stubs.put_archive()
    stubs.run_tasks(3)
    stubs.describe("describe-tasks-k6-aborted.json", 3)
    stubs.download()

    rc, _, err = run(tmp_path, capsys, *common())

    assert rc == 1
    assert "a segment's k6 did not finish its run" in err and "exited 108" in err
    d = tmp_path / "results" / "r1"
    assert (d / "summary.json").is_file()
    assert json.loads((d / "meta.json").read_text())["k6_exit_code"] == 1


def test_a_failed_upload_fails_before_any_download(tmp_path, capsys, stubs):
    stubs.put_archive()
    stubs.run_tasks(2)
    stubs.describe("describe-tasks-upload-failed.json", 2)

    rc, _, err = run(tmp_path, capsys, *common(segments=2))

    assert rc == 1
    assert "upload container did not exit 0" in err and "(upload exit 1)" in err
    stubs.s3.assert_no_pending_responses()  # no ListObjectsV2 was asked for


def test_an_image_that_cannot_be_pulled_is_named(tmp_path, capsys, stubs):
    stubs.put_archive()
    stubs.run_tasks(2)
    stubs.describe("describe-tasks-cannot-pull.json", 2)

    rc, _, err = run(tmp_path, capsys, *common(segments=2))

    assert rc == 1
    assert "CannotPullContainerError" in err and "grafana/k6:1.1.0" in err
    assert "(upload exit None)" in err


def test_tasks_still_running_at_the_timeout_are_stopped(tmp_path, capsys, stubs, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(remote, "clock", lambda: now[0])
    monkeypatch.setattr(remote, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    stubs.put_archive()
    stubs.run_tasks(2)
    for _ in range(3):  # at 0, 6 and 12 s; --timeout 10
        stubs.describe("describe-tasks-running.json", 2)
    for answer in recorded("run-task.json")[:2]:
        stubs.stop(answer["tasks"][0]["taskArn"])

    rc, _, err = run(tmp_path, capsys, *common(segments=2), "--timeout", "10")

    assert rc == 1
    assert "the tasks did not stop within 10 s" in err and "RUNNING" in err
    stubs.ecs.assert_no_pending_responses()


def test_an_aws_error_is_named(tmp_path, capsys, stubs):
    stubs.s3.add_client_error("put_object", "AccessDenied", "Access Denied", 403)

    rc, _, err = run(tmp_path, capsys, *common())

    assert rc == 1
    assert "cannot upload the k6 archive to s3://" in err and "PutObject: AccessDenied: Access Denied" in err


# --- dry run and usage ------------------------------------------------------------------------


def test_dry_run_prints_every_call_and_makes_none(tmp_path, capsys, monkeypatch):
    def no_clients(*a, **k):
        raise AssertionError("--dry-run made an AWS client")

    def no_process(*a, **k):
        raise AssertionError("--dry-run started a process")

    monkeypatch.setattr(remote.aws, "clients", no_clients)
    monkeypatch.setattr(remote.subprocess, "run", no_process)
    rc, out, err = run(tmp_path, capsys, *common(segments=2, run_id="dry"), "--dry-run")

    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("+ ") and " archive --quiet -e BASE_URL=" in lines[0]
    assert any(
        ln.startswith("+ s3 put_object --region us-east-1 ") and "runs/dry/test.tar" in ln for ln in lines
    )
    assert any(ln.startswith("+ s3 generate_presigned_url ") for ln in lines)
    runs = [json.loads(ln[ln.index("{") :]) for ln in lines if ln.startswith("+ ecs run_task ")]
    assert [r["overrides"]["containerOverrides"][0]["environment"][1]["value"] for r in runs] == [
        "0:1/2",
        "1/2:1",
    ]
    assert any(ln.startswith("+ ecs describe_tasks ") and "<task-arn-2>" in ln for ln in lines)
    assert any(ln.startswith("+ s3 list_objects_v2 ") and "runs/dry/" in ln for ln in lines)
    assert any(ln.startswith("+ s3 get_object ") for ln in lines)
    assert lines[-1].startswith("+ heavy-lab merge --out ")
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "k6.log").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--base-url", "http://alb.example", "--subnets", "subnet-1", "--security-groups", "sg-1"],
            "missing --cluster --bucket",
        ),
        (["--segments", "0"], "--segments must be an integer from 1 to 100 (got '0')"),
        (["--segments", "101"], "--segments must be an integer from 1 to 100"),
        (["--base-url", "http://127.0.0.1:8000"], "generators' own loopback"),
        (["--base-url", "alb.example"], "--base-url must look like http://host[:port]"),
        (["--scenario", "capacity"], "searches on one generator"),
        (["--scenario", "soak"], "--scenario must be smoke, quick"),
        (["--subnets", "vpc-1"], "--subnets must be subnet-"),
        (["--security-groups", "sg-XYZ"], "--security-groups must be sg-"),
        (["--assign-public-ip", "yes"], "--assign-public-ip must be ENABLED or DISABLED"),
        (["--bucket", "Bad_Bucket"], "--bucket must be an S3 bucket name"),
        (["--region", "useast1"], "--region must look like us-east-1"),
        (["--scale", "-1"], "--scale must be a positive number"),
        (["--timeout", "soon"], "--timeout must be a number of seconds"),
        (["--label", "a b"], "--label may hold"),
        (["--run-id", "a/b"], "--run-id may hold"),
        (["-e", "RATE"], "-e expects KEY=VAL (got 'RATE')"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--cluster"], "--cluster: expected one argument"),
    ],
)
def test_bad_usage_exits_2_naming_the_argument(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(remote.aws, "clients", lambda *a, **k: pytest.fail("an AWS client was made"))
    base = common() if args[0] != "--base-url" or len(args) == 2 else []
    rc, out, err = run(tmp_path, capsys, *base, *args)
    assert rc == 2
    assert message in err
    assert out == ""


def test_help_is_the_manual(capsys):
    with pytest.raises(SystemExit) as exit_:
        remote.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: heavy-lab remote --base-url URL")
    for option in ("--dry-run", "--timeout", "--assign-public-ip", "--task-definition", "-e KEY=VAL"):
        assert option in out


def test_no_region_anywhere_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    args = common()
    i = args.index("--region")
    del args[i : i + 2]
    rc, _, err = run(tmp_path, capsys, *args)
    assert rc == 1
    assert "no AWS region: give --region" in err


def test_ctrl_c_while_waiting_stops_the_tasks(tmp_path, capsys, stubs, monkeypatch):
    def interrupted(secs):
        raise KeyboardInterrupt

    monkeypatch.setattr(remote, "sleep", interrupted)
    stubs.put_archive()
    stubs.run_tasks(2)
    stubs.describe("describe-tasks-running.json", 2)
    for answer in recorded("run-task.json")[:2]:
        stubs.stop(answer["tasks"][0]["taskArn"])

    rc, _, err = run(tmp_path, capsys, *common(segments=2))

    assert rc == 130
    assert err.count("stopping arn:aws:ecs:") == 2
    stubs.ecs.assert_no_pending_responses()


def test_clients_are_made_in_one_place_with_one_policy():
    made = aws.clients("eu-west-1", "ecs", "s3", "cloudwatch")
    assert {c.meta.region_name for c in made.values()} == {"eu-west-1"}
    assert made["ecs"].meta.config.retries == {"total_max_attempts": 8, "mode": "standard"}
    assert made["ecs"].meta.config.read_timeout == 60 and made["ecs"].meta.config.connect_timeout == 10
    url = made["s3"].generate_presigned_url("get_object", Params={"Bucket": "b-1", "Key": "k"}, ExpiresIn=60)
    assert url.startswith("https://b-1.s3.") and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url


def test_a_listing_in_two_pages_is_downloaded_whole(tmp_path, capsys, stubs):
    stubs.put_archive()
    stubs.run_tasks(3)
    stubs.describe("describe-tasks-stopped.json", 3)
    listing = recorded("list-objects-v2.json")
    first, second = copy.deepcopy(listing), copy.deepcopy(listing)
    first.update(IsTruncated=True, NextContinuationToken="1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
    first["Contents"], second["Contents"] = listing["Contents"][:4], listing["Contents"][4:]
    first["KeyCount"], second["KeyCount"] = 4, len(listing["Contents"]) - 4
    second["ContinuationToken"] = first["NextContinuationToken"]
    stubs.s3.add_response("list_objects_v2", first, {"Bucket": BUCKET, "Prefix": "runs/r1/"})
    pending = []
    for obj in listing["Contents"]:
        rel = obj["Key"].split("/", 2)[2]
        body = ARCHIVE if rel == "test.tar" else (SEGMENTS / rel).read_bytes()
        pending.append((obj["Key"], body))

    def get(key, body):
        answer = {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentLength": len(body)}
        stubs.s3.add_response("get_object", answer, {"Bucket": BUCKET, "Key": key})

    for key, body in pending[:4]:
        get(key, body)
    stubs.s3.add_response(
        "list_objects_v2",
        second,
        {"Bucket": BUCKET, "Prefix": "runs/r1/", "ContinuationToken": first["NextContinuationToken"]},
    )
    for key, body in pending[4:]:
        get(key, body)

    rc, _, err = run(tmp_path, capsys, *common())

    assert rc == 0, err
    assert f"downloaded {len(pending)} file(s)" in err
    stubs.s3.assert_no_pending_responses()
