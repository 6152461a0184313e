"""Fixtures of the runtime tests: one emulator per module, the CLI and agents as real subprocesses."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from agents.testing import runtime_env
from prefect_emulator.testing import REPO_ROOT, Emulator

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DAGS = REPO_ROOT / "dags"


def repo_dag_names() -> List[str]:
    """Every DAG folder in the repository's dags/ (the parametrization of the per-DAG tests)."""
    return sorted(p.name for p in DAGS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def write_plain_dag(dags_folder: Path, name: str, labels: List[str], extra: str = "",
                    fixture: Path = FIXTURES / "plain_flow.py") -> Path:
    """Copies a flow fixture (the plain flow by default) into `dags_folder/<name>/<name>.py` with this name
    and labels (the fixture's FLOW_NAME and LABELS lines are rewritten)."""
    text = fixture.read_text()
    text = re.sub(r'^FLOW_NAME = .*$', f"FLOW_NAME = {name!r}", text, flags=re.M)
    text = re.sub(r'^LABELS = .*$', f"LABELS = {labels!r}", text, flags=re.M)
    folder = dags_folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name.replace("-", "_") + ".py")
    path.write_text(text + extra)
    return path


@pytest.fixture(scope="module")
def module_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One in-memory emulator per test module (2 cores: starting one per test is too slow)."""
    with Emulator(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture(scope="module")
def module_env(module_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Environment for the CLI and agents of a module, pointed at `module_emulator`, no env files."""
    return runtime_env(module_emulator.url, tmp_path_factory.mktemp("prefect-home"),
                       tmp_path_factory.mktemp("env-files"))


@pytest.fixture
def empty_env_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "env"
    folder.mkdir()
    return folder
