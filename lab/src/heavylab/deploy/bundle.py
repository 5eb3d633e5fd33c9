"""Every deployment file, loaded once: the ECS task and service definitions (x86_64 and arm64),
the Dockerfile (deploy/dockerfile.py), docker-compose.yml and the CloudFormation template (its
short tags read as the long forms), plus the small helpers the rules share. No rules here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from heavylab.deploy import dockerfile

KINDS = ("EC2", "FARGATE")
# ECS runtimePlatform.cpuArchitecture -> the container instance attribute ecs.cpu-architecture.
ARCHITECTURES = {"X86_64": "x86_64", "ARM64": "arm64"}
# The image's CMD runs `--workers auto` (the server's workers_per_cpu per usable CPU); task
# definitions pass the number explicitly, the same one auto would pick for their task size.
CONTAINER = "heavy-api"
# The probes: the ALB asks readiness (503 from the first moment of a drain), the container health
# check liveness (`heavy-api healthcheck`: /heavy/health/, 200 until the process is gone).
READINESS_PATH = "/heavy/ready/"
# Flags a task definition may set differently from the image's CMD: the worker count (`auto` in
# Settings a task definition may set differently from the image's CMD: the worker count (`auto`
# in the image) and the drain delay (0 in the image: `docker stop` waits 10 s by default).
ECS_ONLY_SETTINGS = ("workers", "drain_delay")
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


class CfnLoader(yaml.SafeLoader):
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


CfnLoader.add_multi_constructor("!", _cfn_tag)


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
        dockerfile=dockerfile.image(root / "Dockerfile"),
        compose=yaml.safe_load((root / "docker-compose.yml").read_text()),
        cfn=yaml.load((deploy / "cloudformation.yaml").read_text(), Loader=CfnLoader),  # noqa: S506
        names=names,
        arm_task_defs=arm_task_defs,
    )


# ------------------------------------------------------------------------------------- helpers


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


def compose_env(env) -> dict:
    """A compose service's `environment` (a mapping, or a list of KEY=VALUE) as a dict."""
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    return dict(str(e).partition("=")[::2] for e in env or [])
