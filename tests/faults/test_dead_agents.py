"""Runs whose agent died with them, and runs cut off from the API: finished once, by another agent, in seconds.

Real agents and flow runs (tests/faults/fixtures/dying_flow.py) on the emulator, with Server's zombie killer
and Lazarus 10 minutes away, so that whatever happens is our agents' doing, and the product's shortest
settings: heartbeats every second, DAGS_DEAD_RUN_AFTER=4 (the flow-run processes' lease is half of it),
DAGS_STRANDED_AFTER=3.

- The agent's process group killed (what `docker kill` does) with runs Running in a task with a retry left
  (they end Success, the task run twice, its body finished once) and in one without (they end Failed, the
  message naming the dead agent): another agent of the same labels finishes them.
- A partition: the API paused (SIGSTOP) past the bound with an agent's runs Running, then resumed: each run's
  process stopped itself when its lease expired, and each run ends once: 0 executed twice, 0 lost.

Figures printed: runs created, ended, executed twice, seconds from the fault to the new state.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from agents.testing import start_agent
from prefect_emulator.testing import Emulator
from tests.faults.dead_runs import FIXTURE, LEASE_EXPIRED, every_run, hanging_runs, report, wait_all_hanging
from tests.faults.faults import create_runs, registered_dag, runs_with_tasks, wait_finished, wait_until

pytestmark = pytest.mark.slow
DEAD_AFTER = 4.0
FAST = dict(DAGS_DEAD_RUN_AFTER=f"{DEAD_AFTER:g}", DAGS_STRANDED_AFTER="3", PREFECT__CLOUD__HEARTBEAT_INTERVAL="1")
# the bound on finishing a run whose agent died: the heartbeat's age limit, one sweep, and the requests
BOUND = DEAD_AFTER + 3 + 2


def query_of(emu: Emulator):
    """The emulator's GraphQL read, returning `data`."""
    return lambda document, variables: emu.graphql(document, variables)["data"]


def creator_of(emu: Emulator, flow: str):
    """Makes one run of `flow` with the parameters given; returns its id."""
    return lambda parameters: create_runs(emu, flow, 1, parameters)[0]


def test_runs_of_a_killed_agent_are_finished_by_another_agent_within_the_bound(tmp_path: Path) -> None:
    with Emulator(tmp_path, heartbeat_timeout=600) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "orphaned", FIXTURE, **FAST)
        markers = tmp_path / "markers"
        with start_agent(["start", "-l", label, "--name", "doomed"], env, tmp_path / "doomed.log") as doomed:
            ids = hanging_runs(creator_of(emu, flow), 2)
            every = every_run(ids)
            wait_all_hanging(query_of(emu), ids, markers)
            # the rescuer comes up once the doomed agent holds every run (its polls find none to take)
            with start_agent(["start", "-l", label, "--name", "rescuer"], env, tmp_path / "rescuer.log") as rescuer:
                os.killpg(doomed.proc.pid, signal.SIGKILL)  # the agent and its flow-run processes
                fault_at = time.time()
                wait_finished(emu, every, timeout=60)
                rows = runs_with_tasks(emu, every)
                log = rescuer.output()
    problems = report("agent SIGKILL with runs Running (host)", ids, rows, markers, fault_at,
                      "agent 'doomed'", bound=BOUND)
    assert not problems, "\n".join(problems) + "\n" + log[-3000:]


def test_runs_cut_off_from_the_api_stop_themselves_and_run_once(tmp_path: Path) -> None:
    with Emulator(tmp_path, heartbeat_timeout=600) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "partitioned", FIXTURE, **FAST)
        markers = tmp_path / "markers"
        with start_agent(["start", "-l", label, "--name", "cut-off"], env, tmp_path / "agent.log") as agent:
            ids = hanging_runs(creator_of(emu, flow), 2)
            every = every_run(ids)
            wait_all_hanging(query_of(emu), ids, markers)
            emu.proc.send_signal(signal.SIGSTOP)  # the API stops answering: every agent and run is cut off
            fault_at = time.time()
            try:
                # past the bound: the runs' leases (DEAD_AFTER / 2) expire and their processes exit
                wait_until(lambda: agent.output().count(LEASE_EXPIRED) >= len(every), BOUND + 10,
                           "every run's lease expired")
                wait_until(lambda: time.time() - fault_at > DEAD_AFTER + 2, DEAD_AFTER + 3, "past the bound")
            finally:
                emu.proc.send_signal(signal.SIGCONT)
            wait_finished(emu, every, timeout=60)
            rows = runs_with_tasks(emu, every)
            log = agent.output()
    # the agent reports each exit once the API answers, or its sweep finds the runs dead first: either says
    problems = report("API paused past the bound (host)", ids, rows, markers, fault_at, "flow-run process")
    assert not problems, "\n".join(problems) + "\n" + log[-3000:]
