"""Fixtures shared by every test: a running emulator, and an environment pointing prefect at it."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator

import pytest

from prefect_emulator.testing import Emulator, prefect_env


NO_DOCKER = ("no Docker engine with Compose v2 answers: run scripts/prepare-offline.sh and start the "
             "Docker daemon")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Docker tests skip without a Docker engine, except in CI, where a missing engine is a failure."""
    if "docker" not in item.keywords or docker_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true and " + NO_DOCKER, pytrace=False)
    pytest.skip(NO_DOCKER)


@functools.lru_cache(maxsize=None)
def docker_available() -> bool:
    """True when `docker compose version` (Compose v2) and the engine both answer (asked once a session)."""
    if shutil.which("docker") is None:
        return False
    try:
        for args in (["docker", "info"], ["docker", "compose", "version"]):
            if subprocess.run(args, capture_output=True, timeout=30).returncode != 0:
                return False
    except (OSError, subprocess.TimeoutExpired):
        return False
    return True


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """A fresh in-memory emulator on a free port, stopped after the test."""
    with Emulator(tmp_path) as emu:
        yield emu


@pytest.fixture
def penv(emulator: Emulator, tmp_path: Path) -> Dict[str, str]:
    """Environment for prefect subprocesses (CLI, agents) pointed at the `emulator` fixture."""
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    return prefect_env(emulator.url, home)
