"""The project's image, built here without a registry: `buildah from scratch`, the static release
binary, and the Dockerfile's own runtime settings (USER, ENV, EXPOSE, ENTRYPOINT, CMD,
STOPSIGNAL) read from the Dockerfile itself, so the lab runs what the Dockerfile describes."""

from __future__ import annotations

import hashlib
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


def _image_label(tag: str) -> str | None:
    """The heavylab.source label of an existing image (None when it does not exist)."""
    r = subprocess.run(
        ["podman", "image", "inspect", "--format", '{{ index .Labels "heavylab.source" }}', tag],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() if r.returncode == 0 else None


def _commit(ctr: str, tag: str, source: str) -> None:
    """Commits the working container as TAG and removes the image TAG named before, if any."""
    old = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    subprocess.run(["buildah", "config", "--label", f"heavylab.source={source}", ctr], check=True)
    subprocess.run(["buildah", "commit", "-q", ctr, tag], check=True, stdout=subprocess.DEVNULL)
    if old.returncode == 0 and old.stdout.strip():
        subprocess.run(["podman", "rmi", old.stdout.strip()], capture_output=True)  # now untagged


def source_digest(binary: Path, rc: RuntimeConfig) -> str:
    """What the image is made of: the binary's bytes and the runtime config."""
    h = hashlib.sha256(binary.read_bytes())
    h.update(json.dumps(rc.__dict__, sort_keys=True).encode())
    return h.hexdigest()[:16]


def build(tag: str = IMAGE) -> tuple[str, RuntimeConfig]:
    """Builds the image from scratch (reused when binary and settings are unchanged) and returns
    its tag and runtime config."""
    binary = static_binary()
    rc = runtime_config()
    source = source_digest(binary, rc)
    if _image_label(tag) == source:
        return tag, rc
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
        _commit(ctr, tag, source)
    finally:
        subprocess.run(["buildah", "rm", ctr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tag, rc


BUSYBOX = Path("/bin/busybox")
SPIN = "while :; do :; done"


def burner_image(tag: str = "localhost/heavy-api-burner:lab") -> str | None:
    """A scratch image with Debian's static busybox running a busy loop: the neighbour that burns
    CPU. None without busybox-static."""
    if not BUSYBOX.is_file():
        return None
    source = hashlib.sha256(BUSYBOX.read_bytes() + SPIN.encode()).hexdigest()[:16]
    if _image_label(tag) == source:
        return tag
    ctr = subprocess.run(
        ["buildah", "from", "scratch"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(
            ["buildah", "copy", ctr, str(BUSYBOX), "/bin/busybox"], check=True, stdout=subprocess.DEVNULL
        )
        subprocess.run(
            ["buildah", "config", "--entrypoint", json.dumps(["/bin/busybox", "sh", "-c", SPIN]), ctr],
            check=True,
        )
        _commit(ctr, tag, source)
    finally:
        subprocess.run(["buildah", "rm", ctr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tag


def server_command(rc: RuntimeConfig, port: int, overrides: dict[str, str] | None = None) -> list[str]:
    """The image's CMD with its --bind pointed at 127.0.0.1:PORT (the lab uses host networking)
    and each flag of OVERRIDES set to its value (replaced where CMD has it, else appended)."""
    want = {"--bind": f"127.0.0.1:{port}", **(overrides or {})}
    aliases = {"-b": "--bind", "-w": "--workers"}
    cmd = list(rc.cmd)
    for i, word in enumerate(cmd[:-1]):
        flag = aliases.get(word, word)
        if flag in want:
            cmd[i + 1] = want.pop(flag)
    for flag, value in want.items():
        cmd += [flag, value]
    return cmd
