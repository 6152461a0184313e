#!/usr/bin/env bash
# The stack on a Docker Swarm cluster (README "Beyond one machine").
#
#   scripts/swarm.sh init [OPTIONS]        a swarm with this engine as its first manager (OPTIONS go to
#                                          `docker swarm init`, e.g. --advertise-addr 10.0.0.1)
#   scripts/swarm.sh label NODE CAP...     give NODE capabilities: api (the API, the Dask scheduler, the
#                                          published ports), dask (a Dask worker, the dask agents), and the
#                                          labels of the DAGs (etl, hello, ...): where their agents run
#   scripts/swarm.sh deploy                build the image, tag it with the git commit, put it on every
#                                          node, render the stack from compose.yaml and deploy it
#   scripts/swarm.sh status                services, tasks and where they run, nodes and their labels
#   scripts/swarm.sh rm                    remove the stack (the volumes stay on their nodes)
#   scripts/swarm.sh render [VARIANT]      print the stack file (VARIANT: emulator, server, cloud; default
#                                          the profile in .env); `check [VARIANT]` validates it with
#                                          `docker stack config` instead
#
# Engines: the image is built with the local engine (DOCKER_HOST / the current context, as for `docker
# compose build`); the swarm is driven through its manager, the context named by SWARM_MANAGER (default: the
# local engine); each other node is reached through the docker context named after it (`docker context
# create NODE --docker host=ssh://USER@NODE`) to load the image there, since there is no registry.
#
# Why `docker save | docker load` and not a registry: it needs nothing more on any node (a registry
# service, Debian's docker-registry, would need TLS certificates or an `insecure-registries` entry in every
# node's daemon.json), and a loaded image keeps its content id, which this script compares on every node:
# all nodes run exactly the build of the commit in the tag. The tag never moves: another build is another
# commit (a checkout with uncommitted changes gets the id of `git stash create`, which names them).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "swarm: $*" >&2; }
die() { echo "swarm: ERROR: $*" >&2; exit 1; }

# The manager of the swarm, and the engine of one node.
mgr() { if [ -n "${SWARM_MANAGER:-}" ]; then docker --context "$SWARM_MANAGER" "$@"; else docker "$@"; fi; }
on_node() {
  local node="$1"; shift
  if docker context inspect "$node" >/dev/null 2>&1; then docker --context "$node" "$@"; return; fi
  # the local engine is a node of the swarm (a swarm made with `init` here)
  if [ "$(docker info --format '{{.Swarm.NodeID}}' 2>/dev/null)" = "$(mgr node inspect -f '{{.ID}}' "$node")" ]; then
    docker "$@"; return
  fi
  die "node $node has no docker context, so the image cannot be put on it (and its tasks would fail with 'No such image'). Fix: docker context create $node --docker host=ssh://USER@$node"
}

require_swarm() {
  local state control
  state="$(mgr info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" \
    || die "no Docker engine answers${SWARM_MANAGER:+ through context $SWARM_MANAGER}. Fix: start it, or set SWARM_MANAGER to a manager's docker context"
  [ "$state" = active ] \
    || die "this engine${SWARM_MANAGER:+ ($SWARM_MANAGER)} is not part of a swarm (state: ${state:-none}). Fix: scripts/swarm.sh init, or docker swarm join on it, or SWARM_MANAGER=<a manager's context>"
  control="$(mgr info --format '{{.Swarm.ControlAvailable}}')"
  [ "$control" = true ] \
    || die "this engine is a swarm worker, not a manager. Fix: SWARM_MANAGER=<a manager's docker context>, or run this on a manager"
}

# The compose project's name, which names the stack (COMPOSE_PROJECT_NAME from .env, else the folder's).
stack_name() { docker compose config --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])'; }

# The image's tag: the commit, or the id of `git stash create` for a checkout with uncommitted changes.
image_tag() {
  local id
  id="$(git stash create 2>/dev/null || true)"
  [[ "$id" =~ ^[0-9a-f]{40}$ ]] || id=""  # a checkout in the middle of a merge has no such id
  [ -n "$id" ] || id="$(git rev-parse HEAD)" || die "this folder is not a git checkout. Fix: clone the repository"
  echo "$(stack_name)-dags:${id:0:12}"
}

