"""The stack under test: compose.yaml with the emulator profile (the offline stack), one project per module.

The image is built once per session (`docker compose build emulator`: one service, so it is built once;
every service runs that same image). Each module that asks for `stack` gets its own project, with a unique
name, the emulator published on a free 127.0.0.1 port and its own data folder (a copy of data/'s inputs in
a temporary folder, so no test writes into the checkout's data/output), and is always taken down
(`down -v`) at the end.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import pytest

from prefect_emulator.testing import REPO_ROOT, free_port
from tests.runtime.conftest import write_plain_dag
from tests.stack.stack import COMPOSE_FILE, Stack

# One image per checkout for every test stack (the projects differ, the image must not be rebuilt for
# each): DAGS_IMAGE when set, else a name made from this checkout's path.
TEST_IMAGE = os.environ.get("DAGS_IMAGE") or (
    f"dagstest-{hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:8]}-dags:latest")


def services_uid() -> Dict[str, str]:
    """DAGS_UID/DAGS_GID as scripts/configure.sh sets them: the test runner's, or 5678 for root (CI)."""
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() != 0 else (5678, 5678)
    return {"DAGS_UID": str(uid), "DAGS_GID": str(gid)}


def stack_env(api_port: int, data_dir: Optional[Path] = None) -> Dict[str, str]:
    """Compose variables for a test stack: the offline setup, fast healthchecks and polling, the emulator
    on `api_port`, the data folder `data_dir` (default the checkout's data/, for commands that run none)."""
    env = {
        "COMPOSE_PROFILES": "emulator",
        "PYTHON_VERSION": "3.11",
        "DAGS_IMAGE": TEST_IMAGE,
        "EMULATOR_IMAGE": TEST_IMAGE,
        "DASHBOARD_IMAGE": TEST_IMAGE,
        "APOLLO_HOST_PORT": str(api_port),
        # the dashboard's port: a free one, so that test stacks never take the user's 8080 (nor each other's)
        "UI_HOST_PORT": str(free_port()),
        "DAGS_HEALTH_INTERVAL": "2s",
        "DAGS_AGENT_MAX_POLL_INTERVAL": "1",
        "DAGS_INIT_WAIT_TIMEOUT": "120",
        # 30 concurrent flow runs on 2 cores delay heartbeats: no zombie verdict for a busy run
        "EMULATOR_HEARTBEAT_TIMEOUT": "300",
        **services_uid(),
    }
    if data_dir is not None:
        env["DAGS_DATA_DIR"] = str(data_dir)
    return env


def copy_data_inputs(target: Path) -> Path:
    """A data folder for a test stack: data/'s inputs (not its outputs) copied into `target`/data."""
    data = target / "data"
    shutil.copytree(REPO_ROOT / "data", data, ignore=shutil.ignore_patterns("output"))
    return data


def agent_etl_override(folder: Path, dag: str, fixture: Path, environment: Dict[str, str]) -> Path:
    """A compose override that mounts the flow `fixture` into the agent-etl replicas as the DAG `dag` under
    the label `etl` (tests/runtime's write_plain_dag), with `environment` added to theirs; returns its path."""
    folder_of_dag = write_plain_dag(folder / "dags", dag, ["etl"], fixture=fixture).parent
    for path in (folder, folder / "dags", folder_of_dag, *folder_of_dag.iterdir()):
        path.chmod(0o755)  # the services' uid (5678 under root) reads it
    override = folder / f"compose.{dag}.yaml"
    override.write_text("services:\n  agent-etl:\n"
                        f"    volumes: ['{folder_of_dag}:/app/dags/{dag}:ro']\n"
                        f"    environment: {json.dumps(environment)}\n")
    return override


@pytest.fixture(scope="session")
def built_image() -> str:
    """Builds the common image (cached layers make this seconds when nothing changed); returns its name."""
    probe = Stack("dagsbuild", [COMPOSE_FILE], stack_env(free_port()))
    probe.run("build", "emulator", timeout=1800)
    return TEST_IMAGE


@contextlib.contextmanager
def running_stack(extra_files: Sequence[Path] = (), services: Sequence[str] = (),
                  extra_env: Optional[Dict[str, str]] = None) -> Iterator[Stack]:
    """Brings up a stack (compose.yaml with the emulator profile, then `extra_files`) under a unique project
    name and a temporary data folder, and takes it down with its volumes afterwards, whatever happens.

    Args:
        extra_files: override files, applied last
        services: start only these (and what they depend on); default every service
        extra_env: more compose variables (beating stack_env's), e.g. the emulator's timings

    Yields:
        The running stack; its `output_dir` (data/output/<project>, relative to /app as the DAGs'
        parameters take it) is under its own data folder; `stack.host_path` maps it to the host.
    """
    project = f"dagstest{uuid.uuid4().hex[:8]}"
    api_port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    data_dir = copy_data_inputs(workdir)
    stk = Stack(project, [COMPOSE_FILE, *extra_files], {**stack_env(api_port, data_dir), **(extra_env or {})},
                api_port=api_port, output_dir=f"data/output/{project}", data_dir=data_dir)
    try:
        # --no-build: the session fixture built the image; a build per service would only repeat it
        stk.up("--no-build", *services, timeout=420)
        yield stk
    finally:
        stk.down()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(built_image: str) -> Iterator[Stack]:
    """The whole stack with the emulator as the API: every service healthy, init completed."""
    with running_stack() as stk:
        yield stk
