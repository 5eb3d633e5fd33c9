"""Shows that every rule of deploy/validate_loadgen.py can fail: each test breaks one thing in a
copy of the real load-generator files and expects that rule's id (and the real files pass).
"""

from __future__ import annotations

import copy
import re

from heavylab import paths
from heavylab.deploy import validate_loadgen as vl

ROOT = paths.ROOT
REAL = vl.load(ROOT)


def c(lg, name):
    return next(x for x in lg.task_def["containerDefinitions"] if x["name"] == name)


def res(lg, name):
    return lg.stack["Resources"][name]["Properties"]


def test_real_files_pass():
    assert [str(f) for f in vl.check(REAL)] == []


def test_k6_version_is_read_from_the_runner():
    assert re.fullmatch(r"\d+\.\d+\.\d+", REAL.k6_version), REAL.k6_version


def broken(mutate, rule, botocore=False):
    lg = copy.deepcopy(REAL)
    mutate(lg)
    failures = vl.check(lg, with_botocore=botocore)
    assert rule in {f.rule for f in failures}, f"expected {rule!r}, got {[str(f) for f in failures]}"


def test_botocore():
    broken(lambda lg: lg.task_def.update(cpu=2048), "botocore", True)
    broken(lambda lg: c(lg, "k6").update(dependsOnX=[]), "botocore", True)


def test_fargate():
    broken(lambda lg: lg.task_def.update(memory="1024"), "loadgen-fargate")
    broken(lambda lg: lg.task_def.update(networkMode="bridge"), "loadgen-fargate")


def test_images():
    broken(lambda lg: c(lg, "k6").update(image="grafana/k6:latest"), "loadgen-images")
    broken(lambda lg: c(lg, "k6").update(image="grafana/k6:0.49.0"), "loadgen-images")
    broken(lambda lg: c(lg, "upload").update(image="amazon/aws-cli"), "loadgen-images")


def test_containers():
    broken(lambda lg: c(lg, "k6").update(essential=True), "loadgen-containers")
    broken(lambda lg: c(lg, "upload").update(dependsOn=[]), "loadgen-containers")
    broken(
        lambda lg: c(lg, "k6").update(command=[c(lg, "k6")["command"][0].replace('"$K6_SEGMENT"', "0:1")]),
        "loadgen-containers",
    )
    broken(
        lambda lg: c(lg, "k6").update(
            command=[c(lg, "k6")["command"][0].replace("--out csv=/results/samples.csv.gz", "")]
        ),
        "loadgen-containers",
    )
    broken(lambda lg: c(lg, "upload").update(mountPoints=[]), "loadgen-containers")
    broken(lambda lg: c(lg, "k6").update(environment=[]), "loadgen-containers")
    broken(lambda lg: lg.task_def["containerDefinitions"].pop(), "loadgen-containers")


def test_logs_and_role():
    broken(lambda lg: c(lg, "upload").pop("logConfiguration"), "loadgen-logs")
    broken(lambda lg: lg.task_def.pop("taskRoleArn"), "loadgen-task-role")


def test_stack_parity():
    def change_cmd(lg):
        k6 = res(lg, "TaskDefinition")["ContainerDefinitions"][0]
        k6["Command"] = [k6["Command"][0].replace("--quiet ", "")]

    broken(change_cmd, "cfn-loadgen-parity")
    broken(lambda lg: lg.stack["Parameters"]["TaskCpu"].update(Default="4096"), "cfn-loadgen-parity")


def test_stack_role_is_put_only():
    def widen(lg):
        st = res(lg, "TaskRole")["Policies"][0]["PolicyDocument"]["Statement"][0]
        st["Action"] = ["s3:PutObject", "s3:GetObject"]

    broken(widen, "cfn-loadgen-role")
    broken(
        lambda lg: res(lg, "TaskRole")["Policies"][0]["PolicyDocument"]["Statement"][0].update(Resource="*"),
        "cfn-loadgen-role",
    )
    broken(
        lambda lg: res(lg, "TaskRole").update(
            ManagedPolicyArns=["arn:aws:iam::aws:policy/AmazonS3FullAccess"]
        ),
        "cfn-loadgen-role",
    )


def test_stack_bucket():
    broken(
        lambda lg: res(lg, "ResultsBucket")["PublicAccessBlockConfiguration"].update(BlockPublicPolicy=False),
        "cfn-loadgen-bucket",
    )
    broken(lambda lg: res(lg, "ResultsBucket").pop("BucketEncryption"), "cfn-loadgen-bucket")


def test_stack_network():
    broken(
        lambda lg: res(lg, "GeneratorSecurityGroup").update(
            SecurityGroupIngress=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}]
        ),
        "cfn-loadgen-network",
    )

    def drop_ingress(lg):
        for name in ("TargetIngressFirstPort", "TargetIngressSecondPort"):
            del lg.stack["Resources"][name]

    broken(drop_ingress, "cfn-loadgen-network")
