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
from typing import Dict, List

import pytest

from prefect_emulator.testing import Emulator
from tests.faults.faults import (FINISHED, create_runs, first_state_with, parse_time, registered_dag,
                                 runs_with_tasks, task_executions, wait_finished, wait_until)
from tests.runtime.conftest import start_agent

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dying_flow.py"
TASKS = ("retried", "unretried", "last")
DEAD_AFTER = 4.0
FAST = dict(DAGS_DEAD_RUN_AFTER=f"{DEAD_AFTER:g}", DAGS_STRANDED_AFTER="3", PREFECT__CLOUD__HEARTBEAT_INTERVAL="1")
# the bound on finishing a run whose agent died: the heartbeat's age limit, one sweep, and the requests
BOUND = DEAD_AFTER + 3 + 2
# what a flow-run process prints when its lease expires (agents.lease)
LEASE_EXPIRED = "no heartbeat reached the API"
TASK_RUNS = """query($ids: [uuid!]) { task_run(where: {flow_run_id: {_in: $ids}, state: {_eq: "Running"}}) {
    id } }"""


def hanging_runs(emu: Emulator, flow: str, per_kind: int) -> Dict[str, List[str]]:
    """`per_kind` runs hanging in a task with a retry left ("hang-retried") and in one without ("hang")."""
    return {kind: create_runs(emu, flow, per_kind, {"die": kind}) for kind in ("hang-retried", "hang")}


def wait_all_hanging(emu: Emulator, ids: List[str], markers: Path) -> None:
    """Until every run has a Running task run whose body started (a task is Running a moment before)."""
    wait_until(lambda: len(emu.graphql(TASK_RUNS, {"ids": ids})["data"]["task_run"]) == len(ids), 90,
               f"{len(ids)} task runs Running")
    wait_until(lambda: all(sum(task_executions(markers, i, TASKS).values()) >= 1 for i in ids), 30,
               "every hanging task body started")


def report(scenario: str, ids: Dict[str, List[str]], rows: Dict[str, dict], markers: Path, fault_at: float,
           text: str) -> List[str]:
    """Prints the figures per kind of run, and returns what is wrong (empty when all is as required)."""
    problems = []
    want = {"hang-retried": ("Success", "retried", {"retried": 2, "unretried": 1, "last": 1}),
            "hang": ("Failed", None, {"retried": 1, "unretried": 1, "last": 0})}
    for kind, run_ids in ids.items():
        final, task, executions = want[kind]
        seconds, twice, ended = [], 0, 0
        for run_id in run_ids:
            row = rows[run_id]
            ended += row["state"] in FINISHED
            twice += any(n > 1 for n in task_executions(markers / "done", run_id, TASKS).values())
            state = first_state_with(row, text, task)
            if state is not None:
                seconds.append(round(parse_time(state["timestamp"]).timestamp() - fault_at, 1))
            counts = task_executions(markers, run_id, TASKS)
            if row["state"] != final or counts != executions or state is None:
                problems.append(f"{scenario} {kind}: {row['state']} (want {final}), started {counts} (want "
                                f"{executions}), states {row['states']}, task runs {row['task_runs']}")
        print(f"\nDEAD RUN {scenario}, {kind}: created={len(run_ids)}, ended={ended}, executed_twice={twice}, "
              f"seconds_from_fault_to_new_state={seconds}")
        if twice:
            problems.append(f"{scenario} {kind}: {twice} runs executed a task body to its end twice")
    return problems


def test_runs_of_a_killed_agent_are_finished_by_another_agent_within_the_bound(tmp_path: Path) -> None:
    with Emulator(tmp_path, heartbeat_timeout=600) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "orphaned", FIXTURE, **FAST)
        markers = tmp_path / "markers"
        with start_agent(["start", "-l", label, "--name", "doomed"], env, tmp_path / "doomed.log") as doomed:
            ids = hanging_runs(emu, flow, 2)
            every = [i for run_ids in ids.values() for i in run_ids]
            wait_all_hanging(emu, every, markers)
            # the rescuer comes up once the doomed agent holds every run (its polls find none to take)
            with start_agent(["start", "-l", label, "--name", "rescuer"], env, tmp_path / "rescuer.log") as rescuer:
                os.killpg(doomed.proc.pid, signal.SIGKILL)  # the agent and its flow-run processes
                fault_at = time.time()
                wait_finished(emu, every, timeout=60)
                rows = runs_with_tasks(emu, every)
                log = rescuer.output()
    problems = report("agent SIGKILL with runs Running (host)", ids, rows, markers, fault_at,
                      "agent 'doomed'")
    for row in rows.values():
        state = first_state_with(row, "agent 'doomed'", "retried" if row["id"] in ids["hang-retried"] else None)
        if state and parse_time(state["timestamp"]).timestamp() - fault_at > BOUND:
            problems.append(f"{row['id']}: finished {state['timestamp']}, past the bound of {BOUND:g}s")
    assert not problems, "\n".join(problems) + "\n" + log[-3000:]


def test_runs_cut_off_from_the_api_stop_themselves_and_run_once(tmp_path: Path) -> None:
    with Emulator(tmp_path, heartbeat_timeout=600) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "partitioned", FIXTURE, **FAST)
        markers = tmp_path / "markers"
        with start_agent(["start", "-l", label, "--name", "cut-off"], env, tmp_path / "agent.log") as agent:
            ids = hanging_runs(emu, flow, 2)
            every = [i for run_ids in ids.values() for i in run_ids]
            wait_all_hanging(emu, every, markers)
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
