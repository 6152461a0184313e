"""Module-scoped fixtures: one emulator and one in-process prefect client per test module (2 cores)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from prefect import Client

from prefect_emulator.testing import Emulator
from tests.prefect_emulator.prefect_session import create_tenant_and_project, prefect_session

PROJECT = "emulator-tests"


@pytest.fixture(scope="module")
def module_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One in-memory emulator shared by the tests of a module; tests keep apart by unique labels/names."""
    with Emulator(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture(scope="module")
def module_client(module_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """prefect's Client in this process, pointed at `module_emulator`, with a tenant and project PROJECT."""
    with prefect_session(module_emulator.url, tmp_path_factory.mktemp("prefect-home")) as client:
        create_tenant_and_project(client, PROJECT)
        yield client


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the flow scripts of a module."""
    return tmp_path_factory.mktemp("flows")
