#!/usr/bin/env bash
# Tests scripts/remote-loadtest.sh without AWS: stub `aws` and `k6` executables, first on PATH,
# log their argv (one line per call) and play ECS and S3: run-task answers a task ARN (or a
# placement failure), describe-tasks the containers' exit codes, and the results download serves
# the recorded segments of scripts/testdata/segments/ (a real 3-segment run). Checks the command
# sequence with one run-task per segment and its overrides, the merge of the downloaded results,
# --dry-run (prints everything, calls nothing), failures (a task that cannot start stops the ones
# started; a segment whose k6 aborted or whose upload failed fails the run) and usage errors.
set -euo pipefail
cd "$(dirname "$0")/.."

script=scripts/remote-loadtest.sh
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
stubs="$tmp/bin"
log="$tmp/calls.log"
mkdir -p "$stubs"

cat >"$stubs/aws" <<'EOF'
#!/usr/bin/env bash
printf 'aws %s\n' "$*" >>"$STUB_LOG"
n_file="$STUB_DIR/run-task-count"
case "$1 $2" in
    "s3 cp")
        if [[ "$3" == s3://* ]]; then  # the download: the recorded segments
            cp -R "$STUB_RESULTS"/. "$4"
        else
            [[ -s "$3" ]] || { echo "stub aws: upload of a missing file $3" >&2; exit 1; }
        fi
        ;;
    "s3 presign") printf 'https://stub.s3.amazonaws.com/%s?X-Amz-Expires=7200&X-Amz-Signature=abc\n' "${3#s3://}" ;;
    "ecs run-task")
        n=$(( $(cat "$n_file" 2>/dev/null || echo 0) + 1 ))
        echo "$n" >"$n_file"
        while [[ $# -gt 0 ]]; do
            [[ "$1" == --overrides ]] && printf '%s\n' "$2" >>"$STUB_DIR/overrides"
            shift
        done
        if [[ "${STUB_FAIL_AT:-0}" == "$n" ]]; then
            printf '{"tasks": [], "failures": [{"arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/x", "reason": "RESOURCE:ENI"}]}\n'
        else
            printf '{"tasks": [{"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/loadgen/t%s"}], "failures": []}\n' "$n"
        fi
        ;;
    "ecs wait") ;;
    "ecs describe-tasks")
        python3 - "$@" <<'PY'
import json, os, sys
args = sys.argv[1:]
arns = []
i = args.index("--tasks") + 1
while i < len(args) and not args[i].startswith("--"):
    arns.append(args[i]); i += 1
k6 = int(os.environ.get("STUB_K6_EXIT", "0"))
up = int(os.environ.get("STUB_UPLOAD_EXIT", "0"))
print(json.dumps({"tasks": [{"taskArn": a, "stoppedReason": "Essential container in task exited",
                             "containers": [{"name": "k6", "exitCode": k6 if n == 1 else 0},
                                            {"name": "upload", "exitCode": up}]}
                            for n, a in enumerate(arns)], "failures": []}))
PY
        ;;
    "ecs stop-task") printf '{"task": {}}\n' ;;
    *) printf 'stub aws: unexpected call: %s\n' "$*" >&2; exit 1 ;;
esac
EOF

