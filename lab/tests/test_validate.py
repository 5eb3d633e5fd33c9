"""Shows that every rule of the deployment validator can fail: each test breaks one thing in a copy
of the real deployment files and expects that rule's id among the failures (and the real files
pass). The effective settings come from the real binary (`heavy-api --print-config=json`).
"""

from __future__ import annotations

import copy

import pytest

from heavylab import paths
from heavylab.deploy import bundle as files
from heavylab.deploy import dockerfile, rules_cfn, server, validate

ROOT = paths.ROOT
REAL = validate.load_bundle(ROOT)


def container(bundle, kind):
    return files.container_of(bundle.task_defs[kind])


def set_flag(command, flag, value):
    command[command.index(flag) + 1] = value


def cfn_props(bundle, name):
    return bundle.cfn["Resources"][name]["Properties"]


def test_real_files_pass_every_rule():
    assert [str(f) for f in validate.check(REAL)] == []


def test_loading_reads_the_final_stage():
    assert REAL.dockerfile["entrypoint"] == ["/usr/local/bin/heavy-api"]
    assert REAL.dockerfile["user"] == "65532:65532"
    assert REAL.dockerfile["stages"] == 2
    assert REAL.dockerfile["env"] == {"WEB_CONCURRENCY": "auto"}


def broken(mutate, rule, botocore=False):
    """Breaks a copy of the real files with `mutate`; the rule `rule` must report it."""
    bundle = copy.deepcopy(REAL)
    mutate(bundle)
    failures = validate.check(bundle, with_botocore=botocore)
    assert rule in {f.rule for f in failures}, (
        f"expected a {rule!r} failure, got {[str(f) for f in failures]}"
    )
    return failures


# --- botocore's model
def test_botocore_wrong_type():
    broken(lambda b: container(b, "EC2").update(stopTimeout="60"), "botocore", True)


def test_botocore_unknown_key():
    broken(lambda b: b.services["FARGATE"].update(desiredTasks=1), "botocore", True)


def test_botocore_missing_required():
    broken(lambda b: b.task_defs["FARGATE"].pop("family"), "botocore", True)


def test_botocore_wrong_structure():
    broken(lambda b: b.task_defs["EC2"].update(containerDefinitions={}), "botocore", True)
    broken(
        lambda b: container(b, "FARGATE")["portMappings"][0].update(containerPort="8000"),
        "botocore",
        True,
    )


def test_enums_botocore_skips_are_still_caught():
    # botocore's validator does not check enum values; the launch-type rule does.
    broken(lambda b: b.services["EC2"].update(launchType="LAMBDA"), "service-launch-type")


# --- task definitions
def test_fargate_cpu_memory_pair():
    broken(lambda b: b.task_defs["FARGATE"].update(memory="3072"), "fargate-cpu-memory")
    broken(lambda b: b.task_defs["FARGATE"].update(cpu="3000"), "fargate-cpu-memory")


def test_fargate_stop_timeout_max():
    def mutate(b):
        for kind in files.KINDS:
            container(b, kind)["stopTimeout"] = 121

    broken(mutate, "fargate-stop-timeout")


def test_stop_timeout_required():
    broken(lambda b: container(b, "EC2").pop("stopTimeout"), "stop-timeout")


def test_graceful_timeout_below_stop_timeout():
    broken(lambda b: set_flag(container(b, "EC2")["command"], "--graceful-timeout", "60"), "graceful-timeout")


def test_graceful_timeout_default_counts():
    def mutate(b):
        c = container(b, "EC2")
        c["stopTimeout"] = 30  # the server's default --graceful-timeout is 30
        i = c["command"].index("--graceful-timeout")
        del c["command"][i : i + 2]

    broken(mutate, "graceful-timeout")


def test_drain_budget():
    # A deregistration delay beyond the ALB idle timeout buys no request anything.
    def mutate(b):
        for tg in ("Ec2TargetGroup", "FargateTargetGroup"):
            cfn_props(b, tg)["TargetGroupAttributes"][0]["Value"] = "90"

    broken(mutate, "drain-budget")


