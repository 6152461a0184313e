"""Prefect Server's zombie killer: task runs left Running, and Cancelling flow runs, whose flow run stopped beating.

Server 1.4.1 (`prefect_server/services/towel/zombie_killer.py`) does two things each round, with a heartbeat
cutoff of 10 minutes (here `--heartbeat-timeout` seconds):
- task runs that are Running while their flow run's heartbeat is at least the cutoff old (and the flow group
  does not switch heartbeats off, `heartbeat_enabled: false`): if the flow run is (exactly) Running and the
  task has retries left (its Retrying states so far < the task's `max_retries`), the task run is set Retrying,
  due after the task's `retry_delay`; otherwise it is set Failed. Either way an ERROR log on the task run
  (name `prefect-server.ZombieKiller.TaskRun`) gives the state's message;
- flow runs that are Cancelling with such a heartbeat are set Failed, with an ERROR log on the run
  (`prefect-server.ZombieKiller.FlowRun`): their process is gone, so nobody would ever finish the cancel.

It never fails a Running flow run itself. A run whose process died mid-task is left Running: a task set
Retrying makes it ready again (get_runs_in_queue returns Running runs with a due Scheduled-like task run, and
prefect's agent restarts them), and a run left with no task run due or in progress is rescheduled by Lazarus
(lazarus.py). At most 5000 of each per round, most recently updated first, as Server loads them.
"""
from __future__ import annotations

import datetime
from typing import Dict, List, Tuple

from prefect.engine.state import Failed, Retrying, State

from . import filters
from .context import RequestContext
from .errors import ApiError
from .logs import write_run_logs
from .states import set_flow_run_state, set_task_run_state
from .timestamps import to_iso

LOG_NAME = "prefect-server.ZombieKiller"
BATCH = 5000  # Server loads at most this many task runs (and flow runs) per round
FLOW_RUN_MESSAGE = "No heartbeat detected from the flow run; marking the run as failed."
_HEARTBEATS_OFF = {"_not": {"settings": {"_contains": {"heartbeat_enabled": False}}}}


def _cutoff(now: datetime.datetime, timeout: float) -> str:
    return to_iso(now - datetime.timedelta(seconds=timeout))


def zombie_task_runs_where(now: datetime.datetime, timeout: float) -> dict:
    """The `task_run_bool_exp` of the task runs to reap as of `now` (the clause Server builds).

    Args:
        now: the instant of the round (UTC)
        timeout: seconds since the flow run's last heartbeat after which its Running task runs are zombies
    """
    return {"state": {"_eq": "Running"}, "flow_run": {"heartbeat": {"_lte": _cutoff(now, timeout)}},
            "task": {"flow": {"flow_group": _HEARTBEATS_OFF}}}


def zombie_cancelling_runs_where(now: datetime.datetime, timeout: float) -> dict:
    """The `flow_run_bool_exp` of the Cancelling flow runs to fail as of `now` (the clause Server builds)."""
    return {"state": {"_eq": "Cancelling"}, "heartbeat": {"_lte": _cutoff(now, timeout)},
            "flow": {"flow_group": _HEARTBEATS_OFF}}


def _verdict(ctx: RequestContext, task_run: dict, now: datetime.datetime) -> State:
    """Retrying when the flow run is Running and the task has retries left, else Failed (Server's messages)."""
    flow_run = ctx.store.get("flow_run", task_run["flow_run_id"]) or {}
    task = ctx.store.get("task", task_run["task_id"]) or {}
    retries = len([s for s in ctx.store.find("task_run_state", "task_run_id", task_run["id"])
                   if s["state"] == "Retrying"])
    max_retries = task.get("max_retries") or 0
    if flow_run.get("state") == "Running" and retries < max_retries:
        # Server's text, missing space included
        message = ("No heartbeat detected from the remote task; retrying the run."
                   f"This will be retry {retries + 1} of {max_retries}.")
        due = now + datetime.timedelta(seconds=task.get("retry_delay") or 0)
        return Retrying(message=message, run_count=retries + 1, start_time=due)
    return Failed(message=f"No heartbeat detected from the remote task; marking the task run {task_run['id']} "
                          f"({task_run['name']}) as failed.")


def reap_zombie_task_runs(ctx: RequestContext, now: datetime.datetime, timeout: float) -> List[Tuple[str, str]]:
    """Retries or fails the Running task runs of flow runs without a heartbeat for `timeout` seconds at `now`
    (a retry is due `retry_delay` after `now`).

    Call it inside a store transaction.

    Returns:
        [(task run id, the state it was set to)]
    """
    rows = filters.select(ctx.store, "task_run", where=zombie_task_runs_where(now, timeout),
                          order_by=[{"updated": "desc"}], limit=BATCH)
    done = []
    for task_run in rows:
        state = _verdict(ctx, task_run, now)
        try:
            set_task_run_state(ctx, task_run["id"], state)
        except ApiError:
            continue  # refused by the state rules (Server logs the error and goes on)
        _log(ctx, task_run["flow_run_id"], state.message, task_run_id=task_run["id"])
        done.append((task_run["id"], type(state).__name__))
    return done


def reap_zombie_cancelling_flow_runs(ctx: RequestContext, now: datetime.datetime, timeout: float) -> List[str]:
    """Fails the Cancelling flow runs without a heartbeat for `timeout` seconds at `now`. Returns their ids."""
    rows = filters.select(ctx.store, "flow_run", where=zombie_cancelling_runs_where(now, timeout),
                          order_by=[{"updated": "desc"}], limit=BATCH)
    done = []
    for run in rows:
        try:
            set_flow_run_state(ctx, run["id"], Failed(message=FLOW_RUN_MESSAGE))
        except ApiError:
            continue
        _log(ctx, run["id"], FLOW_RUN_MESSAGE)
        done.append(run["id"])
    return done


def any_zombies(ctx: RequestContext, now: datetime.datetime, timeout: float) -> bool:
    """True when a round as of `now` has a task run or a Cancelling flow run to reap (reads only)."""
    return bool(filters.select(ctx.store, "task_run", where=zombie_task_runs_where(now, timeout), limit=1)
                or filters.select(ctx.store, "flow_run", where=zombie_cancelling_runs_where(now, timeout), limit=1))


def kill_zombies(ctx: RequestContext, now: datetime.datetime, timeout: float) -> Dict[str, list]:
    """One round of Server's zombie killer as of `now`: task runs first, then Cancelling flow runs (the body of
    services.ZombieKiller.run_once).

    Returns:
        {"task_runs": [(id, new state)], "flow_runs": [ids failed]}
    """
    return {"task_runs": reap_zombie_task_runs(ctx, now, timeout),
            "flow_runs": reap_zombie_cancelling_flow_runs(ctx, now, timeout)}


def _log(ctx: RequestContext, flow_run_id: str, message: str, task_run_id: str = "") -> None:
    # what `prefect run --watch` and the UI show about why the task (or run) changed
    entry: Dict[str, str] = {"flow_run_id": flow_run_id, "level": "ERROR", "message": message,
                             "name": f"{LOG_NAME}.{'TaskRun' if task_run_id else 'FlowRun'}"}
    if task_run_id:
        entry["task_run_id"] = task_run_id
    write_run_logs(ctx, {"logs": [entry]})

