#!/usr/bin/env python3
"""Issue #5's throughput benchmarks, side by side in one run (installs wrk and nginx from apt if
they are missing, and Gunicorn from PyPI through bench/gunicorn-ref.sh).

  light:  /heavy/health/ requests per second with keep-alive (`wrk -t2 -c50 -d10s`) against
          heavy-api 4x2, nginx returning the same body, and Gunicorn 4x2 serving the Python
          reference endpoint
  heavy:  16 concurrent keep-alive clients on the smoke parameters
          (prime_limit=200000&hash_rounds=500000&io_kb=64) for 20 s against heavy-api 4x2:
          throughput, and efficiency = throughput x solo request time / cores

Usage: python3 bench/throughput.py [--seconds 10]
wrk runs on the same 2 cores as the servers, so every number includes the load generator's cost.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

from common import Server, build, free_port, get, table

SMOKE = "/heavy/cpu-io-no-db/?prime_limit=200000&hash_rounds=500000&io_kb=64"
HEALTH_BODY = '{"status":"healthy","timestamp":1795731417.5277104}\n'


def ensure_tools():
    missing = [p for p, b in (("wrk", "wrk"), ("nginx-light", "nginx")) if not shutil.which(b)
               and not os.path.exists(f"/usr/sbin/{b}")]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wrk(port, path, conns, seconds, threads=2):
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    err = (int(errors.group(1)) if errors else 0) + (sum(map(int, sock.groups())) if sock else 0)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    return rps, err, (p50.group(1) + p50.group(2)) if p50 else "?"


class Nginx:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 2;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {self.dir};
  proxy_temp_path {self.dir};
  fastcgi_temp_path {self.dir};
  uwsgi_temp_path {self.dir};
  scgi_temp_path {self.dir};
  server {{
    listen 127.0.0.1:{self.port};
    location /heavy/health/ {{
      default_type application/json;
      return 200 '{HEALTH_BODY.strip()}\\n';
    }}
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", conf, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if get(self.port, "/heavy/health/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("nginx did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    build()
    ensure_tools()
    light = []
    with Server("heavy-api", extra=["--keep-alive", "75"]) as srv:
        wrk(srv.port, "/heavy/health/", 50, 2)  # warm-up
        light.append(("heavy-api 4x2", *wrk(srv.port, "/heavy/health/", 50, args.seconds)))
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        with Nginx() as ngx:
            wrk(ngx.port, "/heavy/health/", 50, 2)
            light.append(("nginx (2 workers, static body)", *wrk(ngx.port, "/heavy/health/", 50, args.seconds)))
    with Server("gunicorn", extra=["--keep-alive", "75"]) as srv:
        light.append(("Gunicorn 4x2 (gthread), Python endpoint", *wrk(srv.port, "/heavy/health/", 50, args.seconds)))
    nginx_rps = next((r[1] for r in light if r[0].startswith("nginx")), None)
    rows = [[name, f"{rps:,.0f}", err, p50, f"{rps / nginx_rps:.2f}" if nginx_rps else "-"]
            for name, rps, err, p50 in light]
    print("light: GET /heavy/health/, wrk -t2 -c50, keep-alive\n")
    print(table(["server", "req/s", "errors", "p50", "vs nginx"], rows))

    with Server("heavy-api") as srv:
        get(srv.port, SMOKE)
        solo = statistics.median(get(srv.port, SMOKE)[3] for _ in range(15))
        rps, err, p50 = wrk(srv.port, SMOKE, 16, 20)
        cores = os.cpu_count()
        print("\nheavy: 16 concurrent keep-alive clients on the smoke parameters, 20 s\n")
        print(table(["measure", "heavy-api 4x2"], [
            ["solo request time (median of 15)", f"{solo * 1000:.1f} ms"],
            ["throughput", f"{rps:.1f} req/s"],
            ["errors", err],
            ["p50 latency", p50],
            [f"efficiency = throughput x solo / {cores} cores", f"{rps * solo / cores:.3f}"],
        ]))


if __name__ == "__main__":
    main()
