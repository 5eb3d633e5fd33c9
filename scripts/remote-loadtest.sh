#!/usr/bin/env bash
# Runs one k6 scenario from N load generators on ECS (Fargate tasks of deploy/loadgen-stack.yaml,
# beside the target in its VPC), one execution segment each, and merges their raw samples into one
# run folder exactly as `scripts/loadtest.sh --segments N` does locally:
#   1. `k6 archive` packs the scenario with its options and -e variables (one immutable file per
#      run), uploaded to s3://BUCKET/runs/RUN_ID/test.tar and handed to the tasks as a presigned URL;
#   2. one `aws ecs run-task` per segment (run-task --count cannot give each task its own segment):
#      a container override sets K6_SEGMENT and the segment's name;
#   3. waits until every task stopped, reads the containers' exit codes;
#   4. downloads s3://BUCKET/runs/RUN_ID/ and runs scripts/k6merge.py, then writes meta.json.
# --dry-run prints every command (k6 and aws) without running any. docs/DISTRIBUTED_LOAD.md is the
# guide. Exit status: the merged thresholds' (0 passed, 99 failed); 1 when a task or a step failed;
# 2 for bad usage.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  cat <<'EOF'
Usage: scripts/remote-loadtest.sh --base-url URL --segments N --cluster NAME --subnets IDS
           --security-groups IDS --bucket NAME [OPTIONS] [-e KEY=VAL ...]

Target and test:
  --base-url URL          the target as the generators reach it (the ALB's URL inside the VPC)
  --scenario NAME         smoke | quick | load | spike | autoscale | constant-rate | ramping-rate
                          (default: smoke)
  --segments N            number of generator tasks, one execution segment each (default: 2)
  --scale F               DURATION_SCALE (default: 1)
  -e KEY=VAL              k6 variables, as for scripts/loadtest.sh (repeatable)

ECS (the outputs of deploy/loadgen-stack.yaml):
  --cluster NAME          the generators' cluster (output ClusterName)
  --task-definition TD    family[:revision] or ARN (default: heavy-api-loadgen)
  --subnets IDS           comma-separated subnet ids, in the target's VPC
  --security-groups IDS   comma-separated security group ids (output GeneratorSecurityGroupId)
  --assign-public-ip X    ENABLED (public subnets without NAT) or DISABLED (default: DISABLED)
  --bucket NAME           the results bucket (output ResultsBucketName)
  --region REGION         passed to every aws call (default: the CLI's configuration)

Results:
  --run-id ID             default: <scenario>-<UTC timestamp>-remote
  --label NAME            platform label in meta.json (default: remote)
  --price SPEC            the target's price, for scripts/compare.py
  --results-dir DIR       parent of the run folder (default: results/)
  --timeout SECS          give up waiting for the tasks after SECS (default: the scenario's length
                          x scale + 900)

Other:
  --dry-run               print every k6 and aws command, run none
  -h, --help              this help

Environment: AWS (the aws CLI to use, default aws), K6 (the k6 binary for `k6 archive`; default
the one scripts/loadtest.sh --ensure-k6 installs).
EOF
}

log() { printf '[remote] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 2
}
fatal() {
  log "error: $*"
  exit 1
}

scenario=smoke
segments=2
scale=1
base_url=""
cluster=""
task_def=heavy-api-loadgen
subnets=""
security_groups=""
public_ip=DISABLED
bucket=""
region=""
run_id=""
label=remote
price=""
results_dir="$root/results"
timeout_secs=""
dry_run=0
k6_env=()

need() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --base-url) need "$@"; base_url="$2"; shift 2 ;;
    --scenario) need "$@"; scenario="$2"; shift 2 ;;
    --segments) need "$@"; segments="$2"; shift 2 ;;
    --scale) need "$@"; scale="$2"; shift 2 ;;
    -e) need "$@"; k6_env+=("$2"); shift 2 ;;
    --cluster) need "$@"; cluster="$2"; shift 2 ;;
    --task-definition) need "$@"; task_def="$2"; shift 2 ;;
    --subnets) need "$@"; subnets="$2"; shift 2 ;;
    --security-groups) need "$@"; security_groups="$2"; shift 2 ;;
    --assign-public-ip) need "$@"; public_ip="$2"; shift 2 ;;
    --bucket) need "$@"; bucket="$2"; shift 2 ;;
    --region) need "$@"; region="$2"; shift 2 ;;
    --run-id) need "$@"; run_id="$2"; shift 2 ;;
    --label) need "$@"; label="$2"; shift 2 ;;
    --price) need "$@"; price="$2"; shift 2 ;;
    --results-dir) need "$@"; results_dir="$2"; shift 2 ;;
    --timeout) need "$@"; timeout_secs="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

