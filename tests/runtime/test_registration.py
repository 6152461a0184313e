"""`register` and `init` against the emulator: script storage, labels, idempotency, projects, tenant."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

import pytest

from agents.testing import run_cli
from prefect_emulator.testing import Emulator
from tests.runtime.conftest import repo_dag_names, write_plain_dag

FLOWS = """query($name: String) {
  flow(where: {name: {_eq: $name}}, order_by: {version: desc}) {
    id version storage run_config project { name }
  }
}"""


def flows_named(emulator: Emulator, name: str) -> List[dict]:
    answer = emulator.graphql(FLOWS, {"name": name})
    assert "errors" not in answer, answer
    return answer["data"]["flow"]


def registered_line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"registered {name} "))


def test_register_all_repo_dags_then_again_makes_no_new_version(module_emulator: Emulator,
                                                              module_env: Dict[str, str]) -> None:
    first = run_cli(["register"], module_env)
    assert first.returncode == 0, first.stdout
    ids = {}
    for name in repo_dag_names():
        line = registered_line(first.stdout, name)
        assert "version 1 (new version)" in line, line
        ids[name] = re.search(r"flow id (\S+)", line).group(1)
    second = run_cli(["register"], module_env)
    assert second.returncode == 0, second.stdout
    for name in repo_dag_names():
        line = registered_line(second.stdout, name)
        assert "version 1 (unchanged)" in line and ids[name] in line, line
        assert len(flows_named(module_emulator, name)) == 1


def test_registered_flow_uses_script_storage_at_its_file_and_its_labels(module_emulator: Emulator,
                                                                      module_env: Dict[str, str]) -> None:
    result = run_cli(["register", "flow-test-hello"], module_env)
    assert result.returncode == 0, result.stdout
    assert "labels ['hello']" in registered_line(result.stdout, "flow-test-hello")
    flow = flows_named(module_emulator, "flow-test-hello")[0]
    storage = flow["storage"] if isinstance(flow["storage"], dict) else json.loads(flow["storage"])
    run_config = flow["run_config"] if isinstance(flow["run_config"], dict) else json.loads(flow["run_config"])
    assert storage["type"] == "Local"
    assert storage["stored_as_script"] is True
    assert storage["path"] == "dags/flow-test-hello/test-hello.py"  # relative to the repository root
    assert run_config["labels"] == ["hello"]  # no hostname label
    assert flow["project"]["name"] == "My Tests"


def test_changed_dag_gets_a_new_version(module_emulator: Emulator, module_env: Dict[str, str],
                                        tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    path = write_plain_dag(dags, "changing", ["plain"])
    env = dict(module_env, DAGS_FOLDER=str(dags))
    assert run_cli(["register", "changing"], env).returncode == 0
    path.write_text(path.read_text().replace('default="world"', 'default="there"'))
    result = run_cli(["register", "changing"], env)
    assert result.returncode == 0, result.stdout
    assert "version 2 (new version)" in registered_line(result.stdout, "changing")


def test_broken_dag_is_reported_and_the_others_still_register(module_emulator: Emulator,
                                                             module_env: Dict[str, str], tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "survivor", ["plain"])
    (dags / "broken").mkdir()
    (dags / "broken" / "broken.py").write_text("raise RuntimeError('cannot load')\n")
    env = dict(module_env, DAGS_FOLDER=str(dags), DAGS_DEFAULT_PROJECT="Plain Project")
    result = run_cli(["register"], env)
    assert result.returncode == 1
    assert f"{dags / 'broken' / 'broken.py'}: loading failed with RuntimeError: cannot load" in result.stdout
    assert "registered survivor version 1" in result.stdout
    assert "created project 'Plain Project'" in result.stdout
    assert flows_named(module_emulator, "survivor")[0]["project"]["name"] == "Plain Project"
    assert flows_named(module_emulator, "broken") == []


def test_register_unknown_dag_lists_the_known_ones(module_env: Dict[str, str]) -> None:
    result = run_cli(["register", "no-such-dag"], module_env)
    assert result.returncode == 1
    assert "unknown DAG 'no-such-dag': known DAGs are " + ", ".join(repo_dag_names()) in result.stdout


def test_registration_checks_everything_before_the_first_write(module_emulator: Emulator,
                                                               module_env: Dict[str, str], tmp_path: Path) -> None:
    # A DAG that serializes badly (a required Parameter with a schedule) stops before any write.
    dags = tmp_path / "dags"
    path = write_plain_dag(dags, "unschedulable", ["plain"])
    path.write_text(path.read_text().replace(
        "with Flow(FLOW_NAME,", "from prefect.schedules import IntervalSchedule\nimport datetime\n"
        "PROJECT = 'Never Created'\n"
        "with Flow(FLOW_NAME, schedule=IntervalSchedule(interval=datetime.timedelta(hours=1)),"
    ).replace('Parameter("name", default="world")', 'Parameter("name")'))
    env = dict(module_env, DAGS_FOLDER=str(dags))
    result = run_cli(["register"], env)
    assert result.returncode == 1, result.stdout
    assert str(path) in result.stdout
    projects = module_emulator.graphql('query { project(where: {name: {_eq: "Never Created"}}) { id } }')
    assert projects["data"]["project"] == [], "a project was created for a DAG that could not register"


def test_init_creates_tenant_and_projects_and_is_idempotent(tmp_path: Path, module_env: Dict[str, str]) -> None:
    with Emulator(tmp_path) as fresh:
        env = dict(module_env, PREFECT__SERVER__ENDPOINT=fresh.url, PREFECT__CLOUD__API=fresh.url)
        assert fresh.graphql("query { tenant { id } }")["data"]["tenant"] == []
        first = run_cli(["init", "--wait-timeout", "10"], env)
        assert first.returncode == 0, first.stdout
        assert "created tenant 'default'" in first.stdout
        assert "project 'My Tests': created" in first.stdout
        second = run_cli(["init", "--wait-timeout", "10"], env)
        assert second.returncode == 0, second.stdout
        assert "created tenant" not in second.stdout
        assert "project 'My Tests': exists" in second.stdout
        assert len(fresh.graphql("query { tenant { id } }")["data"]["tenant"]) == 1
        assert len(fresh.graphql('query { project(where: {name: {_eq: "My Tests"}}) { id } }')
                   ["data"]["project"]) == 1
