#!/usr/bin/env bash
# Prints the stack's figures (not a test: nothing is asserted):
#   - image size (the tutorial's image was 270 MB);
#   - full image build without cache (dependencies from the wheelhouse when wheels/ exists);
#   - rebuild after editing one DAG (dependencies come from the layer cache);
#   - cold start: from `docker compose up -d` (image built) to every DAG registered and every agent healthy.
# It works on a copy of the tracked files (plus wheels/) in a temporary folder, so the DAG it edits is a
# copy, and runs the offline stack (profile emulator) under its own project name, removed at the end.
#
#   scripts/benchmark.sh            (after scripts/prepare-offline.sh on a machine without registries)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
PROJECT="dagsbench$$"
IMAGE="$PROJECT-dags:latest"
PORT="${BENCH_API_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
WORK="$(mktemp -d /tmp/dags-bench.XXXXXX)"

now() { python3 -c 'import time; print(time.monotonic())'; }
since() { python3 -c "import sys,time; print('%.1f' % (time.monotonic() - float(sys.argv[1])))" "$1"; }

# The copy: what git tracks (including uncommitted edits of tracked files) and the wheelhouse.
git ls-files -z --cached --others --exclude-standard | (cd "$REPO" && xargs -0 cp --parents -t "$WORK" 2>/dev/null || true)
[ -d wheels ] && cp -r wheels "$WORK/"
cd "$WORK"
# the copy's own .env: the offline stack, this project, the API on a free port, healthchecks every second
scripts/configure.sh emulator PYTHON_VERSION=3.11 "COMPOSE_PROJECT_NAME=$PROJECT" "APOLLO_HOST_PORT=$PORT" \
  DAGS_HEALTH_INTERVAL=1s >/dev/null
export DAGS_IMAGE="$IMAGE" EMULATOR_IMAGE="$IMAGE"
COMPOSE=(docker compose -p "$PROJECT")
cleanup() {
  "${COMPOSE[@]}" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
  docker image rm "$IMAGE" ${first_id:-} >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== image"
t0="$(now)"
"${COMPOSE[@]}" build --no-cache emulator >build.log 2>&1 || { tail -30 build.log; exit 1; }
echo "full build, no cache:            $(since "$t0") s"
first_id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
base="$(docker image inspect -f '{{.Size}}' "python:${PYTHON_VERSION:-3.11}-slim" 2>/dev/null || echo 0)"
echo "image size:                      $((size / 1000000)) MB (base image $((base / 1000000)) MB; the tutorial's image: 270 MB)"

dag_file="$(ls dags/*/*.py | head -1)"
echo "# edited by scripts/benchmark.sh" >>"$dag_file"
t0="$(now)"
"${COMPOSE[@]}" build emulator >rebuild.log 2>&1 || { tail -30 rebuild.log; exit 1; }
echo "rebuild after editing $dag_file: $(since "$t0") s"

echo "== cold start (image built; emulator as the API; healthchecks every 1 s)"
dags="$(ls -d dags/*/ | wc -l)"
t0="$(now)"
"${COMPOSE[@]}" up -d --no-build >up.log 2>&1 || { cat up.log; exit 1; }
echo "docker compose up -d returned:   $(since "$t0") s"
registered=""
while :; do
  if [ -z "$registered" ]; then
    n="$(curl -s -X POST -H 'Content-Type: application/json' --data '{"query":"{ flow { name } }"}' \
          "http://127.0.0.1:$PORT/" 2>/dev/null \
        | python3 -c 'import json,sys; print(len({f["name"] for f in json.load(sys.stdin)["data"]["flow"]}))' 2>/dev/null || echo 0)"
    if [ "$n" = "$dags" ]; then registered="$(since "$t0")"; echo "all $dags DAGs registered:        $registered s"; fi
  fi
  unhealthy="$(docker ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}} {{.Status}}' \
               | grep -E -- '-(dag|agent)-' | grep -vc '(healthy)' || true)"
  agents="$(docker ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}' | grep -cE -- '-(dag|agent)-' || true)"
  if [ -n "$registered" ] && [ "$agents" -gt 0 ] && [ "$unhealthy" = 0 ]; then
    echo "all $agents agents healthy:        $(since "$t0") s"
    break
  fi
  if [ "$(python3 -c "import time; print(int(time.monotonic() - $t0 > 600))")" = 1 ]; then
    echo "cold start did not finish within 600 s"; "${COMPOSE[@]}" ps; exit 1
  fi
  sleep 0.5
done
