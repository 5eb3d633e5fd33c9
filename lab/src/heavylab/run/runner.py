"""Runs one k6 scenario of k6-tests/ against heavy-api and keeps every artifact of the run in
results/<label>-<scenario>-<UTC timestamp>/: k6's summary and raw samples, the server's
fingerprint (GET /heavy/info/) before and after in meta.json, its Prometheus metrics before and
after (metrics-before.prom, metrics-after.prom) and sampled every few seconds during the run
(metrics-samples.csv.gz).

Without --base-url it starts target/release/heavy-api on a loopback port with production-like
flags, waits until it is healthy, and stops it with SIGTERM afterwards. --scenario capacity
searches the highest sustained arrival rate (docs/CAPACITY.md); --segments N runs the scenario as
N k6 processes (execution segments) and merges their raw samples exactly.

Exit status: k6's (0 passed, 99 thresholds failed, 108 aborted); capacity: 0 when a sustained
rate was found, 99 when even the lowest rate broke the SLO; 1 when the local server did not stop
cleanly; 2 for bad usage; 3 when the target is not healthy before the run.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from heavylab import paths
from heavylab.results import merge as k6merge
from heavylab.results.metrics import METRICS_FILE
from heavylab.results.metrics import read as read_metrics
from heavylab.run import capacity, scraper
from heavylab.run.k6 import find_k6, log, segment_ranges, stream
from heavylab.run.options import SCENARIOS, parse_duration, parser, validate
from heavylab.run.target import LocalServer, free_port, get, host_facts, sha256_of

K6_TAGS = ["--system-tags", "status,name,scenario,expected_response,group,check,error_code,method"]
SAMPLE_EVERY_SECS = 5.0


# --- options ---------------------------------------------------------------------------------


# --- k6 --------------------------------------------------------------------------------------


# --- the run ---------------------------------------------------------------------------------


def make_run_dir(results_dir: Path, label: str, scenario: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = results_dir.resolve() / f"{label}-{scenario}-{stamp}"
    out, n = base, 1
    while True:
        try:
            out.mkdir()
            return out
        except FileExistsError:
            n += 1
            out = Path(f"{base}-{n}")


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def info_json(base_url: str) -> dict | None:
    ok, body = get(f"{base_url}/heavy/info/", 5)
    if not ok or not body:
        log(f"no /heavy/info/ fingerprint ({body}): fine, an older or another server")
        return None
    try:
        return json.loads(body)
    except ValueError:
        return {"unparsed": body[:2000]}


def save_metrics(url: str, path: Path) -> bool:
    ok, body = get(url, 5)
    if ok and body:
        path.write_text(body if body.endswith("\n") else body + "\n", encoding="utf-8")
        return True
    log(f"no metrics from {url} ({body}): fine, an older server or a separate --metrics-bind")
    return False


def git_facts() -> tuple[str, bool]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(paths.ROOT), *args], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return git("rev-parse", "HEAD").strip() or "unknown", bool(
        git("status", "--porcelain", "--untracked-files=no").strip()
    )


def main(argv: list[str] | None = None) -> int:
    ap = parser(epilog=__doc__.split("\n\n", 1)[1])
    a = ap.parse_args(argv)
    env_vars = validate(a, ap.error)
    k6 = find_k6()
    if a.ensure_k6:
        print(k6)
        return 0
    script_name, nominal, _ = SCENARIOS[a.scenario]
    if a.scenario in ("constant-rate", "capacity") and "DURATION" in env_vars:
        nominal = parse_duration(env_vars["DURATION"]) + 10
    script = paths.K6_TESTS / f"{script_name}-test.js"
    limit = nominal * a.scale + 120
    local = not a.base_url
    base = {"scenario": a.scenario, "duration_scale": a.scale, "label": a.label}

    if not local:
        ok, why = get(f"{a.base_url}/heavy/health/", 10)
        if not ok:
            log(f"error: the target is not healthy: GET {a.base_url}/heavy/health/ -> {why}")
            log("nothing was run (check --base-url, the load balancer and the service)")
            out = make_run_dir(a.results_dir, a.label, a.scenario)
            reason = f"the target was not healthy before the run: GET {a.base_url}/heavy/health/ -> {why}"
            write_json(
                out / "meta.json",
                {
                    **base,
                    "base_url": a.base_url,
                    "local_server": False,
                    "k6_exit_code": None,
                    "aborted_before_start": reason,
                },
            )
            log(f"recorded in {out / 'meta.json'}")
            return 3

    out = make_run_dir(a.results_dir, a.label, a.scenario)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log(f"results: {out}")
    server = None
    binary = None
    try:
        if local:
            binary = Path(os.environ.get("HEAVY_API_BIN") or paths.HEAVY_BIN)
            if a.build or not binary.exists():
                log("cargo build --release")
                subprocess.run(["cargo", "build", "--release"], cwd=paths.ROOT, check=True, stdout=sys.stderr)
            if not binary.exists():
                ap.error(f"no heavy-api binary at {binary}")
            server = LocalServer(binary, a.port or free_port(), a.server_words, out / "server.log")
            log(f"starting: {shlex.join(server.command)}")
            try:
                server.start()
            except RuntimeError as e:
                log(f"error: {e}")
                return 2
            a.base_url = server.base_url
            log(f"heavy-api healthy at {a.base_url} (pid {server.proc.pid})")
        metrics_url = a.metrics_url or f"{a.base_url}/metrics"
        info_before = info_json(a.base_url)
        has_metrics = save_metrics(metrics_url, out / "metrics-before.prom")

        k6_env = dict(os.environ, K6_CSV_TIME_FORMAT="unix_milli", K6_WEB_DASHBOARD="false")
        if not a.no_dashboard and a.segments == 1 and a.scenario != "capacity":
            k6_env.update(
                K6_WEB_DASHBOARD="true",
                K6_WEB_DASHBOARD_PORT=str(a.dashboard_port),
                K6_WEB_DASHBOARD_HOST="127.0.0.1",
                K6_WEB_DASHBOARD_PERIOD=os.environ.get("K6_WEB_DASHBOARD_PERIOD", "2s"),
                K6_WEB_DASHBOARD_EXPORT=str(out / "dashboard.html"),
            )
        env_args = [w for kv in a.env for w in ("-e", kv)]
        common = ["-e", f"BASE_URL={a.base_url}", "-e", f"DURATION_SCALE={a.scale:g}"]
        sampler = (
            scraper.Sampler(metrics_url, out / METRICS_FILE, every=SAMPLE_EVERY_SECS) if has_metrics else None
        )
        if sampler:
            sampler.__enter__()
        try:
            if a.scenario == "capacity":
                k6_rc = capacity.run_search(
                    k6=k6,
                    script=script,
                    base_url=a.base_url,
                    out=out,
                    env=a.env,
                    k6_args=K6_TAGS + a.k6_extra,
                    args=a,
                    samples=not a.no_samples,
                    metrics_url=metrics_url,
                )
            elif a.segments == 1:
                cmd = [k6, "run", *common, "-e", f"SUMMARY_DIR={out}", *env_args, *K6_TAGS]
                if not a.no_samples:
                    cmd += ["--out", f"csv={out / 'samples.csv.gz'}"]
                cmd += [*a.k6_extra, str(script)]
                log("running: " + shlex.join(cmd))
                k6_rc = stream(cmd, out / "k6.log", limit, k6_env)
            else:
                k6_rc = run_segments(a, k6, script, out, common, env_args, limit, k6_env)
        finally:
            if sampler:
                sampler.__exit__(None, None, None)
        log(f"k6 exited {k6_rc}")
        info_after = info_json(a.base_url)
        save_metrics(metrics_url, out / "metrics-after.prom")
    finally:
        server_rc = server.stop() if server else None
    if server:
        log(f"heavy-api exited {server_rc} after SIGTERM")
    commit, dirty = git_facts()
    version = subprocess.run([k6, "version"], capture_output=True, text=True).stdout.splitlines()
    host = host_facts()
    meta = {
        **base,
        "script": f"k6-tests/{script_name}-test.js",
        "base_url": a.base_url,
        "local_server": local,
        "server_command": shlex.join(server.command) if server else None,
        "server_args": a.server_args,
        "server_exit_code": server_rc,
        "price": a.price,
        "k6_env": list(a.env),
        "segments": a.segments,
        "samples": None if a.no_samples else "samples.csv.gz",
        "started_at": started_at,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "git_dirty": dirty,
        "k6_version": version[0] if version else "",
        "k6_exit_code": k6_rc,
        "host": host,
        "server_info_before": info_before,
        "server_info_after": info_after,
        # The server ran on this machine: its fingerprint is the host's, its "image" the binary.
        "local_server_fingerprint": {
            "cpu_model": host["cpu_model"],
            "architecture": host["machine"],
            "cpus": host["cpus"],
            "binary_sha256": sha256_of(binary),
        }
        if local and binary
        else None,
        "metrics_url": metrics_url,
        "metrics_before": "metrics-before.prom" if (out / "metrics-before.prom").is_file() else None,
        "metrics_after": "metrics-after.prom" if (out / "metrics-after.prom").is_file() else None,
        "metrics_samples": METRICS_FILE if (out / METRICS_FILE).is_file() else None,
    }
    if a.scenario == "capacity":
        meta["capacity_options"] = capacity.search_options(a)
    write_json(out / "meta.json", meta)
    report_utilization(out, info_before, processes_only=local)
    for f in ("summary.json", "summary.md"):
        if not (out / f).is_file():
            log(f"warning: k6 wrote no {f}")
    log(f"artifacts in {out}")
    if local and server_rc != 0 and k6_rc == 0:
        log(f"error: heavy-api exited {server_rc} after SIGTERM (expected 0)")
        return 1
    return k6_rc


def report_utilization(out: Path, info: dict | None, processes_only: bool) -> None:
    """How busy the target was during the run, from the /metrics samples: utilization.json and
    one line. A local server shares its cgroup with k6, so its own processes are measured."""
    if not (out / METRICS_FILE).is_file():
        return
    from heavylab.analysis import utilization as ut

    u = ut.utilization(read_metrics(out / METRICS_FILE), info, processes_only=processes_only)
    if u is None:
        return
    s = u.summary()
    write_json(out / "utilization.json", {"cpu_source": u.cpu_source, "summary": s, "series": u.series})

    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    share = s.get("cpu_share_of_usable_avg")
    log(
        f"utilization ({u.cpu_source}): CPU {num(s.get('cpu_used_cpus_avg'), '.2f')} CPUs avg"
        + (
            f" = {100 * share:.0f} % of {u.usable_cpus:g} usable"
            if share is not None and u.usable_cpus
            else ""
        )
        + f", memory peak {num((s.get('memory_bytes_max') or 0) / 2**20 if s.get('memory_bytes_max') else None, '.1f')} MiB"
        + f", HTTP in/out {num(s.get('http_in_bytes'), ',.0f')} / {num(s.get('http_out_bytes'), ',.0f')} bytes"
        + f", {num(s.get('requests_per_cpu_second'), '.0f')} requests per CPU-second"
    )


def run_segments(a, k6, script, out, common, env_args, limit, k6_env) -> int:
    """N k6 processes, consecutive segments of one sequence (together exactly the single-run
    schedule), each one's output on the console prefixed with its number; then the exact merge."""
    sequence, ranges = segment_ranges(a.segments)
    log(f"{a.segments} execution segments of the sequence {sequence}")
    results: list[int] = [0] * a.segments
    dirs = []
    threads = []
    for i, (lo, hi) in enumerate(ranges):
        d = out / f"segment-{i + 1}"
        d.mkdir()
        dirs.append(d)
        cmd = [k6, "run", *common, "-e", f"SUMMARY_DIR={d}", *env_args, *K6_TAGS]
        cmd += ["--execution-segment", f"{lo}:{hi}", "--execution-segment-sequence", sequence]
        cmd += ["--out", f"csv={d / 'samples.csv.gz'}", *a.k6_extra, str(script)]
        log(f"segment {i + 1}/{a.segments}: " + shlex.join(cmd))

        def go(i=i, cmd=cmd, d=d):
            results[i] = stream(cmd, d / "k6.log", limit, k6_env, prefix=f"[segment {i + 1}] ")

        threads.append(threading.Thread(target=go))
        threads[-1].start()
    for t in threads:
        t.join()
    rc = 0
    for i, r in enumerate(results):
        (dirs[i] / "exit-code").write_text(f"{r}\n")
        log(f"segment {i + 1}/{a.segments}: k6 exited {r} (log: {dirs[i] / 'k6.log'})")
        if r not in (0, 99) and rc in (0, 99):
            rc = r
    merged = k6merge.main(["--out", str(out), *map(str, dirs)])
    if rc in (0, 99):  # the merged thresholds decide, not a segment's
        return merged if merged in (0, 99) else 1
    return rc


def capacity_main(argv: list[str] | None = None) -> int:
    """`heavy-lab capacity ...` = `heavy-lab run --scenario capacity ...`."""
    return main(["--scenario", "capacity", *(sys.argv[1:] if argv is None else argv)])
