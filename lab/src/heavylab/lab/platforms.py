"""`heavy-lab platforms`: the platform lab. The comparison rehearsed with known answers: the
project's image runs as real containers on this machine, as simulated platforms whose order is
known, and the instrument must find that order and name its causes.

| platform | how | like |
| --- | --- | --- |
| dedicated | the server alone on core 1 (`--cpuset-cpus 1`) | a task alone on an EC2 instance |
| quota | core 1 under a CPU quota (`--cpus 0.5`) | a Fargate task's vCPU share |
| neighbour | core 1 shared with a CPU-burning container (busybox busy loop) | a noisy neighbour |
| dedicated-again | dedicated, a second time | the same platform twice |

The load generator (k6) is pinned to core 0 (`taskset -c 0`). On each platform the capacity
search runs (`heavy-lab run --scenario capacity`), then one N-platform report over all of them,
and the lab checks the answers: dedicated has the highest capacity; quota's reason names
throttling; neighbour's names waiting for a core; the same platform twice is no difference beyond
noise. Exit 0 when every answer is right, 1 when one is wrong (each named), 2 when the lab could
not run.

Containers: podman with runc (Debian's packages; installed with apt when missing and root). The
image is built from scratch with the static release binary and the Dockerfile's runtime settings
(heavylab.lab.image). Where containers cannot run, the lab falls back to processes pinned with
taskset and a cgroup CPU quota, and says so in its output and its report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from heavylab import paths
from heavylab.lab import image
from heavylab.run.target import free_port, get

SERVER_CPU = "1"
LOADGEN_CPU = "0"
# A light request, so that short steps bracket precisely and k6 on one core keeps up.
REQUEST = ["PRIME_LIMIT=30000", "HASH_ROUNDS=10000", "IO_KB=0", "IO_SYNC=none"]
# The same platform twice runs back to back, so the machine drifts least between the two.
PLATFORMS = ("dedicated", "dedicated-again", "quota", "neighbour")
QUOTA_CPUS = 0.5


def log(msg: str) -> None:
    print(f"[platforms] {msg}", flush=True)


@dataclass
class Platform:
    name: str
    quota: float | None = None
    neighbour: bool = False


SPECS = {
    "dedicated": Platform("dedicated"),
    "quota": Platform("quota", quota=QUOTA_CPUS),
    "neighbour": Platform("neighbour", neighbour=True),
    "dedicated-again": Platform("dedicated-again"),
}


# --- how a platform runs ---------------------------------------------------------------------


class Containers:
    """podman + runc: the image's entrypoint and CMD, host networking, core 1."""

    how = "podman containers (runc), the image built from scratch with the Dockerfile's settings"

    def __init__(self):
        self.image, self.config = image.build()
        self.burner = image.burner_image()
        self.started: list[str] = []
        hard = (
            subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
            or "65536"
        )
        self.nofile = hard

    def _run(self, name: str, args: list[str]) -> None:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
        cmd = ["podman", "run", "--runtime", "runc", "-d", "--name", name, *args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"podman run {name}: {r.stderr.strip()}")
        self.started.append(name)

    def start(self, p: Platform, port: int) -> str:
        ulimits = ["--ulimit", f"nofile={self.nofile}:{self.nofile}", "--ulimit", "nproc=4096:4096"]
        if p.neighbour:
            if not self.burner:
                raise RuntimeError(
                    "no neighbour image: install busybox-static (apt-get install busybox-static)"
                )
            self._run(f"heavylab-burner-{os.getpid()}", ["--cpuset-cpus", SERVER_CPU, *ulimits, self.burner])
        limits = ["--cpuset-cpus", SERVER_CPU, "--network", "host", "--tmpfs", "/tmp", *ulimits]
        if p.quota:
            limits += ["--cpus", f"{p.quota:g}"]
        cmd = image.server_command(self.config, port)
        self._run(f"heavylab-{p.name}-{os.getpid()}", [*limits, self.image, *cmd])
        return "podman run " + " ".join(limits) + f" {self.image} " + " ".join(cmd)

    def stop(self) -> None:
        for name in reversed(self.started):
            subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True)
        self.started.clear()