missing=()
for v in base_url cluster subnets security_groups bucket; do
  [ -n "${!v}" ] || missing+=("--${v//_/-}")
done
[ "${#missing[@]}" -eq 0 ] || { usage >&2; die "missing ${missing[*]}"; }
case "$scenario" in
  smoke) nominal=40 ;;
  quick) nominal=85 ;;
  load) nominal=630 ;;
  spike) nominal=200 ;;
  autoscale) nominal=330 ;;
  constant-rate) nominal=70 ;;
  ramping-rate) nominal=80 ;;
  capacity) die "--scenario capacity searches on one generator: use scripts/loadtest.sh on a machine in the VPC" ;;
  *) die "--scenario must be smoke, quick, load, spike, autoscale, constant-rate or ramping-rate (got '$scenario')" ;;
esac
[[ "$segments" =~ ^[1-9][0-9]*$ ]] && [ "$segments" -le 100 ] ||
  die "--segments must be an integer from 1 to 100 (got '$segments')"
awk -v s="$scale" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 0) }' ||
  die "--scale must be a positive number (got '$scale')"
[[ "$base_url" =~ ^https?://[^/]+$|^https?://[^/]+/$ ]] || die "--base-url must look like http://host[:port] (got '$base_url')"
base_url="${base_url%/}"
case "$base_url" in
  *://localhost* | *://127.* | *://\[::1\]*)
    die "--base-url $base_url is the generators' own loopback: give the target's address in the VPC" ;;
esac
[[ "$subnets" =~ ^subnet-[0-9a-f]+(,subnet-[0-9a-f]+)*$ ]] || die "--subnets must be subnet-... ids separated by commas (got '$subnets')"
[[ "$security_groups" =~ ^sg-[0-9a-f]+(,sg-[0-9a-f]+)*$ ]] || die "--security-groups must be sg-... ids separated by commas (got '$security_groups')"
[[ "$public_ip" =~ ^(ENABLED|DISABLED)$ ]] || die "--assign-public-ip must be ENABLED or DISABLED (got '$public_ip')"
[[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "--bucket must be an S3 bucket name (got '$bucket')"
[ -z "$region" ] || [[ "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "--region must look like us-east-1 (got '$region')"
[[ "$label" =~ ^[A-Za-z0-9._-]+$ ]] || die "--label may hold letters, digits, '.', '_' and '-' only"
[ -z "$timeout_secs" ] || [[ "$timeout_secs" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a number of seconds"
for kv in "${k6_env[@]}"; do
  [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "-e expects KEY=VAL (got '$kv')"
done
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
[ -n "$run_id" ] || run_id="$scenario-$stamp-remote"
[[ "$run_id" =~ ^[A-Za-z0-9._-]+$ ]] || die "--run-id may hold letters, digits, '.', '_' and '-' only"
[ -n "$timeout_secs" ] || timeout_secs="$(awk -v n="$nominal" -v s="$scale" 'BEGIN { printf "%d", n * s + 900 }')"

aws_bin="${AWS:-aws}"
region_args=()
[ -z "$region" ] || region_args=(--region "$region")

# Prints a command the way a shell would read it back.
show() {
  local out="" a q="'"
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="$a "
    else
      out+="$q${a//$q/$q\\$q$q}$q "
    fi
  done
  printf '+ %s\n' "${out% }"
}
# Runs the aws CLI (or, with --dry-run, prints the call and answers nothing).
aws_do() {
  if [ "$dry_run" = 1 ]; then
    show "$aws_bin" "$@" "${region_args[@]}"
    return 0
  fi
  "$aws_bin" "$@" "${region_args[@]}"
}

out="$results_dir/$run_id"
prefix="s3://$bucket/runs/$run_id"
script="$root/k6-tests/$scenario-test.js"
[ -f "$script" ] || die "missing $script"
seq_text="0"
for ((i = 1; i < segments; i++)); do seq_text+=",$i/$segments"; done
seq_text+=",1"
log "run $run_id: $scenario on $segments generator task(s) against $base_url"

# --- 1. the k6 archive ------------------------------------------------------------------------------

work="$(mktemp -d)"
started_tasks=()
# shellcheck disable=SC2317,SC2329  # invoked by traps
stop_started() {
  local arn
  for arn in "${started_tasks[@]}"; do
    log "stopping $arn"
    aws_do ecs stop-task --cluster "$cluster" --task "$arn" --reason "remote-loadtest.sh $run_id aborted" >/dev/null || true
  done
  started_tasks=()
}
# shellcheck disable=SC2317,SC2329
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 99 ] || stop_started
  rm -rf "$work"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

archive_env=(-e "BASE_URL=$base_url" -e "DURATION_SCALE=$scale")
for kv in "${k6_env[@]}"; do archive_env+=(-e "$kv"); done
if [ "$dry_run" = 1 ]; then
  k6="${K6:-k6}"
  show "$k6" archive --quiet "${archive_env[@]}" -O "$work/test.tar" "$script"
else
  k6="${K6:-$("$root/scripts/loadtest.sh" --ensure-k6)}"
  "$k6" archive --quiet "${archive_env[@]}" -O "$work/test.tar" "$script" ||
    fatal "k6 archive failed (bad -e value?)"
fi
aws_do s3 cp "$work/test.tar" "$prefix/test.tar" --only-show-errors ||
  fatal "cannot upload the k6 archive to $prefix/test.tar"
url="$(aws_do s3 presign "$prefix/test.tar" --expires-in 7200)" || fatal "aws s3 presign failed"
[ "$dry_run" = 1 ] && printf '%s\n' "$url" && url="<presigned URL of $prefix/test.tar>"
[ -n "$url" ] || fatal "aws s3 presign printed no URL"

# --- 2. one task per segment ------------------------------------------------------------------------

network="awsvpcConfiguration={subnets=[$subnets],securityGroups=[$security_groups],assignPublicIp=$public_ip}"
overrides() { # segment text, segment name
  python3 -c 'import json, sys
url, seg, seq, run_id, name = sys.argv[1:]
env = lambda d: [{"name": k, "value": v} for k, v in d.items()]
print(json.dumps({"containerOverrides": [
    {"name": "k6", "environment": env({"K6_ARCHIVE_URL": url, "K6_SEGMENT": seg,
                                       "K6_SEGMENT_SEQUENCE": seq})},
    {"name": "upload", "environment": env({"RUN_ID": run_id, "SEGMENT_NAME": name})}]}))' \
    "$url" "$1" "$seq_text" "$run_id" "$2"
}
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
for ((i = 0; i < segments; i++)); do
  from="$i/$segments"
  to="$((i + 1))/$segments"
  [ "$i" = 0 ] && from=0
  [ "$((i + 1))" = "$segments" ] && to=1
  name="segment-$((i + 1))"
  answer="$(aws_do ecs run-task --cluster "$cluster" --task-definition "$task_def" \
    --launch-type FARGATE --count 1 --started-by "heavy-api-loadtest" \
    --network-configuration "$network" --overrides "$(overrides "$from:$to" "$name")" \
    --output json)" || fatal "aws ecs run-task failed for $name"
  if [ "$dry_run" = 1 ]; then
    printf '%s\n' "$answer"
    started_tasks+=("<task-arn-$((i + 1))>")
    continue
  fi
  arn="$(printf '%s' "$answer" | python3 -c 'import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit("run-task did not answer JSON")
tasks, failures = d.get("tasks") or [], d.get("failures") or []
if failures or not tasks:
    why = "; ".join(" ".join(str(f.get(k, "")) for k in ("arn", "reason", "detail")).strip()
                    for f in failures)
    sys.exit(why or "no task in the answer")
print(tasks[0]["taskArn"])' 2>&1)" || fatal "ECS did not start $name: $arn"
  started_tasks+=("$arn")
  log "$name ($from:$to): $arn"
done

# --- 3. wait for every task -------------------------------------------------------------------------

deadline=$((SECONDS + timeout_secs))
if [ "$dry_run" = 1 ]; then
  aws_do ecs wait tasks-stopped --cluster "$cluster" --tasks "${started_tasks[@]}"
else
  # `aws ecs wait tasks-stopped` gives up after 100 polls (about 10 minutes): poll again until the
  # deadline.
  until aws_do ecs wait tasks-stopped --cluster "$cluster" --tasks "${started_tasks[@]}"; do
    [ "$SECONDS" -lt "$deadline" ] || fatal "the tasks did not stop within $timeout_secs s"
    log "still running; waiting again"
  done
fi
described="$(aws_do ecs describe-tasks --cluster "$cluster" --tasks "${started_tasks[@]}" --output json)" ||
  fatal "aws ecs describe-tasks failed"
started_tasks=()
[ "$dry_run" = 0 ] || printf '%s\n' "$described"

k6_codes=""
if [ "$dry_run" = 0 ]; then
  # One line per task: "<arn> <k6 exit code> <upload exit code> <stopped reason>".
  k6_codes="$(printf '%s' "$described" | python3 -c 'import json, sys
for t in json.load(sys.stdin).get("tasks") or []:
    code = {c.get("name"): c.get("exitCode") for c in t.get("containers") or []}
    print(t.get("taskArn"), code.get("k6"), code.get("upload"), t.get("stoppedReason", "").replace(" ", "_"))')"
  printf '%s\n' "$k6_codes" | sed 's/^/[remote] task /' >&2
  [ "$(printf '%s\n' "$k6_codes" | grep -c .)" -eq "$segments" ] ||
    fatal "describe-tasks returned $(printf '%s\n' "$k6_codes" | grep -c .) of $segments tasks"
  if printf '%s\n' "$k6_codes" | awk '$3 != "0" { bad = 1 } END { exit !bad }'; then
    fatal "a task's upload container failed (exit code not 0): see the log group's upload streams"
  fi
fi

# --- 4. download, merge, meta.json ------------------------------------------------------------------

if [ "$dry_run" = 0 ]; then
  mkdir -p "$out" || fatal "cannot create $out"
fi
aws_do s3 cp "$prefix/" "$out/" --recursive --only-show-errors || fatal "cannot download $prefix/"
seg_dirs=()
for ((i = 1; i <= segments; i++)); do seg_dirs+=("$out/segment-$i"); done
if [ "$dry_run" = 1 ]; then
  show "$root/.venv/bin/heavy-lab" merge --out "$out" "${seg_dirs[@]}"
  log "dry run: nothing was run"
  exit 0
fi
for d in "${seg_dirs[@]}"; do
  [ -f "$d/samples.csv.gz" ] || fatal "$d has no samples.csv.gz: the segment's k6 wrote nothing (see k6.log there)"
done
merge_rc=0
"$root/.venv/bin/heavy-lab" merge --out "$out" "${seg_dirs[@]}" || merge_rc=$?
[ "$merge_rc" -eq 0 ] || [ "$merge_rc" -eq 99 ] || fatal "the merge failed (exit $merge_rc)"
finished_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
bad_k6="$(printf '%s\n' "$k6_codes" | awk '$2 != "0" && $2 != "99" { print $1 " exited " $2 }')"

M_SCENARIO="$scenario" M_SCALE="$scale" M_BASE_URL="$base_url" M_LABEL="$label" M_PRICE="$price" \
  M_SEGMENTS="$segments" M_RUN_ID="$run_id" M_CLUSTER="$cluster" M_TD="$task_def" M_BUCKET="$bucket" \
  M_STARTED="$started_at" M_FINISHED="$finished_at" M_CODES="$k6_codes" M_OUT="$out" \
  M_COMMIT="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)" \
  M_K6="$("$k6" version 2>/dev/null | head -n 1 || true)" M_ENV="$(printf '%s\n' "${k6_env[@]}")" \
  M_MERGE_RC="$merge_rc" M_BAD="$bad_k6" python3 - <<'EOF'
import json, os
e = os.environ
tasks = []
for line in e["M_CODES"].splitlines():
    arn, k6, upload, reason = (line.split() + ["", "", "", ""])[:4]
    tasks.append({"task_arn": arn, "k6_exit_code": None if k6 == "None" else int(k6),
                  "upload_exit_code": None if upload == "None" else int(upload),
                  "stopped_reason": reason.replace("_", " ")})
rc = int(e["M_MERGE_RC"]) if not e["M_BAD"] else 1
meta = {
    "scenario": e["M_SCENARIO"], "script": f"k6-tests/{e['M_SCENARIO']}-test.js",
    "duration_scale": float(e["M_SCALE"]), "base_url": e["M_BASE_URL"], "local_server": False,
    "server_command": None, "server_args": "", "server_exit_code": None,
    "label": e["M_LABEL"], "price": e["M_PRICE"] or None,
    "k6_env": [x for x in e["M_ENV"].splitlines() if x],
    "segments": int(e["M_SEGMENTS"]), "samples": "samples.csv.gz",
    "started_at": e["M_STARTED"], "finished_at": e["M_FINISHED"],
    "git_commit": e["M_COMMIT"], "k6_version": e["M_K6"], "k6_exit_code": rc,
    "remote": {"run_id": e["M_RUN_ID"], "cluster": e["M_CLUSTER"], "task_definition": e["M_TD"],
               "bucket": e["M_BUCKET"], "tasks": tasks},
    "server_info_before": None, "server_info_after": None,
}
with open(os.path.join(e["M_OUT"], "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")
EOF
log "merged run: $out"
if [ -n "$bad_k6" ]; then
  log "error: a segment's k6 did not finish its run: $bad_k6"
  exit 1
fi
exit "$merge_rc"
