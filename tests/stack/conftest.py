"""The stack under test: compose.yaml + tests/compose.emulator.yaml, one project per test module.

The image is built once per session (`docker compose build emulator`: one service, so it is built once;
every service runs that same image). Each module that asks for `stack` gets its own project, with a unique
name, the emulator published on a free 127.0.0.1 port, and is always taken down (`down -v`) at the end.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Dict, Iterator, Sequence

import pytest

from tests.processes import REPO_ROOT, free_port
from tests.stack.stack import COMPOSE_FILE, EMULATOR_OVERRIDE, Stack


def stack_env(api_port: int) -> Dict[str, str]:
    """Compose variables for a test stack: fast healthchecks and polling, the emulator on `api_port`.

    Containers run as the test runner's uid when it is not root, so that it can delete the outputs the
    runs write to data/ on the host; as root (CI) they keep the image's uid 5678.
    """
    env = {
        "EMULATOR_HOST_PORT": str(api_port),
        "DAGS_HEALTH_INTERVAL": "2s",
        "DAGS_AGENT_MAX_POLL_INTERVAL": "1",
        "DAGS_INIT_WAIT_TIMEOUT": "120",
        # 30 concurrent flow runs on 2 cores delay heartbeats: no zombie verdict for a busy run
        "EMULATOR_HEARTBEAT_TIMEOUT": "300",
    }
    if os.getuid() != 0:
        env.update(DAGS_UID=str(os.getuid()), DAGS_GID=str(os.getgid()))
    return env


@pytest.fixture(scope="session")
def built_image() -> str:
    """Builds the common image (cached layers make this seconds when nothing changed); returns its name."""
    probe = Stack("dagsbuild", [COMPOSE_FILE, EMULATOR_OVERRIDE], stack_env(free_port()))
    probe.run("build", "emulator", timeout=1800)
    return probe.env.get("DAGS_IMAGE", "dags-prefect-io:latest")


@contextlib.contextmanager
def running_stack(extra_files: Sequence[Path] = (), services: Sequence[str] = ()) -> Iterator[Stack]:
    """Brings up a stack (compose.yaml + the emulator override + `extra_files`) under a unique project
    name and takes it down with its volumes afterwards, whatever happens.

    Args:
        extra_files: more override files, applied last
        services: start only these (and what they depend on); default every service

    Yields:
        The running stack; its `output_dir` attribute is a folder under data/output/ (relative to the
        repo root, as the DAGs' parameters take it) that is this stack's own, removed at the end.
    """
    project = f"dagstest{uuid.uuid4().hex[:8]}"
    api_port = free_port()
    stk = Stack(project, [COMPOSE_FILE, EMULATOR_OVERRIDE, *extra_files], stack_env(api_port),
                api_port=api_port, output_dir=f"data/output/{project}")
    try:
        # --no-build: the session fixture built the image; a build per service would only repeat it
        stk.up("--no-build", *services, timeout=420)
        yield stk
    finally:
        stk.down()
        shutil.rmtree(REPO_ROOT / stk.output_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(built_image: str) -> Iterator[Stack]:
    """The whole stack with the emulator as the API: every service healthy, init completed."""
    with running_stack() as stk:
        yield stk


def host_path(relative: str) -> Path:
    """A path given to a DAG relative to the repo root (/app in the containers), on the host."""
    return REPO_ROOT / relative
