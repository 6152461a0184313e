"""The stack file for `docker stack deploy`, rendered from the resolved compose.yaml (+ swarm/overlay.yaml).

    docker compose -f compose.yaml -f swarm/overlay.yaml config --format json \\
      | python3 swarm/stack_file.py --dags dags.txt --secrets-dir DIR > stack.json

scripts/swarm.sh runs it; it only reads what Compose resolved (variables, .env, env files), so it sees what
`docker compose up` would run, and turns what `docker stack deploy` rejects or misreads into what it takes
(docker/cli's compose loader and convert packages, v20.10 and later):

- dropped: `profiles`, `develop`, `build` (the image is built and loaded on every node beforehand),
  `depends_on` (its long form is refused; the services wait for the API themselves, `init` is retried by
  its restart policy), `container_name`, nulls; bind mounts of the checkout (a node has no checkout: data/
  comes from the image), replaced by the per-node volume `output` at data/output;
- `restart` -> `deploy.restart_policy` (`"no"` would become restart-always);
- ports -> host mode (this kernel has no IPVS for the routing mesh), published on the API's node only;
  the `127.0.0.1` part cannot be kept: README "Beyond one machine" says what to firewall;
- every service: `endpoint_mode: dnsrr` (no virtual IP, for the same reason);
- agents (`python -m agents start --label L...` / `serve DAG`): one per node (`mode: global`) on the nodes
  labelled `L=true` for each label of what they run, named after their node (`hostname`);
- the variables listed in the overlay's `x-swarm-secrets` -> Docker secrets (never in `docker service
  inspect`), which a small `sh` entry point exports back into the environment of the process; a value that
  embeds a secret (a database URL) is rebuilt there from it.
"""
from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

# The label of the node that runs the API (and anything that publishes ports).
API_LABEL = "api"
# Where the image keeps data/ (inputs) and where runs write their outputs.
DATA_DIR = "/app/data"
OUTPUT_VOLUME = "output"
# Names the variables rebuilt from secrets by the entry point (see ENTRYPOINT).
EXPAND_VAR = "DAGS_SECRET_EXPAND"
# Exports every mounted secret (/run/secrets/<VARIABLE>) as that variable, then rebuilds the variables named
# in DAGS_SECRET_EXPAND, whose values hold ${SECRET} references, and runs the command. `$$` is the stack
# file's escape for `$`.
ENTRYPOINT = [
    "sh", "-c",
    'for f in /run/secrets/*; do [ -f "$$f" ] && export "$${f##*/}=$$(cat "$$f")"; done; '
    'for v in $$' + EXPAND_VAR + '; do eval "export $$v=\\"$$(printenv "$$v")\\""; done; '
    'exec "$$@"',
    "secrets-env",
]
# Keys `docker stack deploy` refuses or that mean nothing on a swarm.
DROPPED_KEYS = ("profiles", "develop", "build", "depends_on", "container_name", "restart", "pull_policy")
RESTART_CONDITIONS = {"no": "none", "always": "any", "unless-stopped": "any", "on-failure": "on-failure"}


class StackError(Exception):
    """A problem with the compose project that the user fixes; the message names the fix."""


