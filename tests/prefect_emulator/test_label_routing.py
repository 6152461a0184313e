"""Which agent gets which run: Prefect Server 1.4.1's label rules, driven through prefect's own agent code.

An agent's poll is `LocalAgent._get_ready_flow_runs` (prefect.agent.agent), i.e. the `get_runs_in_queue`
mutation exactly as the agent sends it; runs are made with `Client.create_flow_run`. One emulator serves the
whole module, so every test uses labels made unique by a random token and cancels its runs afterwards.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Iterator, List, Optional, Set

import pendulum
import pytest
from prefect import Client
from prefect.agent.local import LocalAgent
from prefect.engine.state import Retrying, Running, Submitted
from prefect.run_configs import LocalRun

from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.prefect_session import (flow_run_rows, register_flow_script, set_flow_group_labels,
                                            write_flow_script)

# the agent's own query, copied from prefect/agent/agent.py (Agent._get_ready_flow_runs), used where the
# test needs the list's order, which the agent itself throws away by making a set of it
AGENT_QUEUE_MUTATION = {
    "mutation($input: get_runs_in_queue_input!)": {"get_runs_in_queue(input: $input)": {"flow_run_ids"}}
}


class Runs:
    """Creates flow runs for one test and cancels the ones still unfinished when the test ends."""

    def __init__(self, client: Client, flow_id: str) -> None:
        self.client = client
        self.flow_id = flow_id
        self.ids: List[str] = []

    def create(self, labels: Optional[List[str]] = None, start: Optional[pendulum.DateTime] = None,
               flow_id: Optional[str] = None) -> str:
        run_id = self.client.create_flow_run(flow_id=flow_id or self.flow_id, labels=labels,
                                             scheduled_start_time=start)
        self.ids.append(run_id)
        return run_id

    def cleanup(self) -> None:
        # keep the shared queue short for the next tests; a broken cancel is another test's business
        for run_id in self.ids:
            try:
                self.client.cancel_flow_run(run_id)
            except Exception:
                pass


def agent_poll(labels: List[str], prefetch_seconds: int = 10) -> Set[str]:
    """The ids a LocalAgent with exactly `labels` gets from one poll (prefect's own agent code)."""
    agent = LocalAgent(labels=list(labels), hostname_label=False)
    assert agent.labels == list(labels)
    return agent._get_ready_flow_runs(prefetch_seconds=prefetch_seconds)


def queue(client: Client, labels: List[str], before: pendulum.DateTime) -> List[str]:
    """The ordered ids `get_runs_in_queue` answers, sent exactly as the agent sends it."""
    result = client.graphql(AGENT_QUEUE_MUTATION, variables={"input": {
        "before": before.isoformat(), "labels": list(labels), "tenant_id": client.tenant_id}})
    return list(result.data.get_runs_in_queue.flow_run_ids)


@pytest.fixture(scope="module")
def flow_id(module_client: Client, module_workdir: Path) -> str:
    """A registered flow whose run_config labels no test's agent carries."""
    script = write_flow_script(module_workdir / "routing.py", "routing", ["routing-config-" + uuid.uuid4().hex])
    return register_flow_script(script, PROJECT)


@pytest.fixture
def runs(module_client: Client, flow_id: str) -> Iterator[Runs]:
    """This test's runs, cancelled at its end."""
    made = Runs(module_client, flow_id)
    yield made
    made.cleanup()


@pytest.fixture
def token() -> str:
    """A random suffix that keeps this test's labels apart from the other tests' on the shared emulator."""
    return uuid.uuid4().hex[:10]


def unique(labels: List[str], token: str) -> List[str]:
    """`labels` made unique to one test."""
    return [f"{label}-{token}" for label in labels]


ROUTING_TABLE = [
    # (run labels, agent labels, picked?)
    pytest.param([], [], True, id="no-labels-run_no-labels-agent"),
    pytest.param([], ["a"], False, id="no-labels-run_labelled-agent"),
    pytest.param(["a"], [], False, id="labelled-run_no-labels-agent"),
    pytest.param(["a"], ["a"], True, id="same-labels"),
    pytest.param(["a"], ["a", "b"], True, id="agent-superset"),
    pytest.param(["a", "b"], ["b", "a"], True, id="same-set-other-order"),
    pytest.param(["a", "b"], ["a"], False, id="agent-subset"),
    pytest.param(["a"], ["b"], False, id="disjoint"),
    pytest.param(["a", "b"], ["b", "c"], False, id="overlap-without-cover"),
]


@pytest.mark.parametrize("run_labels, agent_labels, picked", ROUTING_TABLE)
def test_agent_gets_run_only_when_its_labels_cover_the_runs(runs: Runs, token: str, run_labels: List[str],
                                                           agent_labels: List[str], picked: bool,
                                                           module_client: Client) -> None:
    run_id = runs.create(labels=unique(run_labels, token))
    assert sorted(flow_run_rows(module_client, [run_id])[run_id]["labels"]) == sorted(unique(run_labels, token))

    got = agent_poll(unique(agent_labels, token))

    assert (run_id in got) is picked, (
        f"run labels {run_labels}, agent labels {agent_labels}: expected picked={picked}, poll answered {got}")


def test_agent_metadata_query_returns_the_polled_scheduled_run(runs: Runs, token: str) -> None:
    run_id = runs.create(labels=[token])
    agent = LocalAgent(labels=[token], hostname_label=False)

    metadata = agent._get_flow_run_metadata(agent._get_ready_flow_runs())

    assert [m.id for m in metadata] == [run_id]
    assert metadata[0].state == "Scheduled"
    assert metadata[0].serialized_state["type"] == "Scheduled"
    assert metadata[0].flow.name == "routing"


def test_run_no_longer_scheduled_is_not_polled(runs: Runs, token: str, module_client: Client) -> None:
    taken, waiting = runs.create(labels=[token]), runs.create(labels=[token])
    version = flow_run_rows(module_client, [taken])[taken]["version"]
    module_client.set_flow_run_state(taken, Submitted(message="taken by another agent"), version=version)

    assert agent_poll([token]) == {waiting}


def test_flow_group_labels_win_over_run_config_labels(module_client: Client, module_workdir: Path,
                                                      runs: Runs, token: str) -> None:
    config_labels, group_labels = [f"config-{token}"], [f"group-{token}"]
    script = write_flow_script(module_workdir / f"grouped_{token}.py", f"grouped-{token}", config_labels)
    grouped = register_flow_script(script, PROJECT)

    plain = runs.create(flow_id=grouped)
    set_flow_group_labels(module_client, grouped, group_labels)
    overridden = runs.create(flow_id=grouped)
    set_flow_group_labels(module_client, grouped, None)
    restored = runs.create(flow_id=grouped)

    rows = flow_run_rows(module_client, [plain, overridden, restored])
    assert rows[plain]["labels"] == config_labels
    assert rows[overridden]["labels"] == group_labels
    assert rows[restored]["labels"] == config_labels
    assert agent_poll(group_labels) == {overridden}
    assert agent_poll(config_labels) == {plain, restored}


def test_create_flow_run_labels_win_over_group_and_run_config(module_client: Client, module_workdir: Path,
                                                              runs: Runs, token: str) -> None:
    script = write_flow_script(module_workdir / f"explicit_{token}.py", f"explicit-{token}", [f"config-{token}"])
    flow = register_flow_script(script, PROJECT)
    set_flow_group_labels(module_client, flow, [f"group-{token}"])

    run_id = runs.create(flow_id=flow, labels=[f"run-{token}"])

    assert flow_run_rows(module_client, [run_id])[run_id]["labels"] == [f"run-{token}"]
    assert agent_poll([f"run-{token}"]) == {run_id}
    assert run_id not in agent_poll([f"group-{token}"]) | agent_poll([f"config-{token}"])
    # a run_config given to create_flow_run brings its labels too (below explicit labels, above the group's)
    configured = module_client.create_flow_run(flow_id=flow, run_config=LocalRun(labels=[f"runcfg-{token}"]))
    runs.ids.append(configured)
    assert flow_run_rows(module_client, [configured])[configured]["labels"] == [f"runcfg-{token}"]


def test_queue_returns_oldest_scheduled_start_first(module_client: Client, runs: Runs, token: str) -> None:
    now = pendulum.now("UTC")
    # created newest first, so that creation order and start order disagree
    newest = runs.create(labels=[token], start=now.subtract(seconds=10))
    oldest = runs.create(labels=[token], start=now.subtract(seconds=30))
    middle = runs.create(labels=[token], start=now.subtract(seconds=20))

    answered = queue(module_client, [token], before=pendulum.now("UTC"))

    assert [i for i in answered if i in {newest, oldest, middle}] == [oldest, middle, newest]


def test_future_run_is_not_returned_before_its_start_time(module_client: Client, runs: Runs, token: str) -> None:
    far = runs.create(labels=[token], start=pendulum.now("UTC").add(hours=1))
    soon_start = pendulum.now("UTC").add(seconds=2)
    soon = runs.create(labels=[token], start=soon_start)

    # the agent prefetches 10 s ahead: the run an hour away is not in its answer, the one 2 s away is
    assert agent_poll([token]) == {soon}
    # `before` given explicitly, so that a slow machine cannot make this pass or fail by the clock
    assert queue(module_client, [token], before=soon_start.subtract(seconds=1)) == []

    time.sleep(max(0.0, (soon_start - pendulum.now("UTC")).total_seconds()) + 0.2)
    assert queue(module_client, [token], before=pendulum.now("UTC")) == [soon]
    assert far not in agent_poll([token])


def test_running_run_with_a_task_run_due_for_retry_is_polled_again(module_client: Client, runs: Runs,
                                                                   token: str) -> None:
    # Server hands a Running run back to agents when one of its task runs is scheduled (a retry whose delay
    # outlived the flow-run process), once that retry's start time has come
    due, later = runs.create(labels=[token]), runs.create(labels=[token])
    tasks = module_client.graphql({"query": {'flow_run_by_pk(id: "%s")' % due: {"flow": {"tasks": {"id"}}}}})
    task_id = tasks.data.flow_run_by_pk.flow.tasks[0].id
    now = pendulum.now("UTC")
    for run_id, start in ((due, now.subtract(seconds=5)), (later, now.add(hours=1))):
        module_client.set_flow_run_state(run_id, Submitted(message="s"))
        module_client.set_flow_run_state(run_id, Running(message="r"))
        task_run = module_client.get_task_run_info(run_id, task_id)
        module_client.set_task_run_state(task_run.id, Retrying(message="retry", start_time=start, run_count=1))

    assert queue(module_client, [token], before=pendulum.now("UTC")) == [due]


def test_agent_gets_only_its_own_tenants_runs(module_client: Client, module_workdir: Path, token: str) -> None:
    other_tenant = module_client.create_tenant(name=f"other-{token}")
    other = Client(api_server=module_client.api_server, tenant_id=other_tenant)
    other.create_project(f"other-{token}")
    script = write_flow_script(module_workdir / f"other_{token}.py", f"other-{token}", [])
    flow_id = register_flow_script(script, f"other-{token}")
    unlabelled = other.create_flow_run(flow_id=flow_id, labels=[])
    labelled = other.create_flow_run(flow_id=flow_id, labels=[token])

    def polled(tenant_id: str, labels: List[str]) -> List[str]:
        result = module_client.graphql(AGENT_QUEUE_MUTATION, variables={"input": {
            "before": pendulum.now("UTC").isoformat(), "labels": labels, "tenant_id": tenant_id}})
        return list(result.data.get_runs_in_queue.flow_run_ids)

    try:
        assert unlabelled not in polled(module_client.tenant_id, [])
        assert labelled not in polled(module_client.tenant_id, [token])
        assert unlabelled in polled(other_tenant, [])
        assert labelled in polled(other_tenant, [token])
    finally:
        for run_id in (unlabelled, labelled):
            other.cancel_flow_run(run_id)
