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