def test_drain_budget_is_not_delay_plus_graceful():
    # The old rule (delay + graceful < stopTimeout) counted time no ALB request gets: 30 + 25
    # >= 50 is fine now, as long as --graceful-timeout < stopTimeout.
    def mutate(b):
        for tds in (b.task_defs, b.arm_task_defs):
            for kind in files.KINDS:
                files.container_of(tds[kind])["stopTimeout"] = 50
        for name in ("Ec2TaskDefinition", "FargateTaskDefinition"):
            cfn_props(b, name)["ContainerDefinitions"][0]["StopTimeout"] = 50

    bundle = copy.deepcopy(REAL)
    mutate(bundle)
    assert [str(f) for f in validate.check(bundle, with_botocore=False)] == []


def test_keep_alive_above_alb_idle_timeout():
    broken(lambda b: set_flag(container(b, "FARGATE")["command"], "--keep-alive", "60"), "keep-alive")


def test_keep_alive_checked_against_the_templates_idle_timeout():
    def mutate(b):
        attrs = cfn_props(b, "LoadBalancer")["LoadBalancerAttributes"]
        attrs[0]["Value"] = "90"

    broken(mutate, "keep-alive")


def test_bind_reachable_and_on_the_container_port():
    broken(lambda b: set_flag(container(b, "EC2")["command"], "--bind", "127.0.0.1:8000"), "bind")
    broken(lambda b: set_flag(container(b, "EC2")["command"], "--bind", "0.0.0.0:9000"), "bind")


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("interval", 4),
        ("interval", 301),
        ("timeout", 1),
        ("timeout", 61),
        ("retries", 0),
        ("retries", 11),
        ("startPeriod", -1),
        ("startPeriod", 301),
    ],
)
def test_health_check_ranges(key, bad):
    broken(lambda b: container(b, "EC2")["healthCheck"].update({key: bad}), "health-check-range")


def test_health_check_timeout_above_probe_timeout():
    broken(lambda b: container(b, "EC2")["healthCheck"].update(timeout=3), "health-check-range")


def test_health_check_needs_exec_form():
    broken(
        lambda b: container(b, "EC2")["healthCheck"].update(
            command=["CMD-SHELL", "curl -f http://localhost:8000/heavy/health/ || exit 1"]
        ),
        "health-check-command",
    )


def test_health_check_required():
    broken(lambda b: container(b, "FARGATE").pop("healthCheck"), "health-check")


def test_ec2_needs_nofile():
    broken(lambda b: container(b, "EC2").pop("ulimits"), "ulimit-nofile")


def test_awslogs():
    broken(lambda b: container(b, "FARGATE").update(logConfiguration={"logDriver": "json-file"}), "awslogs")


def test_network_mode_and_compatibility():
    broken(lambda b: b.task_defs["EC2"].update(networkMode="bridge"), "network-mode")
    broken(lambda b: b.task_defs["EC2"].update(requiresCompatibilities=["FARGATE"]), "compatibility")


def test_execution_role():
    broken(lambda b: b.task_defs["FARGATE"].pop("executionRoleArn"), "execution-role")


# --- EC2 and Fargate alike, and like the image
def test_parity_command():
    broken(lambda b: set_flag(container(b, "FARGATE")["command"], "--workers", "8"), "parity")


def test_parity_environment():
    broken(
        lambda b: container(b, "EC2")["environment"].append({"name": "WEB_CONCURRENCY", "value": "8"}),
        "parity",
    )


def test_parity_image():
    broken(lambda b: container(b, "EC2").update(image="heavy-api:other"), "parity")


def test_parity_task_size():
    broken(lambda b: b.task_defs["EC2"].update(memory="8192"), "parity")


def test_workers_explicit_in_task_definitions():
    broken(lambda b: set_flag(container(b, "EC2")["command"], "--workers", "auto"), "workers-explicit")
    broken(
        lambda b: set_flag(files.container_of(b.arm_task_defs["FARGATE"])["command"], "--workers", "6"),
        "workers-explicit",
    )

    def no_flag(b):
        c = container(b, "FARGATE")
        i = c["command"].index("--workers")
        del c["command"][i : i + 2]

    broken(no_flag, "workers-explicit")


def test_image_runs_workers_auto():
    broken(lambda b: set_flag(b.dockerfile["cmd"], "--workers", "4"), "dockerfile-workers")


def test_only_workers_and_drain_delay_may_differ_from_the_image():
    assert container(REAL, "EC2")["command"] != REAL.dockerfile["cmd"]
    ask = server.default().settings
    ours = ask(container(REAL, "EC2")["command"], REAL.dockerfile["env"])
    image = ask(REAL.dockerfile["cmd"], REAL.dockerfile["env"])
    differ = {name for name in ours.settings if ours[name] != image[name]}
    assert differ <= set(files.ECS_ONLY_SETTINGS)
    assert image.workers_auto and not ours.workers_auto


