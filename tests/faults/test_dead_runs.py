"""A flow-run process that dies while its agent lives: the agent finishes its run within seconds, with the cause.

Real agents, real flow runs (forked, and plain subprocesses with DAGS_FLOW_RUN_FORK=0 and prefect's own
"process" heartbeat), on the emulator with Server's zombie killer and Lazarus far away (10 minutes), so
that whatever happens is the agent's doing (agents' dead-run report). One run per scenario of the dying
flow (tests/faults/fixtures/dying_flow.py): SIGKILL in a task with a retry left, SIGKILL and a real
segmentation fault in a task without one, SIGKILL between two tasks.

Figures printed per scenario: runs created, ended, executed twice, and seconds from the death (the time
the flow wrote just before it) to the state the agent set.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import psutil
import pytest

from agents.testing import start_agent
from prefect_emulator.testing import Emulator
from tests.faults.faults import (FINISHED, create_runs, first_state_with, parse_time, registered_dag,
                                 runs_with_tasks, task_executions, wait_finished, wait_until)

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dying_flow.py"
TASKS = ("retried", "unretried", "last")
OOM = "was killed by signal 9 (SIGKILL: often the kernel's out-of-memory killer)"
SEGV = "was killed by signal 11 (SIGSEGV: segmentation fault)"
# scenario -> (the run's final state, the text of the state the agent set, the executions each task must have
# started (the killed attempt counts), the agent's state: a task run's (task name) or the flow run's (None))
SCENARIOS = {
    "kill-retried": ("Success", OOM, {"retried": 2, "unretried": 1, "last": 1}, "retried"),
    "kill": ("Failed", OOM, {"retried": 1, "unretried": 1, "last": 0}, None),
    "segv": ("Failed", SEGV, {"retried": 1, "unretried": 1, "last": 0}, None),
    "between": ("Success", OOM, {"retried": 1, "unretried": 1, "last": 1}, None),
}
BOUND = 5.0  # seconds from the death to the new state (issue 19)


def heartbeat_processes(run_ids: List[str]) -> List[psutil.Process]:
    """prefect's `heartbeat flow-run` processes still beating for these runs (orphans of a dead run)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "heartbeat" in cmdline and any(i in cmdline for i in run_ids):
            found.append(proc)
    return found


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "subprocess"])
def test_a_dead_flow_run_process_is_finished_by_its_live_agent_within_seconds(tmp_path: Path, fork: str) -> None:
    with Emulator(tmp_path, heartbeat_timeout=600) as emu:
        # subprocesses keep prefect's default heartbeat, a second process that outlives a killed run
        heartbeat = "thread" if fork == "1" else "process"
        label, env, flow = registered_dag(emu, tmp_path, f"dying-{fork}", FIXTURE, DAGS_FLOW_RUN_FORK=fork,
                                          PREFECT__CLOUD__HEARTBEAT_MODE=heartbeat)
        with start_agent(["start", "-l", label, "--name", "survivor"], env, tmp_path / "agent.log") as agent:
            ids = {die: create_runs(emu, flow, 1, {"die": die})[0] for die in SCENARIOS}
            wait_finished(emu, list(ids.values()), timeout=90)
            rows = runs_with_tasks(emu, ids.values())
            # a finished run's heartbeat process is ended by its flow-run process; a dead one's by the agent
            try:
                wait_until(lambda: not heartbeat_processes(list(ids.values())), 10, "heartbeat processes ended")
                orphans = []
            except AssertionError:
                orphans = heartbeat_processes(list(ids.values()))
            log = agent.output()
    markers = tmp_path / "markers"
    problems = []
    for die, (final, text, executions, task) in SCENARIOS.items():
        row = rows[ids[die]]
        counts = task_executions(markers, row["id"], TASKS)
        died_at = float((markers / "died" / row["id"]).read_text())
        state = first_state_with(row, "was killed by signal", task) if row["state"] in FINISHED else None
        seconds = round(parse_time(state["timestamp"]).timestamp() - died_at, 2) if state else None
        twice = sum(n > 1 for n in task_executions(markers / "done", row["id"], TASKS).values())
        print(f"\nDEAD RUN {die} (agent alive, DAGS_FLOW_RUN_FORK={fork}): created=1, ended="
              f"{int(row['state'] in FINISHED)}, final={row['state']}, executed_twice={twice}, "
              f"seconds_from_death_to_new_state={seconds}")
        if row["state"] != final or counts != executions or twice or state is None:
            problems.append(f"{die}: {row['state']} (want {final}), started {counts} (want {executions}), "
                            f"states {row['states']}, task runs {row['task_runs']}")
            continue
        if text not in state["message"] or f"run {row['id']} dies now" not in state["message"]:
            problems.append(f"{die}: the state must give the cause and the last stderr lines: {state['message']!r}")
        if seconds > BOUND:
            problems.append(f"{die}: {seconds}s from the death to the new state (bound {BOUND}s)")
        if not any(text in log_row["message"] for log_row in row["logs"]):
            problems.append(f"{die}: no log line on the run says why: {row['logs']}")
    assert not problems, "\n".join(problems) + "\n" + log[-4000:]
    assert not orphans, f"prefect heartbeat processes of dead runs are still beating: {orphans}"