def parse_dag_table(text: str) -> Dict[str, List[str]]:
    """DAG name -> labels, from the table `python -m agents list` prints (columns as its dashes show)."""
    lines = [line for line in text.splitlines() if line.strip()]
    dashes = next((i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"}), None)
    if dashes is None or dashes == 0:
        raise StackError("`python -m agents list` printed no DAG table. Fix: run it in the image and "
                         "read its error (a DAG that does not load?)")
    spans, start = [], None
    for i, char in enumerate(lines[dashes] + " "):
        if char == "-" and start is None:
            start = i
        elif char != "-" and start is not None:
            spans.append((start, i))
            start = None
    headers = [lines[dashes - 1][a:b].strip().lower() for a, b in spans]
    if "name" not in headers or "labels" not in headers:
        raise StackError(f"the DAG table has no NAME or LABELS column (headers: {headers})")
    dags = {}
    for line in lines[dashes + 1:]:
        starts = [a for a, _ in spans] + [len(line)]
        row = dict(zip(headers, (line[a:z].strip() for a, z in zip(starts, starts[1:]))))
        labels = row["labels"]
        dags[row["name"]] = [] if labels in ("", "-") else labels.split(",")
    return dags


def agent_labels(command: Sequence[str], dags: Dict[str, List[str]]) -> Optional[List[str]]:
    """The labels an agent service's command serves, or None when the command runs no agent."""
    args = list(command or [])
    if args[:3] != ["python", "-m", "agents"] or len(args) < 4:
        return None
    if args[3] == "start":
        labels = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--label", "-l")]
        labels += [arg.split("=", 1)[1] for arg in args if arg.startswith("--label=")]
        return sorted(set(labels))
    if args[3] == "serve" and len(args) > 4:
        dag = args[4]
        if dag not in dags:
            raise StackError(f"a service serves DAG {dag!r}, which the image does not hold (its DAGs: "
                             f"{', '.join(sorted(dags))}). Fix: the DAG's folder under dags/, then redeploy "
                             "(the image is rebuilt from the checkout)")
        return sorted(dags[dag])
    return None


def label_constraints(labels: Iterable[str]) -> List[str]:
    """Placement constraints asking for a node that carries each of the labels (as `LABEL=true`)."""
    return [f"node.labels.{label} == true" for label in labels]


def secret_name(stack: str, variable: str, value: str, salt: str) -> str:
    """The Docker secret's name: a new one when the value changes (swarm secrets cannot be updated). The
    suffix is a keyed hash (the key is the swarm's cluster id), so it tells nothing of a short password."""
    digest = hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:12]
    return f"{stack}_{variable}_{digest}"


def _ports(ports: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Published ports in host mode: on the node that runs the task, all of its addresses."""
    out = []
    for port in ports:
        if port.get("published") in (None, ""):
            continue
        out.append({"target": int(port["target"]), "published": int(port["published"]),
                    "protocol": port.get("protocol", "tcp"), "mode": "host"})
    return out


def _volumes(volumes: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], bool]:
    """Named volumes kept; bind mounts dropped, data/'s replaced by the output volume. -> (volumes, uses output)"""
    out, output = [], False
    for volume in volumes:
        if volume.get("type") == "bind":
            if volume.get("target") == DATA_DIR:
                out.append({"type": "volume", "source": OUTPUT_VOLUME, "target": DATA_DIR + "/output"})
                output = True
            continue
        out.append({k: v for k, v in volume.items() if v is not None})
    return out, output


def _require_one_image(services: Dict[str, Any]) -> None:
    """Every service built from the project's Dockerfile must run the one image that is put on every node."""
    built = {name: service.get("image") for name, service in services.items() if service.get("build")}
    images = collections.Counter(built.values()).most_common()
    if len(images) > 1:
        stack_image = images[0][0]
        odd = sorted(name for name, image in built.items() if image != stack_image)
        raise StackError(f"services {', '.join(odd)} run image {built[odd[0]]}, not the stack's image {stack_image}, "
                         "which is the only one put on the nodes. Fix: render with DAGS_IMAGE, EMULATOR_IMAGE and "
                         "DASHBOARD_IMAGE set to the same tag (scripts/swarm.sh deploy does)")


def render(config: Dict[str, Any], dags: Dict[str, List[str]], secrets_dir: Optional[Path] = None,
           salt: str = "") -> Dict[str, Any]:
    """The stack file (a dict, written as JSON) for the resolved compose project `config`.

    Args:
        config: `docker compose ... config --format json` of compose.yaml merged with swarm/overlay.yaml
        dags: DAG name -> labels (parse_dag_table of `python -m agents list` run in the image)
        secrets_dir: where the secrets' files are written (mode 0600; the caller removes them after the
            deploy); None renders references only (a check)
        salt: key of the secrets' name suffix (scripts/swarm.sh passes the swarm's cluster id)
    Raises:
        StackError: a DAG service for a DAG the image lacks, a published password left empty, or services built
            from the Dockerfile under different images (only one image is put on the nodes)
    """
    _require_one_image(config["services"])
    stack = config.get("name") or "dags"
    secret_vars = list(config.get("x-swarm-secrets") or [])
    values = _secret_values(config["services"], secret_vars)
    services, secrets, uses_output = {}, {}, False
    for name, service in sorted(config["services"].items()):
        out = {k: copy.deepcopy(v) for k, v in service.items()
               if k not in DROPPED_KEYS and v is not None and not k.startswith("x-")}
        deploy = out.setdefault("deploy", {})
        if not deploy.get("resources"):
            deploy.pop("resources", None)
        deploy.setdefault("endpoint_mode", "dnsrr")
        restart = RESTART_CONDITIONS.get(str(service.get("restart", "no")).split(":")[0], "any")
        deploy.setdefault("restart_policy", {"condition": restart})
        placement = deploy.setdefault("placement", {})
        constraints = placement.setdefault("constraints", [])
        labels = agent_labels(service.get("command") or [], dags)
        if labels is not None:
            # one agent per node that carries its labels, named after that node
            deploy["mode"] = "global"
            out["hostname"] = "{{.Node.Hostname}}"
            constraints.extend(c for c in label_constraints(labels) if c not in constraints)
        if service.get("ports"):
            out["ports"] = _ports(service["ports"])
            api = label_constraints([API_LABEL])[0]
            if api not in constraints:
                constraints.append(api)
            _require_password(name, service)
        if not constraints:
            del deploy["placement"]
        if "volumes" in service:
            out["volumes"], output = _volumes(service["volumes"])
            uses_output = uses_output or output
        used = _take_secrets(out, values, (config.get("x-swarm-entrypoints") or {}).get(name))
        for variable in used:
            secret = {"name": secret_name(stack, variable, values[variable], salt)}
            if secrets_dir is not None:
                path = secrets_dir / variable
                path.write_text(values[variable])
                path.chmod(0o600)
                secret["file"] = str(path)
            else:
                secret["external"] = True
            secrets[variable] = secret
        services[name] = out
    stack_file: Dict[str, Any] = {"version": "3.9", "services": services}
    stack_file["networks"] = {name: {k: v for k, v in net.items() if k not in ("name", "ipam")}
                              for name, net in (config.get("networks") or {}).items()}
    volumes = {name: {k: v for k, v in vol.items() if k != "name"}
               for name, vol in (config.get("volumes") or {}).items()}
    if uses_output:
        volumes[OUTPUT_VOLUME] = {}
    if volumes:
        stack_file["volumes"] = volumes
    if secrets:
        stack_file["secrets"] = secrets
    return stack_file


def _secret_values(services: Dict[str, Any], secret_vars: List[str]) -> Dict[str, str]:
    """Each secret variable's value, as the services' environments have it (one value per variable)."""
    values: Dict[str, str] = {}
    for name, service in sorted(services.items()):
        for variable, value in (service.get("environment") or {}).items():
            if variable in secret_vars and value:
                if values.setdefault(variable, value) != value:
                    raise StackError(f"{variable} has two values in the services ({name} is one). Fix: "
                                     "set it once, in env/local.env")
    return values


def _take_secrets(service: Dict[str, Any], values: Dict[str, str], image_entrypoint: Optional[List[str]] = None
                  ) -> List[str]:
    """Moves the secret values out of a rendered service's environment; -> the secrets it now mounts.

    image_entrypoint: the image's own ENTRYPOINT (overlay's x-swarm-entrypoints), run by the wrapper.
    """
    environment = service.get("environment") or {}
    used, expand = [], []
    for variable, value in list(environment.items()):
        if variable in values and value:
            del environment[variable]
            used.append(variable)
            continue
        if not isinstance(value, str):
            continue
        for secret, secret_value in values.items():
            if len(secret_value) >= 4 and secret_value in value:
                # a value embedding a secret (a database URL): rebuilt from it in the container
                value = value.replace(secret_value, "$${" + secret + "}")
                used.append(secret)
                if variable not in expand:
                    expand.append(variable)
        environment[variable] = value
    if not used:
        return []
    used = sorted(set(used))
    if expand:
        environment[EXPAND_VAR] = " ".join(expand)
    service["secrets"] = [dict(_secret_owner(service.get("user")), source=variable, target=variable)
                          for variable in used]
    if service.get("entrypoint"):
        raise StackError("a service with its own entrypoint uses a secret; the stack file cannot wrap it. "
                         "Fix: give it a command instead")
    # the wrapper replaces the image's own entry point: the overlay names it where there is one
    service["entrypoint"] = ENTRYPOINT + list(image_entrypoint or [])
    return used


def _secret_owner(user: Optional[str]) -> Dict[str, Any]:
    """Owner and mode of a secret's file: the service's numeric uid:gid only (0400), else readable (0444)."""
    uid, _, gid = str(user or "").partition(":")
    if uid.isdigit():
        return {"uid": uid, "gid": gid if gid.isdigit() else uid, "mode": 0o400}
    return {"mode": 0o444}


def _require_password(name: str, service: Dict[str, Any]) -> None:
    """A published page that takes a password (DAGS_UI_PASSWORD) must have one: it is reachable from beyond."""
    environment = service.get("environment") or {}
    if "DAGS_UI_PASSWORD" in environment and not environment["DAGS_UI_PASSWORD"]:
        raise StackError(f"service {name} is published on the API's node, and DAGS_UI_PASSWORD is empty. "
                         "Fix: set DAGS_UI_PASSWORD in env/local.env (it becomes a Docker secret)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=Path, required=True, help="output of `python -m agents list`")
    parser.add_argument("--secrets-dir", type=Path, help="folder for the secrets' files (else: external)")
    parser.add_argument("--salt", default="", help="key of the secrets' name suffix (the cluster id)")
    args = parser.parse_args(argv)
    try:
        stack = render(json.load(sys.stdin), parse_dag_table(args.dags.read_text()), args.secrets_dir,
                       args.salt)
    except StackError as exc:
        print(f"swarm: ERROR: {exc}", file=sys.stderr)
        return 2
    json.dump(stack, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
