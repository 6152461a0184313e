#!/usr/bin/env bash
# Kept for old habits: the benchmark is scripts/benchmark.py (every goal of issue 10, or --only stack for the
# stack's figures that this script used to print). Arguments are passed on, e.g. --only stack --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
exec "$PYTHON" scripts/benchmark.py "$@"
