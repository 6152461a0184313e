"""What the dead-run scenarios share, on the host (tests/faults/test_dead_agents.py) and in the stack
(tests/stack/test_dead_runs_stack.py): runs of tests/faults/fixtures/dying_flow.py hanging in a task with a
retry left and in one without, the wait until each task body has started, and the figures and verdict per kind.

`query(document, variables)` is the caller's GraphQL read, returning `data` (the emulator's or the stack's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List

from tests.faults.faults import FINISHED, first_state_with, parse_time, task_executions, wait_until

Query = Callable[[str, dict], dict]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dying_flow.py"
TASKS = ("retried", "unretried", "last")
# what a flow-run process prints when its lease expires (agents.flowrun.lease)
LEASE_EXPIRED = "no heartbeat reached the API"
RUNNING_TASK_RUNS = """query($ids: [uuid!]) { task_run(where: {flow_run_id: {_in: $ids}, state: {_eq: "Running"}}) {
    flow_run_id task { name } } }"""
# kind of run -> the task it hangs in
HANGS_IN = {"hang-retried": "retried", "hang": "unretried"}
# kind of run -> (its final state, the task whose state names the fault, task -> executions started)
WANT = {"hang-retried": ("Success", "retried", {"retried": 2, "unretried": 1, "last": 1}),
        "hang": ("Failed", None, {"retried": 1, "unretried": 1, "last": 0})}


def hanging_runs(create: Callable[[dict], str], per_kind: int) -> Dict[str, List[str]]:
    """`per_kind` runs (made by `create(parameters)`) hanging in a task with a retry left ("hang-retried") and
    in one without ("hang")."""
    return {kind: [create({"die": kind}) for _ in range(per_kind)] for kind in WANT}


def every_run(ids: Dict[str, List[str]]) -> List[str]:
    return [run_id for run_ids in ids.values() for run_id in run_ids]


def wait_all_hanging(query: Query, ids: Dict[str, List[str]], markers: Path, timeout: float = 90) -> None:
    """Until every run is Running the task it hangs in (HANGS_IN), and that task's body has started (its
    task run is Running a moment before; the tasks before it pass quickly, so any other task Running or
    started does not count)."""
    hanging = {run_id: HANGS_IN[kind] for kind, run_ids in ids.items() for run_id in run_ids}

    def all_hanging() -> bool:
        running = query(RUNNING_TASK_RUNS, {"ids": list(hanging)})["task_run"]
        in_task = {t["flow_run_id"] for t in running if t["task"]["name"] == hanging[t["flow_run_id"]]}
        return in_task == set(hanging) and all(
            task_executions(markers, run_id, [task])[task] >= 1 for run_id, task in hanging.items())

    wait_until(all_hanging, timeout, f"{len(hanging)} runs Running their hanging task, its body started")


def report(scenario: str, ids: Dict[str, List[str]], rows: Dict[str, dict], markers: Path, fault_at: float,
           text: str, bound: float = 0.0) -> List[str]:
    """Prints the figures per kind of run and returns what is wrong (empty when all is as required): each run
    ends as WANT says, with a state whose message holds `text` (within `bound` seconds of `fault_at` when
    given), and no task body ran to its end twice."""
    problems = []
    for kind, run_ids in ids.items():
        final, task, executions = WANT[kind]
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
            elif bound and seconds[-1] > bound:
                problems.append(f"{scenario} {kind}: {run_id} finished {seconds[-1]}s after the fault, past the "
                                f"bound of {bound:g}s")
        print(f"\nDEAD RUN {scenario}, {kind}: created={len(run_ids)}, ended={ended}, executed_twice={twice}, "
              f"seconds_from_fault_to_new_state={seconds}")
        if twice:
            problems.append(f"{scenario} {kind}: {twice} runs executed a task body to its end twice")
    return problems
