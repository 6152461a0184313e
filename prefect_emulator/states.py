"""Flow run and task run states: writing them (with Server's rules), cancelling, and the zombie killer's check.

States are loaded with prefect's own StateSchema, so a state the client sends is judged by the same classes
(`is_finished()`, `is_running()`...) that Prefect Server 1.4.1 uses. Rules kept from Server:
- each new state gets version = run version + 1, and the run's `state*`, `version`, `start_time`,
  `end_time` and `heartbeat` columns follow it (Server does this with Postgres triggers);
- Submitted is accepted only while the run is still Scheduled (Server: a submitted-lock), so of several
  agents racing for a run exactly one submits it; the others get "State update failed: ...", which
  prefect's agent treats as "someone else has it";
- a finished flow run keeps its state: later updates get "State update failed: ... already finished",
  except Scheduled, which is how the UI restarts a finished run;
- Cancelled cancels the run's unfinished task runs; cancel_flow_run on a Running run asks for Cancelling;
- a task run may only become Running while its flow run is Running;
- the agent that sets Submitted (header X-PREFECT-AGENT-ID) is recorded as the run's agent_id.

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, List, Optional

import prefect
from prefect.engine.state import Cancelled, Cancelling, Failed, Queued, Scheduled, State
from prefect.serialization.state import StateSchema

from .context import RequestContext
from .errors import ApiError
from .tenancy import require
from .timestamps import normalize, now, parse

# the state names get_runs_in_queue treats as "ready" (Server: subclasses of Scheduled or Queued)
SCHEDULED_STATES = sorted(
    name for name, cls in vars(prefect.engine.state).items()
    if isinstance(cls, type) and issubclass(cls, (Scheduled, Queued))
)


def load_state(data: Any, what: str) -> State:
    """Deserializes a state sent by a client, or raises an error naming the problem."""
    if not isinstance(data, dict) or "type" not in data:
        raise ApiError(f"Invalid state for {what}: expected a serialized prefect State (an object with "
                       f"'type'), got {data!r:.200}")
    try:
        return StateSchema().load(data)
    except Exception as exc:
        raise ApiError(f"Invalid state for {what}: {exc}")


def state_class(name: Optional[str]) -> Optional[type]:
    """The prefect State class named `name` (None if unknown)."""
    cls = getattr(prefect.engine.state, name or "", None)
    return cls if isinstance(cls, type) and issubclass(cls, State) else None


def is_finished(name: Optional[str]) -> bool:
    """True when the state named `name` is a finished one (Success, Failed, Cancelled...)."""
    cls = state_class(name)
    return bool(cls and cls().is_finished())


def _insert_state(ctx: RequestContext, run: dict, state: State, state_table: str, owner: str) -> Dict[str, Any]:
    """Inserts the next state row of a flow or task run and returns the run's column changes.

    Args:
        ctx: the request
        run: the flow_run or task_run row
        state: the new state
        state_table: flow_run_state or task_run_state
        owner: the state table's column naming the run (flow_run_id or task_run_id)

    Returns:
        The columns both kinds of run change: version, state, its time, message and start time; plus
        end_time when the state is finished.
    """
    stamp = now()
    version = (run["version"] or 0) + 1
    start = getattr(state, "start_time", None)
    cols = {
        "version": version, "timestamp": stamp, "message": state.message, "result": None,
        "start_time": normalize(start) if start else None, "state": type(state).__name__,
        "serialized_state": state.serialize(),
    }
    ctx.store.insert(state_table, dict(cols, tenant_id=run["tenant_id"], **{owner: run["id"]}))
    changes = {"version": version, "state": cols["state"], "state_timestamp": stamp,
               "state_message": state.message, "state_start_time": cols["start_time"],
               "serialized_state": cols["serialized_state"]}
    if state.is_finished():
        changes["end_time"] = stamp
    return changes


def write_flow_run_state(ctx: RequestContext, run: dict, state: State) -> dict:
    """Inserts a flow run state and moves the run to it (no rule checks). Returns the updated run."""
    changes = _insert_state(ctx, run, state, "flow_run_state", "flow_run_id")
    stamp = changes["state_timestamp"]
    if state.is_running() and not run["start_time"]:
        changes["start_time"] = stamp
    if state.is_running() or state.is_submitted():
        changes["heartbeat"] = stamp
    return ctx.store.update("flow_run", run["id"], **changes)


def write_task_run_state(ctx: RequestContext, task_run: dict, state: State) -> dict:
    """Inserts a task run state and moves the task run to it (no rule checks). Returns the updated row."""
    changes = _insert_state(ctx, task_run, state, "task_run_state", "task_run_id")
    if state.is_running():
        changes["heartbeat"] = changes["state_timestamp"]
        if not task_run["start_time"]:
            changes["start_time"] = changes["state_timestamp"]
    return ctx.store.update("task_run", task_run["id"], **changes)


def _cancel_task_runs(ctx: RequestContext, flow_run_id: str, state: State) -> None:
    for task_run in ctx.store.find("task_run", "flow_run_id", flow_run_id):
        if not is_finished(task_run["state"]):
            write_task_run_state(ctx, task_run, Cancelled(state.message or "Flow run was cancelled"))


def set_flow_run_state(ctx: RequestContext, flow_run_id: str, state: State) -> dict:
    """Applies Server's rules, then writes the state. Returns the updated run."""
    run = ctx.store.get("flow_run", flow_run_id)
    if run is None:
        raise ApiError(f"State update failed for flow run ID {flow_run_id}: no such flow run.")
    if is_finished(run["state"]) and type(state) is not Scheduled:
        # Scheduled stays allowed: it is how the UI restarts a finished run
        raise ApiError(f"State update failed: flow run {flow_run_id} is already finished ({run['state']}); "
                       f"a finished run keeps its state, so {type(state).__name__} was not applied (only Scheduled, "
                       "a restart, is accepted).")
    if state.is_submitted() and run["state"] not in SCHEDULED_STATES:
        raise ApiError(f"State update failed: this run has already been submitted (flow run {flow_run_id} "
                       f"is {run['state']}, not Scheduled).")
    if isinstance(state, Cancelled):
        _cancel_task_runs(ctx, flow_run_id, state)
    run = write_flow_run_state(ctx, run, state)
    if state.is_submitted() and ctx.agent_id and ctx.store.get("agent", ctx.agent_id):
        # agents send X-PREFECT-AGENT-ID on every request; Server records who submitted the run
        run = ctx.store.update("flow_run", run["id"], agent_id=ctx.agent_id)
    return run


