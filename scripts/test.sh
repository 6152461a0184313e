#!/usr/bin/env bash
# Runs every test of the project in its own virtualenv (.venv), installing what it needs first.
#   scripts/test.sh                 all tests (Docker end-to-end tests included)
#   scripts/test.sh -m "not docker" everything that needs no Docker engine
#   scripts/test.sh tests/prefect_emulator  one folder; any pytest argument works
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# pip is quick when everything is already installed, so always run it: a changed pin is picked up.
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements-dev.txt
# the project itself, editable (pyproject.toml): its packages import from this checkout; "compat" puts the
# checkout on sys.path, so a package added later (a new folder) imports without reinstalling
"$VENV/bin/python" -c 'import importlib.metadata as m; m.distribution("dags-prefect-io")' 2>/dev/null \
  || "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -e . --config-settings editable_mode=compat
exec "$VENV/bin/python" -m pytest "$@"
