"""Goal 5's stack figures (where Docker answers): image size, build without cache, rebuild after a DAG edit,
`up -d`, every DAG registered, every agent healthy; and goal 1 in the stack: trigger to Running of the
tutorial DAG with the stack's default settings, for runs created as the UI creates them and for runs
created by `python -m agents trigger` inside a container (which pokes the agents), samples alternating
after random idle gaps.

It works on a copy of the tracked files (plus wheels/) in a temporary folder, under its own compose project
and image name, all removed at the end. The rebuild edit appends a random token to a randomly chosen DAG file,
so that no run of the benchmark finds that layer in the cache.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import requests

from . import dashboard
from .orchestra import parse_time
from .report import REPO_ROOT, Row, p50_p90, progress
from prefect_emulator.testing import docker_available, free_port

# its own image name per run, removed at the end: never another image of the same name
IMAGE = f"dags-prefect-io:benchmark-{os.getpid()}"


def stack_command(project: str) -> List[str]:
    """How the offline stack is started, as the README says: compose.yaml, whose profile the variables of
    `stack_env` choose (what scripts/configure.sh writes into .env). The one place to change when the
    stack's files change."""
    return ["docker", "compose", "-p", project]


def stack_env(port: int, project: str) -> Dict[str, str]:
    """The variables the stack is started with: the offline profile and Python, our image name for both the
    services and the emulator, the API's host port, fast healthchecks (for the cold start only: `measure`),
    the services' uid."""
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() != 0 else (5678, 5678)
    return dict(os.environ, COMPOSE_PROFILES="emulator", PYTHON_VERSION="3.11", DAGS_IMAGE=IMAGE,
                EMULATOR_IMAGE=IMAGE, DASHBOARD_IMAGE=IMAGE, APOLLO_HOST_PORT=str(port),
                UI_HOST_PORT=str(free_port()), DAGS_HEALTH_INTERVAL="1s",
                COMPOSE_PROJECT_NAME=project, DAGS_UID=str(uid), DAGS_GID=str(gid))


def copy_checkout(work: Path) -> None:
    """Copies what git tracks (with uncommitted edits) and wheels/ into `work`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=str(REPO_ROOT), capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO_ROOT / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    if (REPO_ROOT / "wheels").is_dir():
        shutil.copytree(REPO_ROOT / "wheels", work / "wheels", dirs_exist_ok=True)


def timed_run(args: List[str], cwd: Path, env: Dict[str, str], log: str) -> float:
    """Runs a command to its end, output to `log` in cwd; its seconds, raising with the log's tail on failure."""
    began = time.monotonic()
    with open(cwd / log, "wb") as out:
        code = subprocess.run(args, cwd=str(cwd), env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{(cwd / log).read_text(errors='replace')[-3000:]}")
    return time.monotonic() - began


def registered_flows(port: int) -> int:
    """How many distinct flow names the stack's API knows (0 while it does not answer)."""
    try:
        answer = requests.post(f"http://127.0.0.1:{port}/", json={"query": "{ flow { name } }"}, timeout=5).json()
        return len({f["name"] for f in answer["data"]["flow"]})
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return 0


def agent_health(project: str) -> List[str]:
    """The status of each DAG and agent container of the project (e.g. 'Up 3 seconds (healthy)')."""
    listed = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={project}",
                             "--format", "{{.Names}}\t{{.Status}}"], capture_output=True, text=True).stdout
    return [line.split("\t", 1)[1] for line in listed.splitlines()
            if "\t" in line and ("-dag-" in line or "-agent-" in line)]


# the DAG whose runs goal 1's stack figures time, and the service hosting it
LATENCY_DAG = "flow-test-hello"


def stack_latency(port: int, compose: List[str], work: Path, env: Dict[str, str],
                  samples: int) -> Dict[str, List[float]]:
    """Trigger to Running (the API's own clock: start_time - created) of LATENCY_DAG's runs, `samples` each
    created as the UI does (create_flow_run) and by `agents trigger` in the DAG's container, alternating in
    a random order, each after an idle gap past the agents' poll backoff."""
    def query(text: str, variables: Optional[dict] = None) -> dict:
        return requests.post(f"http://127.0.0.1:{port}/", json={"query": text, "variables": variables or {}},
                             timeout=30).json()["data"]

    [flow] = query('{ flow(where: {name: {_eq: "%s"}, archived: {_eq: false}}) { id } }' % LATENCY_DAG)["flow"]
    known = {r["id"] for r in query("{ flow_run { id } }")["flow_run"]}

    def ui_created() -> str:
        created = query('mutation { create_flow_run(input: {flow_id: "%s"}) { id } }' % flow["id"])
        return created["create_flow_run"]["id"]

    def cli_triggered() -> str:
        timed_run(compose + ["exec", "-T", f"dag-{LATENCY_DAG}", "python", "-m", "agents", "trigger", LATENCY_DAG],
                  work, env, "trigger.log")
        [run_id] = {r["id"] for r in query("{ flow_run { id } }")["flow_run"]} - known
        return run_id

    latencies: Dict[str, List[float]] = {"ui": [], "trigger": []}
    rng = random.Random()
    for i in range(samples):
        for kind in rng.sample(sorted(latencies), 2):
            time.sleep(rng.uniform(3.0, 8.0))  # past the backoff's ramp (1.1 s cap), then a random phase
            run_id = ui_created() if kind == "ui" else cli_triggered()
            known.add(run_id)
            deadline = time.monotonic() + 120
            while True:
                run = query('{ flow_run_by_pk(id: "%s") { created start_time } }' % run_id)["flow_run_by_pk"]
                if run["start_time"] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if not run["start_time"]:
                raise RuntimeError(f"the stack did not start run {run_id} within 120 s")
            latencies[kind].append((parse_time(run["start_time"]) - parse_time(run["created"])).total_seconds())
        progress(f"stack: latency sample {i + 1}/{samples}: ui {latencies['ui'][-1]:.2f} s, "
                 f"trigger {latencies['trigger'][-1]:.2f} s")
    return latencies


