#!/usr/bin/env bash
# Makes the image of a Docker-in-Docker swarm node for the tests of tests/swarm/ (three such nodes make a
# cluster on one machine): Debian bookworm made by debootstrap, as scripts/prepare-offline.sh makes the
# base image, with Debian's docker.io in it, since containers here reach no package index. Cached: skipped
# when the tag is in the engine (FORCE=1 rebuilds).
#
#   scripts/swarm-node-image.sh            # -> dags-swarm-node:bookworm (SWARM_NODE_IMAGE names another)
#
# The node runs dockerd with the storage driver DOCKERD_STORAGE_DRIVER (default vfs, which works anywhere:
# overlayfs on an overlayfs root is refused; tests/swarm passes overlay2, which works when /var/lib/docker
# is a volume on the host's ext4 and takes the image in a third of vfs's time), and listens on
# /var/run/docker.sock and, when /run/dind is mounted, on /run/dind/docker.sock too, through which the host
# reaches the node's engine as a real cluster's operator reaches a host (DOCKER_HOST, docker contexts).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_IMAGE="${SWARM_NODE_IMAGE:-dags-swarm-node:bookworm}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${CACHE_DIR:-build/offline}"
FORCE="${FORCE:-0}"

say() { echo "swarm-node-image: $*"; }
die() { echo "swarm-node-image: ERROR: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'. Fix: start it (e.g. 'dockerd &')."
if [ "$FORCE" != 1 ] && docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  say "$NODE_IMAGE already there"; exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root. Fix: run this script with sudo"
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
mkdir -p "$CACHE_DIR"
root="$(mktemp -d /var/tmp/dags-swarm-node.XXXXXX)"
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"  # the image's / gets this mode
say "debootstrap $DEBIAN_SUITE with docker.io into $root (a few minutes)"
debootstrap --variant=minbase --include=docker.io,iptables,ca-certificates,procps \
  "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap-swarm-node.log" 2>&1 \
  || die "debootstrap failed, see $CACHE_DIR/debootstrap-swarm-node.log"
chroot "$root" dockerd --version >/dev/null || die "dockerd does not run in the node root"
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
# The engine's entry point: its socket in /run/dind too when that folder is mounted from the host.
cat >"$root/usr/local/bin/node-dockerd" <<'SH'
#!/bin/sh
set -e
hosts="-H unix:///var/run/docker.sock"
if [ -d /run/dind ]; then hosts="$hosts -H unix:///run/dind/docker.sock"; fi
# Debian puts tini where dockerd does not look for docker-init (`init: true` would fail)
exec dockerd --storage-driver="${DOCKERD_STORAGE_DRIVER:-vfs}" --init-path=/usr/bin/tini-static $hosts "$@"
SH
chmod 0755 "$root/usr/local/bin/node-dockerd"
tar -C "$root" -c . | docker import \
  -c 'ENV LANG=C.UTF-8' -c 'ENTRYPOINT ["/usr/local/bin/node-dockerd"]' -c 'VOLUME /var/lib/docker' \
  -c "LABEL org.opencontainers.image.description=\"Debian $DEBIAN_SUITE minbase + docker.io (debootstrap): a swarm node for tests, made by scripts/swarm-node-image.sh\"" \
  - "$NODE_IMAGE" >/dev/null
rm -rf "$root"; trap - EXIT
say "imported $NODE_IMAGE ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
