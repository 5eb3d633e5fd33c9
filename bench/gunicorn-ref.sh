#!/usr/bin/env bash
# Serves bench/python_ref/app.py with Gunicorn 21.2.0 (the original's version), 4 workers x 2
# threads, as the original deployed it. Installs Gunicorn into bench/.venv on first use.
# Usage: bench/gunicorn-ref.sh [PORT]   (extra Gunicorn flags via GUNICORN_EXTRA)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-8100}"
venv="$here/.venv"
if [ ! -x "$venv/bin/gunicorn" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "gunicorn==21.2.0"
fi
cd "$here/python_ref"
# shellcheck disable=SC2086
exec "$venv/bin/gunicorn" --bind "127.0.0.1:$port" --workers 4 --threads 2 --timeout 120 \
  --log-level warning ${GUNICORN_EXTRA:-} app:application
