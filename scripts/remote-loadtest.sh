#!/usr/bin/env bash
# Runs one k6 scenario on N ECS tasks (execution segments) and merges their results exactly:
# `heavy-lab remote` (lab/src/heavylab/run/remote.py, boto3), in the project's environment
# (scripts/setup.sh creates it on first use). `scripts/remote-loadtest.sh --help` is its manual;
# docs/DISTRIBUTED_LOAD.md the guide.
set -euo pipefail
venv="$("$(dirname "$0")/setup.sh")"
exec "$venv/bin/heavy-lab" remote "$@"
