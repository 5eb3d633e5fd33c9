#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests and the integration tests that
# start the real server on loopback ports. Safe to run on a fresh machine with the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test (unit + integration)"
cargo test