def measure(quick: bool) -> List[Row]:
    """The rows of goal 5's stack figures; one row saying why when Docker does not answer."""
    if not docker_available():
        return [Row("5", "stack figures", "skipped: no Docker engine with Compose v2")]
    project = f"dagsbench{os.getpid()}"
    port = free_port()
    env = stack_env(port, project)
    compose = stack_command(project)
    first_id: Optional[str] = None
    with tempfile.TemporaryDirectory(prefix="dags-bench-") as tmp:
        work = Path(tmp)
        copy_checkout(work)
        try:
            progress("stack: build without cache")
            build = timed_run(compose + ["build", "--no-cache", "emulator"], work, env, "build.log")
            inspect = json.loads(subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True,
                                                text=True, check=True).stdout)[0]
            first_id, size = inspect["Id"], inspect["Size"]
            dag_files = sorted((work / "dags").glob("*/*.py"))
            edited = random.choice(dag_files)
            with open(edited, "a") as fh:
                fh.write(f"# benchmark edit {uuid.uuid4().hex}\n")
            progress(f"stack: rebuild after editing {edited.relative_to(work)}")
            rebuild = timed_run(compose + ["build", "emulator"], work, env, "rebuild.log")
            progress("stack: up -d")
            began = time.monotonic()
            up = timed_run(compose + ["up", "-d", "--no-build"], work, env, "up.log")
            dags = len([p for p in (work / "dags").iterdir() if p.is_dir()])
            registered = healthy = None
            while healthy is None and time.monotonic() - began < 600:
                if registered is None and registered_flows(port) >= dags:
                    registered = time.monotonic() - began
                statuses = agent_health(project)
                if registered is not None and statuses and all("(healthy)" in s for s in statuses):
                    healthy = time.monotonic() - began
                time.sleep(0.5)
            # The latency figures come from the stack as users run it: the 1 s healthchecks that made the
            # cold start's figures quick to read start a Python in every container every second, which on
            # 2 cores delays each hop of a run's start (0.39 s against 1.36 s p50 for Quick Run, measured).
            progress("stack: up -d again with the default healthcheck interval")
            env = {key: value for key, value in env.items() if key != "DAGS_HEALTH_INTERVAL"}
            timed_run(compose + ["up", "-d", "--no-build", "--wait"], work, env, "up-default.log")
            progress("stack: trigger to Running")
            latencies = stack_latency(port, compose, work, env, 3 if quick else 10)
            progress("stack: dashboard Quick Run to Running")
            quick_run = dashboard.quick_run_rows(f"http://127.0.0.1:{env['UI_HOST_PORT']}",
                                                f"http://127.0.0.1:{port}/", LATENCY_DAG, 3 if quick else 10)
        finally:
            subprocess.run(compose + ["down", "-v", "--remove-orphans", "--timeout", "5"], cwd=str(work), env=env,
                           capture_output=True)
            subprocess.run(["docker", "image", "rm", IMAGE] + ([first_id] if first_id else []),
                           capture_output=True)

    def seconds(value: Optional[float]) -> str:
        return f"{value:.1f} s" if value is not None else "not within 600 s"

    return [
        Row("5", "stack: image size", f"{size / 1e6:.0f} MB", target="(tutorial's image: 270 MB)"),
        Row("5", "stack: build without cache", seconds(build)),
        Row("5", f"stack: rebuild after a real DAG edit ({edited.parent.name})", seconds(rebuild)),
        Row("5", "stack: docker compose up -d returned", seconds(up)),
        Row("5", f"stack: all {dags} DAGs registered (from up -d)", seconds(registered)),
        Row("5", "stack: all agents healthy (from up -d)", seconds(healthy)),
        Row("1", "stack: trigger to Running, run created as the UI does, p50 / p90", p50_p90(latencies["ui"]),
            target="p50 <= 1.0 s"),
        Row("1", "stack: trigger to Running, `agents trigger` in a container (pokes), p50 / p90",
            p50_p90(latencies["trigger"]), target="p50 <= 1.0 s"),
    ] + quick_run
