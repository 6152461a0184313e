"""Dead runs in the stack (issue 19): an agent-etl replica holding Running runs is `docker kill`ed, or cut off
from the network past the bound; the other replica finishes its runs by Server's zombie killer and Lazarus
rules, once, with a message naming the dead agent.

The stack runs tests/faults/fixtures/dying_flow.py as the DAG `dying-stack` in both agent-etl replicas, with
the product's short settings (heartbeats every second, DAGS_DEAD_RUN_AFTER=8, so each run's lease is 4 s,
DAGS_STRANDED_AFTER=3) and the emulator's own zombie killer and Lazarus 10 minutes away, so that whatever
happens is the agents' doing. Each scenario: the second replica paused (`docker pause`: it does not poll)
while the first takes two runs hanging in a task with a retry left and two in a task without, all of them
Running mid-task; the second one resumed; then the fault hits the first.

- `docker kill`: the runs with a retry left end Success (the task run twice, its body finished once), the
  others Failed, within the bound of the kill.
- `docker network disconnect`: each of the cut-off replica's flow-run processes stops itself when its lease
  expires; the other replica finishes the runs as above while the victim is still cut off; once reconnected,
  the victim writes nothing more (the runs stay as they ended): 0 executed twice, 0 lost.

Figures printed per kind of run: created, ended, executed twice, seconds from the fault to the new state.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.faults.dead_runs import (FIXTURE, LEASE_EXPIRED, every_run, hanging_runs, report,
                                    wait_all_hanging)
from tests.faults.faults import RUNS_WITH_TASKS, wait_all_finished, wait_until
from tests.stack.conftest import agent_etl_override, running_stack
from tests.stack.stack import Stack, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]
DAG = "dying-stack"
DEAD_AFTER = 8.0
# the heartbeat's age limit, the stranded bound and one sweep (1 s at DAGS_STRANDED_AFTER=3), the requests
BOUND = DEAD_AFTER + 3 + 1 + 3
# Server's towel services far away: a zombie verdict or a Lazarus round would hide the agents' work
SLOW_TOWEL = {"EMULATOR_HEARTBEAT_TIMEOUT": "600", "EMULATOR_LAZARUS_INTERVAL": "600",
              "EMULATOR_LAZARUS_STALE_AFTER": "3600"}


def dying_override(folder: Path) -> Path:
    """The dying flow in the agent-etl replicas as DAG, its markers in data/output/markers, the short dead-run
    settings."""
    return agent_etl_override(folder, DAG, FIXTURE, {
        "DAGS_TEST_MARKERS": "/app/data/output/markers", "PREFECT__CLOUD__HEARTBEAT_INTERVAL": "1",
        "DAGS_DEAD_RUN_AFTER": f"{DEAD_AFTER:g}", "DAGS_STRANDED_AFTER": "3", "DAGS_AGENT_MAX_RUNS": "8"})


@pytest.fixture(scope="module")
def stack(built_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """agent-etl at two replicas hosting the dying flow, on the emulator with its towel services slow."""
    folder = tmp_path_factory.mktemp("dying")
    with running_stack([dying_override(folder)], services=["agent-etl"], extra_env=SLOW_TOWEL) as stk:
        stk.up("--no-build", "agent-etl", scales={"agent-etl": 2})
        registered = stk.exec("agent-etl", "python", "-m", "agents", "register", DAG)
        assert registered.returncode == 0, registered.stdout + registered.stderr
        yield stk


def query_of(stk: Stack):
    return lambda document, variables: stk.graphql(document, variables)


def rows_of(stk: Stack, ids: List[str]) -> Dict[str, dict]:
    return {row["id"]: row for row in stk.graphql(RUNS_WITH_TASKS, {"ids": ids})["flow_run"]}


def hanging_on_one_replica(stk: Stack) -> Tuple[Dict[str, List[str]], Dict[str, str], str]:
    """Two runs hanging in each kind of task, all held by one replica (the other paused meanwhile).

    Returns:
        (kind -> run ids, the victim's container, the victim agent's name)
    """
    replicas = sorted((c for c in stk.containers() if c["service"] == "agent-etl"), key=lambda c: c["name"])
    assert len(replicas) == 2, replicas
    victim, rescuer = replicas
    flow = stk.latest_flow_id(DAG)
    docker("pause", rescuer["id"])
    try:
        ids = hanging_runs(lambda parameters: stk.create_run(flow, parameters), 2)
        wait_all_hanging(query_of(stk), ids, stk.data_dir / "output" / "markers", timeout=120)
    finally:
        docker("unpause", rescuer["id"])
    names = {row["agent"]["name"] for row in stk.runs(every_run(ids))}
    assert len(names) == 1 and next(iter(names)).endswith("@" + victim["hostname"]), names
    return ids, victim, names.pop()


def test_docker_kill_of_a_replica_holding_running_runs_finishes_them_elsewhere(stack: Stack) -> None:
    ids, victim, agent = hanging_on_one_replica(stack)
    every = every_run(ids)
    try:
        docker("kill", victim["id"])
        fault_at = time.time()
        wait_all_finished(lambda: stack.runs(every), timeout=90)
        rows = rows_of(stack, every)
    finally:
        stack.up("--no-build", "agent-etl")  # the killed replica back for the next scenario
    problems = report("docker kill of an agent-etl replica with runs Running (stack)", ids, rows,
                      stack.data_dir / "output" / "markers", fault_at, f"agent {agent!r}", bound=BOUND)
    assert not problems, "\n".join(problems) + "\n" + stack.recent_logs()


def lease_expiries(container: Dict[str, str]) -> int:
    """How many flow-run processes of this container said their lease expired (its logs so far)."""
    logs = docker("logs", container["id"])
    return (logs.stdout + logs.stderr).count(LEASE_EXPIRED)


def last_poll(stk: Stack, agent: str) -> str:
    return stk.graphql('query($n: String) { agent(where: {name: {_eq: $n}}) { last_queried } }',
                       {"n": agent})["agent"][0]["last_queried"]


def test_replica_cut_off_past_the_bound_stops_its_runs_and_each_runs_once(stack: Stack) -> None:
    ids, victim, agent = hanging_on_one_replica(stack)
    every = every_run(ids)
    network = f"{stack.project}_default"
    attached = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", victim["id"]).stdout)
    aliases = [a for a in attached[network]["Aliases"] or [] if a != victim["hostname"]]
    expired_before = lease_expiries(victim)
    docker("network", "disconnect", network, victim["id"])
    fault_at = time.time()
    try:
        # each of the victim's flow-run processes stops itself once its lease (DEAD_AFTER / 2) expires
        wait_until(lambda: lease_expiries(victim) - expired_before >= len(every), BOUND + 10,
                   "every cut-off run's lease expired", poll=1)
        # ...and the other replica finishes them while the victim is still cut off
        wait_all_finished(lambda: stack.runs(every), timeout=90)
        ended = rows_of(stack, every)
    finally:
        docker("network", "connect", *(f"--alias={a}" for a in aliases), network, victim["id"])
    # back on the network, the victim polls again and writes nothing more to runs already finished
    polled_at = last_poll(stack, agent)
    wait_until(lambda: last_poll(stack, agent) != polled_at, 60, "the reconnected victim polling again", poll=1)
    after = rows_of(stack, every)
    problems = report("agent-etl replica cut off from the network past the bound (stack)", ids, ended,
                      stack.data_dir / "output" / "markers", fault_at, f"agent {agent!r}", bound=BOUND + 10)
    changed = [i for i in every if after[i]["states"] != ended[i]["states"]]
    assert not problems and not changed, "\n".join(problems) + f"\nchanged after the reconnection: {changed}\n" \
        + stack.recent_logs()
