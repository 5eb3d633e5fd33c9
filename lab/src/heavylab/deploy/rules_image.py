"""The image and the local run: the Dockerfile's final stage and docker-compose.yml."""

from __future__ import annotations

from heavylab.deploy.bundle import (
    compose_env,
    parse_duration,
    split_bind,
)


class ImageRules:
    """Mixed into validate.Checker."""

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
        run = self.image_settings()
        if run is None:
            return
        if not run.workers_auto:
            self.fail(
                "dockerfile-workers",
                "dockerfile",
                f"the image must run --workers auto (one image for every task size); the server "
                f"runs a fixed {run['workers']} workers",
            )
        exposed = [e.split("/")[0] for e in df.get("expose", [])]
        for bind in run["bind"]:
            _, port = split_bind(bind)
            if str(port) not in exposed:
                self.fail("dockerfile", "dockerfile", f"EXPOSE does not include the bind port {port}")

    def check_compose(self) -> None:
        services = (self.b.compose or {}).get("services") or {}
        if not services:
            self.fail("compose", "compose", "no services")
            return
        binary = (self.b.dockerfile.get("entrypoint") or [None])[0]
        for name, svc in services.items():
            run = self.effective(
                "compose", svc.get("entrypoint"), svc.get("command"), compose_env(svc.get("environment"))
            )
            graceful = run["graceful_timeout"] if run else None
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
