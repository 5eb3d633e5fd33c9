"""The project's image, built here without a registry: `buildah from scratch`, the static release
binary, and the Dockerfile's own runtime settings (USER, ENV, EXPOSE, ENTRYPOINT, CMD,
STOPSIGNAL) read from the Dockerfile itself, so the lab runs what the Dockerfile describes."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

from heavylab import paths

TARGET = "x86_64-unknown-linux-gnu"
STATIC_BIN = paths.ROOT / "target" / TARGET / "release" / "heavy-api"
IMAGE = "localhost/heavy-api:lab"


@dataclass
class RuntimeConfig:
    """The final stage's runtime settings."""

    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    stopsignal: str | None = None
    binary_path: str = "/usr/local/bin/heavy-api"


def _words(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return json.loads(value)
    return ["/bin/sh", "-c", value]


def runtime_config(dockerfile: Path = paths.ROOT / "Dockerfile") -> RuntimeConfig:
    """The last stage of the Dockerfile, as an image config."""
    parser = DockerfileParser(path=str(dockerfile))
    stages: list[list[dict]] = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    if not stages:
        raise ValueError(f"{dockerfile}: no FROM")
    rc = RuntimeConfig()
    for ins in stages[-1]:
        kind, value = ins["instruction"], ins["value"]
        if kind == "USER":
            rc.user = value.strip()
        elif kind == "ENV":
            for word in value.split():
                k, _, v = word.partition("=")
                rc.env[k] = v
        elif kind == "EXPOSE":
            rc.expose += value.split()
        elif kind == "ENTRYPOINT":
            rc.entrypoint = _words(value)
        elif kind == "CMD":
            rc.cmd = _words(value)
        elif kind == "STOPSIGNAL":
            rc.stopsignal = value.strip()
        elif kind == "COPY" and "heavy-api" in value:
            rc.binary_path = value.split()[-1]
    return rc


def _newer_sources(binary: Path) -> bool:
    if not binary.exists():
        return True
    built = binary.stat().st_mtime
    sources = [paths.ROOT / "Cargo.toml", paths.ROOT / "Cargo.lock", *(paths.ROOT / "src").rglob("*.rs")]
    return any(p.stat().st_mtime > built for p in sources)


def static_binary() -> Path:
    """The static release binary the Dockerfile builds (+crt-static), built when missing or older
    than the sources."""
    if _newer_sources(STATIC_BIN):
        env = dict(
            os.environ, RUSTFLAGS="-C target-feature=+crt-static", CARGO_PROFILE_RELEASE_STRIP="debuginfo"
        )
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "--target", TARGET],
            cwd=paths.ROOT,
            env=env,
            check=True,
        )
    return STATIC_BIN


def build(tag: str = IMAGE) -> tuple[str, RuntimeConfig]:
    """Builds the image from scratch and returns its tag and runtime config."""
    binary = static_binary()
    rc = runtime_config()
    ctr = subprocess.run(
        ["buildah", "from", "scratch"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(
            ["buildah", "copy", ctr, str(binary), rc.binary_path], check=True, stdout=subprocess.DEVNULL
        )
        cfg = ["buildah", "config"]
        if rc.user:
            cfg += ["--user", rc.user]
        for k, v in rc.env.items():
            cfg += ["--env", f"{k}={v}"]
        for p in rc.expose:
            cfg += ["--port", p]
        if rc.stopsignal:
            cfg += ["--stop-signal", rc.stopsignal]
        cfg += ["--entrypoint", json.dumps(rc.entrypoint), "--cmd", json.dumps(rc.cmd), ctr]
        subprocess.run(cfg, check=True)
        subprocess.run(["buildah", "commit", "-q", ctr, tag], check=True, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["buildah", "rm", ctr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tag, rc


def burner_image(tag: str = "localhost/heavy-api-burner:lab") -> str | None:
    """A scratch image with Debian's static busybox: the neighbour that burns CPU. None without
    busybox-static."""
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        return None
    ctr = subprocess.run(
        ["buildah", "from", "scratch"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(
            ["buildah", "copy", ctr, str(busybox), "/bin/busybox"], check=True, stdout=subprocess.DEVNULL
        )
        spin = "while :; do :; done"
        subprocess.run(
            ["buildah", "config", "--entrypoint", json.dumps(["/bin/busybox", "sh", "-c", spin]), ctr],
            check=True,
        )
        subprocess.run(["buildah", "commit", "-q", ctr, tag], check=True, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["buildah", "rm", ctr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tag


def server_command(rc: RuntimeConfig, port: int) -> list[str]:
    """The image's CMD with its --bind pointed at 127.0.0.1:PORT (the lab uses host networking)."""
    cmd = list(rc.cmd)
    for i, word in enumerate(cmd):
        if word in ("--bind", "-b") and i + 1 < len(cmd):
            cmd[i + 1] = f"127.0.0.1:{port}"
            return cmd
    return [*cmd, "--bind", f"127.0.0.1:{port}"]
