#!/usr/bin/env bash
# Serves the REAL original service (../shared/reference/django-original: Django 4.2.8 on Gunicorn
# 21.2.0) exactly as its README and deployment run it: 4 workers x 2 threads, --timeout 120, with
# the log level at warning. Installs its requirements.txt into bench/.venv-original on first use.
# The original writes its io file at a fixed /tmp/django_load_test_io.bin (not configurable).
# Usage: bench/original.sh [PORT]   (extra Gunicorn flags via GUNICORN_EXTRA; ORIGINAL_DIR to
# point at another copy of the original)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-8100}"
original="${ORIGINAL_DIR:-$here/../../shared/reference/django-original}"
if [ ! -f "$original/loadtest_project/wsgi.py" ]; then
  echo "original.sh: no Django original at $original (set ORIGINAL_DIR)" >&2
  exit 1
fi
original="$(cd "$original" && pwd)"
venv="$here/.venv-original"
if [ ! -x "$venv/bin/gunicorn" ] || [ ! -x "$venv/bin/django-admin" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$original/requirements.txt"
fi
# shellcheck disable=SC2086 # GUNICORN_EXTRA is a list of flags
exec "$venv/bin/gunicorn" --chdir "$original" loadtest_project.wsgi:application \
  --workers 4 --threads 2 --timeout 120 --bind "127.0.0.1:$port" --log-level warning \
  ${GUNICORN_EXTRA:-}
