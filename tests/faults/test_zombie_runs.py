"""Runs that were Running when their agent and flow-run processes were killed (what `docker kill` of a replica
does to them), with real agents and Prefect Server's zombie killer and Lazarus (the emulator's, made fast).

The path, as on Server: the run's heartbeat stops; after the heartbeat timeout the zombie killer sets the task
that was running Retrying (it has a retry left) and leaves the run Running; the retry being due makes the run
ready again (get_runs_in_queue), and another of our agents submits it (agents.agent.hosting: a Submitted state with
a submission id, under Server's Submitted lock) and runs it to Success. Lazarus runs every second meanwhile
and must find nothing to do: the run never sat stale with nothing due.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from agents.testing import start_agent
from tests.faults.faults import FINISHED, create_runs, executions, registered_dag, wait_finished, wait_until
from prefect_emulator.testing import Emulator

pytestmark = pytest.mark.slow
RUNS = 3
HEARTBEAT_TIMEOUT = 6.0
LAZARUS = ["--lazarus-interval", "1", "--lazarus-stale-after", str(HEARTBEAT_TIMEOUT + 2)]
ZOMBIE_RETRY = "No heartbeat detected from the remote task; retrying the run."
TASKS = """query($ids: [uuid!]) { task_run(where: {flow_run_id: {_in: $ids}}) { state } }"""


def tasks_running(emu: Emulator, ids: list) -> bool:
    rows = emu.graphql(TASKS, {"ids": ids})["data"]["task_run"]
    return sum(t["state"] == "Running" for t in rows) == len(ids)


def test_runs_running_in_a_killed_agent_are_retried_by_another_agent_and_succeed(tmp_path: Path) -> None:
    with Emulator(tmp_path, heartbeat_timeout=HEARTBEAT_TIMEOUT, extra_args=LAZARUS) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "zombie-dag", PREFECT__CLOUD__HEARTBEAT_INTERVAL="1")
        doomed = start_agent(["start", "-l", label, "--name", "doomed", "--limit", "0"], env,
                             tmp_path / "doomed.log")
        try:
            ids = create_runs(emu, flow, RUNS, {"seconds": 600})
            wait_until(lambda: tasks_running(emu, ids), 90, f"{RUNS} tasks Running in the doomed agent")
            # a task is Running a moment before its body writes its start marker: kill only once all started
            markers = tmp_path / "markers"
            wait_until(lambda: len(executions(markers)) == RUNS, 30, f"{RUNS} task bodies started")
            os.killpg(doomed.proc.pid, signal.SIGKILL)  # the agent and its flow-run processes, as docker kill
            started = time.monotonic()
        finally:
            doomed.stop()
        with start_agent(["start", "-l", label, "--name", "rescuer"], env, tmp_path / "rescuer.log"):
            rows = wait_finished(emu, ids, timeout=120)
        took = time.monotonic() - started
    done = executions(tmp_path / "markers" / "done")
    result = {
        "created": len(ids), "success": sum(r["state"] == "Success" for r in rows),
        "failed": sum(r["state"] == "Failed" for r in rows),
        "lost": sum(r["state"] not in FINISHED for r in rows),
        # a task body that ran to its end twice (the killed attempt never ends: starts are 2 per run)
        "duplicated": sum(done.get(i, 0) > 1 for i in ids),
        "seconds_to_recover": round(took, 1),  # from the kill until every run was Success
    }
    print("\nFAULT agent SIGKILL with runs Running (host): " + ", ".join(f"{k}={v}" for k, v in result.items()))
    assert result["success"] == RUNS and result["lost"] == 0, rows
    assert all(done.get(i) == 1 for i in ids), f"each run's task body must end once: {done}"
    # started twice each: the killed attempt and the retry, nothing more
    assert executions(tmp_path / "markers") == {i: 2 for i in ids}
    for row in rows:
        messages = [log["message"] for log in row["logs"]]
        assert any(m.startswith(ZOMBIE_RETRY) for m in messages), messages
        assert not any("Lazarus" in m for m in messages), messages
        submitted = [s for s in row["states"] if s["state"] == "Submitted"]
        assert len(submitted) == 2 and "rescuer" in submitted[-1]["message"], row["states"]
