"""A DAG registered from one checkout runs on an agent of another checkout at another path.

What the host and the containers of the stack do (a host clone and the image's /app), without Docker: two
copies of the repository at different paths, the agent started from a third folder.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Dict

import pytest

from agents.testing import run_cli, start_agent
from prefect_emulator.testing import REPO_ROOT, Emulator
from tests.runtime.conftest import write_plain_dag

pytestmark = pytest.mark.slow

HELLO_SCRIPT = "dags/flow-test-hello/test-hello.py"


def checkout_copy(target: Path) -> Path:
    """Copies what an agent needs of the repository (the runtime and the DAGs) to `target`."""
    for part in ("agents", "dags"):
        shutil.copytree(REPO_ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def storage_of(emulator: Emulator, flow_id: str) -> dict:
    answer = emulator.graphql("query($id: uuid!) { flow_by_pk(id: $id) { storage } }", {"id": flow_id})
    assert "errors" not in answer, answer
    storage = answer["data"]["flow_by_pk"]["storage"]
    return storage if isinstance(storage, dict) else json.loads(storage)


def flow_id_of(output: str, name: str) -> str:
    found = re.search(rf"^registered {re.escape(name)} version \d+ \((?:new version|unchanged)\).* flow id (\S+)$",
                      output, flags=re.M)
    assert found, output
    return found.group(1)


def test_registered_in_one_checkout_runs_from_another_at_another_path(module_emulator: Emulator,
                                                                     module_env: Dict[str, str],
                                                                     tmp_path: Path) -> None:
    first = checkout_copy(tmp_path / "first-checkout")
    second = checkout_copy(tmp_path / "elsewhere" / "second-checkout")
    elsewhere = tmp_path / "agent-cwd"
    elsewhere.mkdir()
    env_first = dict(module_env, PYTHONPATH=str(first))
    env_second = dict(module_env, PYTHONPATH=str(second))

    registered = run_cli(["register", "flow-test-hello"], env_first, cwd=first)
    assert registered.returncode == 0, registered.stdout
    flow_id = flow_id_of(registered.stdout, "flow-test-hello")
    storage = storage_of(module_emulator, flow_id)
    assert storage["path"] == HELLO_SCRIPT  # relative to the repository root, not the first checkout's path
    assert str(first) not in json.dumps(storage)

    # Same DAG from the other checkout: the same serialized flow, so no new version.
    again = run_cli(["register", "flow-test-hello"], env_second, cwd=second)
    assert again.returncode == 0, again.stdout
    assert f"(unchanged) in 'My Tests' labels ['hello'] flow id {flow_id}" in again.stdout

    # The registering checkout is gone: the run can only load the second checkout's script.
    shutil.rmtree(first)
    with start_agent(["start", "--label", "hello", "--name", "second-checkout-agent"], env_second,
                     tmp_path / "agent.log", cwd=elsewhere) as agent:
        result = run_cli(["trigger", "flow-test-hello", "--wait", "--timeout", "300"], env_second, cwd=elsewhere)
    assert result.returncode == 0, f"{result.stdout}\n--- agent ---\n{agent.output()}"
    assert "Test Hello, Cloud!" in result.stdout
    assert "Run by second-checkout-agent" in result.stdout


def test_a_dag_outside_the_repository_keeps_its_absolute_path(module_emulator: Emulator,
                                                             module_env: Dict[str, str], tmp_path: Path) -> None:
    path = write_plain_dag(tmp_path / "dags", "outside-repo", ["plain"])
    result = run_cli(["register", "outside-repo"], dict(module_env, DAGS_FOLDER=str(tmp_path / "dags")))
    assert result.returncode == 0, result.stdout
    assert storage_of(module_emulator, flow_id_of(result.stdout, "outside-repo"))["path"] == str(path.resolve())
