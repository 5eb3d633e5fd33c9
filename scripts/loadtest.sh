#!/usr/bin/env bash
# Runs one k6 scenario against heavy-api and keeps every artifact: `heavy-lab run` (the heavylab
# package in lab/, lab/src/heavylab/run/runner.py), in the project's environment (scripts/setup.sh
# creates it on first use). `scripts/loadtest.sh --help` is its manual; docs/LOAD_TESTS.md the guide.
set -euo pipefail
venv="$("$(dirname "$0")/setup.sh")"
exec "$venv/bin/heavy-lab" run "$@"
