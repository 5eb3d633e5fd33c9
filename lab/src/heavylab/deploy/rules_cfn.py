"""CloudFormation: target groups, the template's task definitions against the JSON files,
services and auto scaling, architectures (the Architecture parameter evaluated for both
values), capacity providers."""

from __future__ import annotations

import copy
import json
import re

from heavylab.deploy.bundle import (
    ALB_DEFAULT_DEREGISTRATION_DELAY,
    ARCHITECTURES,
    CONTAINER,
    KINDS,
    READINESS_PATH,
    cfn_resources,
    cfn_to_api,
    container_of,
    env_map,
    instance_architecture,
    lower_first,
    ref_name,
)


class CfnRules:
    """Mixed into validate.Checker."""

    def check_cfn(self) -> None:
        cfn = self.b.cfn
        tgs = cfn_resources(cfn, "AWS::ElasticLoadBalancingV2::TargetGroup")
        if not tgs:
            self.fail("cfn-target-group", "cfn", "no target group")
        image = self.image_settings()
        graceful = image["graceful_timeout"] if image else None
        for name, tg in tgs.items():
            p = tg.get("Properties", {})
            if p.get("HealthCheckPath") != READINESS_PATH:
                self.fail(
                    "cfn-readiness",
                    "cfn",
                    f"{name}: HealthCheckPath must be the readiness probe {READINESS_PATH} "
                    "(503 as soon as a drain begins, so the ALB stops routing there before "
                    f"the server closes anything), got {p.get('HealthCheckPath')!r}",
                )
            if str((p.get("Matcher") or {}).get("HttpCode", "200")) != "200":
                self.fail(
                    "cfn-readiness",
                    "cfn",
                    f"{name}: the health check Matcher must be 200 only (a draining task answers 503)",
                )
            if p.get("TargetType") != "ip" or p.get("Port") != 8000:
                self.fail("cfn-target-group", "cfn", f"{name}: awsvpc tasks need TargetType ip and Port 8000")
        idle = self.alb_idle_timeout()
        for name, delay in self.deregistration_delays().items():
            # Behind the ALB, a request in flight when deregistration starts has the delay to
            # finish, not delay + --graceful-timeout: ECS sends SIGTERM only after the delay, when
            # the ALB has already given up on it. And it cannot outlive the idle timeout (504),
            # so a longer delay only slows every stop.
            if delay > idle:
                self.fail(
                    "drain-budget",
                    "cfn",
                    f"{name}: deregistration delay {delay} s exceeds the ALB idle timeout "
                    f"({idle} s): no request can use the extra time (the ALB answers 504 "
                    "after the idle timeout), but every stop waits for it",
                )
            if delay == ALB_DEFAULT_DEREGISTRATION_DELAY or graceful is None or delay < graceful:
                self.fail(
                    "cfn-deregistration-delay",
                    "cfn",
                    f"{name}: set deregistration_delay.timeout_seconds explicitly (the "
                    f"default {ALB_DEFAULT_DEREGISTRATION_DELAY} s stalls every stop), no "
                    f"shorter than the server's --graceful-timeout ({graceful} s); got {delay}",
                )

        # The template's task definitions must match the JSON files (the two deploy routes).
        tds = cfn_resources(cfn, "AWS::ECS::TaskDefinition")
        by_kind = {}
        for name, res in tds.items():
            kinds = res.get("Properties", {}).get("RequiresCompatibilities") or []
            if len(kinds) == 1:
                by_kind[kinds[0]] = (name, res["Properties"])
        for kind in KINDS:
            if kind not in by_kind:
                self.fail("cfn-task-definition", "cfn", f"no {kind} task definition")
                continue
            name, props = by_kind[kind]
            json_td = self.b.task_defs[kind]
            json_c = container_of(json_td) or {}
            cfn_c = next(
                (
                    cfn_to_api(c)
                    for c in props.get("ContainerDefinitions") or []
                    if c.get("Name") == CONTAINER
                ),
                {},
            )
            for key in ("command", "healthCheck", "stopTimeout", "ulimits", "portMappings"):
                if cfn_c.get(key) != json_c.get(key):
                    self.fail(
                        "cfn-task-definition",
                        "cfn",
                        f"{name}: {key} differs from {self.b.names.get(f'td:{kind}')}: "
                        f"{cfn_c.get(key)!r} vs {json_c.get(key)!r}",
                    )
            if env_map(cfn_c.get("environment")) != env_map(json_c.get("environment")):
                self.fail("cfn-task-definition", "cfn", f"{name}: environment differs from JSON")
            for key in ("Cpu", "Memory", "NetworkMode"):
                if str(props.get(key)) != str(json_td.get(lower_first(key))):
                    self.fail("cfn-task-definition", "cfn", f"{name}: {key} differs from JSON")

        # Every service: grace period, and CPU target tracking (how it scales past one task).
        services = cfn_resources(cfn, "AWS::ECS::Service")
        targets = cfn_resources(cfn, "AWS::ApplicationAutoScaling::ScalableTarget")
        policies = cfn_resources(cfn, "AWS::ApplicationAutoScaling::ScalingPolicy")
        start = max(
            ((container_of(t) or {}).get("healthCheck") or {}).get("startPeriod", 0)
            for t in self.b.task_defs.values()
        )
        if len(services) < 2:
            self.fail("cfn-service", "cfn", "the template needs both services (EC2 and Fargate)")
        for name, svc in services.items():
            grace = svc.get("Properties", {}).get("HealthCheckGracePeriodSeconds")
            if not isinstance(grace, int) or grace < start:
                self.fail(
                    "cfn-service",
                    "cfn",
                    f"{name}: HealthCheckGracePeriodSeconds must be "
                    f">= the health check startPeriod ({start})",
                )
            scaled = [
                t
                for t, res in targets.items()
                if name in json.dumps(res.get("Properties", {}).get("ResourceId"))
            ]
            tracked = [
                p
                for p, res in policies.items()
                if ref_name(res.get("Properties", {}).get("ScalingTargetId")) in scaled
                and res["Properties"].get("PolicyType") == "TargetTrackingScaling"
                and (res["Properties"].get("TargetTrackingScalingPolicyConfiguration") or {})
                .get("PredefinedMetricSpecification", {})
                .get("PredefinedMetricType")
                == "ECSServiceAverageCPUUtilization"
            ]
            if not tracked:
                self.fail(
                    "cfn-autoscaling",
                    "cfn",
                    f"{name}: no ScalableTarget with a CPU target-tracking ScalingPolicy",
                )

    # --- architectures: x86_64 and arm64 (Graviton) task definitions and the stack's choice
    def check_architectures(self) -> None:
        for kind in KINDS:
            for arm64, tds in ((False, self.b.task_defs), (True, self.b.arm_task_defs)):
                if kind not in tds:
                    self.fail("arch-variant", f"td-arm64:{kind}", "no ARM64 task definition")
                    continue
                where = f"td-arm64:{kind}" if arm64 else f"td:{kind}"
                td = tds[kind]
                want = "ARM64" if arm64 else "X86_64"
                platform = td.get("runtimePlatform") or {}
                if (
                    platform.get("cpuArchitecture") != want
                    or platform.get("operatingSystemFamily") != "LINUX"
                ):
                    self.fail(
                        "arch-runtime-platform",
                        where,
                        f"runtimePlatform must be {{cpuArchitecture: {want}, "
                        f"operatingSystemFamily: LINUX}}, got {platform!r}",
                    )
                if kind == "EC2":
                    self.check_placement(
                        where,
                        ARCHITECTURES[want],
                        [c.get("expression") for c in td.get("placementConstraints") or []],
                    )
            if kind in self.b.arm_task_defs:
                a, b = (_arch_neutral(t) for t in (self.b.task_defs[kind], self.b.arm_task_defs[kind]))
                for key in sorted(set(a) | set(b)):
                    if a.get(key) != b.get(key):
                        self.fail(
                            "arch-variant",
                            f"td-arm64:{kind}",
                            f"{key} differs from {self.b.names.get(f'td:{kind}')} (only "
                            "the family, runtimePlatform, placement constraints, log "
                            "stream prefix and tags may)",
                        )

    def check_placement(self, where: str, arch: str, expressions: list) -> None:
        """EC2 tasks: a placement constraint on ecs.cpu-architecture, and no instance type of the
        other architecture (attribute:ecs.instance-type == m6i.large, or =~ m7g.*)."""
        pinned = []
        for expr in expressions:
            text = str(expr or "")
            m = re.search(r"attribute:ecs\.cpu-architecture\s*==\s*(\S+)", text)
            if m:
                pinned.append(m.group(1))
            for m in re.finditer(r"attribute:ecs\.instance-type\s*(?:==|=~)\s*([a-z0-9.*-]+)", text):
                family = m.group(1).split(".")[0]
                found = instance_architecture(f"{family}.large")
                if found and found != arch:
                    self.fail(
                        "arch-instance-type",
                        where,
                        f"placement constraint {text!r} selects {found} instances for an {arch} task",
                    )
        if pinned != [arch]:
            self.fail(
                "arch-placement",
                where,
                f"EC2 tasks need the placement constraint 'attribute:ecs.cpu-architecture "
                f"== {arch}' (so ECS never places them on the other architecture's "
                f"instances), got {pinned!r}",
            )

    def check_cfn_architecture(self) -> None:
        """The stack's Architecture parameter selects instance type, AMI and runtimePlatform
        together: evaluated here for each allowed value."""
        cfn = self.b.cfn
        params = cfn.get("Parameters") or {}
        arch_param = params.get("Architecture") or {}
        allowed = arch_param.get("AllowedValues") or []
        if sorted(allowed) != ["arm64", "x86_64"]:
            self.fail(
                "cfn-architecture",
                "cfn",
                "the template needs an Architecture parameter "
                f"with AllowedValues [x86_64, arm64], got {allowed!r}",
            )
            return
        templates = cfn_resources(cfn, "AWS::EC2::LaunchTemplate")
        tds = cfn_resources(cfn, "AWS::ECS::TaskDefinition")
        for arch in allowed:
            values = {name: p.get("Default") for name, p in params.items()}
            values["Architecture"] = arch
            ev = _CfnEval(cfn, values)
            for name, lt in templates.items():
                data = (lt.get("Properties") or {}).get("LaunchTemplateData") or {}
                itype_ref = ev.param_ref(data.get("InstanceType"))
                itype = values.get(itype_ref) if itype_ref else ev.value(data.get("InstanceType"))
                found = instance_architecture(itype)
                if found != arch:
                    self.fail(
                        "arch-instance-type",
                        "cfn",
                        f"{name} with Architecture={arch}: InstanceType {itype!r} is "
                        f"{found or 'not an instance type'}",
                    )
                if itype_ref:
                    self.check_instance_pattern(itype_ref, params.get(itype_ref) or {}, arch)
                ami_ref = ev.param_ref(data.get("ImageId"))
                ami = str(values.get(ami_ref) or "")
                ami_arch = "arm64" if "/arm64/" in ami else "x86_64"
                if not ami.startswith("/aws/service/ecs/optimized-ami/") or ami_arch != arch:
                    self.fail(
                        "cfn-architecture",
                        "cfn",
                        f"{name} with Architecture={arch}: ImageId comes from {ami!r}, "
                        f"not the {arch} ECS-optimized AMI parameter",
                    )
            for name, td in tds.items():
                props = td.get("Properties") or {}
                platform = ev.value(props.get("RuntimePlatform")) or {}
                got = ARCHITECTURES.get(platform.get("CpuArchitecture"))
                if got != arch:
                    self.fail(
                        "cfn-architecture",
                        "cfn",
                        f"{name} with Architecture={arch}: RuntimePlatform.CpuArchitecture "
                        f"is {platform.get('CpuArchitecture')!r}",
                    )
                if "EC2" in (props.get("RequiresCompatibilities") or []):
                    self.check_placement(
                        "cfn",
                        arch,
                        [ev.value(c.get("Expression")) for c in props.get("PlacementConstraints") or []],
                    )

    def check_instance_pattern(self, name: str, param: dict, arch: str) -> None:
        """An instance type parameter's AllowedPattern must refuse the other architecture."""
        pattern = param.get("AllowedPattern")
        if not pattern:
            self.fail(
                "arch-instance-type",
                "cfn",
                f"{name} needs an AllowedPattern that only admits {arch} instance types",
            )
            return
        for sample, sample_arch in INSTANCE_SAMPLES.items():
            admitted = re.fullmatch(pattern, sample) is not None
            if admitted != (sample_arch == arch):
                self.fail(
                    "arch-instance-type",
                    "cfn",
                    f"{name}'s AllowedPattern {'admits' if admitted else 'refuses'} "
                    f"{sample} ({sample_arch}) for Architecture={arch}",
                )

    def check_cfn_capacity(self) -> None:
        cfn = self.b.cfn
        groups = cfn_resources(cfn, "AWS::AutoScaling::AutoScalingGroup")
        for name, cp in cfn_resources(cfn, "AWS::ECS::CapacityProvider").items():
            provider = (cp.get("Properties") or {}).get("AutoScalingGroupProvider") or {}
            group = groups.get(ref_name(provider.get("AutoScalingGroupArn")) or "", {})
            protected = (group.get("Properties") or {}).get("NewInstancesProtectedFromScaleIn")
            if (provider.get("ManagedScaling") or {}).get("Status") != "ENABLED":
                self.fail(
                    "cfn-capacity-provider",
                    "cfn",
                    f"{name}: ManagedScaling must be ENABLED (managed termination protection needs it)",
                )
            if provider.get("ManagedTerminationProtection") != "ENABLED" or protected is not True:
                self.fail(
                    "cfn-capacity-provider",
                    "cfn",
                    f"{name}: ManagedTerminationProtection must be ENABLED and its Auto "
                    "Scaling group's NewInstancesProtectedFromScaleIn true (ECS requires "
                    "both), or scale-in may terminate an instance that runs a task",
                )
            if provider.get("ManagedDraining") != "ENABLED":
                self.fail(
                    "cfn-capacity-provider",
                    "cfn",
                    f"{name}: ManagedDraining must be ENABLED so an instance the group "
                    "terminates anyway is drained of its tasks first",
                )
        targets = cfn_resources(cfn, "AWS::ApplicationAutoScaling::ScalableTarget")
        for name, svc in cfn_resources(cfn, "AWS::ECS::Service").items():
            scaled = any(
                name in json.dumps((t.get("Properties") or {}).get("ResourceId")) for t in targets.values()
            )
            if scaled and "DesiredCount" in (svc.get("Properties") or {}):
                self.fail(
                    "cfn-desired-count",
                    "cfn",
                    f"{name} is auto scaled, so it must not set DesiredCount: every stack "
                    "update would reset the count auto scaling chose",
                )


