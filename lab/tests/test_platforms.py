"""The platform lab's pieces that need no container: the image config read from the Dockerfile,
the server command, and the answer checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from heavylab.lab import image, platforms


def test_runtime_config_is_the_dockerfiles_last_stage(tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text(
        'FROM rust AS builder\nUSER root\nENV A=1\nCMD ["build"]\n'
        "FROM scratch\nCOPY --from=builder /b/heavy-api /usr/local/bin/heavy-api\nUSER 65532:65532\n"
        "ENV WEB_CONCURRENCY=auto\nEXPOSE 8000\nSTOPSIGNAL SIGTERM\n"
        'ENTRYPOINT ["/usr/local/bin/heavy-api"]\nCMD ["--bind", "0.0.0.0:8000", "--workers", "auto"]\n'
    )
    rc = image.runtime_config(df)
    assert rc.user == "65532:65532"
    assert rc.env == {"WEB_CONCURRENCY": "auto"}
    assert rc.expose == ["8000"] and rc.stopsignal == "SIGTERM"
    assert rc.entrypoint == ["/usr/local/bin/heavy-api"]
    assert rc.cmd == ["--bind", "0.0.0.0:8000", "--workers", "auto"]
    assert rc.binary_path == "/usr/local/bin/heavy-api"


def test_the_projects_dockerfile_gives_the_image_its_cmd():
    rc = image.runtime_config()
    assert rc.entrypoint == ["/usr/local/bin/heavy-api"]
    assert "--bind" in rc.cmd and rc.user


def test_server_command_rebinds_to_loopback():
    rc = image.RuntimeConfig(cmd=["--bind", "0.0.0.0:8000", "--threads", "2"])
    assert image.server_command(rc, 4242) == ["--bind", "127.0.0.1:4242", "--threads", "2"]
    assert image.server_command(image.RuntimeConfig(cmd=[]), 1) == ["--bind", "127.0.0.1:1"]


@dataclass
class Place:
    label: str


@dataclass
class FakeResult:
    order: list[str]
    causes: dict = field(default_factory=dict)
    apart: set = field(default_factory=set)

    @property
    def ranking(self):
        return [Place(x) for x in self.order]

    def differs(self, a, b, row=None):
        return (a, b) in self.apart or (b, a) in self.apart


NAMES = {n: n for n in platforms.PLATFORMS}
RIGHT = dict(
    order=["dedicated-again", "dedicated", "quota", "neighbour"],
    causes={"quota": ["throttling"], "neighbour": ["waiting for a core"]},
)


def test_right_answers_pass():
    assert platforms.check_answers(FakeResult(**RIGHT), NAMES) == []


def test_each_wrong_answer_is_named():
    wrong = platforms.check_answers(
        FakeResult(
            order=["quota", "dedicated", "dedicated-again", "neighbour"],
            causes={"quota": ["waiting for a core"], "neighbour": []},
            apart={("dedicated", "dedicated-again")},
        ),
        NAMES,
    )
    text = "\n".join(wrong)
    assert "highest capacity should be dedicated's" in text
    assert "quota ranks above dedicated" in text
    assert "quota's reason should name throttling" in text
    assert "neighbour's reason should name waiting for a core" in text
    assert "the same platform twice" in text


def test_server_command_overrides_the_cmds_flags_and_appends_the_rest():
    rc = image.RuntimeConfig(
        cmd=["-b", "0.0.0.0:8000", "--workers", "auto", "--threads", "2", "--timeout", "120"]
    )
    got = image.server_command(rc, 9, {"--workers": "1", "--threads": "1", "--keep-alive": "5"})
    assert got == [
        "-b",
        "127.0.0.1:9",
        "--workers",
        "1",
        "--threads",
        "1",
        "--timeout",
        "120",
        "--keep-alive",
        "5",
    ]


def test_the_lab_server_is_one_worker_one_thread_from_the_images_cmd():
    cmd = image.server_command(image.runtime_config(), 8123, platforms.SERVER_FLAGS)
    assert cmd[cmd.index("--workers") + 1] == "1" and cmd[cmd.index("--threads") + 1] == "1"
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1:8123"
    assert cmd.count("--workers") == 1 and cmd.count("--bind") == 1


def test_source_digest_follows_the_binary_and_the_settings(tmp_path):
    binary = tmp_path / "heavy-api"
    binary.write_bytes(b"\x7fELF one")
    rc = image.RuntimeConfig(user="65532:65532", cmd=["--bind", "0.0.0.0:8000"])
    first = image.source_digest(binary, rc)
    assert first == image.source_digest(binary, rc)
    assert first != image.source_digest(binary, image.RuntimeConfig(user="0", cmd=rc.cmd))
    binary.write_bytes(b"\x7fELF two")
    assert first != image.source_digest(binary, rc)


def test_fallback_decision_names_the_first_missing_piece():
    assert platforms.decide([], True, [], None) is None
    assert (
        platforms.decide(["podman", "runc"], False, [], None)
        == "podman, runc not installed (and not root, so not installed)"
    )
    assert platforms.decide(["runc"], True, [], None) == "runc not installed"
    assert platforms.decide([], False, [], None).startswith("not root")
    assert platforms.decide([], True, ["cpuset"], None) == "the cgroup controllers cpuset are not available"
    assert platforms.decide([], True, [], "Error: OCI runtime").startswith("podman cannot run: Error")


def test_cgroup_controllers_v1_and_v2(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    assert platforms.cgroup_cpu_controllers(v1) == ["cpuset"]
    (v1 / "cpuset").mkdir()
    assert platforms.cgroup_cpu_controllers(v1) == []
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset io memory pids\n")
    assert platforms.cgroup_cpu_controllers(v2) == ["cpu"]


def test_fallback_cgroups_get_weight_and_quota_and_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(image, "static_binary", lambda: tmp_path / "heavy-api")
    root = tmp_path / "cg"
    (root / "cpu").mkdir(parents=True)
    procs = platforms.Processes(cgroup_root=root)
    cg = procs._cgroup("quota", 0.5)
    assert cg.parent == root / "cpu"
    assert (cg / "cpu.shares").read_text() == f"{platforms.CPU_SHARES}\n"
    assert (cg / "cpu.cfs_quota_us").read_text() == "50000\n"
    assert (cg / "cpu.cfs_period_us").read_text() == "100000\n"
    for f in cg.iterdir():  # a real cgroup's files vanish with it
        f.unlink()
    procs.stop()
    assert not cg.exists()


def test_the_load_generator_is_pinned_and_favoured_only_as_root():
    assert platforms.loadgen_prefix(True) == ["nice", "-n", "-15", "taskset", "-c", platforms.LOADGEN_CPU]
    assert platforms.loadgen_prefix(False) == ["taskset", "-c", platforms.LOADGEN_CPU]
