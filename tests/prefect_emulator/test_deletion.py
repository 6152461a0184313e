"""Deleting as Prefect Server's Postgres cascades do: a run takes its states, task runs and logs with it;
a flow its tasks and runs; a project (prefect's Client.delete_project) its flows."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Dict

import pendulum
import pytest
from prefect import Client
from prefect.engine.state import Running, Submitted

from tests.prefect_emulator.prefect_session import create_tenant_and_project, register_flow_script, write_flow_script

COUNTS = """query($run: uuid!, $flow: uuid!) {
  flow_run(where: {id: {_eq: $run}}) { id }
  flow_run_state(where: {flow_run_id: {_eq: $run}}) { id }
  task_run(where: {flow_run_id: {_eq: $run}}) { id }
  log(where: {flow_run_id: {_eq: $run}}) { id }
  flow(where: {id: {_eq: $flow}}) { id }
  task(where: {flow_id: {_eq: $flow}}) { id }
}"""


def counts(client: Client, run_id: str, flow_id: str) -> Dict[str, int]:
    """How many rows of each kind belong to the run and its flow."""
    data = client.graphql(COUNTS, variables={"run": run_id, "flow": flow_id}).data
    return {table: len(data[table]) for table in ("flow_run", "flow_run_state", "task_run", "log", "flow", "task")}


@pytest.fixture
def run_with_history(module_client: Client, module_workdir: Path):
    """A project of its own with a registered flow and one run with states and a log: (project, flow, run)."""
    project = "deletion-" + uuid.uuid4().hex[:8]
    create_tenant_and_project(module_client, project)
    name = "doomed-" + uuid.uuid4().hex[:8]
    flow_id = register_flow_script(write_flow_script(module_workdir / f"{name}.py", name, [name]), project)
    run_id = module_client.create_flow_run(flow_id=flow_id)
    module_client.set_flow_run_state(run_id, Submitted(message="s"))
    module_client.set_flow_run_state(run_id, Running(message="r"))
    module_client.write_run_logs([{"flow_run_id": run_id, "name": "test", "message": "hello",
                                   "level": "INFO", "timestamp": pendulum.now("UTC").isoformat()}])
    before = counts(module_client, run_id, flow_id)
    assert before["flow_run_state"] >= 3 and before["task_run"] >= 1 and before["log"] == 1, before
    return project, flow_id, run_id


def test_deleting_a_run_takes_its_states_task_runs_and_logs_and_leaves_the_flow(module_client: Client,
                                                                                 run_with_history) -> None:
    _, flow_id, run_id = run_with_history
    answer = module_client.graphql(
        "mutation($input: delete_flow_run_input!) { delete_flow_run(input: $input) { success } }",
        variables={"input": {"flow_run_id": run_id}})
    assert answer.data.delete_flow_run.success is True
    after = counts(module_client, run_id, flow_id)
    assert after["flow_run"] == after["flow_run_state"] == after["task_run"] == after["log"] == 0, after
    assert after["flow"] == 1 and after["task"] > 0, after


def test_deleting_a_project_takes_its_flows_their_tasks_and_runs(module_client: Client, run_with_history) -> None:
    project, flow_id, run_id = run_with_history
    assert module_client.delete_project(project) is True
    assert set(counts(module_client, run_id, flow_id).values()) == {0}


def test_deleting_a_flow_that_does_not_exist_answers_success_false(module_client: Client) -> None:
    # as Server's delete_flow: success is whether a row was deleted, not an error
    answer = module_client.graphql(
        "mutation($input: delete_flow_input!) { delete_flow(input: $input) { success } }",
        variables={"input": {"flow_id": str(uuid.uuid4())}}, raise_on_error=False)
    assert not answer.get("errors") and answer["data"]["delete_flow"]["success"] is False


def test_deleting_an_agent_keeps_the_runs_it_took_without_their_agent(module_client: Client,
                                                                       run_with_history) -> None:
    # Server's flow_run.agent_id: ON DELETE SET NULL
    _, flow_id, _ = run_with_history
    run_id = module_client.create_flow_run(flow_id=flow_id)
    agent_id = module_client.register_agent(agent_type="LocalAgent", name="deleted-agent", labels=[])
    module_client.attach_headers({"X-PREFECT-AGENT-ID": agent_id})
    try:
        module_client.set_flow_run_state(run_id, Submitted(message="taken by the agent"))
    finally:
        module_client._attached_headers.pop("X-PREFECT-AGENT-ID")
    agent_of = "query($id: uuid!) { flow_run_by_pk(id: $id) { agent_id } }"
    assert module_client.graphql(agent_of, variables={"id": run_id}).data.flow_run_by_pk.agent_id == agent_id
    answer = module_client.graphql(
        "mutation($input: delete_agent_input!) { delete_agent(input: $input) { success } }",
        variables={"input": {"agent_id": agent_id}})
    assert answer.data.delete_agent.success is True
    assert module_client.graphql(agent_of, variables={"id": run_id}).data.flow_run_by_pk.agent_id is None
    assert counts(module_client, run_id, flow_id)["flow_run"] == 1


def test_every_foreign_key_names_kept_columns_and_cascades_through_indexes() -> None:
    from prefect_emulator.tables import FOREIGN_KEYS, TABLES, indexes

    indexed = {table: {columns[0] for columns in found} for table, found in indexes().items()}
    for key in FOREIGN_KEYS:
        assert key.column in TABLES[key.table].columns and key.parent in TABLES, key
        # a cascade from one row finds the rows referring to it through an index; only a tenant's
        # deletion (the whole tenant, once) scans the tables
        assert key.column == "tenant_id" or key.column in indexed.get(key.table, ()), key
