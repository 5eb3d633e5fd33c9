"""`heavy-lab`: the table of contents, every subcommand's manual, and unknown names refused."""

from __future__ import annotations

import pytest

from heavylab import cli


def test_top_level_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in [*cli.COMMANDS, "bench"]:
        assert f"  {name} " in out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_has_a_manual(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("bench", sorted(cli.BENCHMARKS))
def test_every_benchmark_has_a_manual(bench, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", bench, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_names_are_refused_and_named(capsys):
    assert cli.main(["launch"]) == 2
    assert "unknown command 'launch'" in capsys.readouterr().err
    assert cli.main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