def test_command_matches_dockerfile():
    def mutate(b):
        for kind in files.KINDS:
            set_flag(container(b, kind)["command"], "--threads", "4")

    broken(mutate, "dockerfile-command")


# --- services
def test_service_launch_type():
    broken(lambda b: b.services["FARGATE"].update(launchType="EC2"), "service-launch-type")


def test_service_task_definition():
    broken(
        lambda b: b.services["EC2"].update(taskDefinition="heavy-api-fargate:3"),
        "service-task-definition",
    )


def test_service_load_balancer():
    broken(lambda b: b.services["EC2"]["loadBalancers"][0].update(containerPort=80), "service-load-balancer")


def test_service_network():
    broken(
        lambda b: b.services["EC2"]["networkConfiguration"]["awsvpcConfiguration"].update(
            assignPublicIp="ENABLED"
        ),
        "service-network",
    )
    broken(lambda b: b.services["FARGATE"].pop("networkConfiguration"), "service-network")


def test_service_grace():
    broken(lambda b: b.services["EC2"].update(healthCheckGracePeriodSeconds=5), "service-grace")


def test_service_deployment_can_progress():
    broken(
        lambda b: b.services["EC2"]["deploymentConfiguration"].update(maximumPercent=100),
        "service-deployment",
    )


# --- Dockerfile
def test_dockerfile_rules():
    broken(lambda b: b.dockerfile.update(user="root"), "dockerfile")
    broken(lambda b: b.dockerfile.update(cmd="--bind 0.0.0.0:8000"), "dockerfile")
    broken(lambda b: b.dockerfile.update(healthcheck=None), "dockerfile")
    broken(lambda b: b.dockerfile.update(stages=1), "dockerfile")
    broken(lambda b: b.dockerfile.update(**{"from": "gcr.io/distroless/static-debian12"}), "dockerfile")


def test_dockerfile_parser():
    parsed = dockerfile.final_stage(
        dockerfile.read(
            "FROM a:1 AS b\nUSER root\nFROM c:2\n# x\nUSER 1:1\nHEALTHCHECK --interval=5s \\\n"
            '    CMD ["/x", "healthcheck"]\nENV A=1 B="two words"\nENTRYPOINT ["/x"]\n'
            'CMD ["--bind", "0.0.0.0:1"]\n'
        )
    )
    assert parsed["user"] == "1:1"
    assert parsed["healthcheck"] == ["/x", "healthcheck"]
    assert parsed["healthcheck_options"] == {"interval": "5s"}
    assert parsed["cmd"] == ["--bind", "0.0.0.0:1"]
    assert parsed["env"] == {"A": "1", "B": "two words"}
    assert parsed["stages"] == 2 and parsed["from"] == "c:2"


# --- docker-compose.yml
def test_compose_stop_grace_period():
    broken(lambda b: b.compose["services"]["heavy-api"].update(stop_grace_period="25s"), "compose-stop-grace")
    broken(lambda b: b.compose["services"]["heavy-api"].pop("stop_grace_period"), "compose-stop-grace")


def test_compose_healthcheck():
    broken(
        lambda b: b.compose["services"]["heavy-api"]["healthcheck"].update(
            test="curl -f http://localhost:8000/heavy/health/"
        ),
        "compose-healthcheck",
    )


def test_durations():
    assert files.parse_duration("1m30s") == 90
    assert files.parse_duration("35s") == 35
    assert files.parse_duration("35") is None


# --- CloudFormation
def test_cfn_health_check_path():
    broken(lambda b: cfn_props(b, "Ec2TargetGroup").update(HealthCheckPath="/"), "cfn-readiness")
    # Liveness is the container's probe; the ALB must ask readiness.
    broken(
        lambda b: cfn_props(b, "FargateTargetGroup").update(HealthCheckPath="/heavy/health/"),
        "cfn-readiness",
    )
    broken(
        lambda b: cfn_props(b, "FargateTargetGroup").update(Matcher={"HttpCode": "200-503"}),
        "cfn-readiness",
    )


