#!/usr/bin/env bash
# Runs the cargo-fuzz targets (request heads and framing; query strings) for a bounded time each.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer's flags need a nightly compiler, so on
# a stable toolchain RUSTC_BOOTSTRAP=1 enables them. Crashes land in fuzz/artifacts/<target>/;
# turn each into a regression test (tests/hostile.rs or the unit tests of src/http).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in request_head query; do
  echo "==> fuzzing $target for ${seconds}s"
  # Fuzz into a scratch copy so new inputs do not churn the checked-in seed corpus.
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$target/." "$work/"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=4096
  rm -rf "$work"
done