# Builds the image under its tag when the tag is missing: the tag names the checkout's content. What git
# does not hold (the base image, wheels/) reaches an existing tag only with SWARM_BUILD=1, which rebuilds.
build_image() {
  local tag="$1"
  if [ "${SWARM_BUILD:-0}" != 1 ] && docker image inspect "$tag" >/dev/null 2>&1; then return; fi
  say "building $tag"
  DAGS_IMAGE="$tag" docker compose build --quiet init >&2
}

# Renders the stack of a variant (emulator / server / cloud) for image $1 on stdout.
render() {
  local tag="$1" variant="$2" secrets_dir="${3:-}" salt="${4:-}" profiles dags
  case "$variant" in
    emulator|server) profiles="$variant" ;;
    cloud) profiles="" ;;
    *) die "unknown variant '$variant'. Fix: one of emulator, server, cloud" ;;
  esac
  dags="$(mktemp)"
  docker run --rm "$tag" python -m agents list >"$dags" || { rm -f "$dags"; die "the image cannot list its DAGs (see above)"; }
  # On a swarm the services run as the image's own uid, which owns data/output in fresh volumes.
  COMPOSE_PROFILES="$profiles" DAGS_IMAGE="$tag" EMULATOR_IMAGE="$tag" DASHBOARD_IMAGE="$tag" DAGS_UID=5678 DAGS_GID=5678 \
    docker compose -f compose.yaml -f swarm/overlay.yaml config --format json \
    | python3 swarm/stack_file.py --dags "$dags" ${secrets_dir:+--secrets-dir "$secrets_dir"} --salt "$salt" \
    || { rm -f "$dags"; exit 2; }
  rm -f "$dags"
}

# The profile .env selects (what `docker compose up` would run).
default_variant() {
  case " $(docker compose config --services | tr '\n' ' ') " in
    *" emulator "*) echo emulator ;; *" apollo "*) echo server ;; *) echo cloud ;;
  esac
}

# The capabilities (node labels) the stack file's placement constraints ask for, one a line.
stack_capabilities() {
  python3 -c 'import json, re, sys
stack = json.load(open(sys.argv[1]))
for name, s in sorted(stack["services"].items()):
    for c in s.get("deploy", {}).get("placement", {}).get("constraints", []):
        m = re.match(r"node\.labels\.([^ =]+) *== *true$", c)
        if m: print(name, m.group(1))' "$1"
}

# "NODE LABEL" for every label=true of every node.
node_labels() {
  mgr node ls -q | xargs -r docker ${SWARM_MANAGER:+--context "$SWARM_MANAGER"} node inspect \
    --format '{{$n := .Description.Hostname}}{{range $k, $v := .Spec.Labels}}{{if eq $v "true"}}{{$n}} {{$k}}{{"\n"}}{{end}}{{end}}'
}

cmd_init() {
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
    say "this engine is already in a swarm"
  else
    docker swarm init "$@" >&2
  fi
  say "add nodes: run on each host the command that 'docker swarm join-token manager' (3 managers in all:"
  say "one may fail) or 'docker swarm join-token worker' prints; open 2377/tcp, 7946/tcp+udp, 4789/udp between them"
}

cmd_label() {
  [ $# -ge 2 ] || die "usage: scripts/swarm.sh label NODE CAPABILITY... (e.g. label host2 etl hello)"
  local node="$1" tag stack caps cap; shift
  require_swarm
  mgr node inspect "$node" >/dev/null 2>&1 \
    || die "no node '$node' in the swarm. Fix: one of: $(mgr node ls --format '{{.Hostname}}' | tr '\n' ' ')"
  tag="$(image_tag)"; build_image "$tag"
  stack="$(mktemp)"; trap 'rm -f "$stack"' RETURN
  render "$tag" "${SWARM_VARIANT:-$(default_variant)}" >"$stack"
  caps="$(stack_capabilities "$stack" | awk '{print $2}' | sort -u | tr '\n' ' ')"
  for cap in "$@"; do
    case " $caps " in
      *" $cap "*) ;;
      *) die "no service of the stack is placed by capability '$cap'. Fix: one of: $caps(a DAG's labels are its run_config's)" ;;
    esac
  done
  local args=(); for cap in "$@"; do args+=(--label-add "$cap=true"); done
  mgr node update "${args[@]}" "$node" >/dev/null
  say "$node: $*"
}