# --- readiness and the drain delay
def test_drain_delay_covers_the_albs_unhealthy_time():
    # 10 s x 3 = 30 s > --drain-delay 20: the ALB would still route to a stopped listener.
    broken(lambda b: cfn_props(b, "Ec2TargetGroup").update(UnhealthyThresholdCount=3), "drain-readiness")
    broken(
        lambda b: cfn_props(b, "FargateTargetGroup").update(HealthCheckIntervalSeconds=15),
        "drain-readiness",
    )

    def no_delay(b):
        for kind in files.KINDS:
            c = container(b, kind)
            i = c["command"].index("--drain-delay")
            del c["command"][i : i + 2]  # the server's default, 0

    broken(no_delay, "drain-readiness")


def test_drain_delay_plus_graceful_timeout_below_stop_timeout():
    # 20 + 25 = 45 < 60; with 40: 40 + 25 = 65 >= 60 (SIGKILL mid-drain).
    broken(lambda b: set_flag(container(b, "FARGATE")["command"], "--drain-delay", "40"), "drain-stop")
    broken(lambda b: container(b, "EC2").update(stopTimeout=45), "drain-stop")


def test_drain_delay_may_differ_from_the_image():
    assert "--drain-delay" not in REAL.dockerfile["cmd"]
    assert server.default().settings(container(REAL, "EC2")["command"])["drain_delay"] == 20
    # but nothing else may: a drain delay in the image's CMD only is still a difference
    broken(lambda b: b.dockerfile["cmd"].extend(["--max-requests", "5"]), "dockerfile-command")


def test_cfn_deregistration_delay():
    broken(
        lambda b: cfn_props(b, "FargateTargetGroup").pop("TargetGroupAttributes"),
        "cfn-deregistration-delay",
    )
    broken(
        lambda b: cfn_props(b, "FargateTargetGroup")["TargetGroupAttributes"][0].update(Value="10"),
        "cfn-deregistration-delay",
    )


def test_cfn_task_definition_matches_json():
    broken(
        lambda b: cfn_props(b, "FargateTaskDefinition")["ContainerDefinitions"][0].update(StopTimeout=45),
        "cfn-task-definition",
    )
    broken(lambda b: cfn_props(b, "Ec2TaskDefinition").update(Memory="8192"), "cfn-task-definition")


def test_cfn_autoscaling():
    def mutate(b):
        del b.cfn["Resources"]["FargateCpuScalingPolicy"]

    broken(mutate, "cfn-autoscaling")

    def wrong_metric(b):
        cfg = cfn_props(b, "Ec2CpuScalingPolicy")["TargetTrackingScalingPolicyConfiguration"]
        cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] = "ALBRequestCountPerTarget"

    broken(wrong_metric, "cfn-autoscaling")


# --- architectures
def test_runtime_platform_matches_the_file():
    broken(
        lambda b: b.arm_task_defs["FARGATE"]["runtimePlatform"].update(cpuArchitecture="X86_64"),
        "arch-runtime-platform",
    )
    broken(lambda b: b.task_defs["EC2"].pop("runtimePlatform"), "arch-runtime-platform")
    broken(
        lambda b: b.arm_task_defs["EC2"]["runtimePlatform"].update(
            operatingSystemFamily="WINDOWS_SERVER_2022_CORE"
        ),
        "arch-runtime-platform",
    )


def test_ec2_placement_pins_the_architecture():
    broken(lambda b: b.arm_task_defs["EC2"].pop("placementConstraints"), "arch-placement")
    broken(
        lambda b: b.task_defs["EC2"]["placementConstraints"][0].update(
            expression="attribute:ecs.cpu-architecture == arm64"
        ),
        "arch-placement",
    )


def test_x86_instance_type_with_arm64_task():
    broken(
        lambda b: b.arm_task_defs["EC2"]["placementConstraints"].append(
            {"type": "memberOf", "expression": "attribute:ecs.instance-type == m6i.large"}
        ),
        "arch-instance-type",
    )
    broken(
        lambda b: cfn_props(b, "LaunchTemplate")["LaunchTemplateData"].update(
            InstanceType={"Fn::If": ["IsArm64", {"Ref": "X86InstanceType"}, {"Ref": "X86InstanceType"}]}
        ),
        "arch-instance-type",
    )
    broken(
        lambda b: b.cfn["Parameters"]["Arm64InstanceType"].update(Default="c6i.large"),
        "arch-instance-type",
    )
    broken(
        lambda b: b.cfn["Parameters"]["Arm64InstanceType"].update(AllowedPattern="^[a-z0-9.-]+$"),
        "arch-instance-type",
    )


