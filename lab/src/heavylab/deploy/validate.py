#!/usr/bin/env python3
"""Validates heavy-api's deployment files: the ECS task and service definitions, the CloudFormation
template, docker-compose.yml and the Dockerfile, against each other and against ECS's limits.

Two layers:
  1. botocore's ECS service model: each deploy/task-definition-*.json must be a valid
     RegisterTaskDefinition input and each deploy/service-*.json a valid CreateService input
     (types, required fields, enums, unknown keys) - exactly what `aws ecs register-task-definition
     --cli-input-json` would send.
  2. The rules botocore does not check, each with an id (printed on failure): Fargate CPU/memory
     pairs, stopTimeout <= 120 on Fargate, health check ranges, the server's --graceful-timeout
     below stopTimeout, --keep-alive above the ALB idle timeout, the ALB deregistration delay, the
     same image/command/environment on EC2 and Fargate, compose's stop_grace_period, the x86_64
     and ARM64 task definitions alike but for their architecture, the ALB health check on the
     readiness probe /heavy/ready/ with --drain-delay >= its interval x unhealthy threshold and
     --drain-delay + --graceful-timeout < stopTimeout, no instance type of the other
     architecture (placement constraints; the template's Architecture parameter evaluated for
     both values), managed termination protection, no DesiredCount under auto scaling, ...

Usage:  python3 deploy/validate.py [--root DIR]     (needs botocore and PyYAML: .venv-tools)
Exit status 0 when every rule holds, 1 when any fails. deploy/test_validate.py breaks each rule on
purpose to show it can fail.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from heavylab import paths

KINDS = ("EC2", "FARGATE")
# ECS runtimePlatform.cpuArchitecture -> the container instance attribute ecs.cpu-architecture.
ARCHITECTURES = {"X86_64": "x86_64", "ARM64": "arm64"}
# The image's CMD runs `--workers auto`: 2 workers per usable CPU (issue #14); task definitions
# pass the number explicitly, the same one auto would pick for their task size.
WORKERS_PER_VCPU = 2
CONTAINER = "heavy-api"
HEALTH_PROBE_DEFAULT_TIMEOUT = 3.0  # `heavy-api healthcheck --timeout` default, in seconds
SERVER_DEFAULTS = {
    "--graceful-timeout": "30",
    "--keep-alive": "2",
    "--bind": "127.0.0.1:8000",
    "--drain-delay": "0",
}
# The probes: the ALB asks readiness (503 from the first moment of a drain), the container health
# check liveness (`heavy-api healthcheck`: /heavy/health/, 200 until the process is gone).
READINESS_PATH = "/heavy/ready/"
# Flags a task definition may set differently from the image's CMD: the worker count (`auto` in
# the image) and the drain delay (0 in the image: `docker stop` waits 10 s by default).
ECS_ONLY_FLAGS = ("--workers", "--drain-delay")
ALB_DEFAULT_HEALTH_INTERVAL = 30
ALB_DEFAULT_UNHEALTHY_THRESHOLD = 2
ALB_DEFAULT_IDLE_TIMEOUT = 60
ALB_DEFAULT_DEREGISTRATION_DELAY = 300
FARGATE_MAX_STOP_TIMEOUT = 120
HEALTH_CHECK_RANGES = {  # ECS container health check limits (seconds, or a count for retries)
    "interval": (5, 300),
    "timeout": (2, 60),
    "retries": (1, 10),
    "startPeriod": (0, 300),
}
# Fargate task sizes: CPU units -> the memory values (MiB) allowed with it.
FARGATE_SIZES = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
# Server flags that take no value (everything else in the command takes one).
SERVER_BOOLEAN_FLAGS = {"--check-config", "--print-config"}
SERVER_SHORT_FLAGS = {
    "-b": "--bind",
    "-w": "--workers",
    "-t": "--timeout",
    "-k": "--worker-class",
    "-p": "--pid",
    "-n": "--name",
}


@dataclass
class Failure:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


@dataclass
class Bundle:
    """Every deployment file, parsed. Tests build broken copies of it."""

    task_defs: dict  # "EC2"/"FARGATE" -> RegisterTaskDefinition input
    services: dict  # "EC2"/"FARGATE" -> CreateService input
    dockerfile: dict  # final stage: entrypoint, cmd, user, healthcheck, healthcheck_options, expose
    compose: dict
    cfn: dict
    names: dict = field(default_factory=dict)  # what -> file name, for messages
    arm_task_defs: dict = field(default_factory=dict)  # "EC2"/"FARGATE" -> the ARM64 variant


# ------------------------------------------------------------------------------------- loading


def parse_dockerfile(text: str) -> dict:
    """The final stage's ENTRYPOINT/CMD (exec form), USER, HEALTHCHECK and EXPOSE."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending)
    final: dict = {
        "entrypoint": None,
        "cmd": None,
        "user": None,
        "healthcheck": None,
        "healthcheck_options": {},
        "expose": [],
        "stages": 0,
        "from": None,
    }
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "FROM":
            stages = final["stages"] + 1
            final = {
                "entrypoint": None,
                "cmd": None,
                "user": None,
                "healthcheck": None,
                "healthcheck_options": {},
                "expose": [],
                "stages": stages,
                "from": next((w for w in rest.split() if not w.startswith("--")), None),
            }
        elif instr in ("ENTRYPOINT", "CMD"):
            final[instr.lower()] = _exec_form(rest)
        elif instr == "USER":
            final["user"] = rest
        elif instr == "EXPOSE":
            final["expose"] += rest.split()
        elif instr == "HEALTHCHECK":
            match = re.match(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$", rest)
            if match:
                final["healthcheck"] = _exec_form(match.group(2))
                for opt in match.group(1).split():
                    key, _, value = opt[2:].partition("=")
                    final["healthcheck_options"][key] = value
            else:
                final["healthcheck"] = rest
    return final


def _exec_form(rest: str):
    """A JSON array (exec form) as a list; shell form is returned as the raw string."""
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return rest
    return value if isinstance(value, list) else rest


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: !Ref/!Sub/!GetAtt/... become {"Ref": ...}/{"Fn::Sub": ...}."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_bundle(root: Path) -> Bundle:
    deploy = root / "deploy"
    names = {}
    task_defs, services = {}, {}
    for kind in KINDS:
        td = deploy / f"task-definition-{kind.lower()}.json"
        svc = deploy / f"service-{kind.lower()}.json"
        task_defs[kind] = json.loads(td.read_text())
        services[kind] = json.loads(svc.read_text())
        names[f"td:{kind}"] = str(td.relative_to(root))
        names[f"svc:{kind}"] = str(svc.relative_to(root))
    arm_task_defs = {}
    for kind in KINDS:
        td = deploy / f"task-definition-{kind.lower()}-arm64.json"
        arm_task_defs[kind] = json.loads(td.read_text())
        names[f"td-arm64:{kind}"] = str(td.relative_to(root))
    names["dockerfile"] = "Dockerfile"
    names["compose"] = "docker-compose.yml"
    names["cfn"] = "deploy/cloudformation.yaml"
    return Bundle(
        task_defs=task_defs,
        services=services,
        dockerfile=parse_dockerfile((root / "Dockerfile").read_text()),
        compose=yaml.safe_load((root / "docker-compose.yml").read_text()),
        cfn=yaml.load((deploy / "cloudformation.yaml").read_text(), Loader=_CfnLoader),  # noqa: S506
        names=names,
        arm_task_defs=arm_task_defs,
    )


# ------------------------------------------------------------------------------------- helpers


def parse_server_flags(command) -> dict:
    """`heavy-api` server arguments as {"--flag": "value"} (last one wins, like the server)."""
    flags: dict = {}
    if not isinstance(command, list):
        return flags
    i = 0
    while i < len(command):
        tok = str(command[i])
        if tok.startswith("--") and "=" in tok:
            key, value = tok.split("=", 1)
            flags[key] = value
        elif tok in SERVER_SHORT_FLAGS or tok.startswith("--"):
            key = SERVER_SHORT_FLAGS.get(tok, tok)
            if key in SERVER_BOOLEAN_FLAGS:
                flags[key] = True
            elif i + 1 < len(command):
                flags[key] = str(command[i + 1])
                i += 1
        i += 1
    return flags


def without_flag(command, flag: str):
    """The command with `flag VALUE` (or `flag=VALUE`) removed; non-lists are returned as is."""
    if not isinstance(command, list):
        return command
    out, skip = [], False
    for tok in command:
        if skip:
            skip = False
        elif tok == flag:
            skip = True
        elif not str(tok).startswith(flag + "="):
            out.append(tok)
    return out


def server_int(flags: dict, name: str) -> int | None:
    try:
        return int(flags.get(name, SERVER_DEFAULTS.get(name)))
    except (TypeError, ValueError):
        return None


def split_bind(bind: str) -> tuple[str, int | None]:
    host, _, port = bind.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return host, None


def task_size(value) -> int | None:
    """ECS task cpu ("2048" or "2 vCPU") in CPU units, memory ("4096" or "4 GB") in MiB."""
    if value is None:
        return None
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(vcpu|gb)?", text, re.IGNORECASE)
    if not match:
        return None
    number = float(match.group(1))
    return int(number * 1024) if match.group(2) else int(number)


def parse_duration(value) -> float | None:
    """A compose duration ("35s", "1m30s", "500ms") or a number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def container_of(task_def: dict) -> dict | None:
    for c in task_def.get("containerDefinitions") or []:
        if c.get("name") == CONTAINER:
            return c
    return None


def env_map(env) -> dict:
    return {e.get("name"): e.get("value") for e in env or []}


def cfn_resources(cfn: dict, rtype: str) -> dict:
    return {k: v for k, v in (cfn.get("Resources") or {}).items() if v.get("Type") == rtype}


def ref_name(value) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def instance_architecture(instance_type) -> str | None:
    """ "arm64" for a Graviton EC2 instance type (a1, and every family whose attribute letters
    after the generation include g: m7g, c7gn, r6gd, t4g, im4gn, x2gd, g5g), "x86_64" for the
    others (m6i, c7a, m5, t3, g4dn, m7i-flex), None if it does not look like an instance type."""
    match = re.fullmatch(r"([a-z]+)(\d+)([a-z-]*)\.[a-z0-9]+", str(instance_type))
    if not match:
        return None
    if match.group(1) == "a" and match.group(2) == "1":
        return "arm64"
    return "arm64" if "g" in match.group(3).split("-")[0] else "x86_64"


def lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


def cfn_to_api(value):
    """CloudFormation's PascalCase container properties as the API's camelCase (for comparing)."""
    if isinstance(value, dict):
        return {lower_first(k): cfn_to_api(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cfn_to_api(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- rules


class Checker:
    def __init__(self, bundle: Bundle):
        self.b = bundle
        self.failures: list[Failure] = []

    def fail(self, rule: str, where: str, message: str) -> None:
        self.failures.append(Failure(rule, self.b.names.get(where, where), message))

    # --- layer 1: botocore
    def check_botocore(self) -> None:
        import botocore.session
        from botocore.validate import ParamValidator

        model = botocore.session.get_session().get_service_model("ecs")
        validator = ParamValidator()
        for kind in KINDS:
            for what, op, params in (
                (f"td:{kind}", "RegisterTaskDefinition", self.b.task_defs[kind]),
                (f"svc:{kind}", "CreateService", self.b.services[kind]),
                (f"td-arm64:{kind}", "RegisterTaskDefinition", self.b.arm_task_defs.get(kind)),
            ):
                if params is None:
                    continue
                report = validator.validate(params, model.operation_model(op).input_shape)
                if report.has_errors():
                    for line in report.generate_report().splitlines():
                        self.fail("botocore", what, f"{op}: {line}")

    # --- the ALB's numbers, from the CloudFormation template (the CLI route uses the same ones)
    def alb_idle_timeout(self) -> int:
        for lb in cfn_resources(self.b.cfn, "AWS::ElasticLoadBalancingV2::LoadBalancer").values():
            for attr in lb.get("Properties", {}).get("LoadBalancerAttributes") or []:
                if attr.get("Key") == "idle_timeout.timeout_seconds":
                    return int(attr["Value"])
        return ALB_DEFAULT_IDLE_TIMEOUT

    def alb_unhealthy_after(self) -> dict:
        """{target group: seconds until the ALB marks a target that answers 503 unhealthy} =
        health check interval x unhealthy threshold."""
        out = {}
        for name, tg in cfn_resources(self.b.cfn, "AWS::ElasticLoadBalancingV2::TargetGroup").items():
            p = tg.get("Properties", {})
            interval = p.get("HealthCheckIntervalSeconds", ALB_DEFAULT_HEALTH_INTERVAL)
            count = p.get("UnhealthyThresholdCount", ALB_DEFAULT_UNHEALTHY_THRESHOLD)
            out[name] = (int(interval) * int(count), int(interval), int(count))
        return out

    def deregistration_delays(self) -> dict:
        delays = {}
        for name, tg in cfn_resources(self.b.cfn, "AWS::ElasticLoadBalancingV2::TargetGroup").items():
            delays[name] = ALB_DEFAULT_DEREGISTRATION_DELAY
            for attr in tg.get("Properties", {}).get("TargetGroupAttributes") or []:
                if attr.get("Key") == "deregistration_delay.timeout_seconds":
                    delays[name] = int(attr["Value"])
        return delays

    # --- layer 2: a task definition
    def check_task_def(self, kind: str, arm64: bool = False) -> None:
        where = f"td-arm64:{kind}" if arm64 else f"td:{kind}"
        td = (self.b.arm_task_defs if arm64 else self.b.task_defs)[kind]
        if td.get("requiresCompatibilities") != [kind]:
            self.fail(
                "compatibility",
                where,
                f"requiresCompatibilities must be [{kind!r}], got {td.get('requiresCompatibilities')!r}",
            )
        if td.get("networkMode") != "awsvpc":
            self.fail(
                "network-mode",
                where,
                f"networkMode must be 'awsvpc' (ALB target type ip), got {td.get('networkMode')!r}",
            )
        cpu, mem = task_size(td.get("cpu")), task_size(td.get("memory"))
        if cpu is None or mem is None:
            self.fail("task-size", where, "task-level cpu and memory are required (2 vCPU / 4 GB)")
        elif kind == "FARGATE" and mem not in FARGATE_SIZES.get(cpu, ()):
            allowed = FARGATE_SIZES.get(cpu)
            self.fail(
                "fargate-cpu-memory",
                where,
                f"cpu {cpu} with memory {mem} MiB is not a Fargate size"
                + (
                    f" (cpu {cpu} allows {allowed[0]}..{allowed[-1]} MiB: {list(allowed)})"
                    if allowed
                    else f" (cpu must be one of {sorted(FARGATE_SIZES)})"
                ),
            )
        if not td.get("executionRoleArn"):
            self.fail(
                "execution-role", where, "executionRoleArn is required to pull from ECR and write awslogs"
            )

        c = container_of(td)
        if c is None:
            self.fail("container", where, f"no container named {CONTAINER!r}")
            return
        if c.get("essential") is False:
            self.fail("container", where, f"container {CONTAINER!r} must be essential")

        self.check_health(kind, where, c)
        self.check_timing(kind, where, c)
        self.check_workers(where, td, c)

        log = c.get("logConfiguration") or {}
        opts = log.get("options") or {}
        missing = [k for k in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix") if not opts.get(k)]
        if log.get("logDriver") != "awslogs" or missing:
            self.fail(
                "awslogs",
                where,
                "logConfiguration must use the awslogs driver with "
                f"awslogs-group, awslogs-region and awslogs-stream-prefix (missing {missing})",
            )

        nofile = [u for u in c.get("ulimits") or [] if u.get("name") == "nofile"]
        if kind == "EC2" and not nofile:
            self.fail(
                "ulimit-nofile",
                where,
                "EC2 containers need a nofile ulimit (the Docker default of 1024 caps open connections)",
            )
        for u in nofile:
            if u.get("softLimit", 0) > u.get("hardLimit", 0):
                self.fail("ulimit-nofile", where, "nofile softLimit exceeds hardLimit")

    def check_health(self, kind: str, where: str, c: dict) -> None:
        hc = c.get("healthCheck")
        if not hc:
            self.fail("health-check", where, "the container needs a healthCheck")
            return
        for key, (low, high) in HEALTH_CHECK_RANGES.items():
            if key not in hc:
                if key == "startPeriod":
                    continue
                self.fail("health-check-range", where, f"healthCheck.{key} must be set explicitly")
                continue
            value = hc[key]
            if not isinstance(value, int) or not low <= value <= high:
                self.fail(
                    "health-check-range",
                    where,
                    f"healthCheck.{key} = {value!r} is outside ECS's range {low}..{high}",
                )
        cmd = hc.get("command") or []
        binary = (self.b.dockerfile.get("entrypoint") or [None])[0]
        if not cmd or cmd[0] != "CMD":
            self.fail(
                "health-check-command",
                where,
                "healthCheck.command must start with 'CMD' (the distroless image has no shell for CMD-SHELL)",
            )
        elif cmd[1:3] != [binary, "healthcheck"]:
            self.fail(
                "health-check-command",
                where,
                f"healthCheck.command must run [{binary!r}, 'healthcheck'], got {cmd[1:]!r}",
            )
        probe_timeout = HEALTH_PROBE_DEFAULT_TIMEOUT
        if "--timeout" in cmd:
            try:
                probe_timeout = float(cmd[cmd.index("--timeout") + 1])
            except (IndexError, ValueError):
                pass
        if isinstance(hc.get("timeout"), int) and hc["timeout"] <= probe_timeout:
            self.fail(
                "health-check-range",
                where,
                f"healthCheck.timeout {hc['timeout']} s must exceed the probe's own "
                f"timeout ({probe_timeout:g} s), or ECS kills a probe that would have "
                "reported",
            )

    def check_workers(self, where: str, td: dict, c: dict) -> None:
        """An explicit worker count, the one `--workers auto` would pick for the task's vCPUs."""
        workers = parse_server_flags(c.get("command")).get("--workers")
        cpu = task_size(td.get("cpu"))
        want = WORKERS_PER_VCPU * math.ceil(cpu / 1024) if cpu else None
        if workers is None or not str(workers).isdigit():
            self.fail(
                "workers-explicit",
                where,
                f"--workers must be an explicit number in a task definition, got "
                f"{workers!r}: the task size is known, and an explicit count does not "
                "depend on how the platform reports CPUs",
            )
        elif want is not None and int(workers) != want:
            self.fail(
                "workers-explicit",
                where,
                f"--workers {workers} for a {cpu}-unit task: {WORKERS_PER_VCPU} per vCPU "
                f"is {want} (what --workers auto picks under the task's CPU quota)",
            )

    def check_timing(self, kind: str, where: str, c: dict) -> None:
        flags = parse_server_flags(c.get("command"))
        graceful = server_int(flags, "--graceful-timeout")
        keep_alive = server_int(flags, "--keep-alive")
        stop = c.get("stopTimeout")
        if not isinstance(stop, int):
            self.fail("stop-timeout", where, "stopTimeout must be set (ECS's default is 30 s)")
        else:
            if kind == "FARGATE" and stop > FARGATE_MAX_STOP_TIMEOUT:
                self.fail(
                    "fargate-stop-timeout",
                    where,
                    f"stopTimeout {stop} exceeds Fargate's maximum of {FARGATE_MAX_STOP_TIMEOUT} s",
                )
            if graceful is None or graceful >= stop:
                self.fail(
                    "graceful-timeout",
                    where,
                    f"the server's --graceful-timeout ({graceful}) must be below "
                    f"stopTimeout ({stop}), or ECS sends SIGKILL mid-drain",
                )
            drain = server_int(flags, "--drain-delay")
            if drain is None or graceful is None or drain + graceful >= stop:
                self.fail(
                    "drain-stop",
                    where,
                    f"--drain-delay ({drain}) + --graceful-timeout ({graceful}) must be "
                    f"below stopTimeout ({stop}): on SIGTERM the server first serves for "
                    "the drain delay, then drains for up to the graceful timeout, and "
                    "SIGKILL must not cut either short",
                )
        drain = server_int(flags, "--drain-delay")
        for tg, (after, interval, count) in self.alb_unhealthy_after().items():
            if drain is None or drain < after:
                self.fail(
                    "drain-readiness",
                    where,
                    f"--drain-delay ({drain}) must be at least the time the ALB takes to "
                    f"mark a draining target unhealthy ({tg}: {interval} s x {count} = "
                    f"{after} s), or the server stops accepting while the ALB still "
                    "routes new requests to it",
                )
        idle = self.alb_idle_timeout()
        if keep_alive is None or keep_alive <= idle:
            self.fail(
                "keep-alive",
                where,
                f"the server's --keep-alive ({keep_alive}) must exceed "
                f"the ALB idle timeout ({idle} s), or the server closes connections the ALB "
                "is about to reuse (502s)",
            )
        host, port = split_bind(flags.get("--bind", SERVER_DEFAULTS["--bind"]))
        ports = [p.get("containerPort") for p in c.get("portMappings") or []]
        if host not in ("0.0.0.0", "[::]"):
            self.fail("bind", where, f"--bind host {host!r} is unreachable from the ALB; use 0.0.0.0")
        if port not in ports:
            self.fail("bind", where, f"--bind port {port} is not a containerPort ({ports})")

    # --- layer 2: a service
    def check_service(self, kind: str) -> None:
        where = f"svc:{kind}"
        svc = self.b.services[kind]
        td = self.b.task_defs[kind]
        c = container_of(td) or {}
        strategy = svc.get("capacityProviderStrategy")
        if svc.get("launchType") != kind and not strategy:
            self.fail(
                "service-launch-type", where, f"launchType must be {kind!r}, got {svc.get('launchType')!r}"
            )
        family = td.get("family")
        task_ref = str(svc.get("taskDefinition", ""))
        if task_ref.rsplit("/", 1)[-1].split(":")[0] != family:
            self.fail(
                "service-task-definition", where, f"taskDefinition {task_ref!r} is not the family {family!r}"
            )
        awsvpc = (svc.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        if not awsvpc.get("subnets") or not awsvpc.get("securityGroups"):
            self.fail(
                "service-network",
                where,
                "awsvpc services need "
                "networkConfiguration.awsvpcConfiguration with subnets and securityGroups",
            )
        if kind == "EC2" and awsvpc.get("assignPublicIp") == "ENABLED":
            self.fail(
                "service-network", where, "assignPublicIp ENABLED is supported on Fargate only, not on EC2"
            )
        lbs = svc.get("loadBalancers") or []
        ports = [p.get("containerPort") for p in c.get("portMappings") or []]
        if not lbs:
            self.fail("service-load-balancer", where, "the service needs a loadBalancers entry")
        for lb in lbs:
            if lb.get("containerName") != CONTAINER or lb.get("containerPort") not in ports:
                self.fail(
                    "service-load-balancer",
                    where,
                    f"loadBalancers must target container {CONTAINER!r} on one of its "
                    f"containerPorts {ports}, got {lb.get('containerName')!r}:"
                    f"{lb.get('containerPort')!r}",
                )
        grace = svc.get("healthCheckGracePeriodSeconds")
        start = (c.get("healthCheck") or {}).get("startPeriod", 0)
        if not isinstance(grace, int) or grace < start:
            self.fail(
                "service-grace",
                where,
                f"healthCheckGracePeriodSeconds ({grace}) must be set and at least the "
                f"container health check's startPeriod ({start})",
            )
        desired = svc.get("desiredCount")
        dc = svc.get("deploymentConfiguration") or {}
        max_pct, min_pct = dc.get("maximumPercent", 200), dc.get("minimumHealthyPercent", 100)
        if not isinstance(desired, int) or desired < 1:
            self.fail("service-desired-count", where, "desiredCount must be at least 1")
        elif math.floor(desired * max_pct / 100) <= math.ceil(desired * min_pct / 100):
            self.fail(
                "service-deployment",
                where,
                f"with desiredCount {desired}, maximumPercent {max_pct} and "
                f"minimumHealthyPercent {min_pct} a deployment can neither start a new task "
                "nor stop an old one",
            )

    # --- layer 2: EC2 and Fargate alike, and like the image
    def check_parity(self) -> None:
        ec2, fg = (container_of(self.b.task_defs[k]) or {} for k in KINDS)
        for key in ("image", "command", "entryPoint", "ulimits", "healthCheck", "stopTimeout"):
            if ec2.get(key) != fg.get(key):
                self.fail(
                    "parity",
                    "td:FARGATE",
                    f"container {key} differs between EC2 and Fargate: {ec2.get(key)!r} vs {fg.get(key)!r}",
                )
        if env_map(ec2.get("environment")) != env_map(fg.get("environment")):
            self.fail("parity", "td:FARGATE", "container environment differs between EC2 and Fargate")
        for key in ("cpu", "memory"):
            a, b = (task_size(self.b.task_defs[k].get(key)) for k in KINDS)
            if a != b:
                self.fail("parity", "td:FARGATE", f"task {key} differs: {a} vs {b}")
        for key in ("desiredCount", "healthCheckGracePeriodSeconds", "deploymentConfiguration"):
            a, b = (self.b.services[k].get(key) for k in KINDS)
            if a != b:
                self.fail("parity", "svc:FARGATE", f"service {key} differs: {a!r} vs {b!r}")

        df = self.b.dockerfile
        for kind in KINDS:
            c = container_of(self.b.task_defs[kind]) or {}
            # Identical but for the worker count (`auto` in the image, explicit on ECS) and the
            # drain delay (0 in the image, sized to the ALB on ECS).
            ours, image = c.get("command"), df.get("cmd")
            for flag in ECS_ONLY_FLAGS:
                ours, image = without_flag(ours, flag), without_flag(image, flag)
            if ours != image:
                self.fail(
                    "dockerfile-command",
                    f"td:{kind}",
                    f"command {c.get('command')!r} differs from the Dockerfile's CMD "
                    f"{df.get('cmd')!r} (other than {' and '.join(ECS_ONLY_FLAGS)})",
                )
            if c.get("entryPoint") not in (None, df.get("entrypoint")):
                self.fail(
                    "dockerfile-command", f"td:{kind}", "entryPoint differs from the Dockerfile's ENTRYPOINT"
                )

    def check_dockerfile(self) -> None:
        df = self.b.dockerfile
        if df.get("stages", 0) < 2:
            self.fail("dockerfile", "dockerfile", "the build must be multi-stage")
        for key in ("entrypoint", "cmd"):
            if not isinstance(df.get(key), list):
                self.fail(
                    "dockerfile",
                    "dockerfile",
                    f"{key.upper()} must be exec form (a JSON "
                    "array) so the master is PID 1 and receives SIGTERM",
                )
        user = (df.get("user") or "").split(":")[0]
        if user in ("", "0", "root"):
            self.fail(
                "dockerfile",
                "dockerfile",
                f"the final stage must set a non-root USER, got {df.get('user')!r}",
            )
        binary = (df.get("entrypoint") or [None])[0]
        if df.get("healthcheck") != [binary, "healthcheck"]:
            self.fail(
                "dockerfile",
                "dockerfile",
                f'HEALTHCHECK must be CMD [{binary!r}, "healthcheck"], got {df.get("healthcheck")!r}',
            )
        image = df.get("from") or ""
        tag = image.rsplit("/", 1)[-1]
        if ":" not in tag and "@" not in tag or tag.endswith(":latest"):
            self.fail("dockerfile", "dockerfile", f"runtime base image {image!r} is not pinned")
        flags = parse_server_flags(df.get("cmd"))
        if flags.get("--workers") != "auto":
            self.fail(
                "dockerfile-workers",
                "dockerfile",
                f"the image's CMD must run --workers auto (one image for every task size), "
                f"got {flags.get('--workers')!r}",
            )
        _, port = split_bind(flags.get("--bind", SERVER_DEFAULTS["--bind"]))
        if str(port) not in [e.split("/")[0] for e in df.get("expose", [])]:
            self.fail("dockerfile", "dockerfile", f"EXPOSE does not include the bind port {port}")

    def check_compose(self) -> None:
        services = (self.b.compose or {}).get("services") or {}
        if not services:
            self.fail("compose", "compose", "no services")
            return
        binary = (self.b.dockerfile.get("entrypoint") or [None])[0]
        for name, svc in services.items():
            command = svc.get("command", self.b.dockerfile.get("cmd"))
            graceful = server_int(parse_server_flags(command), "--graceful-timeout")
            grace = parse_duration(svc.get("stop_grace_period"))
            if grace is None or graceful is None or grace <= graceful:
                self.fail(
                    "compose-stop-grace",
                    "compose",
                    f"service {name}: stop_grace_period ({svc.get('stop_grace_period')!r}, "
                    f"default 10s) must exceed the server's --graceful-timeout ({graceful} s)",
                )
            test = (svc.get("healthcheck") or {}).get("test")
            if not isinstance(test, list) or test[:3] != ["CMD", binary, "healthcheck"]:
                self.fail(
                    "compose-healthcheck",
                    "compose",
                    f"service {name}: healthcheck.test must be ['CMD', {binary!r}, "
                    f"'healthcheck'] (no shell in the image), got {test!r}",
                )
            ports = [str(p) for p in svc.get("ports") or []]
            if not any(p.split(":")[-1].split("/")[0] == "8000" for p in ports):
                self.fail("compose", "compose", f"service {name}: no port maps to 8000")

    def check_cfn(self) -> None:
        cfn = self.b.cfn
        tgs = cfn_resources(cfn, "AWS::ElasticLoadBalancingV2::TargetGroup")
        if not tgs:
            self.fail("cfn-target-group", "cfn", "no target group")
        graceful = server_int(parse_server_flags(self.b.dockerfile.get("cmd")), "--graceful-timeout")
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

    def run(self, with_botocore: bool = True) -> list[Failure]:
        if with_botocore:
            self.check_botocore()
        for kind in KINDS:
            self.check_task_def(kind)
            if kind in self.b.arm_task_defs:
                self.check_task_def(kind, arm64=True)
            self.check_service(kind)
        self.check_parity()
        self.check_architectures()
        self.check_dockerfile()
        self.check_compose()
        self.check_cfn()
        self.check_cfn_architecture()
        self.check_cfn_capacity()
        return self.failures


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


def check(bundle: Bundle, with_botocore: bool = True) -> list[Failure]:
    return Checker(copy.deepcopy(bundle)).run(with_botocore)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=paths.ROOT, help="repository root (default: the parent of deploy/)"
    )
    args = parser.parse_args(argv)
    bundle = load_bundle(args.root)
    failures = check(bundle)
    checked = [bundle.names[k] for k in sorted(bundle.names)]
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        print(f"validate.py: {len(failures)} rule violation(s) in {', '.join(checked)}")
        return 1
    print(f"validate.py: all rules hold for {', '.join(checked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