# Puts the image on every node (in parallel) and checks that each holds exactly this build.
distribute_image() {
  local tag="$1" id node pids=() failed=0
  id="$(docker image inspect -f '{{.Id}}' "$tag")"
  for node in $(mgr node ls --format '{{.Hostname}}'); do
    if [ "$(on_node "$node" image inspect -f '{{.Id}}' "$tag" 2>/dev/null)" = "$id" ]; then continue; fi
    on_node "$node" version >/dev/null  # dies with the fix when the node has no context
    say "loading $tag on $node"
    docker save "$tag" | on_node "$node" load -q >/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  for node in $(mgr node ls --format '{{.Hostname}}'); do
    [ "$(on_node "$node" image inspect -f '{{.Id}}' "$tag" 2>/dev/null)" = "$id" ] \
      || die "node $node does not hold image $tag as built here (load failed: $failed). Fix: check its engine (docker --context $node info) and deploy again"
  done
}

cmd_deploy() {
  require_swarm
  local tag stack_file stack salt missing
  stack="$(stack_name)"
  tag="$(image_tag)"; build_image "$tag"
  # the secrets' files live only while `docker stack deploy` reads them (global: the EXIT trap needs it)
  SECRETS_DIR="$(mktemp -d)"; chmod 700 "$SECRETS_DIR"; stack_file="$SECRETS_DIR/stack.json"
  trap 'rm -rf "$SECRETS_DIR"' EXIT
  salt="$(mgr info --format '{{.Swarm.Cluster.ID}}')"
  render "$tag" "${SWARM_VARIANT:-$(default_variant)}" "$SECRETS_DIR" "$salt" >"$stack_file"
  # every capability the stack asks for is carried by a node
  missing="$(stack_capabilities "$stack_file" | while read -r service cap; do
    node_labels | awk -v c="$cap" '$2 == c {found=1} END {exit !found}' || echo "$service needs a node labelled '$cap'"
  done)"
  [ -z "$missing" ] || die "no node matches: $(echo "$missing" | paste -sd ';' -). Fix: scripts/swarm.sh label NODE CAPABILITY for each"
  distribute_image "$tag"
  say "deploying stack $stack ($tag)"
  mgr stack deploy --resolve-image never --prune -c "$stack_file" "$stack" >&2
  # secrets of earlier deploys that no service uses any more (those in use refuse to go)
  mgr secret ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Name}}' \
    | grep -vxF -f <(python3 -c 'import json,sys; [print(s["name"]) for s in json.load(open(sys.argv[1])).get("secrets", {}).values()]' "$stack_file") \
    | xargs -r docker ${SWARM_MANAGER:+--context "$SWARM_MANAGER"} secret rm >/dev/null 2>&1 || true
  say "deployed; follow it with: scripts/swarm.sh status"
}

cmd_status() {
  require_swarm
  local stack; stack="$(stack_name)"
  mgr node ls --format '{{.Hostname}}	{{.Status}}	{{.Availability}}	{{.ManagerStatus}}'
  echo "labels:"; node_labels | sed 's/^/  /'
  mgr stack services "$stack"
  mgr stack ps "$stack" --filter desired-state=running --format '{{.Name}}	{{.Node}}	{{.CurrentState}}	{{.Error}}'
}

cmd_rm() {
  require_swarm
  local stack; stack="$(stack_name)"
  mgr stack rm "$stack" >&2
  say "removed $stack; its volumes stay on each node (docker volume rm ${stack}_output ${stack}_emulator-data)"
}

cmd_render() {
  local tag; tag="$(image_tag)"; build_image "$tag"
  render "$tag" "${1:-$(default_variant)}"
}

cmd_check() {
  local file; file="$(mktemp)"; trap 'rm -f "$file"' RETURN
  cmd_render "$@" >"$file"
  docker stack config -c "$file" >/dev/null || die "docker stack config refused the stack file (above)"
  say "the ${1:-$(default_variant)} stack file is valid for docker stack deploy"
}

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed. Fix: install Docker Engine (apt-get install docker.io)"
case "${1:-}" in
  init|label|deploy|status|rm|render|check) c="$1"; shift; "cmd_$c" "$@" ;;
  *) die "usage: scripts/swarm.sh init|label NODE CAP...|deploy|status|rm|render [VARIANT]|check [VARIANT]" ;;
esac