def test_arm64_instance_type_with_x86_task():
    broken(
        lambda b: b.task_defs["EC2"]["placementConstraints"].append(
            {"type": "memberOf", "expression": "attribute:ecs.instance-type =~ c7g.*"}
        ),
        "arch-instance-type",
    )
    broken(lambda b: b.cfn["Parameters"]["X86InstanceType"].update(Default="m7g.large"), "arch-instance-type")
    broken(
        lambda b: b.cfn["Parameters"]["X86InstanceType"].update(
            AllowedPattern="^[a-z]+[0-9]+[a-z-]*\\.[0-9a-z]+$"
        ),
        "arch-instance-type",
    )


def test_cfn_architecture_selects_ami_and_runtime_platform():
    broken(
        lambda b: cfn_props(b, "LaunchTemplate")["LaunchTemplateData"].update(ImageId={"Ref": "EcsAmiIdX86"}),
        "cfn-architecture",
    )
    broken(
        lambda b: cfn_props(b, "FargateTaskDefinition")["RuntimePlatform"].update(CpuArchitecture="X86_64"),
        "cfn-architecture",
    )
    broken(
        lambda b: cfn_props(b, "Ec2TaskDefinition")["PlacementConstraints"][0].update(
            Expression="attribute:ecs.cpu-architecture == x86_64"
        ),
        "arch-placement",
    )
    broken(lambda b: b.cfn["Parameters"].pop("Architecture"), "cfn-architecture")


def test_arm64_variant_equals_the_x86_one():
    broken(lambda b: files.container_of(b.arm_task_defs["EC2"]).update(stopTimeout=30), "arch-variant")
    broken(lambda b: b.arm_task_defs["FARGATE"].update(memory="8192"), "arch-variant")


def test_arm64_task_definitions_pass_botocore():
    broken(lambda b: b.arm_task_defs["EC2"]["runtimePlatform"].update(cpuArchitecture=64), "botocore", True)


def test_instance_architecture():
    for itype, arch in rules_cfn.INSTANCE_SAMPLES.items():
        assert files.instance_architecture(itype) == arch, itype
    assert files.instance_architecture("large") is None


# --- capacity provider and desired count
def test_managed_termination_protection():
    provider = "Ec2CapacityProvider"
    broken(
        lambda b: cfn_props(b, provider)["AutoScalingGroupProvider"].update(
            ManagedTerminationProtection="DISABLED"
        ),
        "cfn-capacity-provider",
    )
    broken(
        lambda b: cfn_props(b, "AutoScalingGroup").pop("NewInstancesProtectedFromScaleIn"),
        "cfn-capacity-provider",
    )
    broken(
        lambda b: cfn_props(b, provider)["AutoScalingGroupProvider"].update(ManagedDraining="DISABLED"),
        "cfn-capacity-provider",
    )
    broken(
        lambda b: cfn_props(b, provider)["AutoScalingGroupProvider"]["ManagedScaling"].update(
            Status="DISABLED"
        ),
        "cfn-capacity-provider",
    )


def test_no_desired_count_on_auto_scaled_services():
    broken(lambda b: cfn_props(b, "FargateService").update(DesiredCount=1), "cfn-desired-count")


def test_cfn_service_grace():
    broken(lambda b: cfn_props(b, "Ec2Service").update(HealthCheckGracePeriodSeconds=0), "cfn-service")


# --- the validator asks the server: the settings are the server's, never a copy of its rules


def drop_flag(command, flag):
    i = command.index(flag)
    del command[i : i + 2]


def set_env(c, **env):
    c["environment"] = [{"name": k, "value": v} for k, v in env.items()]


def rule_failures(mutate, rules):
    bundle = copy.deepcopy(REAL)
    mutate(bundle)
    return [str(f) for f in validate.check(bundle, with_botocore=False) if f.rule in rules]


SERVER_RULES = {"workers-explicit", "keep-alive", "bind", "graceful-timeout", "drain-stop", "server-config"}


