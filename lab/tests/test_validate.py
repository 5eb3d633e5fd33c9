"""Shows that every rule of deploy/validate.py can fail: each test breaks one thing in a copy of
the real deployment files and expects that rule's id among the failures (and the real files pass).

Run: .venv-tools/bin/python -m unittest discover -s deploy -p 'test_*.py'
"""

from __future__ import annotations

import copy
import unittest

from heavylab import paths
from heavylab.deploy import validate

ROOT = paths.ROOT
REAL = validate.load_bundle(ROOT)


def container(bundle, kind):
    return validate.container_of(bundle.task_defs[kind])


def set_flag(command, flag, value):
    command[command.index(flag) + 1] = value


def cfn_props(bundle, name):
    return bundle.cfn["Resources"][name]["Properties"]


class RealFilesPass(unittest.TestCase):
    def test_real_files_pass_every_rule(self):
        self.assertEqual([str(f) for f in validate.check(REAL)], [])

    def test_loading_reads_the_final_stage(self):
        self.assertEqual(REAL.dockerfile["entrypoint"], ["/usr/local/bin/heavy-api"])
        self.assertEqual(REAL.dockerfile["user"], "65532:65532")
        self.assertEqual(REAL.dockerfile["stages"], 2)


class EachRuleCanFail(unittest.TestCase):
    def broken(self, mutate, rule, botocore=False):
        bundle = copy.deepcopy(REAL)
        mutate(bundle)
        failures = validate.check(bundle, with_botocore=botocore)
        rules = {f.rule for f in failures}
        self.assertIn(rule, rules, f"expected a {rule!r} failure, got {[str(f) for f in failures]}")
        return failures

    # --- botocore's model
    def test_botocore_wrong_type(self):
        self.broken(lambda b: container(b, "EC2").update(stopTimeout="60"), "botocore", True)

    def test_botocore_unknown_key(self):
        self.broken(lambda b: b.services["FARGATE"].update(desiredTasks=1), "botocore", True)

    def test_botocore_missing_required(self):
        self.broken(lambda b: b.task_defs["FARGATE"].pop("family"), "botocore", True)

    def test_botocore_wrong_structure(self):
        self.broken(lambda b: b.task_defs["EC2"].update(containerDefinitions={}), "botocore", True)
        self.broken(
            lambda b: container(b, "FARGATE")["portMappings"][0].update(containerPort="8000"),
            "botocore",
            True,
        )

    def test_enums_botocore_skips_are_still_caught(self):
        # botocore's validator does not check enum values; the launch-type rule does.
        self.broken(lambda b: b.services["EC2"].update(launchType="LAMBDA"), "service-launch-type")

    # --- task definitions
    def test_fargate_cpu_memory_pair(self):
        self.broken(lambda b: b.task_defs["FARGATE"].update(memory="3072"), "fargate-cpu-memory")
        self.broken(lambda b: b.task_defs["FARGATE"].update(cpu="3000"), "fargate-cpu-memory")

    def test_fargate_stop_timeout_max(self):
        def mutate(b):
            for kind in validate.KINDS:
                container(b, kind)["stopTimeout"] = 121

        self.broken(mutate, "fargate-stop-timeout")

    def test_stop_timeout_required(self):
        self.broken(lambda b: container(b, "EC2").pop("stopTimeout"), "stop-timeout")

    def test_graceful_timeout_below_stop_timeout(self):
        self.broken(
            lambda b: set_flag(container(b, "EC2")["command"], "--graceful-timeout", "60"), "graceful-timeout"
        )

    def test_graceful_timeout_default_counts(self):
        def mutate(b):
            c = container(b, "EC2")
            c["stopTimeout"] = 30  # the server's default --graceful-timeout is 30
            i = c["command"].index("--graceful-timeout")
            del c["command"][i : i + 2]

        self.broken(mutate, "graceful-timeout")

    def test_drain_budget(self):
        # A deregistration delay beyond the ALB idle timeout buys no request anything.
        def mutate(b):
            for tg in ("Ec2TargetGroup", "FargateTargetGroup"):
                cfn_props(b, tg)["TargetGroupAttributes"][0]["Value"] = "90"

        self.broken(mutate, "drain-budget")

    def test_drain_budget_is_not_delay_plus_graceful(self):
        # The old rule (delay + graceful < stopTimeout) counted time no ALB request gets: 30 + 25
        # >= 50 is fine now, as long as --graceful-timeout < stopTimeout.
        def mutate(b):
            for tds in (b.task_defs, b.arm_task_defs):
                for kind in validate.KINDS:
                    validate.container_of(tds[kind])["stopTimeout"] = 50
            for name in ("Ec2TaskDefinition", "FargateTaskDefinition"):
                cfn_props(b, name)["ContainerDefinitions"][0]["StopTimeout"] = 50

        bundle = copy.deepcopy(REAL)
        mutate(bundle)
        self.assertEqual([str(f) for f in validate.check(bundle, with_botocore=False)], [])

    def test_keep_alive_above_alb_idle_timeout(self):
        self.broken(
            lambda b: set_flag(container(b, "FARGATE")["command"], "--keep-alive", "60"), "keep-alive"
        )

    def test_keep_alive_checked_against_the_templates_idle_timeout(self):
        def mutate(b):
            attrs = cfn_props(b, "LoadBalancer")["LoadBalancerAttributes"]
            attrs[0]["Value"] = "90"

        self.broken(mutate, "keep-alive")

    def test_bind_reachable_and_on_the_container_port(self):
        self.broken(lambda b: set_flag(container(b, "EC2")["command"], "--bind", "127.0.0.1:8000"), "bind")
        self.broken(lambda b: set_flag(container(b, "EC2")["command"], "--bind", "0.0.0.0:9000"), "bind")

    def test_health_check_ranges(self):
        for key, bad in (
            ("interval", 4),
            ("interval", 301),
            ("timeout", 1),
            ("timeout", 61),
            ("retries", 0),
            ("retries", 11),
            ("startPeriod", -1),
            ("startPeriod", 301),
        ):
            with self.subTest(key=key, value=bad):
                self.broken(
                    lambda b, k=key, v=bad: container(b, "EC2")["healthCheck"].update({k: v}),
                    "health-check-range",
                )

    def test_health_check_timeout_above_probe_timeout(self):
        self.broken(lambda b: container(b, "EC2")["healthCheck"].update(timeout=3), "health-check-range")

    def test_health_check_needs_exec_form(self):
        self.broken(
            lambda b: container(b, "EC2")["healthCheck"].update(
                command=["CMD-SHELL", "curl -f http://localhost:8000/heavy/health/ || exit 1"]
            ),
            "health-check-command",
        )

    def test_health_check_required(self):
        self.broken(lambda b: container(b, "FARGATE").pop("healthCheck"), "health-check")

    def test_ec2_needs_nofile(self):
        self.broken(lambda b: container(b, "EC2").pop("ulimits"), "ulimit-nofile")

    def test_awslogs(self):
        self.broken(
            lambda b: container(b, "FARGATE").update(logConfiguration={"logDriver": "json-file"}), "awslogs"
        )

    def test_network_mode_and_compatibility(self):
        self.broken(lambda b: b.task_defs["EC2"].update(networkMode="bridge"), "network-mode")
        self.broken(lambda b: b.task_defs["EC2"].update(requiresCompatibilities=["FARGATE"]), "compatibility")

    def test_execution_role(self):
        self.broken(lambda b: b.task_defs["FARGATE"].pop("executionRoleArn"), "execution-role")

    # --- EC2 and Fargate alike, and like the image
    def test_parity_command(self):
        self.broken(lambda b: set_flag(container(b, "FARGATE")["command"], "--workers", "8"), "parity")

    def test_parity_environment(self):
        self.broken(
            lambda b: container(b, "EC2")["environment"].append({"name": "WEB_CONCURRENCY", "value": "8"}),
            "parity",
        )

    def test_parity_image(self):
        self.broken(lambda b: container(b, "EC2").update(image="heavy-api:other"), "parity")

    def test_parity_task_size(self):
        self.broken(lambda b: b.task_defs["EC2"].update(memory="8192"), "parity")

    def test_workers_explicit_in_task_definitions(self):
        self.broken(
            lambda b: set_flag(container(b, "EC2")["command"], "--workers", "auto"), "workers-explicit"
        )
        self.broken(
            lambda b: set_flag(
                validate.container_of(b.arm_task_defs["FARGATE"])["command"], "--workers", "6"
            ),
            "workers-explicit",
        )

        def no_flag(b):
            c = container(b, "FARGATE")
            i = c["command"].index("--workers")
            del c["command"][i : i + 2]

        self.broken(no_flag, "workers-explicit")

    def test_image_runs_workers_auto(self):
        self.broken(lambda b: set_flag(b.dockerfile["cmd"], "--workers", "4"), "dockerfile-workers")

    def test_only_workers_and_drain_delay_may_differ_from_the_image(self):
        self.assertNotEqual(container(REAL, "EC2")["command"], REAL.dockerfile["cmd"])
        ours, image = container(REAL, "EC2")["command"], REAL.dockerfile["cmd"]
        for flag in validate.ECS_ONLY_FLAGS:
            ours, image = validate.without_flag(ours, flag), validate.without_flag(image, flag)
        self.assertEqual(ours, image)
        self.assertEqual(
            validate.without_flag(["--workers=3", "-b", "x", "--workers", "2"], "--workers"), ["-b", "x"]
        )

    def test_command_matches_dockerfile(self):
        def mutate(b):
            for kind in validate.KINDS:
                set_flag(container(b, kind)["command"], "--threads", "4")

        self.broken(mutate, "dockerfile-command")

    # --- services
    def test_service_launch_type(self):
        self.broken(lambda b: b.services["FARGATE"].update(launchType="EC2"), "service-launch-type")

    def test_service_task_definition(self):
        self.broken(
            lambda b: b.services["EC2"].update(taskDefinition="heavy-api-fargate:3"),
            "service-task-definition",
        )

    def test_service_load_balancer(self):
        self.broken(
            lambda b: b.services["EC2"]["loadBalancers"][0].update(containerPort=80), "service-load-balancer"
        )

    def test_service_network(self):
        self.broken(
            lambda b: b.services["EC2"]["networkConfiguration"]["awsvpcConfiguration"].update(
                assignPublicIp="ENABLED"
            ),
            "service-network",
        )
        self.broken(lambda b: b.services["FARGATE"].pop("networkConfiguration"), "service-network")

    def test_service_grace(self):
        self.broken(lambda b: b.services["EC2"].update(healthCheckGracePeriodSeconds=5), "service-grace")

    def test_service_deployment_can_progress(self):
        self.broken(
            lambda b: b.services["EC2"]["deploymentConfiguration"].update(maximumPercent=100),
            "service-deployment",
        )

    # --- Dockerfile
    def test_dockerfile_rules(self):
        self.broken(lambda b: b.dockerfile.update(user="root"), "dockerfile")
        self.broken(lambda b: b.dockerfile.update(cmd="--bind 0.0.0.0:8000"), "dockerfile")
        self.broken(lambda b: b.dockerfile.update(healthcheck=None), "dockerfile")
        self.broken(lambda b: b.dockerfile.update(stages=1), "dockerfile")
        self.broken(
            lambda b: b.dockerfile.update(**{"from": "gcr.io/distroless/static-debian12"}), "dockerfile"
        )

    def test_dockerfile_parser(self):
        parsed = validate.parse_dockerfile(
            "FROM a:1 AS b\nUSER root\nFROM c:2\n# x\nUSER 1:1\nHEALTHCHECK --interval=5s \\\n"
            '    CMD ["/x", "healthcheck"]\nENTRYPOINT ["/x"]\nCMD ["--bind", "0.0.0.0:1"]\n'
        )
        self.assertEqual(parsed["user"], "1:1")
        self.assertEqual(parsed["healthcheck"], ["/x", "healthcheck"])
        self.assertEqual(parsed["healthcheck_options"], {"interval": "5s"})
        self.assertEqual(parsed["cmd"], ["--bind", "0.0.0.0:1"])

    # --- docker-compose.yml
    def test_compose_stop_grace_period(self):
        self.broken(
            lambda b: b.compose["services"]["heavy-api"].update(stop_grace_period="25s"), "compose-stop-grace"
        )
        self.broken(
            lambda b: b.compose["services"]["heavy-api"].pop("stop_grace_period"), "compose-stop-grace"
        )

    def test_compose_healthcheck(self):
        self.broken(
            lambda b: b.compose["services"]["heavy-api"]["healthcheck"].update(
                test="curl -f http://localhost:8000/heavy/health/"
            ),
            "compose-healthcheck",
        )

    def test_durations(self):
        self.assertEqual(validate.parse_duration("1m30s"), 90)
        self.assertEqual(validate.parse_duration("35s"), 35)
        self.assertIsNone(validate.parse_duration("35"))

    # --- CloudFormation
    def test_cfn_health_check_path(self):
        self.broken(lambda b: cfn_props(b, "Ec2TargetGroup").update(HealthCheckPath="/"), "cfn-readiness")
        # Liveness is the container's probe; the ALB must ask readiness.
        self.broken(
            lambda b: cfn_props(b, "FargateTargetGroup").update(HealthCheckPath="/heavy/health/"),
            "cfn-readiness",
        )
        self.broken(
            lambda b: cfn_props(b, "FargateTargetGroup").update(Matcher={"HttpCode": "200-503"}),
            "cfn-readiness",
        )

    # --- readiness and the drain delay
    def test_drain_delay_covers_the_albs_unhealthy_time(self):
        # 10 s x 3 = 30 s > --drain-delay 20: the ALB would still route to a stopped listener.
        self.broken(
            lambda b: cfn_props(b, "Ec2TargetGroup").update(UnhealthyThresholdCount=3), "drain-readiness"
        )
        self.broken(
            lambda b: cfn_props(b, "FargateTargetGroup").update(HealthCheckIntervalSeconds=15),
            "drain-readiness",
        )

        def no_delay(b):
            for kind in validate.KINDS:
                c = container(b, kind)
                i = c["command"].index("--drain-delay")
                del c["command"][i : i + 2]  # the server's default, 0

        self.broken(no_delay, "drain-readiness")

    def test_drain_delay_plus_graceful_timeout_below_stop_timeout(self):
        # 20 + 25 = 45 < 60; with 40: 40 + 25 = 65 >= 60 (SIGKILL mid-drain).
        self.broken(
            lambda b: set_flag(container(b, "FARGATE")["command"], "--drain-delay", "40"), "drain-stop"
        )
        self.broken(lambda b: container(b, "EC2").update(stopTimeout=45), "drain-stop")

    def test_drain_delay_may_differ_from_the_image(self):
        self.assertNotIn("--drain-delay", REAL.dockerfile["cmd"])
        self.assertEqual(
            validate.parse_server_flags(container(REAL, "EC2")["command"])["--drain-delay"], "20"
        )
        # but nothing else may: a drain delay in the image's CMD only is still a difference
        self.broken(lambda b: b.dockerfile["cmd"].extend(["--max-requests", "5"]), "dockerfile-command")

    def test_cfn_deregistration_delay(self):
        self.broken(
            lambda b: cfn_props(b, "FargateTargetGroup").pop("TargetGroupAttributes"),
            "cfn-deregistration-delay",
        )
        self.broken(
            lambda b: cfn_props(b, "FargateTargetGroup")["TargetGroupAttributes"][0].update(Value="10"),
            "cfn-deregistration-delay",
        )

    def test_cfn_task_definition_matches_json(self):
        self.broken(
            lambda b: cfn_props(b, "FargateTaskDefinition")["ContainerDefinitions"][0].update(StopTimeout=45),
            "cfn-task-definition",
        )
        self.broken(lambda b: cfn_props(b, "Ec2TaskDefinition").update(Memory="8192"), "cfn-task-definition")

    def test_cfn_autoscaling(self):
        def mutate(b):
            del b.cfn["Resources"]["FargateCpuScalingPolicy"]

        self.broken(mutate, "cfn-autoscaling")

        def wrong_metric(b):
            cfg = cfn_props(b, "Ec2CpuScalingPolicy")["TargetTrackingScalingPolicyConfiguration"]
            cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] = "ALBRequestCountPerTarget"

        self.broken(wrong_metric, "cfn-autoscaling")

    # --- architectures
    def test_runtime_platform_matches_the_file(self):
        self.broken(
            lambda b: b.arm_task_defs["FARGATE"]["runtimePlatform"].update(cpuArchitecture="X86_64"),
            "arch-runtime-platform",
        )
        self.broken(lambda b: b.task_defs["EC2"].pop("runtimePlatform"), "arch-runtime-platform")
        self.broken(
            lambda b: b.arm_task_defs["EC2"]["runtimePlatform"].update(
                operatingSystemFamily="WINDOWS_SERVER_2022_CORE"
            ),
            "arch-runtime-platform",
        )

    def test_ec2_placement_pins_the_architecture(self):
        self.broken(lambda b: b.arm_task_defs["EC2"].pop("placementConstraints"), "arch-placement")
        self.broken(
            lambda b: b.task_defs["EC2"]["placementConstraints"][0].update(
                expression="attribute:ecs.cpu-architecture == arm64"
            ),
            "arch-placement",
        )

    def test_x86_instance_type_with_arm64_task(self):
        self.broken(
            lambda b: b.arm_task_defs["EC2"]["placementConstraints"].append(
                {"type": "memberOf", "expression": "attribute:ecs.instance-type == m6i.large"}
            ),
            "arch-instance-type",
        )
        self.broken(
            lambda b: cfn_props(b, "LaunchTemplate")["LaunchTemplateData"].update(
                InstanceType={"Fn::If": ["IsArm64", {"Ref": "X86InstanceType"}, {"Ref": "X86InstanceType"}]}
            ),
            "arch-instance-type",
        )
        self.broken(
            lambda b: b.cfn["Parameters"]["Arm64InstanceType"].update(Default="c6i.large"),
            "arch-instance-type",
        )
        self.broken(
            lambda b: b.cfn["Parameters"]["Arm64InstanceType"].update(AllowedPattern="^[a-z0-9.-]+$"),
            "arch-instance-type",
        )

    def test_arm64_instance_type_with_x86_task(self):
        self.broken(
            lambda b: b.task_defs["EC2"]["placementConstraints"].append(
                {"type": "memberOf", "expression": "attribute:ecs.instance-type =~ c7g.*"}
            ),
            "arch-instance-type",
        )
        self.broken(
            lambda b: b.cfn["Parameters"]["X86InstanceType"].update(Default="m7g.large"), "arch-instance-type"
        )
        self.broken(
            lambda b: b.cfn["Parameters"]["X86InstanceType"].update(
                AllowedPattern="^[a-z]+[0-9]+[a-z-]*\\.[0-9a-z]+$"
            ),
            "arch-instance-type",
        )

    def test_cfn_architecture_selects_ami_and_runtime_platform(self):
        self.broken(
            lambda b: cfn_props(b, "LaunchTemplate")["LaunchTemplateData"].update(
                ImageId={"Ref": "EcsAmiIdX86"}
            ),
            "cfn-architecture",
        )
        self.broken(
            lambda b: cfn_props(b, "FargateTaskDefinition")["RuntimePlatform"].update(
                CpuArchitecture="X86_64"
            ),
            "cfn-architecture",
        )
        self.broken(
            lambda b: cfn_props(b, "Ec2TaskDefinition")["PlacementConstraints"][0].update(
                Expression="attribute:ecs.cpu-architecture == x86_64"
            ),
            "arch-placement",
        )
        self.broken(lambda b: b.cfn["Parameters"].pop("Architecture"), "cfn-architecture")

    def test_arm64_variant_equals_the_x86_one(self):
        self.broken(
            lambda b: validate.container_of(b.arm_task_defs["EC2"]).update(stopTimeout=30), "arch-variant"
        )
        self.broken(lambda b: b.arm_task_defs["FARGATE"].update(memory="8192"), "arch-variant")

    def test_arm64_task_definitions_pass_botocore(self):
        self.broken(
            lambda b: b.arm_task_defs["EC2"]["runtimePlatform"].update(cpuArchitecture=64), "botocore", True
        )

    def test_instance_architecture(self):
        for itype, arch in validate.INSTANCE_SAMPLES.items():
            self.assertEqual(validate.instance_architecture(itype), arch, itype)
        self.assertIsNone(validate.instance_architecture("large"))

    # --- capacity provider and desired count
    def test_managed_termination_protection(self):
        provider = "Ec2CapacityProvider"
        self.broken(
            lambda b: cfn_props(b, provider)["AutoScalingGroupProvider"].update(
                ManagedTerminationProtection="DISABLED"
            ),
            "cfn-capacity-provider",
        )
        self.broken(
            lambda b: cfn_props(b, "AutoScalingGroup").pop("NewInstancesProtectedFromScaleIn"),
            "cfn-capacity-provider",
        )
        self.broken(
            lambda b: cfn_props(b, provider)["AutoScalingGroupProvider"].update(ManagedDraining="DISABLED"),
            "cfn-capacity-provider",
        )
        self.broken(
            lambda b: cfn_props(b, provider)["AutoScalingGroupProvider"]["ManagedScaling"].update(
                Status="DISABLED"
            ),
            "cfn-capacity-provider",
        )

    def test_no_desired_count_on_auto_scaled_services(self):
        self.broken(lambda b: cfn_props(b, "FargateService").update(DesiredCount=1), "cfn-desired-count")

    def test_cfn_service_grace(self):
        self.broken(
            lambda b: cfn_props(b, "Ec2Service").update(HealthCheckGracePeriodSeconds=0), "cfn-service"
        )


if __name__ == "__main__":
    unittest.main()
