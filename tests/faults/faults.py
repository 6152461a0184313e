"""What the fault tests share: a DAG that counts its executions, reading runs back, and the figures printed.

Figures of a fault scenario (printed by every test, asserted where they are the requirement):
created runs, Success, lost (not finished when the wait ends), duplicated (executed more than once, by the
markers), and seconds to recover (from the fault until every stranded run was back in the queue).
"""
from __future__ import annotations

import collections
import datetime
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from agents.testing import run_cli, runtime_env
from prefect_emulator.testing import Emulator
from tests.runtime.conftest import write_plain_dag

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "counted_flow.py"
FINISHED = {"Success", "Failed", "Cancelled", "TimedOut", "Skipped", "TriggerFailed"}
# the text of the log line agents.agent.recovery writes on a re-queued run, and agents.flowrun on a given-up one
REQUEUED = "stranded-run recovery"
GAVE_UP = "gives this run up"


def counted_env(api_url: str, workdir: Path, name: str, labels: List[str], fixture: Path = FIXTURE,
                **extra: str) -> Dict[str, str]:
    """Environment for `python -m agents` with a DAGS_FOLDER holding one counted DAG (or another `fixture`),
    markers in `workdir/markers`, and quick stranded-run recovery (DAGS_STRANDED_AFTER=10)."""
    for folder in ("home", "env", "markers"):
        (workdir / folder).mkdir(exist_ok=True)
    write_plain_dag(workdir / "dags", name, labels, fixture=fixture)
    env = runtime_env(api_url, workdir / "home", workdir / "env", DAGS_FOLDER=str(workdir / "dags"),
                      DAGS_TEST_MARKERS=str(workdir / "markers"), DAGS_STRANDED_AFTER="10",
                      PREFECT__CLOUD__HEARTBEAT_MODE="thread")
    env.update(extra)
    return env


def register(env: Dict[str, str]) -> None:
    """`python -m agents init` then `register`, asserting both succeed."""
    for command in (["init"], ["register"]):
        result = run_cli(command, env)
        assert result.returncode == 0, result.stdout


def registered_dag(emu: Emulator, workdir: Path, name: str, fixture: Path = FIXTURE,
                   **extra: str) -> Tuple[str, Dict[str, str], str]:
    """A counted DAG `name` (or another `fixture`) with a fresh label, initialised and registered on `emu`.

    Returns:
        (its label, the environment for `python -m agents` (see `counted_env`), its flow id)
    """
    label = f"{name}-{uuid.uuid4().hex[:6]}"
    env = counted_env(emu.url, workdir, name, [label], fixture, **extra)
    register(env)
    return label, env, flow_id(emu, name)


def flow_id(emu: Emulator, name: str) -> str:
    """The id of the newest version of flow `name`."""
    flows = emu.graphql('query($n: String) { flow(where: {name: {_eq: $n}}, order_by: {version: desc}) { id } }',
                        {"n": name})["data"]["flow"]
    return flows[0]["id"]


def create_runs(emu: Emulator, flow: str, count: int, parameters: Optional[dict] = None) -> List[str]:
    """Creates `count` runs of `flow` through GraphQL (as prefect's Client does); returns their ids."""
    ids = []
    for _ in range(count):
        answer = emu.graphql("mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }",
                             {"input": {"flow_id": flow, "parameters": parameters or {}}})
        assert "errors" not in answer, answer
        ids.append(answer["data"]["create_flow_run"]["id"])
    return ids


