"""Shared helpers for the benchmark scripts: start a server under test on a free loopback port
(heavy-api, the real Django original on Gunicorn, the Python rewrite on Gunicorn, the axum peer,
nginx), wait for health, time requests, read the CPU a server's process tree used, and record the
machine (CPU model, load average). Stdlib only."""

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from heavylab import paths

ROOT = str(paths.ROOT)
HEAVY_BIN = os.path.join(ROOT, "target", "release", "heavy-api")


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "heavy-api"], cwd=ROOT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


AXUM_DIR = os.path.join(ROOT, "bench", "axum-peer")
AXUM_BIN = os.path.join(AXUM_DIR, "target", "release", "axum-peer")
HEALTH_BODY = '{"status":"healthy","timestamp":1795731417.5277104}\n'

# What each kind is called in tables. "original" is the real Django service
# (../shared/reference/django-original) on Gunicorn 21.2.0; "rewrite" is bench/python_ref, a
# plain-WSGI Python rewrite of its endpoints, and must never be called "the original".
LABELS = {
    "heavy-api": "heavy-api",
    "original": "the original (Django 4.2.8 on Gunicorn 21.2.0, 4x2 gthread)",
    "rewrite": "Python rewrite on Gunicorn (bench/python_ref, 4x2 gthread)",
    "axum": "axum peer (axum 0.8 + tokio multi-thread)",
    "nginx": "nginx (worker_processes 2, return 200)",
}


def build_axum():
    """Builds the axum peer (its own Cargo project, fetched from crates.io on first use)."""
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=AXUM_DIR, check=True)


def raise_nofile():
    """Raises this process's descriptor limit to the hard limit (children inherit it), so that
    wrk and the servers can hold 1000+ connections."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def process_tree(pid):
    """pid and all its descendants (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    """CPU time of every thread of pid's process tree: the sum of the first field of
    /proc/PID/task/TID/schedstat (ns on the CPU). Time lost to neighbours waiting for a core is
    not counted, so CPU per request is immune to other work on the machine (threads that already
    exited are not counted either: every server here keeps its threads)."""
    total = 0
    for p in process_tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def rss_mib(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total / 1024


def cpu_model():
    """/proc/cpuinfo's model name, family/model/stepping, and whether it has SHA instructions
    (SHA-NI changes both heavy-api's and Python's SHA-256 speed)."""
    with open("/proc/cpuinfo") as f:
        info = f.read().split("\n\n")[0]

    def field(k):
        return (lambda m: m.group(1).strip() if m else "?")(re.search(rf"^{k}\s*:\s*(.*)$", info, re.M))

    sha = "sha_ni" in field("flags").split()
    return (
        f"{field('model name')} (family {field('cpu family')}, model {field('model')}, stepping "
        f"{field('stepping')}, {'with' if sha else 'without'} SHA-NI)"
    )


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def commit():
    """HEAD's short hash, with '+dirty' when the work tree differs (the build is of the tree)."""

    def run(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = run("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")


def machine():
    """One line naming the machine, its load and the commit now, for every table's caption."""
    return (
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; load average {loadavg()} at "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}; heavy-api commit {commit()}"
    )


def spread(values, fmt="{:,.0f}"):
    """'min / median / max' of values."""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


class Server:
    """A server under test. kind: 'heavy-api', 'original' (the real Django service on Gunicorn,
    bench/original.sh), 'rewrite' (the Python rewrite on Gunicorn, bench/gunicorn-ref.sh),
    'axum' (bench/axum-peer, build it first with build_axum()) or 'nginx' (return 200 with the
    health body; needs nginx-light)."""

    def __init__(self, kind, extra=(), workers=4, threads=2, binary=None):
        self.kind, self.port = kind, free_port()
        self.label = LABELS[kind] + (f" {workers}x{threads}" if kind == "heavy-api" else "")
        if binary:
            self.label += f" ({binary})"
        self.tmp = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        env = dict(os.environ)
        if kind == "heavy-api":
            cmd = [
                binary or HEAVY_BIN,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--io-file",
                os.path.join(self.tmp, "io.bin"),
                "--log-level",
                "warning",
                "--max-hash-rounds",
                "2000000000",
                *extra,
            ]
        elif kind == "original":
            env["GUNICORN_EXTRA"] = " ".join(extra)
            cmd = [os.path.join(ROOT, "bench", "original.sh"), str(self.port)]
        elif kind == "axum":
            cmd = [AXUM_BIN, f"127.0.0.1:{self.port}"]
        elif kind == "nginx":
            cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", self._nginx_conf(), "-g", "daemon off;"]
        elif kind == "rewrite":
            env["REF_IO_FILE"] = os.path.join(self.tmp, "io.bin")
            env["GUNICORN_EXTRA"] = " ".join(extra)
            cmd = [os.path.join(ROOT, "bench", "gunicorn-ref.sh"), str(self.port)]
        self.log = open(os.path.join(self.tmp, "server.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 120  # the first Gunicorn start installs it
        while time.time() < deadline:
            try:
                if get(self.port, "/heavy/health/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        sys.exit(f"{kind} did not become healthy; see {self.log.name}")

    def _nginx_conf(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        d = self.tmp
        with open(conf, "w") as f:
            f.write(f"""worker_processes 2;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {d};
  proxy_temp_path {d};
  fastcgi_temp_path {d};
  uwsgi_temp_path {d};
  scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{self.port};
    location /heavy/health/ {{
      default_type application/json;
      return 200 '{HEALTH_BODY.strip()}\\n';
    }}
  }}
}}
""")
        return conf

    def cpu(self):
        """CPU seconds used so far by the server's whole process tree."""
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        # The data file and the log: nothing of a benchmark's server stays in the temp dir.
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def get(port, path, timeout=120, conn=None):
    """One GET; returns (status, body bytes, headers dict, seconds)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    secs = time.perf_counter() - t0
    headers = {k.lower(): v for k, v in resp.getheaders()}
    if own:
        conn.close()
    return resp.status, body, headers, secs


def in_parallel(port, paths, stagger=0.0):
    """Starts one GET per path on its own thread (new connection each); returns the threads'
    results in order, each (status, body, headers, secs, start offset)."""
    results = [None] * len(paths)
    t0 = time.perf_counter()

    def run(i, path):
        start = time.perf_counter() - t0
        try:
            status, body, headers, secs = get(port, path)
        except OSError as e:
            status, body, headers, secs = 0, str(e).encode(), {}, time.perf_counter() - t0 - start
        results[i] = (status, body, headers, secs, start)

    threads = []
    for i, path in enumerate(paths):
        th = threading.Thread(target=run, args=(i, path))
        th.start()
        threads.append(th)
        if stagger:
            time.sleep(stagger)
    return threads, results


def join(threads):
    for th in threads:
        th.join()


def heavy_path(prime_limit=0, hash_rounds=0, io_kb=0):
    return f"/heavy/cpu-io-no-db/?prime_limit={prime_limit}&hash_rounds={hash_rounds}&io_kb={io_kb}"


def calibrate(port, seconds, samples=3):
    """hash_rounds for which one request alone takes about `seconds` on this server."""
    probe = 200_000
    times = sorted(get(port, heavy_path(hash_rounds=probe))[3] for _ in range(samples))
    per_round = times[len(times) // 2] / probe
    return max(1, int(seconds / per_round))


def table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