class Processes:
    """The fallback: the binary pinned with taskset, a cgroup CPU quota, a busy-loop neighbour."""

    how = "processes pinned with taskset and a cgroup CPU quota (no containers here)"

    def __init__(self):
        self.binary = image.static_binary()
        self.config = image.runtime_config()
        self.procs: list[subprocess.Popen] = []
        self.cgroup: Path | None = None

    def _quota_cgroup(self, cpus: float) -> Path:
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        if v2.is_file():
            cg = Path(f"/sys/fs/cgroup/heavylab-{os.getpid()}")
            cg.mkdir(exist_ok=True)
            (cg / "cpu.max").write_text(f"{int(cpus * 100000)} 100000\n")
        else:
            cg = Path(f"/sys/fs/cgroup/cpu/heavylab-{os.getpid()}")
            cg.mkdir(exist_ok=True)
            (cg / "cpu.cfs_period_us").write_text("100000\n")
            (cg / "cpu.cfs_quota_us").write_text(f"{int(cpus * 100000)}\n")
        self.cgroup = cg
        return cg

    def start(self, p: Platform, port: int) -> str:
        if p.neighbour:
            self.procs.append(
                subprocess.Popen(["taskset", "-c", SERVER_CPU, "sh", "-c", "while :; do :; done"])
            )
        cmd = [str(self.binary), *image.server_command(self.config, port)]
        cmd = [w.replace("/tmp/", f"{os.environ.get('TMPDIR', '/tmp')}/heavylab-{os.getpid()}-") for w in cmd]
        if p.quota:
            procs = self._quota_cgroup(p.quota) / "cgroup.procs"
            # The master joins the cgroup before it execs, so every worker it forks is inside too.
            cmd = ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", "taskset", "-c", SERVER_CPU, *cmd]
        else:
            cmd = ["taskset", "-c", SERVER_CPU, *cmd]
        self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return " ".join(cmd)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.cgroup:
            for _ in range(50):
                try:
                    self.cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
            self.cgroup = None


