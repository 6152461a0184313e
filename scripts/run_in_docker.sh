#!/usr/bin/env bash
# The tutorial's container entrypoint: runs the DAG script DAG_NAME in the folder DAG_PATH with `python`,
# which registers the DAG and hosts it with a LocalAgent (see agents/cli/script.py).
#   DAG_PATH          folder of the DAG, e.g. /app/dags/flow-test-hello (required)
#   DAG_NAME          script in that folder, e.g. test-hello.py (required)
#   PREFECT_AUTH_KEY  optional Prefect Cloud API key: exported as PREFECT__CLOUD__API_KEY with the cloud
#                     backend (the tutorial's `prefect auth login --key`), never put on a command line
# Extra arguments are passed to the script (e.g. --local, --register).
set -euo pipefail

echo "-> RUN IN DOCKER..."
echo "DAG_PATH: ${DAG_PATH:-}"
echo "DAG_NAME: ${DAG_NAME:-}"
if [ -z "${DAG_PATH:-}" ] || [ -z "${DAG_NAME:-}" ]; then
  echo "error: set DAG_PATH (the DAG folder, e.g. /app/dags/flow-test-hello) and DAG_NAME (its script," \
       "e.g. test-hello.py)" >&2
  exit 2
fi
if [ ! -f "$DAG_PATH/$DAG_NAME" ]; then
  echo "error: $DAG_PATH/$DAG_NAME does not exist: check DAG_PATH and DAG_NAME" >&2
  exit 2
fi

export TZ="${TZ:-UTC}"
echo "-> SETUP: TZ = $TZ"

if [ -n "${PREFECT_AUTH_KEY:-}" ]; then
  # The key stays in the environment: it never appears in a process's arguments or in this output.
  export PREFECT__CLOUD__API_KEY="${PREFECT__CLOUD__API_KEY:-$PREFECT_AUTH_KEY}"
  export PREFECT__BACKEND="${PREFECT__BACKEND:-cloud}"
fi
echo "-> Prefect backend: ${PREFECT__BACKEND:-from env files (server by default)}"

cd "$DAG_PATH"
echo "Iniciando DAG"
pwd
exec "${PYTHON:-python3}" "$DAG_NAME" "$@"