def test_validator_and_server_agree_on_every_task_definition():
    """Each container's settings as the validator sees them are exactly what the binary prints
    for that command under the image's ENV plus the container's environment."""
    import json
    import subprocess

    checker = validate.Checker(copy.deepcopy(REAL), server.default())
    tds = [(f"td:{k}", REAL.task_defs[k]) for k in files.KINDS]
    tds += [(f"td-arm64:{k}", REAL.arm_task_defs[k]) for k in files.KINDS]
    for where, td in tds:
        c = files.container_of(td)
        seen = checker.container_settings(where, c)
        env = {**REAL.dockerfile["env"], **files.env_map(c.get("environment"))}
        out = subprocess.run(
            [str(server.default().binary), "--print-config=json", *c["command"]],
            env=env,
            cwd=server.default()._cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        assert seen.settings == json.loads(out.stdout)["settings"], where
        assert seen["workers"] == 4 and not seen.workers_auto, where
        assert seen.workers_per_cpu == 2, where  # 2 x a 2-vCPU task = 4
        assert seen["keepalive"] == 75 and seen["graceful_timeout"] == 25 and seen["drain_delay"] == 20
    assert checker.failures == []


def test_workers_set_by_gunicorn_cmd_args_count():
    # The old copied flag table saw no --workers here and failed the rule; the server runs 4.
    def via_env(b):
        c = container(b, "EC2")
        drop_flag(c["command"], "--workers")
        set_env(c, GUNICORN_CMD_ARGS="--workers 4 --max-requests 0")

    assert rule_failures(via_env, SERVER_RULES) == []

    def wrong_count(b):
        c = container(b, "EC2")
        drop_flag(c["command"], "--workers")
        set_env(c, GUNICORN_CMD_ARGS="--workers 8")

    failures = rule_failures(wrong_count, {"workers-explicit"})
    assert failures and "--workers 8 " in failures[0], failures


def test_web_concurrency_and_short_flags_count_as_explicit():
    def web_concurrency(b):
        c = container(b, "FARGATE")
        drop_flag(c["command"], "--workers")
        set_env(c, WEB_CONCURRENCY="4")  # overrides the image's WEB_CONCURRENCY=auto

    assert rule_failures(web_concurrency, SERVER_RULES) == []

    def short_flag(b):
        c = container(b, "FARGATE")
        i = c["command"].index("--workers")
        c["command"][i : i + 2] = ["-w4"]  # the old table did not read -wN

    assert rule_failures(short_flag, SERVER_RULES) == []


def test_keep_alive_and_bind_from_the_environment():
    # No --keep-alive and no --bind in the command: GUNICORN_CMD_ARGS and PORT give them (the
    # old defaults table said keep-alive 2 and 127.0.0.1:8000, and failed both rules).
    def from_env(b):
        c = container(b, "EC2")
        drop_flag(c["command"], "--keep-alive")
        drop_flag(c["command"], "--bind")
        set_env(c, GUNICORN_CMD_ARGS="--keep-alive 75", PORT="8000")

    assert rule_failures(from_env, SERVER_RULES) == []

    # HEAVY_API_CMD_ARGS replaces GUNICORN_CMD_ARGS in the server: its keep-alive 5 is too short.
    def overridden(b):
        c = container(b, "EC2")
        drop_flag(c["command"], "--keep-alive")
        set_env(c, GUNICORN_CMD_ARGS="--keep-alive 75", HEAVY_API_CMD_ARGS="--keep-alive 5")

    assert rule_failures(overridden, {"keep-alive"}), "keep-alive 5 must fail"

    # The command line wins over the environment, as in Gunicorn.
    def cli_wins(b):
        set_env(container(b, "EC2"), GUNICORN_CMD_ARGS="--keep-alive 5 --graceful-timeout 90")

    assert rule_failures(cli_wins, SERVER_RULES) == []


def test_server_config_rule():
    broken(lambda b: set_flag(container(b, "EC2")["command"], "--workers", "many"), "server-config")
    broken(lambda b: container(b, "EC2").update(entryPoint=["/bin/sh", "-c"]), "server-config")
    broken(lambda b: set_env(container(b, "FARGATE"), GUNICORN_CMD_ARGS="--no-such-flag"), "server-config")


def test_compose_environment_reaches_the_server():
    broken(
        lambda b: b.compose["services"]["heavy-api"].update(
            environment={"GUNICORN_CMD_ARGS": "--graceful-timeout 40"}, command=["--keep-alive", "75"]
        ),
        "compose-stop-grace",
    )


def test_no_binary_is_said_clearly(tmp_path, capsys):
    missing = tmp_path / "heavy-api"
    with pytest.raises(server.NoBinary, match="not an executable"):
        server.find_binary(missing)
    assert validate.main(["--binary", str(missing)]) == 2
    assert "cannot ask the server" in capsys.readouterr().err
    server.use(None)  # back to the default binary for the other tests
