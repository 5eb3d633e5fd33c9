"""Validates heavy-api's deployment files: the ECS task and service definitions, the CloudFormation
template, docker-compose.yml and the Dockerfile, against each other, against ECS's limits, and
against what the server itself makes of each container's command.

    heavy-lab validate [--root DIR] [--binary PATH]

Three layers:
  1. botocore's ECS service model: each deploy/task-definition-*.json must be a valid
     RegisterTaskDefinition input and each deploy/service-*.json a valid CreateService input
     (types, required fields, unknown keys) - what `aws ecs register-task-definition
     --cli-input-json` would send.
  2. The server's own answer: for every container (task definitions, the image, compose), the
     binary is asked `heavy-api --print-config=json ARGS...` under the container's environment
     (the image's ENV, then the task's: GUNICORN_CMD_ARGS, WEB_CONCURRENCY, PORT, ...), so the
     validator never re-implements flag parsing or defaults (deploy/server.py).
  3. The rules botocore does not know, each with an id printed on failure: Fargate CPU/memory
     pairs, stopTimeout, health check ranges, --graceful-timeout and --drain-delay against
     stopTimeout and the ALB, --keep-alive above the ALB idle timeout, EC2 and Fargate alike,
     like the image, x86_64 and arm64 alike, CloudFormation's architectures, capacity provider
     and auto scaling (rules_tasks.py, rules_image.py, rules_cfn.py).

The binary is target/release/heavy-api (built with cargo if missing) unless --binary names one.
Exit status 0 when every rule holds, 1 when any fails, 2 when there is no binary to ask.
lab/tests/test_validate.py breaks each rule on purpose to show it can fail.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from heavylab import paths
from heavylab.deploy import server as server_mod
from heavylab.deploy.bundle import KINDS, Bundle, Failure, env_map, load_bundle
from heavylab.deploy.rules_cfn import CfnRules
from heavylab.deploy.rules_image import ImageRules
from heavylab.deploy.rules_tasks import TaskRules

__all__ = ["Bundle", "Checker", "Failure", "check", "load_bundle", "main"]


class Checker(TaskRules, ImageRules, CfnRules):
    def __init__(self, bundle: Bundle, server: server_mod.Server):
        self.b = bundle
        self.server = server
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

    # --- layer 2: the server's answer for one container
    def effective(self, where: str, entrypoint=None, command=None, environment=None):
        """The server's effective settings for a container that overrides the image's
        ENTRYPOINT/CMD/environment with these (None: the image's). Docker's rule: a new
        entrypoint drops the image's CMD. None (and a `server-config` failure) when the server
        cannot be asked or refuses the command."""
        df = self.b.dockerfile
        ep = df.get("entrypoint") if entrypoint is None else entrypoint
        cmd = command if command is not None else (df.get("cmd") if entrypoint is None else [])
        if not isinstance(ep, list) or not ep or not isinstance(cmd, list):
            self.fail("server-config", where, "the entrypoint and command must be exec form (lists)")
            return None
        if Path(str(ep[0])).name != "heavy-api":
            self.fail("server-config", where, f"the entrypoint {ep[0]!r} is not heavy-api")
            return None
        env = {**(df.get("env") or {}), **(environment or {})}
        args = [str(a) for a in [*ep[1:], *cmd]]
        try:
            return self.server.settings(args, env)
        except server_mod.Refused as why:
            self.fail("server-config", where, f"heavy-api refuses {' '.join(args)!r}: {why}")
            return None

    def container_settings(self, where: str, c: dict):
        return self.effective(where, c.get("entryPoint"), c.get("command"), env_map(c.get("environment")))

    def image_settings(self):
        return self.effective("dockerfile")

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


def check(
    bundle: Bundle, with_botocore: bool = True, server: server_mod.Server | None = None
) -> list[Failure]:
    """Every rule over a copy of `bundle`; the server asked is `server`, else the default one."""
    return Checker(copy.deepcopy(bundle), server or server_mod.default()).run(with_botocore)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="heavy-lab validate",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every rule holds, 1 a rule failed, 2 no heavy-api binary to ask.",
    )
    parser.add_argument(
        "--root", type=Path, default=paths.ROOT, help="repository root (default: %(default)s)"
    )
    parser.add_argument(
        "--binary",
        type=Path,
        help="the heavy-api to ask for effective settings (default: target/release/heavy-api, "
        "built with cargo if missing)",
    )
    args = parser.parse_args(argv)
    try:
        server = server_mod.use(args.binary)
    except server_mod.NoBinary as why:
        print(f"validate: cannot ask the server: {why}", file=sys.stderr)
        return 2
    bundle = load_bundle(args.root)
    failures = check(bundle, server=server)
    checked = [bundle.names[k] for k in sorted(bundle.names)]
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        print(f"validate: {len(failures)} rule violation(s) in {', '.join(checked)}")
        return 1
    print(f"validate: all rules hold for {', '.join(checked)} (settings from {server.binary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
