#!/usr/bin/env python3
"""The container's stop, reproduced without Docker: the static binary runs as PID 1 of a new PID
namespace (`unshare --pid --fork --mount-proc`), as the image's non-root user (uid/gid 65532, via
setpriv), with the Dockerfile's CMD flags except --bind (127.0.0.1 on a free port) and --io-file
(a fresh directory). Then, like `docker stop` / an ECS task stop:

  1. `heavy-api healthcheck` (the image's HEALTHCHECK) exits 0 against it;
  2. an idle keep-alive connection is opened (an ALB keeps some) and several heavy requests start;
  3. SIGTERM goes to the namespace's PID 1 (the child of `unshare`, whose NSpid ends in 1);
  4. every in-flight request must finish with 200 and a correct body, after the SIGTERM;
  5. the master must exit 0 well within --graceful-timeout (the idle keep-alive connection must
     not hold it up for --keep-alive seconds);
  6. `heavy-api healthcheck` then exits 1.

Usage (as root): heavy-lab pid1 BINARY DOCKERFILE [--requests N]
Prints what it checked; exits 0 on success, 1 on a failed check, 2 if it cannot run here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from heavylab.deploy import dockerfile as dockerfile_mod
from heavylab.deploy.server import Refused, Server

IMAGE_UID = 65532  # distroless `nonroot`, the Dockerfile's USER
HEAVY_PATH = "/heavy/cpu-io-no-db/?prime_limit=3000000&hash_rounds=0&io_kb=1"
PRIMES_BELOW_3M = 216816


class CheckFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


def healthcheck(binary: str, port: int) -> int:
    return subprocess.run(
        [binary, "healthcheck", f"http://127.0.0.1:{port}"], capture_output=True, timeout=10, check=False
    ).returncode


def namespace_pid1(unshare_pid: int, deadline: float) -> int:
    """The host PID of the process that is PID 1 inside the new namespace."""
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            status = Path(f"/proc/{child}/status").read_text()
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if nspid and nspid[-1] == "1":
                return int(child)
        time.sleep(0.05)
    raise CheckFailed("found no child of unshare whose NSpid ends in 1")


def heavy_request(port: int, results: list, index: int) -> None:
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", HEAVY_PATH)
        resp = conn.getresponse()
        body = resp.read()
        results[index] = (resp.status, body, started, time.monotonic())
        conn.close()
    except Exception as exc:  # reported as a failed request below
        results[index] = (None, repr(exc).encode(), started, time.monotonic())


def check_cmd(binary: str, cmd_flags: list[str]) -> None:
    """The image's CMD (with `--workers auto`) must be a valid configuration."""
    probe = subprocess.run(
        [binary, *cmd_flags, "--check-config"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        raise CheckFailed(f"the binary refuses the image's CMD: {probe.stderr.strip()}")
    print("  ok: the binary accepts the image's CMD with --check-config")


def run(binary: str, dockerfile: Path, n_requests: int) -> None:
    df = dockerfile_mod.image(dockerfile)
    cmd_flags = df["cmd"]
    if not isinstance(cmd_flags, list):
        raise CheckFailed("the Dockerfile's CMD is not exec form")
    check_cmd(binary, cmd_flags)
    # The timing the server will use, as the server itself reads the CMD and the image's ENV.
    try:
        settings = Server(Path(binary)).settings(cmd_flags, df["env"])
    except Refused as why:
        raise CheckFailed(f"the binary refuses the image's CMD: {why}") from None
    graceful, keep_alive = settings["graceful_timeout"], settings["keepalive"]

    work = Path(tempfile.mkdtemp(prefix="heavy-api-pid1-"))
    proc = None
    try:
        # The binary and its io directory, readable/writable by the image's user.
        exe = work / "heavy-api"
        shutil.copy2(binary, exe)
        os.chmod(work, 0o755)
        iodir = work / "io"
        iodir.mkdir()
        as_image_user = os.geteuid() == 0
        if as_image_user:
            os.chown(iodir, IMAGE_UID, IMAGE_UID)
        port = free_port()
        args = replace_flag(cmd_flags, "--bind", f"127.0.0.1:{port}")
        args = replace_flag(args, "--io-file", str(iodir / "heavy_api_io.bin"))
        drop = (
            ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", "--"]
            if as_image_user
            else []
        )
        argv = ["unshare", "--pid", "--fork", "--mount-proc", *drop, str(exe), *args]
        print(f"  start: {' '.join(argv)}")
        log_path = work / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        deadline = time.monotonic() + 15
        while healthcheck(str(exe), port) != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed(
                    f"server did not become healthy (exit {proc.poll()})\n"
                    + log_path.read_text(errors="replace")
                )
            time.sleep(0.1)
        print("  ok: heavy-api healthcheck exits 0 while serving")

        pid1 = namespace_pid1(proc.pid, time.monotonic() + 5)
        status = Path(f"/proc/{pid1}/status").read_text()
        cmdline = Path(f"/proc/{pid1}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        # The master's process title, as Gunicorn's setproctitle sets it.
        if not cmdline.startswith("heavy-api: master"):
            raise CheckFailed(f"PID 1 of the namespace is {cmdline!r}, not the heavy-api master")
        if as_image_user and uid != str(IMAGE_UID):
            raise CheckFailed(f"PID 1 runs as uid {uid}, not {IMAGE_UID}")
        print(f"  ok: PID 1 of the namespace is the heavy-api master (host pid {pid1}, uid {uid})")

        # An idle keep-alive connection, as an ALB holds, then the heavy requests.
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        idle.request("GET", "/heavy/health/")
        idle_resp = idle.getresponse()
        idle_resp.read()
        if idle_resp.status != 200:
            raise CheckFailed(f"health over keep-alive answered {idle_resp.status}")

        results: list = [None] * n_requests
        threads = [threading.Thread(target=heavy_request, args=(port, results, i)) for i in range(n_requests)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # every request connected and sent; each needs > 1 s of CPU among them
        term_at = time.monotonic()
        os.kill(pid1, signal.SIGTERM)
        print(
            f"  sent SIGTERM to PID 1 with {n_requests} heavy requests in flight and one idle "
            "keep-alive connection"
        )
        try:
            rc = proc.wait(timeout=graceful + 10)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"the master did not exit within {graceful + 10} s of SIGTERM") from None
        stop_secs = time.monotonic() - term_at
        for t in threads:
            t.join(timeout=30)
        idle.close()

        log_text = log_path.read_text(errors="replace")
        problems = []
        for i, res in enumerate(results):
            if res is None:
                problems.append(f"request {i}: no result")
                continue
            code, body, _started, ended = res
            if code != 200:
                problems.append(f"request {i}: status {code}: {body[:200]!r}")
                continue
            primes = json.loads(body).get("primes_found")
            if primes != PRIMES_BELOW_3M:
                problems.append(f"request {i}: primes_found {primes}, want {PRIMES_BELOW_3M}")
            if ended < term_at:
                problems.append(
                    f"request {i} finished before SIGTERM: not a drain test (make the requests heavier)"
                )
        if problems:
            raise CheckFailed("in-flight requests:\n    " + "\n    ".join(problems) + "\n" + log_text)
        finished = sorted(res[3] - term_at for res in results)
        print(
            f"  ok: all {n_requests} in-flight requests answered 200 with the right body, "
            f"{finished[0]:.1f}..{finished[-1]:.1f} s after the SIGTERM"
        )
        if rc != 0:
            raise CheckFailed(f"the master exited {rc}, want 0\n{log_text}")
        if stop_secs >= min(graceful, keep_alive):
            raise CheckFailed(f"stop took {stop_secs:.1f} s: held up by an idle connection?")
        print(
            f"  ok: the master exited 0, {stop_secs:.1f} s after SIGTERM "
            f"(--graceful-timeout {graceful}, --keep-alive {keep_alive})"
        )
        if "Handling signal: term" not in log_text:
            raise CheckFailed("the log does not show 'Handling signal: term'\n" + log_text)

        after = healthcheck(str(exe), port)
        if after != 1:
            raise CheckFailed(f"heavy-api healthcheck exited {after} after the stop, want 1")
        print("  ok: heavy-api healthcheck exits 1 once the server is gone")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="PID-1 graceful shutdown check (see module doc)")
    parser.add_argument("binary")
    parser.add_argument("dockerfile", type=Path)
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("unshare") is None:
        print("pid1-shutdown-check: unshare (util-linux) is not installed", file=sys.stderr)
        return 2
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        print(
            "pid1-shutdown-check: cannot create a PID namespace here (needs root): "
            + probe.stderr.decode(errors="replace").strip(),
            file=sys.stderr,
        )
        return 2
    try:
        run(args.binary, args.dockerfile, args.requests)
    except CheckFailed as exc:
        print(f"  FAIL: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