def runs(emu: Emulator, ids: Iterable[str]) -> List[dict]:
    """The runs with state, agent id, their state history (oldest first) and log messages."""
    answer = emu.graphql("""query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) {
        id state agent_id
        states(order_by: {timestamp: asc}) { state timestamp message }
        logs { message } } }""", {"ids": list(ids)})
    assert "errors" not in answer, answer
    return answer["data"]["flow_run"]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.25) -> float:
    """Waits until `condition()` holds; returns the seconds it took. Fails naming `what` on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(poll)
    return time.monotonic() - started


def wait_all_finished(read: Callable[[], List[dict]], timeout: float) -> List[dict]:
    """Reads runs (rows with a `state`) until all are finished or the timeout passes (the unfinished ones
    then count as lost); returns the last rows read."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read()
        if all(r["state"] in FINISHED for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def wait_finished(emu: Emulator, ids: List[str], timeout: float) -> List[dict]:
    """`wait_all_finished` for these runs of the emulator."""
    return wait_all_finished(lambda: runs(emu, ids), timeout)


def executions(markers: Path) -> Dict[str, int]:
    """Flow run id -> how many times its task started (one marker file per execution); `markers/done` holds
    one per execution that ran to its end."""
    if not markers.is_dir():
        return {}
    return dict(collections.Counter(p.name.split(".")[0] for p in markers.iterdir() if p.is_file()))


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def requeue_times(rows: List[dict]) -> List[datetime.datetime]:
    """When each re-queued run went back to Scheduled (agents.agent.recovery's state)."""
    return [parse_time(s["timestamp"]) for r in rows for s in r["states"]
            if s["state"] == "Scheduled" and REQUEUED in (s["message"] or "")]


def figures(scenario: str, ids: List[str], rows: List[dict], markers: Path,
            fault_at: Optional[datetime.datetime] = None) -> Dict[str, object]:
    """Prints and returns the scenario's figures (module doc)."""
    ran = executions(markers)
    back = requeue_times(rows)
    result = {
        "created": len(ids),
        "success": sum(r["state"] == "Success" for r in rows),
        "lost": sum(r["state"] not in FINISHED for r in rows) + len(set(ids) - {r["id"] for r in rows}),
        "duplicated": sum(1 for i in ids if ran.get(i, 0) > 1),
        "not_executed": sum(1 for i in ids if ran.get(i, 0) == 0),
        "requeued": len(back),
        "seconds_to_recover": round((max(back) - fault_at).total_seconds(), 1) if back and fault_at else None,
    }
    print(f"\nFAULT {scenario}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
    return result


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def peak_held(rows: List[dict]) -> Dict[str, int]:
    """Agent id -> the most runs it held at once according to the API: a run counts from its (last)
    Submitted state to its finished state."""
    events: Dict[str, List[tuple]] = collections.defaultdict(list)
    for row in rows:
        times = [(parse_time(s["timestamp"]), s["state"]) for s in row["states"]]
        submitted = [t for t, state in times if state == "Submitted"]
        ended = [t for t, state in times if state in FINISHED]
        if row["agent_id"] and submitted:
            # an end sorts before a start at the same instant: a slot freed and taken is not an overlap
            events[row["agent_id"]] += [(submitted[-1], 1), (ended[-1] if ended else utc_now(), -1)]
    peaks = {}
    for agent, changes in events.items():
        held = peak = 0
        for _, change in sorted(changes, key=lambda e: (e[0], e[1])):
            held += change
            peak = max(peak, held)
        peaks[agent] = peak
    return peaks


# the runs with their states, their task runs' states and their logs (the dead-run tests read them all)
RUNS_WITH_TASKS = """query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) {
    id state
    states(order_by: {timestamp: asc}) { state timestamp message }
    task_runs { state task { name } states(order_by: {timestamp: asc}) { state timestamp message } }
    logs { message } } }"""


def runs_with_tasks(emu: Emulator, ids: Iterable[str]) -> Dict[str, dict]:
    """Run id -> the run as `RUNS_WITH_TASKS` reads it."""
    answer = emu.graphql(RUNS_WITH_TASKS, {"ids": list(ids)})
    assert "errors" not in answer, answer
    return {row["id"]: row for row in answer["data"]["flow_run"]}


def task_executions(markers: Path, run_id: str, tasks: Iterable[str]) -> Dict[str, int]:
    """Task name -> how many of its executions in this run left a marker `<run>.<task>.<pid>` in `markers`
    (started ones there, finished ones in `markers/done`)."""
    names = [p.name.split(".")[1] for p in markers.glob(f"{run_id}.*")]
    return {task: names.count(task) for task in tasks}


def first_state_with(row: dict, text: str, task: Optional[str] = None) -> Optional[dict]:
    """The first state whose message holds `text`: of `task`'s run when given, else of the flow run."""
    if task:
        states = next((t["states"] for t in row["task_runs"] if t["task"]["name"] == task), [])
    else:
        states = row["states"]
    return next((s for s in states if text in (s["message"] or "")), None)