def containers_usable() -> tuple[bool, str]:
    """Whether podman can run containers here, installing podman, buildah, runc and busybox-static
    with apt when they are missing and this is root; with the reason when not."""
    tools = ["podman", "buildah", "runc"]
    missing = [t for t in tools if not shutil.which(t)]
    if (missing or not Path("/bin/busybox").is_file()) and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing podman, buildah, runc and busybox-static with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "podman", "buildah", "runc", "busybox-static"],
            env=env,
            capture_output=True,
        )
        missing = [t for t in tools if not shutil.which(t)]
    if missing:
        return False, f"{', '.join(missing)} not installed" + ("" if os.geteuid() == 0 else " (and not root)")
    if os.geteuid() != 0:
        return False, "not root (the lab's containers need root for cgroup limits)"
    r = subprocess.run(["podman", "--runtime", "runc", "info"], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"podman info failed: {r.stderr.strip()[:200]}"
    return True, ""


# --- the lab ---------------------------------------------------------------------------------


def wait_healthy(base_url: str, secs: float = 60.0) -> None:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if get(f"{base_url}/heavy/health/", 1.0)[0]:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server at {base_url} was not healthy within {secs:g} s")


def search(platform: str, base_url: str, results: Path, a: argparse.Namespace) -> Path:
    """The capacity search on one platform, the load generator on core 0; its run folder."""
    lab = Path(sys.executable).parent / "heavy-lab"
    cmd = ["taskset", "-c", LOADGEN_CPU, str(lab), "run", "--scenario", "capacity", "--base-url", base_url]
    cmd += ["--label", platform, "--results-dir", str(results), "--no-dashboard"]
    cmd += [
        "--step-secs",
        f"{a.step_secs:g}",
        "--budget-secs",
        f"{a.budget_secs:g}",
        "--precision",
        f"{a.precision:g}",
    ]
    for kv in REQUEST:
        cmd += ["-e", kv]
    log(f"{platform}: " + " ".join(cmd[3:]))
    before = set(results.glob(f"{platform}-capacity-*"))
    rc = subprocess.run(cmd).returncode
    made = sorted(set(results.glob(f"{platform}-capacity-*")) - before)
    if not made or rc not in (0, 99):
        raise RuntimeError(f"{platform}: the capacity search exited {rc}")
    return made[-1]


def check_answers(result, names: dict[str, str]) -> list[str]:
    """The lab's known answers against the report's findings; each wrong answer as a sentence."""
    wrong = []
    ranked = [p.label for p in result.ranking]
    ded, again = names["dedicated"], names["dedicated-again"]
    quota, neighbour = names["quota"], names["neighbour"]
    top = {ded, again}
    if not ranked or ranked[0] not in top:
        wrong.append(f"the highest capacity should be dedicated's, the ranking is {ranked}")
    for slower in (quota, neighbour):
        for fast in (ded, again):
            if slower in ranked and fast in ranked and ranked.index(slower) < ranked.index(fast):
                wrong.append(f"{slower} ranks above {fast}")
    causes = result.causes
    if not any("throttl" in c for c in causes.get(quota, [])):
        wrong.append(f"quota's reason should name throttling, it names {causes.get(quota) or 'nothing'}")
    if not any("waiting for a core" in c for c in causes.get(neighbour, [])):
        wrong.append(
            f"neighbour's reason should name waiting for a core, it names {causes.get(neighbour) or 'nothing'}"
        )
    if result.differs(ded, again):
        wrong.append("the same platform twice (dedicated, dedicated-again) differs beyond noise")
    return wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="heavy-lab platforms",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--short",
        action="store_true",
        help="the CI version: 4 s steps and a 32 s budget per platform (about 2.5 min)",
    )
    ap.add_argument(
        "--out", type=Path, help="where the runs and the report go (default: results/platforms-<time>)"
    )
    ap.add_argument(
        "--step-secs", type=float, default=None, help="capacity step length (default 10; --short 4)"
    )
    ap.add_argument(
        "--budget-secs", type=float, default=None, help="search budget per platform (default 150; --short 32)"
    )
    ap.add_argument("--precision", type=float, default=0.05, help="capacity bracket precision (default 0.05)")
    ap.add_argument(
        "--processes", action="store_true", help="use the process fallback even where containers run"
    )
    a = ap.parse_args(argv)
    a.step_secs = a.step_secs or (4.0 if a.short else 10.0)
    a.budget_secs = a.budget_secs or (32.0 if a.short else 150.0)
    if (os.cpu_count() or 1) < 2:
        print(
            "heavy-lab platforms: needs two CPUs (the server on one, the load generator on the other)",
            file=sys.stderr,
        )
        return 2
    out = a.out or paths.RESULTS / f"platforms-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ok, why = (False, "--processes") if a.processes else containers_usable()
    try:
        runner = Containers() if ok else Processes()
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        if not ok:
            raise
        why = f"the image could not be built ({e})"
        runner = Processes()
    if not ok or isinstance(runner, Processes):
        log(f"FALLBACK: {runner.how}, because {why}")
    else:
        log(f"using {runner.how}")
    runs: dict[str, Path] = {}
    how: dict[str, str] = {}
    try:
        for name in PLATFORMS:
            port = free_port()
            try:
                how[name] = runner.start(SPECS[name], port)
                wait_healthy(f"http://127.0.0.1:{port}")
                runs[name] = search(name, f"http://127.0.0.1:{port}", out, a)
            finally:
                runner.stop()
    except RuntimeError as e:
        print(f"heavy-lab platforms: {e}", file=sys.stderr)
        return 2
    from heavylab.report.compare import compare_many

    command = f"heavy-lab platforms{' --short' if a.short else ''} ({runner.how})"
    result = compare_many([(n, runs[n]) for n in PLATFORMS], out / "report", command=command)
    wrong = check_answers(result, {n: n for n in PLATFORMS})
    summary = {
        "how": runner.how,
        "fallback_reason": None if isinstance(runner, Containers) else why,
        "platforms": {n: {"command": how[n], "run": str(runs[n])} for n in PLATFORMS},
        "capacities": {
            n: json.loads((runs[n] / "capacity.json").read_text()).get("statement") for n in PLATFORMS
        },
        "ranking": [p.label for p in result.ranking],
        "causes": result.causes,
        "wrong": wrong,
        "secs": round(time.monotonic() - started, 1),
    }
    (out / "platforms.json").write_text(json.dumps(summary, indent=2) + "\n")
    for n in PLATFORMS:
        log(f"{n}: {summary['capacities'][n]}")
    log(f"ranking by capacity: {', '.join(summary['ranking'])}; causes: {json.dumps(result.causes)}")
    log(f"report: {result.md_path} and {result.html_path} ({summary['secs']:.0f} s in all)")
    if wrong:
        for w in wrong:
            log(f"WRONG: {w}")
        return 1
    log("every known answer is right")
    return 0
