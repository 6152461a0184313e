"""Flow versions as Prefect Server 1.4.1 keeps them: a flow group per (project, flow name), a new version
archives the previous one, and an idempotency key equal to the group's latest one makes no new version."""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import List, Tuple

import pytest
from prefect import Client

from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.prefect_session import register_flow_script, write_flow_script
from prefect_emulator.testing import REPO_ROOT, Emulator, prefect_env

VERSIONS_QUERY = """query($name: String!) {
  flow(where: {name: {_eq: $name}}, order_by: {version: asc}) {
    id version archived flow_group_id version_group_id project { name }
  }
}"""


def versions(client: Client, name: str) -> List[Tuple[str, int, bool]]:
    """(flow id, version, archived) of every flow called `name`, oldest version first."""
    rows = client.graphql(VERSIONS_QUERY, variables={"name": name}).data.flow
    return [(row.id, row.version, row.archived) for row in rows]


@pytest.fixture
def name() -> str:
    """A flow name of its own for each test (one emulator serves the module)."""
    return "versioned-" + uuid.uuid4().hex[:8]


def script_for(workdir: Path, name: str) -> Path:
    """A flow script for flow `name`, labelled with its name."""
    return write_flow_script(workdir / f"{name}.py", name, [name])


def test_each_registration_is_a_new_version_that_archives_the_previous_one(module_client: Client,
                                                                           module_workdir: Path,
                                                                           name: str) -> None:
    script = script_for(module_workdir, name)
    ids = [register_flow_script(script, PROJECT) for _ in range(3)]

    assert len(set(ids)) == 3
    assert versions(module_client, name) == [(ids[0], 1, True), (ids[1], 2, True), (ids[2], 3, False)]
    rows = module_client.graphql(VERSIONS_QUERY, variables={"name": name}).data.flow
    assert len({row.flow_group_id for row in rows}) == 1 and len({row.version_group_id for row in rows}) == 1


def test_an_idempotency_key_equal_to_the_latest_one_makes_no_new_version(module_client: Client,
                                                                         module_workdir: Path,
                                                                         name: str) -> None:
    script = script_for(module_workdir, name)
    first = register_flow_script(script, PROJECT, idempotency_key="a")
    again = register_flow_script(script, PROJECT, idempotency_key="a")
    changed = register_flow_script(script, PROJECT, idempotency_key="b")
    # Server compares with the group's latest key only: going back to "a" is a change again
    back = register_flow_script(script, PROJECT, idempotency_key="a")

    assert again == first
    assert versions(module_client, name) == [(first, 1, True), (changed, 2, True), (back, 3, False)]


def test_the_same_flow_name_in_another_project_is_another_flow_group(module_client: Client,
                                                                     module_workdir: Path, name: str) -> None:
    other = "other-" + uuid.uuid4().hex[:8]
    module_client.create_project(other)
    script = script_for(module_workdir, name)
    here = register_flow_script(script, PROJECT)
    there = register_flow_script(script, other)

    rows = {row.id: row for row in module_client.graphql(VERSIONS_QUERY, variables={"name": name}).data.flow}
    assert (rows[here].project.name, rows[here].version, rows[here].archived) == (PROJECT, 1, False)
    assert (rows[there].project.name, rows[there].version, rows[there].archived) == (other, 1, False)
    assert rows[here].flow_group_id != rows[there].flow_group_id


def test_runs_by_version_group_use_the_unarchived_version_and_archived_ones_refuse_runs(
        module_client: Client, module_workdir: Path, name: str) -> None:
    script = script_for(module_workdir, name)
    old = register_flow_script(script, PROJECT)
    new = register_flow_script(script, PROJECT)
    group = module_client.graphql(VERSIONS_QUERY, variables={"name": name}).data.flow[0].version_group_id

    run_id = module_client.create_flow_run(version_group_id=group)

    assert module_client.get_flow_run_info(run_id).flow_id == new
    with pytest.raises(Exception) as refused:
        module_client.create_flow_run(flow_id=old)
    assert "archived" in str(refused.value).lower(), str(refused.value)
    module_client.cancel_flow_run(run_id)


def test_prefect_register_cli_skips_an_unchanged_flow_and_versions_a_changed_one(
        module_emulator: Emulator, module_client: Client, module_workdir: Path, name: str) -> None:
    home = module_workdir / "cli-home"
    home.mkdir(exist_ok=True)
    env = prefect_env(module_emulator.url, home)
    script = script_for(module_workdir, name)

    def register() -> str:
        done = subprocess.run([sys.executable, "-m", "prefect", "register", "--project", PROJECT,
                               "--path", str(script)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    assert "Registering" in register() and len(versions(module_client, name)) == 1
    assert "Skipped (metadata unchanged)" in register()
    assert len(versions(module_client, name)) == 1
    # a changed flow (other labels) hashes to another idempotency key: a new version
    write_flow_script(script, name, [name, "changed"])
    register()
    assert [(v, archived) for _, v, archived in versions(module_client, name)] == [(1, True), (2, False)]


def test_a_run_created_again_with_the_same_idempotency_key_is_the_first_run(module_client: Client,
                                                                            module_workdir: Path,
                                                                            name: str) -> None:
    flow_id = register_flow_script(script_for(module_workdir, name), PROJECT)
    first = module_client.create_flow_run(flow_id=flow_id, idempotency_key="once", labels=["b", "a"])
    again = module_client.create_flow_run(flow_id=flow_id, idempotency_key="once", labels=["b", "a"])
    other = module_client.create_flow_run(flow_id=flow_id, idempotency_key="twice")

    assert again == first and other != first
    rows = module_client.graphql('query($id: uuid!) { flow_run(where: {flow_id: {_eq: $id}}) { id labels } }',
                                 variables={"id": flow_id}).data.flow_run
    assert sorted(row.id for row in rows) == sorted([first, other])
    # Server stores a run's labels sorted
    assert {row.id: list(row.labels) for row in rows}[first] == ["a", "b"]
    for run_id in (first, other):
        module_client.cancel_flow_run(run_id)


def test_runs_get_the_flows_default_parameters_and_a_missing_required_one_is_named(module_client: Client,
                                                                                   module_workdir: Path,
                                                                                   name: str) -> None:
    defaults = register_flow_script(script_for(module_workdir, name), PROJECT)
    strict = register_flow_script(write_flow_script(module_workdir / f"{name}-strict.py", f"{name}-strict",
                                                    [name], required=True), PROJECT)

    plain = module_client.create_flow_run(flow_id=defaults)
    given = module_client.create_flow_run(flow_id=strict, parameters={"greeting": "hi"})
    with pytest.raises(Exception) as refused:
        module_client.create_flow_run(flow_id=strict)

    assert module_client.get_flow_run_info(plain).parameters == {"greeting": "hello"}
    assert module_client.get_flow_run_info(given).parameters == {"greeting": "hi"}
    assert "Required parameters were not supplied" in str(refused.value) and "greeting" in str(refused.value)
    for run_id in (plain, given):
        module_client.cancel_flow_run(run_id)