cat >"$stubs/k6" <<'EOF'
#!/usr/bin/env bash
printf 'k6 %s\n' "$*" >>"$STUB_LOG"
case "$1" in
    version) echo "k6 v1.1.0 (stub)" ;;
    archive)
        while [[ $# -gt 0 ]]; do
            [[ "$1" == -O ]] && printf 'stub archive\n' >"$2"
            shift
        done
        ;;
    *) exit 1 ;;
esac
EOF
chmod +x "$stubs/aws" "$stubs/k6"
export PATH="$stubs:$PATH" STUB_LOG="$log" STUB_DIR="$tmp" K6="$stubs/k6" \
    STUB_RESULTS="$PWD/scripts/testdata/segments"
unset STUB_FAIL_AT STUB_K6_EXIT STUB_UPLOAD_EXIT AWS

passed=0
failed=0
out="$tmp/out"
err="$tmp/err"
pass() {
    printf '  ok: %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf '  FAIL: %s\n' "$1"
    for f in "$log" "$out" "$err"; do
        [[ -s "$f" ]] && sed "s|^|    $(basename "$f"): |" "$f"
    done
    failed=$((failed + 1))
}
common=(--base-url http://internal-alb-123.us-east-1.elb.amazonaws.com:8080 --cluster loadgen
    --subnets "subnet-0a1b,subnet-2c3d" --security-groups sg-0123 --bucket heavy-results-123
    --region us-east-1 --scenario constant-rate -e RATE=30 -e DURATION=2m --label fargate)
remote() { # fresh log and stub state; sets $rc
    : >"$log"
    rm -f "$tmp/run-task-count" "$tmp/overrides"
    rm -rf "$tmp/results"
    rc=0
    "$script" --results-dir "$tmp/results" "$@" >"$out" 2>"$err" || rc=$?
}
calls() { sed -E -e 's/ --network-configuration [^ ]+ / --network-configuration … /' -e 's/ --overrides .* --output / --overrides … --output /' "$log"; }

echo "remote-loadtest.sh with stub aws and k6:"

# 1. A real run with three segments.
remote "${common[@]}" --segments 3 --run-id r1
prefix=s3://heavy-results-123/runs/r1
want="$tmp/want"
{
    echo "k6 archive --quiet -e BASE_URL=http://internal-alb-123.us-east-1.elb.amazonaws.com:8080 -e DURATION_SCALE=1 -e RATE=30 -e DURATION=2m -O $(grep -o '/tmp/[^ ]*/test.tar' "$log" | head -n 1) $PWD/k6-tests/constant-rate-test.js"
    echo "aws s3 cp $(grep -o '/tmp/[^ ]*/test.tar' "$log" | head -n 1) $prefix/test.tar --only-show-errors --region us-east-1"
    echo "aws s3 presign $prefix/test.tar --expires-in 7200 --region us-east-1"
    for _ in 1 2 3; do
        echo "aws ecs run-task --cluster loadgen --task-definition heavy-api-loadgen --launch-type FARGATE --count 1 --started-by heavy-api-loadtest --network-configuration … --overrides … --output json --region us-east-1"
    done
    echo "aws ecs wait tasks-stopped --cluster loadgen --tasks arn:aws:ecs:us-east-1:123456789012:task/loadgen/t1 arn:aws:ecs:us-east-1:123456789012:task/loadgen/t2 arn:aws:ecs:us-east-1:123456789012:task/loadgen/t3 --region us-east-1"
    echo "aws ecs describe-tasks --cluster loadgen --tasks arn:aws:ecs:us-east-1:123456789012:task/loadgen/t1 arn:aws:ecs:us-east-1:123456789012:task/loadgen/t2 arn:aws:ecs:us-east-1:123456789012:task/loadgen/t3 --output json --region us-east-1"
    echo "aws s3 cp $prefix/ $tmp/results/r1/ --recursive --only-show-errors --region us-east-1"
    echo "k6 version"
} >"$want"
if [[ "$rc" -eq 0 ]] && diff "$want" <(calls) >"$tmp/diff"; then
    pass "archive, upload, presign, one run-task per segment, wait, describe, download (in order, --region on every call)"
else
    cat "$tmp/diff" 2>/dev/null || true
    fail "real run command sequence (exit $rc)"
fi
if python3 - "$tmp/overrides" "$log" <<'EOF'; then
import json, sys
seen = [json.loads(line) for line in open(sys.argv[1])]
assert len(seen) == 3, len(seen)
for i, (o, seg) in enumerate(zip(seen, ["0:1/3", "1/3:2/3", "2/3:1"]), start=1):
    c = {x["name"]: {e["name"]: e["value"] for e in x["environment"]} for x in o["containerOverrides"]}
    assert c["k6"]["K6_SEGMENT"] == seg, c
    assert c["k6"]["K6_SEGMENT_SEQUENCE"] == "0,1/3,2/3,1", c
    assert c["k6"]["K6_ARCHIVE_URL"].startswith("https://stub.s3.amazonaws.com/heavy-results-123/runs/r1/test.tar?"), c
    assert c["upload"] == {"RUN_ID": "r1", "SEGMENT_NAME": f"segment-{i}"}, c
net = [l for l in open(sys.argv[2]) if "run-task" in l][0]
assert "awsvpcConfiguration={subnets=[subnet-0a1b,subnet-2c3d],securityGroups=[sg-0123],assignPublicIp=DISABLED}" in net
EOF
    pass "each run-task overrides its own segment (0:1/3, 1/3:2/3, 2/3:1), the sequence, the archive URL and the upload path"
else
    fail "run-task overrides"
fi
if python3 - "$tmp/results/r1" <<'EOF'; then
import json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
segs = [json.load(open(f"{d}/segment-{i}/summary.json"))["heavy_api"]["requests"] for i in (1, 2, 3)]
assert s["heavy_api"]["requests"] == sum(segs), (s["heavy_api"]["requests"], segs)
assert s["heavy_api"]["segments"] == 3
m = json.load(open(f"{d}/meta.json"))
assert m["segments"] == 3 and m["label"] == "fargate" and m["k6_exit_code"] == 0
assert [t["task_arn"][-2:] for t in m["remote"]["tasks"]] == ["t1", "t2", "t3"]
assert m["k6_env"] == ["RATE=30", "DURATION=2m"]
EOF
    pass "the downloaded segments are merged into one summary.json (requests summed) and meta.json"
else
    fail "merge of the downloaded segments"
fi

# 2. --dry-run prints every call and makes none.
remote "${common[@]}" --segments 2 --run-id dry --dry-run
if [[ "$rc" -eq 0 && ! -s "$log" ]] &&
    grep -q '^+ .*k6 archive --quiet -e BASE_URL=' "$out" &&
    grep -q '^+ aws s3 cp .*/test.tar s3://heavy-results-123/runs/dry/test.tar' "$out" &&
    grep -q '^+ aws s3 presign s3://heavy-results-123/runs/dry/test.tar' "$out" &&
    [[ "$(grep -c '^+ aws ecs run-task ' "$out")" -eq 2 ]] &&
    grep -q 'K6_SEGMENT.*0:1/2' "$out" && grep -q 'K6_SEGMENT.*1/2:1' "$out" &&
    grep -q '^+ aws ecs wait tasks-stopped --cluster loadgen --tasks' "$out" &&
    grep -q '^+ aws ecs describe-tasks' "$out" &&
    grep -q '^+ aws s3 cp s3://heavy-results-123/runs/dry/ .* --recursive' "$out" &&
    grep -q '^+ .*heavy-lab merge' "$out"; then
    pass "--dry-run prints archive, upload, presign, 2 run-tasks, wait, describe, download and merge; calls nothing"
else
    fail "--dry-run (exit $rc)"
fi

# 3. A task that cannot start: the started ones are stopped, nothing is downloaded.
STUB_FAIL_AT=2 remote "${common[@]}" --segments 3 --run-id r3
if [[ "$rc" -eq 1 ]] && grep -q 'RESOURCE:ENI' "$err" &&
    grep -q 'aws ecs stop-task --cluster loadgen --task arn:aws:ecs:us-east-1:123456789012:task/loadgen/t1' "$log" &&
    [[ "$(grep -c 'ecs run-task' "$log")" -eq 2 ]] && ! grep -q 'recursive' "$log"; then
    pass "run-task failure on segment 2: exit 1 with ECS's reason, task 1 stopped, no download"
else
    fail "run-task failure (exit $rc)"
fi

# 4. A segment whose k6 aborted (108), and a failed upload.
STUB_K6_EXIT=108 remote "${common[@]}" --segments 3 --run-id r4
if [[ "$rc" -eq 1 ]] && grep -q "did not finish its run: .*t2 exited 108" "$err" &&
    [[ -f "$tmp/results/r4/summary.json" ]]; then
    pass "a segment's k6 exit 108 fails the run (exit 1), after merging what there is"
else
    fail "k6 exit 108 in a segment (exit $rc)"
fi
STUB_UPLOAD_EXIT=1 remote "${common[@]}" --segments 2 --run-id r5
if [[ "$rc" -eq 1 ]] && grep -q "upload container failed" "$err" && ! grep -q 'recursive' "$log"; then
    pass "a failed upload container fails the run before any download"
else
    fail "failed upload (exit $rc)"
fi

# 5. Usage errors: exit 2, a clear message, nothing called.
usage_case() { # name, pattern, args...
    local name="$1" pattern="$2"
    shift 2
    remote "$@"
    if [[ "$rc" -eq 2 && ! -s "$log" ]] && grep -q -- "$pattern" "$err"; then
        pass "$name"
    else
        fail "$name (exit $rc)"
    fi
}
usage_case "missing --bucket and --cluster are named" "missing --cluster --bucket" \
    --base-url http://alb.example --subnets subnet-1 --security-groups sg-1
usage_case "--segments 0 is refused" "--segments must be an integer" "${common[@]}" --segments 0
usage_case "a loopback --base-url is refused" "generators' own loopback" "${common[@]}" --base-url http://127.0.0.1:8000
usage_case "--scenario capacity is refused with the way to do it" "searches on one generator" "${common[@]}" --scenario capacity
usage_case "a malformed subnet list is refused" "--subnets must be subnet-" "${common[@]}" --subnets vpc-1
usage_case "-e without = is refused" "-e expects KEY=VAL" "${common[@]}" -e RATE
remote --help
if [[ "$rc" -eq 0 && ! -s "$log" ]] && grep -q '^Usage:' "$out" && grep -q -- '--dry-run' "$out"; then
    pass "--help prints the usage and exits 0"
else
    fail "--help (exit $rc)"
fi

printf 'remote-loadtest.sh tests: %d passed, %d failed\n' "$passed" "$failed"
[[ "$failed" -eq 0 ]]
