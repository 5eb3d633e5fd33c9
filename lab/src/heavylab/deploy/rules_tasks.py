"""The ECS rules botocore does not check: task definitions, services, EC2/Fargate parity, and
the server's timing against ECS and the ALB (from the settings the server reports)."""

from __future__ import annotations

import math

from heavylab.deploy.bundle import (
    ALB_DEFAULT_DEREGISTRATION_DELAY,
    ALB_DEFAULT_HEALTH_INTERVAL,
    ALB_DEFAULT_IDLE_TIMEOUT,
    ALB_DEFAULT_UNHEALTHY_THRESHOLD,
    CONTAINER,
    ECS_ONLY_SETTINGS,
    FARGATE_MAX_STOP_TIMEOUT,
    FARGATE_SIZES,
    HEALTH_CHECK_RANGES,
    KINDS,
    cfn_resources,
    container_of,
    env_map,
    split_bind,
    task_size,
)


class TaskRules:
    """Mixed into validate.Checker (self.b, self.fail, self.container_settings)."""

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
        probe_timeout = self.server.probe_timeout()  # `heavy-api healthcheck --timeout`'s default
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
        run = self.container_settings(where, c)
        if run is None:
            return
        workers = run["workers"]
        cpu = task_size(td.get("cpu"))
        per_cpu = run.workers_per_cpu  # the server's own factor for `--workers auto`
        want = per_cpu * math.ceil(cpu / 1024) if cpu and per_cpu else None
        if run.workers_auto:
            self.fail(
                "workers-explicit",
                where,
                "the worker count must be explicit in a task definition (--workers N, or "
                "WEB_CONCURRENCY=N), but the server counts `auto` "
                f"({run.workers_source}): the task size is known, and an explicit count does "
                "not depend on how the platform reports CPUs",
            )
        elif want is not None and workers != want:
            self.fail(
                "workers-explicit",
                where,
                f"--workers {workers} for a {cpu}-unit task: {per_cpu} per vCPU "
                f"is {want} (what --workers auto picks under the task's CPU quota)",
            )

    def check_timing(self, kind: str, where: str, c: dict) -> None:
        run = self.container_settings(where, c)
        if run is None:
            return
        graceful, keep_alive, drain = run["graceful_timeout"], run["keepalive"], run["drain_delay"]
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
            if graceful >= stop:
                self.fail(
                    "graceful-timeout",
                    where,
                    f"the server's --graceful-timeout ({graceful}) must be below "
                    f"stopTimeout ({stop}), or ECS sends SIGKILL mid-drain",
                )
            if drain + graceful >= stop:
                self.fail(
                    "drain-stop",
                    where,
                    f"--drain-delay ({drain}) + --graceful-timeout ({graceful}) must be "
                    f"below stopTimeout ({stop}): on SIGTERM the server first serves for "
                    "the drain delay, then drains for up to the graceful timeout, and "
                    "SIGKILL must not cut either short",
                )
        for tg, (after, interval, count) in self.alb_unhealthy_after().items():
            if drain < after:
                self.fail(
                    "drain-readiness",
                    where,
                    f"--drain-delay ({drain}) must be at least the time the ALB takes to "
                    f"mark a draining target unhealthy ({tg}: {interval} s x {count} = "
                    f"{after} s), or the server stops accepting while the ALB still "
                    "routes new requests to it",
                )
        idle = self.alb_idle_timeout()
        if keep_alive <= idle:
            self.fail(
                "keep-alive",
                where,
                f"the server's --keep-alive ({keep_alive}) must exceed "
                f"the ALB idle timeout ({idle} s), or the server closes connections the ALB "
                "is about to reuse (502s)",
            )
        ports = [p.get("containerPort") for p in c.get("portMappings") or []]
        for bind in run["bind"]:
            host, port = split_bind(bind)
            if host not in ("0.0.0.0", "[::]"):
                self.fail(
                    "bind", where, f"bind {bind!r}: host {host!r} is unreachable from the ALB; use 0.0.0.0"
                )
            if port not in ports:
                self.fail("bind", where, f"bind {bind!r}: port {port} is not a containerPort ({ports})")

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
        image = self.image_settings()
        for kind in KINDS:
            c = container_of(self.b.task_defs[kind]) or {}
            ours = self.container_settings(f"td:{kind}", c)
            if ours is None or image is None:
                continue
            # The server runs the same settings but for the worker count (`auto` in the image,
            # explicit on ECS) and the drain delay (0 in the image, sized to the ALB on ECS).
            differ = [
                f"{name} {ours[name]!r} (image: {image.settings.get(name)!r})"
                for name in sorted(ours.settings)
                if name not in ECS_ONLY_SETTINGS and ours[name] != image.settings.get(name)
            ]
            if differ:
                self.fail(
                    "dockerfile-command",
                    f"td:{kind}",
                    "the server runs settings that differ from the image's (other than "
                    f"{' and '.join(ECS_ONLY_SETTINGS)}): " + ", ".join(differ),
                )
            if c.get("entryPoint") not in (None, df.get("entrypoint")):
                self.fail(
                    "dockerfile-command", f"td:{kind}", "entryPoint differs from the Dockerfile's ENTRYPOINT"
                )
