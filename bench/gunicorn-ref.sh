#!/usr/bin/env bash
# Serves bench/python_ref/app.py -- a plain-WSGI Python REWRITE of the original's endpoints, not
# the original (that is bench/original.sh) -- with Gunicorn 21.2.0, 4 workers x 2 threads. Its
# results are labelled "Python rewrite on Gunicorn". Installs Gunicorn into bench/.venv on first use.
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