def set_flow_run_states(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_flow_run_states: applies each state with Server's rules (module doc), all or none."""
    results: List[dict] = []
    for item in input["states"]:
        state = load_state(item["state"], f"flow run {item['flow_run_id']}")
        set_flow_run_state(ctx, item["flow_run_id"], state)
        results.append({"id": item["flow_run_id"], "status": "SUCCESS", "message": None})
    return {"states": results}


def set_task_run_states(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_task_run_states: applies each task run state, all or none."""
    results: List[dict] = []
    for item in input["states"]:
        task_run = ctx.store.get("task_run", item["task_run_id"])
        if task_run is None:
            raise ApiError(f"State update failed for task run ID {item['task_run_id']}: no such task run.")
        state = load_state(item["state"], f"task run {item['task_run_id']}")
        flow_run = ctx.store.get("flow_run", task_run["flow_run_id"]) or {}
        if state.is_running() and flow_run.get("state") != "Running":
            raise ApiError(f"State update failed for task run ID {task_run['id']}: provided a running state but "
                           f"associated flow run {task_run['flow_run_id']} is not in a running state "
                           f"(it is {flow_run.get('state')}).")
        old = task_run["serialized_state"] or {}
        if not state.cached_inputs and old.get("cached_inputs"):
            # keep the inputs cached by an earlier state, as Server does, so retries can reuse them
            state.cached_inputs = load_state(old, f"task run {task_run['id']}").cached_inputs
        write_task_run_state(ctx, task_run, state)
        results.append({"id": task_run["id"], "status": "SUCCESS", "message": None})
    return {"states": results}


def cancel_flow_run(ctx: RequestContext, input: dict) -> dict:
    """Mutation cancel_flow_run: Cancelled, or Cancelling for a Running run; no-op when finished."""
    run = require(ctx, "flow_run", input["flow_run_id"], "flow run")
    if is_finished(run["state"]):
        return {"state": run["state"]}
    current = load_state(run["serialized_state"], f"flow run {run['id']}")
    if current.is_running():
        new: State = Cancelling("Flow run is cancelling")
    else:
        new = Cancelled("Flow run is cancelled")
    run = set_flow_run_state(ctx, run["id"], new)
    return {"state": run["state"]}


def kill_zombies(ctx: RequestContext, timeout: float) -> List[str]:
    """Fails Running or Cancelling flow runs (and their running task runs) whose heartbeat is older than
    `timeout` seconds, logging why on each, as Server's ZombieKiller does.

    Returns:
        the ids of the runs marked Failed
    """
    cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=timeout)
    killed = []
    for run in ctx.store.all("flow_run"):
        # Cancelling too: a run cancelled after its process died would otherwise never finish
        if run["state"] not in ("Running", "Cancelling") or not run["heartbeat"] or parse(run["heartbeat"]) > cutoff:
            continue
        flow = ctx.store.get("flow", run["flow_id"]) or {}
        if (flow.get("settings") or {}).get("heartbeat_enabled") is False:
            continue
        message = (f"No heartbeat detected from the flow run for more than {timeout:g} seconds "
                   "(zombie killer); marking the run as failed.")
        for task_run in ctx.store.find("task_run", "flow_run_id", run["id"]):
            if task_run["state"] == "Running":
                write_task_run_state(ctx, task_run, Failed(message))
                _zombie_log(ctx, run, message, task_run_id=task_run["id"])
        write_flow_run_state(ctx, run, Failed(message))
        _zombie_log(ctx, run, message)
        killed.append(run["id"])
    return killed


def _zombie_log(ctx: RequestContext, run: dict, message: str, task_run_id: Optional[str] = None) -> None:
    # what `prefect run --watch` and the UI show the user about why the run failed
    ctx.store.insert("log", {
        "tenant_id": run["tenant_id"], "flow_run_id": run["id"], "task_run_id": task_run_id, "timestamp": now(),
        "name": "prefect-server.ZombieKiller." + ("TaskRun" if task_run_id else "FlowRun"), "level": "ERROR",
        "message": message, "info": None,
    })


RESOLVERS: Dict[str, Callable] = {
    "set_flow_run_states": set_flow_run_states,
    "set_task_run_states": set_task_run_states,
    "cancel_flow_run": cancel_flow_run,
}
