"""What heavy-api makes of a container's command: its effective settings, asked from the binary.

The validators never parse server flags themselves. For a command (ENTRYPOINT's arguments +
CMD/command) and the container's environment (the image's ENV under the task definition's
`environment`: GUNICORN_CMD_ARGS, HEAVY_API_CMD_ARGS, WEB_CONCURRENCY, PORT), they run

    heavy-api --print-config=json ARGS...

with exactly that environment, in an empty directory (no ./gunicorn.conf.py), and read its
`settings` (the names of `--print-config`), `workers_source` (set when `--workers auto` counted),
`workers_per_cpu` (what `auto` runs per usable CPU) and `warnings`. The binary binds nothing and exits at once; answers are cached per command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from heavylab import paths

DEFAULT_BINARY = paths.HEAVY_BIN


class NoBinary(RuntimeError):
    """There is no heavy-api binary to ask (and none could be built)."""


class Refused(ValueError):
    """heavy-api refuses the command (its own `Error: ...` message)."""


@dataclass(frozen=True)
class Effective:
    """One command's effective settings, as the server resolved them."""

    settings: dict
    workers_source: str | None = None  # how `--workers auto` counted; None for a given count
    warnings: list = field(default_factory=list)
    workers_per_cpu: int | None = None  # how many workers `--workers auto` runs per usable CPU

    def __getitem__(self, name: str):
        return self.settings[name]

    @property
    def workers_auto(self) -> bool:
        return self.workers_source is not None


def find_binary(binary: Path | None = None, build: bool = True) -> Path:
    """The binary to ask: `binary` if given (it must exist), else target/release/heavy-api,
    built with `cargo build --release` if it is missing and `build` is true."""
    if binary is not None:
        if not os.access(binary, os.X_OK):
            raise NoBinary(f"--binary {binary}: not an executable file")
        return binary
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    cargo = shutil.which("cargo")
    if not build or cargo is None:
        raise NoBinary(
            f"no heavy-api binary at {DEFAULT_BINARY}"
            + ("" if build else " (building disabled)")
            + ("" if cargo or not build else " and no cargo on PATH to build it")
            + ": run `cargo build --release`, or pass --binary PATH"
        )
    print(f"validate: {DEFAULT_BINARY} is missing; building it (cargo build --release)", file=sys.stderr)
    done = subprocess.run([cargo, "build", "--release"], cwd=paths.ROOT, check=False)
    if done.returncode != 0 or not os.access(DEFAULT_BINARY, os.X_OK):
        raise NoBinary(f"cargo build --release failed (exit {done.returncode}); no binary to ask")
    return DEFAULT_BINARY


class Server:
    """Asks one heavy-api binary for effective settings."""

    def __init__(self, binary: Path):
        self.binary = Path(binary).resolve()
        self._cache: dict = {}
        self._cwd = tempfile.mkdtemp(prefix="heavy-api-print-config-")

    def probe_timeout(self) -> float:
        """The default of `heavy-api healthcheck --timeout`, in seconds, from the binary's --help."""
        if "probe_timeout" not in self._cache:
            import re

            text = subprocess.run(
                [str(self.binary), "healthcheck", "--help"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
            m = re.search(r"--timeout\b.*?\[default: ([0-9.]+)\]", text, re.DOTALL)
            if not m:
                raise Refused(f"{self.binary} healthcheck --help names no --timeout default")
            self._cache["probe_timeout"] = float(m.group(1))
        return self._cache["probe_timeout"]

    def settings(self, args: list, env: dict | None = None) -> Effective:
        """The effective settings of `heavy-api ARGS...` in a container with environment `env`
        (only that: the caller's own GUNICORN_CMD_ARGS and PORT do not leak in)."""
        env = {str(k): str(v) for k, v in (env or {}).items()}
        key = (tuple(str(a) for a in args), tuple(sorted(env.items())))
        if key not in self._cache:
            self._cache[key] = self._ask(list(key[0]), env)
        result = self._cache[key]
        if isinstance(result, Refused):
            raise result
        return result

    def _ask(self, args: list, env: dict):
        import json

        proc = subprocess.run(
            [str(self.binary), "--print-config=json", *args],
            env=env,
            cwd=self._cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            why = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            return Refused(why[0].removeprefix("Error: ") if why else f"exit {proc.returncode}")
        answer = json.loads(proc.stdout)
        return Effective(
            answer["settings"],
            answer.get("workers_source"),
            answer.get("warnings") or [],
            answer.get("workers_per_cpu"),
        )


_default: Server | None = None


def default() -> Server:
    """A Server for target/release/heavy-api (built if missing), made once."""
    global _default
    if _default is None:
        _default = Server(find_binary())
    return _default


def use(binary: Path | None) -> Server:
    """Makes `binary` (or the default) the binary default() answers with."""
    global _default
    _default = Server(find_binary(binary))
    return _default
