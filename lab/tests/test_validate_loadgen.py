"""Shows that every rule of deploy/validate_loadgen.py can fail: each test breaks one thing in a
copy of the real load-generator files and expects that rule's id (and the real files pass).

Run: .venv-tools/bin/python -m unittest discover -s deploy -p 'test_*.py'
"""

from __future__ import annotations

import copy
import unittest

from heavylab import paths
from heavylab.deploy import validate_loadgen as vl

ROOT = paths.ROOT
REAL = vl.load(ROOT)


def c(lg, name):
    return next(x for x in lg.task_def["containerDefinitions"] if x["name"] == name)


def res(lg, name):
    return lg.stack["Resources"][name]["Properties"]


class RealFilesPass(unittest.TestCase):
    def test_real_files_pass(self):
        self.assertEqual([str(f) for f in vl.check(REAL)], [])

    def test_k6_version_is_read_from_the_runner(self):
        self.assertRegex(REAL.k6_version, r"^\d+\.\d+\.\d+$")


class EachRuleCanFail(unittest.TestCase):
    def broken(self, mutate, rule, botocore=False):
        lg = copy.deepcopy(REAL)
        mutate(lg)
        failures = vl.check(lg, with_botocore=botocore)
        self.assertIn(
            rule, {f.rule for f in failures}, f"expected {rule!r}, got {[str(f) for f in failures]}"
        )

    def test_botocore(self):
        self.broken(lambda lg: lg.task_def.update(cpu=2048), "botocore", True)
        self.broken(lambda lg: c(lg, "k6").update(dependsOnX=[]), "botocore", True)

    def test_fargate(self):
        self.broken(lambda lg: lg.task_def.update(memory="1024"), "loadgen-fargate")
        self.broken(lambda lg: lg.task_def.update(networkMode="bridge"), "loadgen-fargate")

    def test_images(self):
        self.broken(lambda lg: c(lg, "k6").update(image="grafana/k6:latest"), "loadgen-images")
        self.broken(lambda lg: c(lg, "k6").update(image="grafana/k6:0.49.0"), "loadgen-images")
        self.broken(lambda lg: c(lg, "upload").update(image="amazon/aws-cli"), "loadgen-images")

    def test_containers(self):
        self.broken(lambda lg: c(lg, "k6").update(essential=True), "loadgen-containers")
        self.broken(lambda lg: c(lg, "upload").update(dependsOn=[]), "loadgen-containers")
        self.broken(
            lambda lg: c(lg, "k6").update(
                command=[c(lg, "k6")["command"][0].replace('"$K6_SEGMENT"', "0:1")]
            ),
            "loadgen-containers",
        )
        self.broken(
            lambda lg: c(lg, "k6").update(
                command=[c(lg, "k6")["command"][0].replace("--out csv=/results/samples.csv.gz", "")]
            ),
            "loadgen-containers",
        )
        self.broken(lambda lg: c(lg, "upload").update(mountPoints=[]), "loadgen-containers")
        self.broken(lambda lg: c(lg, "k6").update(environment=[]), "loadgen-containers")
        self.broken(lambda lg: lg.task_def["containerDefinitions"].pop(), "loadgen-containers")

    def test_logs_and_role(self):
        self.broken(lambda lg: c(lg, "upload").pop("logConfiguration"), "loadgen-logs")
        self.broken(lambda lg: lg.task_def.pop("taskRoleArn"), "loadgen-task-role")

    def test_stack_parity(self):
        def change_cmd(lg):
            k6 = res(lg, "TaskDefinition")["ContainerDefinitions"][0]
            k6["Command"] = [k6["Command"][0].replace("--quiet ", "")]

        self.broken(change_cmd, "cfn-loadgen-parity")
        self.broken(lambda lg: lg.stack["Parameters"]["TaskCpu"].update(Default="4096"), "cfn-loadgen-parity")

    def test_stack_role_is_put_only(self):
        def widen(lg):
            st = res(lg, "TaskRole")["Policies"][0]["PolicyDocument"]["Statement"][0]
            st["Action"] = ["s3:PutObject", "s3:GetObject"]

        self.broken(widen, "cfn-loadgen-role")
        self.broken(
            lambda lg: res(lg, "TaskRole")["Policies"][0]["PolicyDocument"]["Statement"][0].update(
                Resource="*"
            ),
            "cfn-loadgen-role",
        )
        self.broken(
            lambda lg: res(lg, "TaskRole").update(
                ManagedPolicyArns=["arn:aws:iam::aws:policy/AmazonS3FullAccess"]
            ),
            "cfn-loadgen-role",
        )

    def test_stack_bucket(self):
        self.broken(
            lambda lg: res(lg, "ResultsBucket")["PublicAccessBlockConfiguration"].update(
                BlockPublicPolicy=False
            ),
            "cfn-loadgen-bucket",
        )
        self.broken(lambda lg: res(lg, "ResultsBucket").pop("BucketEncryption"), "cfn-loadgen-bucket")

    def test_stack_network(self):
        self.broken(
            lambda lg: res(lg, "GeneratorSecurityGroup").update(
                SecurityGroupIngress=[
                    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}
                ]
            ),
            "cfn-loadgen-network",
        )

        def drop_ingress(lg):
            for name in ("TargetIngressFirstPort", "TargetIngressSecondPort"):
                del lg.stack["Resources"][name]

        self.broken(drop_ingress, "cfn-loadgen-network")


if __name__ == "__main__":
    unittest.main()
