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
# A CPU-only request of about 4 ms: longer than a scheduler slice, so a neighbour that shares the
# core preempts it mid-request (waiting for a core shows in every request, not only at saturation),
# and light enough that k6 on one core offers a few hundred req/s without effort.
REQUEST = ["PRIME_LIMIT=50000", "HASH_ROUNDS=50000", "IO_KB=0", "IO_SYNC=none"]
# One worker with one handler thread: on one core a second thread adds no CPU, only waiting for
# the core among the server's own threads, which would hide the neighbour's (the report compares
# the wait, not who caused it). The image's CMD gives 2 workers x 2 threads here (--workers auto).
SERVER_FLAGS = {"--workers": "1", "--threads": "1"}
# The lab's containers (server and neighbour alike) outweigh the machine's other processes on
# core 1, so that "dedicated" stays close to dedicated on a shared machine; server and neighbour
# weigh the same, so they share the core half and half.
CPU_SHARES = 262144
# Two searches of the same platform on this 2-core machine agree within ~10-15 %; the known
# answers differ by a factor of about 2. The report's minimum effect for the lab's verdicts.
MIN_EFFECT = 0.15
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
        self.started.append(name)  # removed by stop() even when `run` fails after creating it
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"podman run {name}: {r.stderr.strip()}")

    def start(self, p: Platform, port: int) -> str:
        ulimits = ["--ulimit", f"nofile={self.nofile}:{self.nofile}", "--ulimit", "nproc=4096:4096"]
        ulimits += ["--cpu-shares", str(CPU_SHARES)]
        if p.neighbour:
            if not self.burner:
                raise RuntimeError(
                    "no neighbour image: install busybox-static (apt-get install busybox-static)"
                )
            burner = ["--cpuset-cpus", SERVER_CPU, *ulimits, self.burner]
            self._run(f"heavylab-burner-{os.getpid()}", burner)
        limits = ["--cpuset-cpus", SERVER_CPU, "--network", "host", "--tmpfs", "/tmp", *ulimits]
        if p.quota:
            limits += ["--cpus", f"{p.quota:g}"]
        cmd = image.server_command(self.config, port, SERVER_FLAGS)
        self._run(f"heavylab-{p.name}-{os.getpid()}", [*limits, self.image, *cmd])
        told = "podman run " + " ".join(limits) + f" {self.image} " + " ".join(cmd)
        return ("podman run " + " ".join(burner) + " & " if p.neighbour else "") + told

    def stop(self) -> None:
        for name in reversed(self.started):
            subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True)
        self.started.clear()