# Instance types of both architectures that an architecture's AllowedPattern must sort correctly.
INSTANCE_SAMPLES = {
    "m6i.large": "x86_64",
    "c6i.large": "x86_64",
    "m7i-flex.large": "x86_64",
    "m5.large": "x86_64",
    "c7a.large": "x86_64",
    "t3.large": "x86_64",
    "g4dn.xlarge": "x86_64",
    "m7g.large": "arm64",
    "c7g.large": "arm64",
    "m6g.large": "arm64",
    "c7gn.large": "arm64",
    "r7gd.large": "arm64",
    "t4g.large": "arm64",
    "a1.large": "arm64",
    "m8g.large": "arm64",
}


def _arch_neutral(td: dict) -> dict:
    """A task definition without what may differ between its x86_64 and arm64 variants."""
    td = copy.deepcopy(td)
    for key in ("family", "runtimePlatform", "placementConstraints", "tags"):
        td.pop(key, None)
    for c in td.get("containerDefinitions") or []:
        ((c.get("logConfiguration") or {}).get("options") or {}).pop("awslogs-stream-prefix", None)
    return td


class _CfnEval:
    """Evaluates the template's Fn::If / Fn::Equals / Ref on parameters for given values."""

    def __init__(self, cfn: dict, values: dict):
        self.conditions = cfn.get("Conditions") or {}
        self.values = values

    def condition(self, name) -> bool:
        return bool(self.value(self.conditions.get(name)))

    def param_ref(self, value) -> str | None:
        """The parameter a value (after Fn::If) refers to, if it is a Ref to one."""
        value = self.select(value)
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.values:
            return value["Ref"]
        return None

    def select(self, value):
        while isinstance(value, dict) and set(value) == {"Fn::If"}:
            cond, yes, no = value["Fn::If"]
            value = yes if self.condition(cond) else no
        return value

    def value(self, value):
        value = self.select(value)
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in self.values:
                return self.values[value["Ref"]]
            if set(value) == {"Fn::Equals"}:
                a, b = (self.value(v) for v in value["Fn::Equals"])
                return a == b
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value
