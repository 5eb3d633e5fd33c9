"""The Dockerfile's multi-architecture build logic, checked without Docker.

No Docker engine (and no aarch64 Rust standard library) is available here, so this test reads the
Dockerfile's build stage and runs its RUN steps for real, with the stage's SHELL, ENV and the
BuildKit ARGs (BUILDARCH, TARGETARCH), in a temporary directory standing in for WORKDIR, with stub
`apt-get`, `rustup`, `cargo`, `readelf` and `rm` first on PATH that record their calls. The stub
cargo "builds" a copy of /bin/true with the ELF machine of the --target it was given. Checked:

- the build stage runs on $BUILDPLATFORM (cross-compiles) and the final stage per target;
- TARGETARCH amd64 -> x86_64-unknown-linux-gnu, arm64 -> aarch64-unknown-linux-gnu; others fail;
- a cross build installs the target's gcc and libc.a packages, a native one installs nothing;
  both add the Rust target, and cargo builds with --target, --locked, +crt-static and the linker
  that the installed gcc package provides;
- the binary check rejects a binary of the wrong architecture or with a dynamic interpreter, and
  runs `--version` only when the build machine can execute it.

The Dockerfile is read by heavylab.deploy.dockerfile (dockerfile-parse), as the validator reads it.
The full build runs on a machine with Docker (docs/DEPLOY_ECS.md, "Architectures").
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from heavylab import paths
from heavylab.deploy import dockerfile

ROOT = paths.ROOT
DOCKERFILE = ROOT / "Dockerfile"

RUST_TARGET = {"amd64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}
GNU_TRIPLET = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
ELF_MACHINE = {"x86_64-unknown-linux-gnu": 0x3E, "aarch64-unknown-linux-gnu": 0xB7}
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())


def stages(text: str) -> list[list[tuple[str, str]]]:
    """Each stage's (INSTRUCTION, arguments), FROM first, as deploy/dockerfile.py reads them."""
    return [stage.instructions for stage in dockerfile.read(text)]


STUBS = {
    # apt-get: records the call; installs nothing.
    "apt-get": 'printf "apt-get %s\\n" "$*" >> "$SIM_LOG"\n',
    # rustup: records the call.
    "rustup": 'printf "rustup %s\\n" "$*" >> "$SIM_LOG"\n',
    # cargo build --target T: records the call with the linker cargo would use for T and
    # RUSTFLAGS, and writes target/T/release/heavy-api: /bin/true with T's ELF machine
    # (or STUB_WRONG_MACHINE's).
    "cargo": r"""
target=""
prev=""
for a in "$@"; do [ "$prev" = --target ] && target="$a"; prev="$a"; done
var="CARGO_TARGET_$(printf %s "$target" | tr 'a-z-' 'A-Z_')_LINKER"
printf 'cargo %s | linker=%s rustflags=%s\n' "$*" "$(printenv "$var")" "$RUSTFLAGS" >> "$SIM_LOG"
case "$target" in
    x86_64-unknown-linux-gnu) machine='\076' ;;
    aarch64-unknown-linux-gnu) machine='\267' ;;
    *) echo "stub cargo: no --target" >&2; exit 1 ;;
esac
[ -n "${STUB_WRONG_MACHINE:-}" ] && machine="$STUB_WRONG_MACHINE"
mkdir -p "target/$target/release"
out="target/$target/release/heavy-api"
cp /bin/true "$out"
printf "$machine" | dd of="$out" bs=1 seek=18 count=1 conv=notrunc 2>/dev/null
chmod +x "$out"
""",
    # readelf: a static binary's headers (no INTERP, no NEEDED), or a dynamic one's.
    "readelf": r"""
printf 'readelf %s\n' "$*" >> "$SIM_LOG"
if [ "${STUB_DYNAMIC:-0}" = 1 ]; then
    printf '  INTERP         0x000318\n      [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]\n'
    printf ' 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n'
else
    printf '  LOAD           0x000000 0x0000000000000000\n'
fi
""",
    # rm: deletes inside the simulated WORKDIR only; absolute paths elsewhere are recorded, kept.
    "rm": r"""
for a in "$@"; do
    case "$a" in
        -*) ;;
        /*) case "$a" in "$SIM_ROOT"/*) /bin/rm -rf -- "$a" ;; *) printf 'rm %s (outside the build, kept)\n' "$a" >> "$SIM_LOG" ;; esac ;;
        *) /bin/rm -rf -- "$a" ;;
    esac
done
""",
}