class Processes:
    """The fallback: the binary pinned with taskset, a cgroup of its own (CPU weight, and the CPU
    quota for quota), a shell busy loop as the neighbour in a cgroup of the same weight."""

    how = "processes pinned with taskset in cgroups of their own (no containers here)"

    def __init__(self, cgroup_root: Path = Path("/sys/fs/cgroup")):
        self.binary = image.static_binary()
        self.config = image.runtime_config()
        self.root = cgroup_root
        self.procs: list[subprocess.Popen] = []
        self.cgroups: list[Path] = []

    def _cgroup(self, name: str, quota: float | None) -> Path | None:
        """A child cgroup with the lab's CPU weight and an optional quota; None when cgroups
        cannot be written here (then taskset alone pins, and the quota platform cannot run)."""
        v2 = (self.root / "cgroup.controllers").is_file()
        cg = (
            self.root / f"heavylab-{os.getpid()}-{name}"
            if v2
            else self.root / "cpu" / f"heavylab-{os.getpid()}-{name}"
        )
        try:
            if v2 and "cpu" not in (self.root / "cgroup.subtree_control").read_text().split():
                (self.root / "cgroup.subtree_control").write_text("+cpu\n")  # children get cpu.*
            cg.mkdir(exist_ok=True)
            self.cgroups.append(cg)
            if v2:
                (cg / "cpu.weight").write_text("10000\n")
                if quota:
                    (cg / "cpu.max").write_text(f"{int(quota * 100000)} 100000\n")
            else:
                (cg / "cpu.shares").write_text(f"{CPU_SHARES}\n")
                if quota:
                    (cg / "cpu.cfs_period_us").write_text("100000\n")
                    (cg / "cpu.cfs_quota_us").write_text(f"{int(quota * 100000)}\n")
        except OSError as e:
            if quota:
                raise RuntimeError(f"no cgroup for the CPU quota ({cg}: {e})") from e
            log(f"no cgroup for {name} ({e}): pinned with taskset only")
            return None
        return cg

    def _spawn(self, cmd: list[str], cg: Path | None, **kw) -> None:
        if cg:
            # The process joins its cgroup before it execs, so everything it forks is inside too.
            cmd = ["sh", "-c", f'echo $$ > "{cg / "cgroup.procs"}" && exec "$@"', "sh", *cmd]
        self.procs.append(subprocess.Popen(cmd, **kw))

    def start(self, p: Platform, port: int) -> str:
        if p.neighbour:
            spin = ["taskset", "-c", SERVER_CPU, "sh", "-c", image.SPIN]
            self._spawn(spin, self._cgroup("neighbour", None))
        cmd = [str(self.binary), *image.server_command(self.config, port, SERVER_FLAGS)]
        cmd = [w.replace("/tmp/", f"{os.environ.get('TMPDIR', '/tmp')}/heavylab-{os.getpid()}-") for w in cmd]
        cmd = ["taskset", "-c", SERVER_CPU, *cmd]
        cg = self._cgroup(p.name, p.quota)
        self._spawn(cmd, cg, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return " ".join(cmd) + (
            f" (cgroup {cg}{f', quota {p.quota:g} CPU' if p.quota else ''})" if cg else ""
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for cg in reversed(self.cgroups):
            for _ in range(50):
                try:
                    cg.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        self.cgroups.clear()


def cgroup_cpu_controllers(root: Path = Path("/sys/fs/cgroup")) -> list[str]:
    """The CPU controllers the lab needs (cpu, cpuset) that this host's cgroups lack."""
    if (root / "cgroup.controllers").is_file():  # v2: unified
        have = set((root / "cgroup.controllers").read_text().split())
    else:  # v1: one hierarchy per controller
        have = {c for c in ("cpu", "cpuset") if (root / c).is_dir()}
    return [c for c in ("cpu", "cpuset") if c not in have]


def decide(missing_tools: list[str], root: bool, lacking: list[str], podman_error: str | None) -> str | None:
    """Why the lab cannot use containers here (None: it can). In order: tools, root, the cgroup
    controllers, podman itself."""
    if missing_tools:
        return f"{', '.join(missing_tools)} not installed" + (
            "" if root else " (and not root, so not installed)"
        )
    if not root:
        return "not root (podman's CPU limits need root here)"
    if lacking:
        return f"the cgroup controllers {', '.join(lacking)} are not available"
    if podman_error:
        return f"podman cannot run: {podman_error}"
    return None


def containers_usable() -> tuple[bool, str]:
    """Whether podman can run containers here, installing podman, buildah, runc and busybox-static
    with apt when they are missing and this is root; with the reason when not."""
    tools = ["podman", "buildah", "runc"]
    missing = [t for t in tools if not shutil.which(t)]
    root = os.geteuid() == 0
    if (missing or not image.BUSYBOX.is_file()) and root and shutil.which("apt-get"):
        log("installing podman, buildah, runc and busybox-static with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "podman", "buildah", "runc", "busybox-static"],
            env=env,
            capture_output=True,
        )
        missing = [t for t in tools if not shutil.which(t)]
    podman_error = None
    if not missing and root:
        r = subprocess.run(["podman", "--runtime", "runc", "info"], capture_output=True, text=True)
        podman_error = r.stderr.strip()[:200] or "podman info failed" if r.returncode else None
    why = decide(missing, root, cgroup_cpu_controllers(), podman_error)
    return why is None, why or ""


# --- the lab ---------------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def wait_healthy(base_url: str, secs: float = 60.0) -> None:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if get(f"{base_url}/heavy/health/", 1.0)[0]:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server at {base_url} was not healthy within {secs:g} s")


def loadgen_prefix(root: bool | None = None) -> list[str]:
    """k6 (and the runner around it) pinned to core 0; as root also at nice -15, so that the rest of
    a shared machine takes little of core 0 from the load generator (a late generator reads as a
    slow server)."""
    root = os.geteuid() == 0 if root is None else root
    return (["nice", "-n", "-15"] if root else []) + ["taskset", "-c", LOADGEN_CPU]


def search(platform: str, base_url: str, results: Path, a: argparse.Namespace) -> Path:
    """The capacity search on one platform, the load generator on core 0; its run folder."""
    lab = Path(sys.executable).parent / "heavy-lab"
    cmd = [*loadgen_prefix(), str(lab), "run", "--scenario", "capacity", "--base-url", base_url]
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
    log(f"{platform}: " + " ".join(cmd))
    before = set(results.glob(f"{platform}-capacity-*"))
    rc = subprocess.run(cmd).returncode
    made = sorted(set(results.glob(f"{platform}-capacity-*")) - before)
    if not made or rc not in (0, 99):
        raise RuntimeError(f"{platform}: the capacity search exited {rc}")
    return made[-1]


def search_valid(platform: str, base_url: str, results: Path, a: argparse.Namespace) -> Path:
    """A capacity search that produced a run the report can read. A search can abort with no
    summary when the shared machine is briefly swamped (k6 exits 99 after every step broke); it
    is run once more, and a second failure is an error naming both runs' reasons."""
    from heavylab.analysis.runs import load_side

    reasons = []
    for attempt in (1, 2):
        run = search(platform, base_url, results, a)
        try:
            load_side(run)
            return run
        except ValueError as e:
            reasons.append(str(e))
            if attempt == 1:
                log(f"{platform}: no valid run ({e}); searching once more")
    raise RuntimeError(f"{platform}: no valid capacity run twice: {'; '.join(reasons)}")


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
        "--min-effect",
        type=float,
        default=MIN_EFFECT,
        help=f"the report's smallest difference called beyond noise (default {MIN_EFFECT:g}: this machine's "
        "spread between two searches of the same platform)",
    )
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
    ok, why = (False, "--processes asked for it") if a.processes else containers_usable()
    runner: Containers | Processes | None = None
    try:
        runner = Containers() if ok else None
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        why = f"the image could not be built ({e})"
        runner = None
    try:
        runner = runner or Processes()
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"heavy-lab platforms: the static release binary could not be built: {e}", file=sys.stderr)
        return 2
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
                runs[name] = search_valid(name, f"http://127.0.0.1:{port}", out, a)
            finally:
                runner.stop()
    except RuntimeError as e:
        print(f"heavy-lab platforms: {e}", file=sys.stderr)
        return 2
    from heavylab.report.compare import compare_many

    flags = " ".join(f"{k} {v}" for k, v in SERVER_FLAGS.items())
    command = (
        f"heavy-lab platforms{' --short' if a.short else ''} ({runner.how}"
        + ("" if isinstance(runner, Containers) else f", FALLBACK because {why}")
        + f"; server {flags} on core {SERVER_CPU}, k6 on core {LOADGEN_CPU}; min effect {a.min_effect:g})"
    )
    result = compare_many(
        [(n, runs[n]) for n in PLATFORMS], out / "report", command=command, min_effect=a.min_effect
    )
    wrong = check_answers(result, {n: n for n in PLATFORMS})
    summary = {
        "how": runner.how,
        "server_flags": flags,
        "request": REQUEST,
        "min_effect": a.min_effect,
        "cpu": cpu_model(),
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
