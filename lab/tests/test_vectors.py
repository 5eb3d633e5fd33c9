"""`heavy-lab vectors` against a running server: the real vectors match, and a wrong one is reported
by name with exit status 1 (scripts/check-deploy.sh runs the real ones against the static binary,
scripts/verify-image.sh against an image)."""

from __future__ import annotations

import json

from heavylab.deploy import vectors


def test_the_real_vectors_match(live_server, capsys):
    assert vectors.main([live_server]) == 0
    assert " 0 of " not in (out := capsys.readouterr().out) and "MISMATCH" not in out


def test_a_wrong_vector_is_reported(live_server, tmp_path, capsys):
    wrong = json.loads(vectors.DEFAULT_VECTORS.read_text())
    wrong["primes_below"]["1000"] += 1
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    assert vectors.main([live_server, "--vectors", str(tmp_path / "wrong.json")]) == 1
    assert "MISMATCH: prime_limit=1000 " in capsys.readouterr().out


def test_wait_gives_up_on_a_dead_server(capsys):
    assert vectors.main(["http://127.0.0.1:9", "--wait", "0.5"]) == 1
    assert "did not answer within 0.5 s" in capsys.readouterr().out
