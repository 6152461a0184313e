#!/usr/bin/env bash
# Writes .env, Compose's own variables for this checkout (git-ignored; Compose reads it on every command):
# which API the stack runs, the project name, and the uid:gid the services run as (so that their outputs
# in data/output are yours on the host). Other lines of an existing .env are kept.
#
#   scripts/configure.sh server     Prefect Server 1.4.1 and its UI (needs Docker Hub)   [the default]
#   scripts/configure.sh emulator   the offline orchestrator prefect_emulator/ (scripts/prepare-offline.sh
#                                   runs this, with PYTHON_VERSION=3.11 for its base image)
#   scripts/configure.sh emulator-ui  the emulator with the real Prefect UI in front of it (profiles emulator,
#                                   prefect-ui; the UI's image comes from Docker Hub)
#   scripts/configure.sh cloud      Prefect Cloud: no API container; key in env/local.env
#   scripts/configure.sh MODE KEY=VALUE ...   also sets these compose variables (see compose.yaml's header)
#
# ENV_FILE names another file to write (tests use it); the default is .env beside compose.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "configure: ERROR: $*" >&2; exit 2; }

mode="${1:-server}"
[ $# -gt 0 ] && shift
case "$mode" in
  server) profiles=server ;;
  emulator) profiles=emulator ;;
  emulator-ui) profiles=emulator,prefect-ui ;;
  cloud) profiles= ;;
  *) die "unknown mode '$mode'. Fix: use one of server, emulator, emulator-ui, cloud" ;;
esac
for pair in "$@"; do
  [[ "$pair" =~ ^[A-Z_][A-Z0-9_]*=[^[:space:]]*$ ]] || die "'$pair' is not KEY=VALUE (no spaces). Fix: e.g. PYTHON_VERSION=3.11"
done

# The services' uid: yours, so that outputs on the host are yours; as root, the image's own uid 5678
# (root in a container is what "containers run as non-root" rules out).
uid="$(id -u)"; gid="$(id -g)"
if [ "$uid" = 0 ]; then uid=5678; gid=5678; fi
# Compose's default project name is the folder's name, lowercased, without the characters it refuses;
# written down so that the image (<project>-dags) and network (<project>_default) names are known.
project="$(basename "$PWD" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')"
project="${project#[-_]}"
[ -n "$project" ] || project=dags-prefect-io

env_file="${ENV_FILE:-.env}"
settings=()
# ours, unless given as KEY=VALUE, then the given ones
for pair in "COMPOSE_PROFILES=$profiles" "COMPOSE_PROJECT_NAME=$project" "DAGS_UID=$uid" "DAGS_GID=$gid"; do
  printf '%s\n' "$@" | grep -q "^${pair%%=*}=" || settings+=("$pair")
done
settings+=("$@")
tmp="$(mktemp "$env_file.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
{
  echo "# Compose's variables for this checkout, written by scripts/configure.sh $mode (edit freely; git-ignored)."
  # keep every line of the old file that sets none of ours (nor repeats this header)
  if [ -f "$env_file" ]; then
    keys="$(printf '%s\n' "${settings[@]}" | cut -d= -f1 | paste -sd'|')"
    grep -Ev "^($keys)=|^# Compose's variables for this checkout" "$env_file" || true
  fi
  printf '%s\n' "${settings[@]}"
} >"$tmp"
mv "$tmp" "$env_file"; trap - EXIT
echo "configure: $env_file: ${settings[*]}"
