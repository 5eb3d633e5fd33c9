#!/usr/bin/env python3
"""Validates the load-generator deployment: deploy/loadgen-task-definition.json and
deploy/loadgen-stack.yaml (k6 as Fargate tasks, one execution segment each, results to S3), against
botocore's ECS model, against each other and against what scripts/remote-loadtest.sh relies on.

Rules (each with an id, printed on failure):
  botocore               the JSON is a valid RegisterTaskDefinition input
  loadgen-fargate        Fargate, awsvpc, a valid Fargate CPU/memory pair
  loadgen-images         images pinned; k6's tag is the runner's k6 version (the k6 pin of
                         lab/pyproject.toml), so remote and local runs use the same k6
  loadgen-containers     k6 (not essential) runs the segment from $K6_ARCHIVE_URL, $K6_SEGMENT and
                         $K6_SEGMENT_SEQUENCE and writes raw samples (--out csv) and the summary to
                         the shared volume; upload (essential) starts when k6 is COMPLETE and copies
                         the volume to s3://$RESULTS_BUCKET/runs/$RUN_ID/$SEGMENT_NAME/
  loadgen-logs           both containers log with awslogs
  loadgen-task-role      a task role is set (the upload's only credentials)
  cfn-loadgen-parity     the stack's task definition is the JSON's (containers, size)
  cfn-loadgen-role       the task role may only s3:PutObject under runs/ in the results bucket
  cfn-loadgen-bucket     the bucket blocks public access and is encrypted
  cfn-loadgen-network    the generators' security group takes no inbound traffic and is let into
                         the target ALB's security group

Usage:  python3 deploy/validate_loadgen.py [--root DIR]      (needs botocore and PyYAML)
deploy/test_validate_loadgen.py breaks each rule on purpose to show it can fail.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from heavylab import paths
from heavylab.deploy import bundle as validate  # the shared loaders and helpers

TD_FILE = "deploy/loadgen-task-definition.json"
STACK_FILE = "deploy/loadgen-stack.yaml"
PARITY_KEYS = (
    "name",
    "image",
    "essential",
    "user",
    "entryPoint",
    "command",
    "dependsOn",
    "mountPoints",
    "ulimits",
)


@dataclass
class Loadgen:
    task_def: dict
    stack: dict
    k6_version: str  # the k6 pin of lab/pyproject.toml


def load(root: Path) -> Loadgen:
    project = tomllib.loads((root / "lab" / "pyproject.toml").read_text())
    dev = project["project"]["optional-dependencies"]["dev"]
    m = next((re.fullmatch(r"k6==([0-9][0-9.]*)", d.strip()) for d in dev if d.startswith("k6==")), None)
    return Loadgen(
        task_def=json.loads((root / TD_FILE).read_text()),
        stack=yaml.load((root / STACK_FILE).read_text(), Loader=validate.CfnLoader),  # noqa: S506
        k6_version=m.group(1) if m else "",
    )


def _container(td: dict, name: str) -> dict:
    return next((c for c in td.get("containerDefinitions") or [] if c.get("name") == name), {})


def _text(c: dict) -> str:
    return " ".join(str(x) for x in (c.get("entryPoint") or []) + (c.get("command") or []))


class Checker:
    def __init__(self, lg: Loadgen):
        self.lg = lg
        self.failures: list[validate.Failure] = []

    def fail(self, rule: str, where: str, message: str) -> None:
        self.failures.append(validate.Failure(rule, where, message))

    def check_botocore(self) -> None:
        import botocore.session
        from botocore.validate import ParamValidator

        model = botocore.session.get_session().get_service_model("ecs")
        shape = model.operation_model("RegisterTaskDefinition").input_shape
        report = ParamValidator().validate(self.lg.task_def, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                self.fail("botocore", TD_FILE, f"RegisterTaskDefinition: {line}")

    def check_task_def(self) -> None:
        td = self.lg.task_def
        if td.get("requiresCompatibilities") != ["FARGATE"] or td.get("networkMode") != "awsvpc":
            self.fail("loadgen-fargate", TD_FILE, "must be FARGATE only with networkMode awsvpc")
        cpu, mem = validate.task_size(td.get("cpu")), validate.task_size(td.get("memory"))
        if cpu not in validate.FARGATE_SIZES or mem not in validate.FARGATE_SIZES.get(cpu, ()):
            self.fail(
                "loadgen-fargate",
                TD_FILE,
                f"cpu {td.get('cpu')!r} / memory {td.get('memory')!r} is not a Fargate task size",
            )
        if not td.get("taskRoleArn"):
            self.fail("loadgen-task-role", TD_FILE, "no taskRoleArn: the upload has no credentials")
        k6, up = _container(td, "k6"), _container(td, "upload")
        for name, c in (("k6", k6), ("upload", up)):
            if not c:
                self.fail("loadgen-containers", TD_FILE, f"no container named {name!r}")
                continue
            image = str(c.get("image", ""))
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                self.fail("loadgen-images", TD_FILE, f"{name}: image {image!r} is not pinned")
            if (c.get("logConfiguration") or {}).get("logDriver") != "awslogs":
                self.fail("loadgen-logs", TD_FILE, f"{name}: no awslogs log configuration")
            mounts = {m.get("sourceVolume"): m for m in c.get("mountPoints") or []}
            if (mounts.get("results") or {}).get("containerPath") != "/results":
                self.fail(
                    "loadgen-containers", TD_FILE, f"{name}: the results volume is not mounted at /results"
                )
        want = f"grafana/k6:{self.lg.k6_version}"
        if k6 and k6.get("image") != want:
            self.fail(
                "loadgen-images",
                TD_FILE,
                f"k6 image {k6.get('image')!r} is not {want!r}, "
                "the k6 version the runner installs (lab/pyproject.toml)",
            )
        if k6:
            text = _text(k6)
            for needed in (
                '"$K6_ARCHIVE_URL"',
                '--execution-segment "$K6_SEGMENT"',
                '--execution-segment-sequence "$K6_SEGMENT_SEQUENCE"',
                "--out csv=/results/samples.csv.gz",
                "/results/exit-code",
            ):
                if needed not in text:
                    self.fail("loadgen-containers", TD_FILE, f"k6: the command lacks {needed}")
            env = validate.env_map(k6.get("environment"))
            if env.get("SUMMARY_DIR") != "/results":
                self.fail("loadgen-containers", TD_FILE, "k6: SUMMARY_DIR must be /results")
            if env.get("K6_CSV_TIME_FORMAT") != "unix_milli":
                self.fail("loadgen-containers", TD_FILE, "k6: K6_CSV_TIME_FORMAT must be unix_milli")
            if k6.get("essential") is not False:
                self.fail(
                    "loadgen-containers",
                    TD_FILE,
                    "k6 must not be essential (the upload must run after it, whatever its exit code)",
                )
        if up:
            if {"containerName": "k6", "condition": "COMPLETE"} not in (up.get("dependsOn") or []):
                self.fail("loadgen-containers", TD_FILE, "upload must depend on k6 COMPLETE")
            if up.get("essential") is not True:
                self.fail("loadgen-containers", TD_FILE, "upload must be essential")
            text = _text(up)
            if "s3://$RESULTS_BUCKET/runs/$RUN_ID/$SEGMENT_NAME/" not in text:
                self.fail(
                    "loadgen-containers",
                    TD_FILE,
                    "upload must copy to s3://$RESULTS_BUCKET/runs/$RUN_ID/$SEGMENT_NAME/",
                )

    def check_stack(self) -> None:
        res = self.lg.stack.get("Resources") or {}
        tds = validate.cfn_resources(self.lg.stack, "AWS::ECS::TaskDefinition")
        if len(tds) != 1:
            self.fail("cfn-loadgen-parity", STACK_FILE, f"expected one task definition, got {len(tds)}")
        for name, r in tds.items():
            props = r.get("Properties") or {}
            params = self.lg.stack.get("Parameters") or {}
            for key in ("Cpu", "Memory"):
                value = props.get(key)
                ref = validate.ref_name(value)
                value = (params.get(ref) or {}).get("Default") if ref else value
                if str(value) != str(self.lg.task_def.get(key.lower())):
                    self.fail(
                        "cfn-loadgen-parity", STACK_FILE, f"{name}: {key} {value!r} differs from the JSON's"
                    )
            cfn_cs = {c.get("Name"): validate.cfn_to_api(c) for c in props.get("ContainerDefinitions") or []}
            for c in self.lg.task_def.get("containerDefinitions") or []:
                other = cfn_cs.get(c.get("name"))
                if other is None:
                    self.fail("cfn-loadgen-parity", STACK_FILE, f"{name}: no container {c.get('name')!r}")
                    continue
                for key in PARITY_KEYS:
                    if other.get(key) != c.get(key):
                        self.fail(
                            "cfn-loadgen-parity",
                            STACK_FILE,
                            f"{name}: container {c.get('name')}: {key} differs from "
                            f"{TD_FILE}: {other.get(key)!r} vs {c.get(key)!r}",
                        )
                if set(validate.env_map(other.get("environment"))) != set(
                    validate.env_map(c.get("environment"))
                ):
                    self.fail(
                        "cfn-loadgen-parity",
                        STACK_FILE,
                        f"{name}: container {c.get('name')}: environment names differ",
                    )
        role = (res.get("TaskRole") or {}).get("Properties") or {}
        statements = [
            s
            for p in role.get("Policies") or []
            for s in (p.get("PolicyDocument") or {}).get("Statement") or []
        ]
        ok = (
            not role.get("ManagedPolicyArns")
            and len(statements) == 1
            and statements[0].get("Effect") == "Allow"
            and statements[0].get("Action") in ("s3:PutObject", ["s3:PutObject"])
            and json.dumps(statements[0].get("Resource"))
            == json.dumps({"Fn::Sub": "${ResultsBucket.Arn}/runs/*"})
        )
        if not ok:
            self.fail(
                "cfn-loadgen-role",
                STACK_FILE,
                "TaskRole must allow only s3:PutObject on "
                "${ResultsBucket.Arn}/runs/* (no managed policies, no other statements)",
            )
        bucket = (res.get("ResultsBucket") or {}).get("Properties") or {}
        block = bucket.get("PublicAccessBlockConfiguration") or {}
        if not all(
            block.get(k) is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        ):
            self.fail("cfn-loadgen-bucket", STACK_FILE, "ResultsBucket must block all public access")
        if not bucket.get("BucketEncryption"):
            self.fail("cfn-loadgen-bucket", STACK_FILE, "ResultsBucket must be encrypted")
        sg = (res.get("GeneratorSecurityGroup") or {}).get("Properties") or {}
        if sg.get("SecurityGroupIngress"):
            self.fail("cfn-loadgen-network", STACK_FILE, "the generators must take no inbound traffic")
        ingress = [
            r.get("Properties") or {}
            for r in validate.cfn_resources(self.lg.stack, "AWS::EC2::SecurityGroupIngress").values()
        ]
        into_alb = [
            p
            for p in ingress
            if validate.ref_name(p.get("GroupId")) == "TargetLoadBalancerSecurityGroupId"
            and validate.ref_name(p.get("SourceSecurityGroupId")) == "GeneratorSecurityGroup"
        ]
        if not into_alb:
            self.fail(
                "cfn-loadgen-network",
                STACK_FILE,
                "no ingress from GeneratorSecurityGroup into the target ALB's security group",
            )

    def run(self, with_botocore: bool = True) -> list:
        if with_botocore:
            self.check_botocore()
        self.check_task_def()
        self.check_stack()
        return self.failures


def check(lg: Loadgen, with_botocore: bool = True) -> list:
    return Checker(copy.deepcopy(lg)).run(with_botocore)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=paths.ROOT)
    a = ap.parse_args(argv)
    failures = check(load(a.root))
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        print(f"validate_loadgen.py: {len(failures)} rule violation(s) in {TD_FILE}, {STACK_FILE}")
        return 1
    print(f"validate_loadgen.py: all rules hold for {TD_FILE}, {STACK_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