class Simulation:
    """The build stage's RUN/COPY steps for one (BUILDARCH, TARGETARCH)."""

    def __init__(self, tmp: Path, buildarch: str | None, targetarch: str | None):
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.work = self.tmp / "build"
        self.work.mkdir()
        bindir = self.tmp / "bin"
        bindir.mkdir()
        for name, body in STUBS.items():
            path = bindir / name
            path.write_text("#!/bin/sh\n" + body)
            path.chmod(0o755)
        self.log = self.tmp / "calls.log"
        self.log.touch()
        self.env = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "SIM_LOG": str(self.log),
            "SIM_ROOT": str(self.tmp),
            "HOME": str(self.tmp),
            "LC_ALL": "C",
        }
        if buildarch:
            self.env["BUILDARCH"] = buildarch
        if targetarch:
            self.env["TARGETARCH"] = targetarch
        builder = stages(DOCKERFILE.read_text())[0]
        self.shell = ["/bin/sh", "-c"]
        self.steps = []
        declared_args = set()
        for instr, rest in builder:
            if instr == "SHELL":
                self.shell = json.loads(rest)
            elif instr == "ARG":
                declared_args.add(rest.split("=")[0])
            elif instr == "ENV":
                for item in shlex.split(rest):
                    key, _, value = item.partition("=")
                    self.env[key] = value
            elif instr in ("RUN", "COPY"):
                self.steps.append((instr, rest))
        # BuildKit passes an automatic platform ARG into a stage only if the stage declares it.
        for name in ("BUILDARCH", "TARGETARCH"):
            if name not in declared_args:
                self.env.pop(name, None)

    def run(self, upto: int | None = None, **extra_env) -> subprocess.CompletedProcess | None:
        """Runs the steps in order (only the first `upto` RUNs); returns the first failed RUN's
        result, or None if all succeeded."""
        env = dict(self.env, **extra_env)
        runs = 0
        for instr, rest in self.steps:
            if instr == "COPY":
                *sources, dest = shlex.split(rest)
                for src in sources:
                    s, d = ROOT / src, self.work / dest
                    if s.is_dir():
                        shutil.copytree(s, self.work / dest.rstrip("/"), dirs_exist_ok=True)
                    else:
                        shutil.copy2(s, d / s.name if dest.endswith("/") else d)
                continue
            if upto is not None and runs >= upto:
                break
            runs += 1
            proc = subprocess.run(
                [*self.shell, rest],
                cwd=self.work,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if proc.returncode != 0:
                return proc
        return None

    def calls(self, prefix: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.startswith(prefix)]


STAGES = stages(DOCKERFILE.read_text())
NEEDS_HOST = pytest.mark.skipif(
    HOST_ARCH is None, reason=f"host architecture {platform.machine()} is neither x86_64 nor aarch64"
)


@pytest.fixture
def sim(tmp_path):
    """sim(buildarch, targetarch) -> a Simulation in its own folder under tmp_path."""
    count = iter(range(1000))
    return lambda build, target: Simulation(tmp_path / f"sim{next(count)}", build, target)


# --- the structure


def test_build_stage_runs_on_the_build_platform():
    instr, rest = STAGES[0][0]
    assert instr == "FROM"
    assert "--platform=$BUILDPLATFORM" in rest.split()
    assert rest.endswith("AS builder"), rest


def test_final_stage_is_per_target_and_copies_the_built_binary():
    instr, rest = STAGES[-1][0]
    assert instr == "FROM"
    assert "--platform" not in rest, "the final stage must follow the target platform"
    copies = [r for i, r in STAGES[-1] if i == "COPY"]
    assert copies == ["--from=builder /build/heavy-api /usr/local/bin/heavy-api"]


def test_builder_declares_the_platform_args():
    args = {r.split("=")[0] for i, r in STAGES[0] if i == "ARG"}
    assert {"BUILDARCH", "TARGETARCH"} <= args, args


def test_image_defaults_to_workers_auto():
    final = dict((i, r) for i, r in STAGES[-1] if i in ("CMD", "ENV"))
    cmd = json.loads(final["CMD"])
    assert cmd[cmd.index("--workers") + 1] == "auto"
    assert "WEB_CONCURRENCY=auto" in shlex.split(final["ENV"])


def test_instruction_parser():
    parsed = stages('FROM a AS b\nRUN x \\\n    # note\n    && y\n# c\nCMD ["z"]\n')
    assert parsed == [[("FROM", "a AS b"), ("RUN", "x && y"), ("CMD", '["z"]')]]


# --- step 1: TARGETARCH -> build-target.env


def mapping(sim, targetarch):
    s = sim("amd64", targetarch)
    failed = s.run(upto=1)
    values = {}
    if failed is None:
        for line in (s.work / "build-target.env").read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value
    return failed, values


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_amd64_and_arm64(sim, arch):
    failed, values = mapping(sim, arch)
    assert failed is None, failed and failed.stderr
    assert values["RUST_TARGET"] == RUST_TARGET[arch]
    gnu = GNU_TRIPLET[arch]
    assert values["CROSS_GCC"] == "gcc-" + gnu.replace("_", "-")
    assert values["CROSS_LIBC"] == f"libc6-dev-{arch}-cross"
    assert int(values["ELF_MACHINE"][:2], 16) == ELF_MACHINE[RUST_TARGET[arch]]


@pytest.mark.parametrize("arch", ["s390x", "arm", "386", "riscv64"])
def test_other_architectures_stop_the_build(sim, arch):
    failed, _ = mapping(sim, arch)
    assert failed is not None
    assert "unsupported TARGETARCH" in failed.stderr


def test_without_buildkit_args_the_build_stops(sim):
    failed, _ = mapping(sim, None)
    assert failed is not None
    assert "TARGETARCH is set by BuildKit" in failed.stderr


# --- steps 1-2 for every (build, target) pair: packages only for a cross build


@pytest.mark.parametrize("build", ["amd64", "arm64"])
@pytest.mark.parametrize("target", ["amd64", "arm64"])
def test_cross_and_native_toolchain(sim, build, target):
    s = sim(build, target)
    failed = s.run(upto=2)
    assert failed is None, failed and failed.stderr
    installs = [c for c in s.calls("apt-get") if " install " in c]
    if build == target:
        assert s.calls("apt-get") == []
    else:
        gnu = GNU_TRIPLET[target]
        assert len(installs) == 1, s.calls("apt-get")
        assert f"gcc-{gnu.replace('_', '-')} libc6-dev-{target}-cross" in installs[0]
    assert s.calls("rustup") == [f"rustup target add {RUST_TARGET[target]}"]
    # Only apt's lists are removed outside the build directory, and only when apt-get ran (the
    # stub rm keeps this machine's files).
    outside = s.calls("rm /")
    assert bool(outside) == (build != target), outside
    assert all(c.startswith("rm /var/lib/apt/lists/") for c in outside), outside


# --- every RUN of the build stage: cargo's arguments and linker, and the binary checks


def combos():
    for build in ("amd64", "arm64"):
        for target in ("amd64", "arm64"):
            # A native build runs the binary; here that works for the host's architecture.
            if build == target and build != HOST_ARCH:
                continue
            yield build, target


@NEEDS_HOST
@pytest.mark.parametrize(("build", "target"), list(combos()))
def test_builds_and_checks_the_binary_for_each_target(sim, build, target):
    s = sim(build, target)
    failed = s.run()
    assert failed is None, failed and (failed.stdout + failed.stderr)
    rust = RUST_TARGET[target]
    cargo = s.calls("cargo")
    assert len(cargo) == 2, cargo  # dependencies layer, then the crate
    for call in cargo:
        args, _, extra = call.partition(" | ")
        assert args == f"cargo build --release --locked --target {rust}"
        assert f"linker={GNU_TRIPLET[target]}-gcc " in extra
        assert "+crt-static" in extra
    binary = (s.work / "heavy-api").read_bytes()
    assert binary[18] == ELF_MACHINE[rust]
    assert s.calls("readelf")


@NEEDS_HOST
def test_wrong_architecture_is_rejected(sim):
    other = {"amd64": "arm64", "arm64": "amd64"}[HOST_ARCH]
    s = sim(HOST_ARCH, other)
    host_machine = f"\\{ELF_MACHINE[RUST_TARGET[HOST_ARCH]]:03o}"
    failed = s.run(STUB_WRONG_MACHINE=host_machine)
    assert failed is not None
    assert "not " + f"{ELF_MACHINE[RUST_TARGET[other]]:02x}00" in failed.stderr


@NEEDS_HOST
def test_dynamic_binary_is_rejected(sim):
    s = sim(HOST_ARCH, HOST_ARCH)
    failed = s.run(STUB_DYNAMIC="1")
    assert failed is not None
    assert "not statically linked" in failed.stderr


@NEEDS_HOST
@pytest.mark.parametrize("native", [False, True])
def test_version_runs_only_on_a_native_build(sim, native):
    # A cross build: the binary cannot run here and the build must not try (it would fail with
    # an exec format error). A recorder replaces `./heavy-api --version`.
    other = {"amd64": "arm64", "arm64": "amd64"}[HOST_ARCH]
    target = HOST_ARCH if native else other
    s = sim(HOST_ARCH, target)
    assert any("./heavy-api --version" in r for _, r in s.steps)
    marker = s.tmp / "ran"
    s.steps = [(i, r.replace("./heavy-api --version", f"touch {marker}")) for i, r in s.steps]
    failed = s.run()
    assert failed is None, failed and failed.stderr
    assert marker.exists() == native
