"""The server under test: a local heavy-api the runner starts and stops, or one already running;
its health, fingerprint (/heavy/info/) and metrics (/metrics)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

# The production-like flags of a local server (docs/LOAD_TESTS.md); --server-args come after them.
LOCAL_FLAGS = [
    "--workers",
    "4",
    "--threads",
    "2",
    "--timeout",
    "120",
    "--keep-alive",
    "75",
    "--access-logfile",
    "-",
]
READY_SECS = 30.0
STOP_SECS = 90.0


def get(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """GET url: (True, body) on 200; (False, "status N" or the error) otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return True, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return False, f"status {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return False, str(getattr(e, "reason", None) or e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LocalServer:
    """heavy-api on 127.0.0.1, its output in LOG; ready once GET /heavy/health/ answers 200."""

    def __init__(self, binary: Path, port: int, extra: list[str], log: Path):
        self.binary, self.port = Path(binary), port
        self.base_url = f"http://127.0.0.1:{port}"
        self.command = [str(binary), "--bind", f"127.0.0.1:{port}", *LOCAL_FLAGS, *extra]
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_SECS
        while True:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(
                    f"heavy-api exited {self.proc.returncode} before it became healthy:\n" + "\n".join(tail)
                )
            if get(f"{self.base_url}/heavy/health/", 1.0)[0]:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"heavy-api not healthy after {READY_SECS:g} s (log: {self.log})")
            time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait for the graceful stop, then SIGKILL; the exit code."""
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_SECS)
            except subprocess.TimeoutExpired:
                print(
                    f"[loadtest] heavy-api (pid {self.proc.pid}) ignored SIGTERM for {STOP_SECS:g} s: killing it",
                    flush=True,
                )
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        return self.exit_code


def host_facts() -> dict:
    """The machine the runner runs on."""
    import platform

    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model", "CPU part"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "release": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor() or None,
    }
