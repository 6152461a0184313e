"""A compose project under test: `docker compose` with the project's files, the API it publishes, its containers.

Every command of one stack runs with the same project name and variables: compose recreates a container
whose configuration changed, so a command run with other variables would restart the stack. The variables
are the test's own: `--env-file` replaces the checkout's .env (the developer's settings), so that nothing
of it reaches a test stack.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import requests

from prefect_emulator.testing import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
# Flow run states after which nothing more happens.
FINAL_STATES = {"Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed", "Skipped"}


class StackError(RuntimeError):
    """A compose command failed; the message holds its output and the stack's recent logs."""


class Stack:
    """One compose project: `docker compose -p <project> -f ... <command>` with fixed variables.

    Args:
        project: the compose project name (unique per test module)
        files: compose files, the first one's folder is the project folder
        env: variables for compose's substitution (added to a copy of os.environ)
        api_port: the host port where the stack publishes its API (the emulator), on 127.0.0.1
        output_dir: a folder for the runs' outputs, relative to /app in the containers (under data/)
        data_dir: the host folder mounted at /app/data (DAGS_DATA_DIR), where outputs land
    """

    def __init__(self, project: str, files: Sequence[Path], env: Dict[str, str],
                 api_port: Optional[int] = None, output_dir: str = "",
                 data_dir: Optional[Path] = None) -> None:
        self.project = project
        self.output_dir = output_dir
        self.data_dir = data_dir
        self.files = list(files)
        self.api_port = api_port
        # variables of the test process that compose or the stack read must not leak into a test stack
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT", "COMPOSE_", "DAGS_"))}
        self.env.update(env)
        # `up` reconciles every service to its scale: remember the scales asked for so far
        self.scales: Dict[str, int] = {}

    # --- compose commands --------------------------------------------------------------------------
    def args(self, *command: str) -> List[str]:
        """The full `docker compose` command line for `command`."""
        args = ["docker", "compose", "-p", self.project, "--env-file", os.devnull]
        for file in self.files:
            args += ["-f", str(file)]
        return args + list(command)

    def run(self, *command: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """Runs `docker compose <command>` and returns it (stdout and stderr as text).

        Raises:
            StackError: when `check` and the command exits non-zero or times out
        """
        try:
            proc = subprocess.run(self.args(*command), cwd=REPO_ROOT, env=self.env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"docker compose {' '.join(command)} timed out after {timeout}s\n"
                             f"{exc.stdout or ''}{exc.stderr or ''}\n{self.recent_logs()}") from None
        if check and proc.returncode != 0:
            raise StackError(f"docker compose {' '.join(command)} exited {proc.returncode}\n"
                             f"{proc.stdout}{proc.stderr}\n{self.recent_logs()}")
        return proc

    def up(self, *extra: str, scales: Optional[Dict[str, int]] = None, timeout: float = 600) -> None:
        """`up -d --wait`: starts (or reconciles) the stack and waits until every service is healthy
        or, for one-shots, completed.

        Args:
            extra: more `up` arguments
            scales: service -> replicas; remembered for later `up` calls
        """
        self.scales.update(scales or {})
        scale_args: List[str] = []
        for service, count in sorted(self.scales.items()):
            scale_args += ["--scale", f"{service}={count}"]
        self.run("up", "-d", "--wait", "--wait-timeout", str(int(timeout)), *scale_args, *extra,
                 timeout=timeout + 60)

    def down(self) -> subprocess.CompletedProcess:
        """`down -v --remove-orphans`: removes containers, networks and volumes of the project."""
        return self.run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=300, check=False)

    def exec(self, service: str, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`exec -T service command` in the first container of `service`; never raises on exit code."""
        return self.run("exec", "-T", service, *command, timeout=timeout, check=False)

    def recent_logs(self, tail: int = 40) -> str:
        """The last lines of every service's logs, for failure messages."""
        try:
            proc = subprocess.run(self.args("logs", "--no-color", "--tail", str(tail)), cwd=REPO_ROOT,
                                  env=self.env, capture_output=True, text=True, timeout=60)
            return proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"

    def logs(self, service: str, since: Optional[str] = None) -> str:
        """The logs of `service` (all replicas), optionally only since a docker timestamp."""
        args = ["logs", "--no-color", "--no-log-prefix"]
        if since:
            args += ["--since", since]
        return self.run(*args, service, timeout=120).stdout

    def host_path(self, relative: str) -> Path:
        """Where a path given to a DAG relative to /app (e.g. data/output/x) is on the host."""
        if self.data_dir is None or not relative.startswith("data/"):
            raise StackError(f"{relative!r} is not under this stack's data folder")
        return self.data_dir / relative[len("data/"):]

    # --- containers --------------------------------------------------------------------------------
    def containers(self, all_states: bool = False) -> List[Dict[str, str]]:
        """The project's containers, from the engine (not from compose's files): id, hostname, service,
        state, started (when it last started, RFC 3339 UTC).

        Args:
            all_states: include stopped containers
        """
        ps = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.project}"]
        if all_states:
            ps.insert(2, "-a")
        ids = subprocess.run(ps, capture_output=True, text=True, check=True, timeout=60).stdout.split()
        if not ids:
            return []
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True,
                             timeout=60).stdout
        return [{"id": c["Id"], "hostname": c["Config"]["Hostname"],
                 "service": c["Config"]["Labels"].get("com.docker.compose.service", ""),
                 "name": c["Name"].lstrip("/"), "state": c["State"]["Status"],
                 "started": c["State"]["StartedAt"]}
                for c in json.loads(out)]

    def service_of_hostname(self) -> Dict[str, str]:
        """Container hostname -> compose service, for the running containers."""
        return {c["hostname"]: c["service"] for c in self.containers()}

    # --- the API -----------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        if self.api_port is None:
            raise StackError("this stack publishes no API port")
        return f"http://127.0.0.1:{self.api_port}"

    def graphql(self, query: str, variables: Optional[dict] = None) -> dict:
        """Posts a GraphQL request to the stack's API and returns `data`; raises on GraphQL errors."""
        resp = requests.post(self.api_url, json={"query": query, "variables": variables or {}}, timeout=30)
        body = resp.json()
        if body.get("errors"):
            raise StackError(f"GraphQL errors for {query!r}: {body['errors']}")
        return body["data"]

    def flows(self) -> List[dict]:
        """Every registered flow version: id, name, version, labels, project, archived."""
        data = self.graphql("{ flow { id name version archived run_config project { name } "
                            "flow_group { labels } } }")
        return data["flow"]

    def latest_flow_id(self, name: str) -> str:
        """The id of the newest unarchived version of the flow called `name`."""
        versions = [f for f in self.flows() if f["name"] == name and not f["archived"]]
        if not versions:
            raise StackError(f"flow {name!r} is not registered")
        return max(versions, key=lambda f: f["version"])["id"]

    def create_run(self, flow_id: str, parameters: Optional[dict] = None) -> str:
        """Creates a flow run the way prefect's Client does (`create_flow_run` mutation); returns its id."""
        run_input: dict = {"flow_id": flow_id}
        if parameters:
            run_input["parameters"] = parameters
        data = self.graphql("mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }",
                            {"input": run_input})
        return data["create_flow_run"]["id"]

    def runs(self, ids: Iterable[str]) -> List[dict]:
        """Flow runs with their state, labels, agent, state history and log messages."""
        data = self.graphql(
            "query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) { id state labels "
            "flow { name } agent { id name labels } states { state } logs { message } } }",
            {"ids": list(ids)})
        return data["flow_run"]

    def wait_for_runs(self, ids: Sequence[str], timeout: float = 600) -> List[dict]:
        """Polls until every run is in a final state; returns them. Raises StackError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(ids)
            pending = [r for r in runs if r["state"] not in FINAL_STATES]
            if len(runs) == len(ids) and not pending:
                return runs
            if time.monotonic() > deadline:
                states = {r["id"]: r["state"] for r in runs}
                raise StackError(f"runs not finished after {timeout}s: {states}\n{self.recent_logs()}")
            time.sleep(1)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`docker ARGS` (text output), raising when it fails."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True)
