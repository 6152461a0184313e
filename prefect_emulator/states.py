"""Flow run and task run states: writing them (with Server's rules) and cancelling (zombies.py: the zombie killer).

States are loaded with prefect's own StateSchema, so a state the client sends is judged by the same classes
(`is_finished()`, `is_running()`...) that Prefect Server 1.4.1 uses. Rules kept from Server
(`prefect_server/api/states.py`, `graphql/states.py` and the Postgres triggers of its migrations):
- a state whose JSON is over 1 MB (sys.getsizeof(json.dumps(state)) > 1 000 000) is refused with
  "State payload is too large." before it is even loaded;
- each new state gets version = run version + 1, and the run's `state*` and `version` columns follow it;
  `start_time` is set by the first Running state (the name, not subclasses such as Cancelling), `end_time`
  by Success, Failed, Cached, TimedOut, Looped and Cancelled only (not Skipped, Mapped, TriggerFailed...);
- any state may follow any other, finished or not: Server has no state-machine guard;
- Submitted is guarded by Server's submitted lock: an in-memory set of run ids that each stay for 30 s from
  the first Submitted (Server's ExpiringSet). A second Submitted for the same run within those 30 s gets
  "State update failed: this run has already been submitted." whatever the run's state, so of several
  agents racing for a run exactly one submits it; after 30 s Submitted is accepted again. The lock is
  taken before anything is written and is not released when the request fails, as on Server;
- Running and Submitted (and Cancelling, a Running subclass) set a flow run's heartbeat; Running (and
  Cancelling) a task run's;
- Cancelled cancels the run's unfinished task runs; cancel_flow_run on a Running run asks for Cancelling,
  on a finished run changes nothing;
- a task run may only become Running while its flow run is (exactly) Running;
- a task run's cached inputs are carried to a new state that has none;
- the agent that sets Submitted (header X-PREFECT-AGENT-ID) is recorded as the run's agent_id.

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves no row half-written (Server writes the
states of a batch one by one; only the submitted lock outlives a refused request, as it does on Server).
"""
from __future__ import annotations

import json
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import prefect
from prefect.engine.state import Cancelled, Cancelling, Queued, Scheduled, State
from prefect.serialization.state import StateSchema

from . import cloud_hooks
from .context import RequestContext
from .errors import ApiError
from .store import Store
from .timestamps import normalize, now

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


# Server's run triggers: which state names set a run's start_time and end_time
START_STATE = "Running"
END_STATES = frozenset({"Success", "Failed", "Cached", "TimedOut", "Looped", "Cancelled"})
MAX_STATE_SIZE = 1_000_000  # bytes of sys.getsizeof(json.dumps(state)), Server's limit
SUBMITTED_LOCK_SECONDS = 30.0  # Server: ExpiringSet(duration_seconds=30)


def state_hierarchy() -> Dict[str, List[str]]:
    """Server's reference_data.state_hierarchy: each prefect state name mapped to itself and every subclass
    (e.g. Success -> Success, Cached, Mapped, Skipped), what the UI's state filters query with `_in`."""
    hierarchy: Dict[str, List[str]] = {}
    for name, cls in vars(prefect.engine.state).items():
        if isinstance(cls, type) and issubclass(cls, State):
            for parent in cls.__mro__:
                if isinstance(parent, type) and issubclass(parent, State):
                    hierarchy.setdefault(parent.__name__, []).append(name)
    return hierarchy


class SubmittedLock:
    """Server's submitted-state lock: a set of flow run ids, each kept for `duration` seconds after it is added.

    Args:
        duration: seconds a run id stays locked (Server: 30)
        clock: monotonic seconds (tests may pass their own)
    """

    def __init__(self, duration: float = SUBMITTED_LOCK_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.duration = duration
        self.clock = clock
        self._until: Dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, run_id: str) -> bool:
        """Locks `run_id`; returns False (and changes nothing) if it is still locked."""
        with self._lock:
            now_ = self.clock()
            for key in [k for k, until in self._until.items() if until <= now_]:
                del self._until[key]  # expired, as Server's timer removes them
            if run_id in self._until:
                return False
            self._until[run_id] = now_ + self.duration
            return True

    def held(self, run_id: str) -> bool:
        """True while `run_id` is locked."""
        with self._lock:
            return self._until.get(run_id, 0.0) > self.clock()


# one lock per emulator store: in memory, like Server's, so a restart forgets it
_SUBMITTED_LOCKS: "weakref.WeakKeyDictionary[Store, SubmittedLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def submitted_lock(store: Store) -> SubmittedLock:
    """The submitted lock of this emulator's store."""
    with _LOCKS_GUARD:
        if store not in _SUBMITTED_LOCKS:
            _SUBMITTED_LOCKS[store] = SubmittedLock()
        return _SUBMITTED_LOCKS[store]


def check_state_size(data: Any) -> None:
    """Refuses a serialized state over Server's 1 MB limit, measured as Server measures it."""
    if sys.getsizeof(json.dumps(data)) > MAX_STATE_SIZE:
        raise ApiError("State payload is too large.")


def _insert_state(ctx: RequestContext, run: dict, state: State, state_table: str, owner: str
                  ) -> Tuple[Dict[str, Any], dict]:
    """Inserts the next state row of a flow or task run and returns the run's column changes.

    Args:
        ctx: the request
        run: the flow_run or task_run row
        state: the new state
        state_table: flow_run_state or task_run_state
        owner: the state table's column naming the run (flow_run_id or task_run_id)

    Returns:
        The columns both kinds of run change (Server's triggers): version, state, its time, message and start
        time; start_time on the first Running; end_time on the states in END_STATES. Then the new state row.
    """
    stamp = now()
    version = (run["version"] or 0) + 1
    start = getattr(state, "start_time", None)
    cols = {
        "version": version, "timestamp": stamp, "message": state.message, "result": None,
        "start_time": normalize(start) if start else None, "state": type(state).__name__,
        "serialized_state": state.serialize(),
    }
    state_row = ctx.store.insert(state_table, dict(cols, tenant_id=run["tenant_id"], **{owner: run["id"]}))
    changes = {"version": version, "state": cols["state"], "state_timestamp": stamp,
               "state_message": state.message, "state_start_time": cols["start_time"],
               "serialized_state": cols["serialized_state"]}
    if cols["state"] == START_STATE and not run["start_time"]:
        changes["start_time"] = stamp  # LEAST(start_time, timestamp): the first Running wins
    if cols["state"] in END_STATES:
        changes["end_time"] = stamp  # GREATEST(end_time, timestamp): the last end wins
    return changes, state_row


def write_flow_run_state(ctx: RequestContext, run: dict, state: State) -> dict:
    """Inserts a flow run state and moves the run to it (no rule checks). Returns the updated run."""
    changes, state_row = _insert_state(ctx, run, state, "flow_run_state", "flow_run_id")
    if state.is_running() or state.is_submitted():
        changes["heartbeat"] = changes["state_timestamp"]
    updated = ctx.store.update("flow_run", run["id"], **changes)
    cloud_hooks.flow_run_state_changed(ctx, run, updated, state_row)
    return updated


def write_task_run_state(ctx: RequestContext, task_run: dict, state: State) -> dict:
    """Inserts a task run state and moves the task run to it (no rule checks). Returns the updated row."""
    changes, _state_row = _insert_state(ctx, task_run, state, "task_run_state", "task_run_id")
    if state.is_running():
        changes["heartbeat"] = changes["state_timestamp"]
    return ctx.store.update("task_run", task_run["id"], **changes)


def set_flow_run_state(ctx: RequestContext, flow_run_id: str, state: State) -> dict:
    """Server's set_flow_run_state: the submitted lock, Cancelled's task runs, then the state. Returns the run."""
    run = ctx.store.get("flow_run", flow_run_id)
    if run is None:
        raise ApiError(f"State update failed for flow run ID {flow_run_id}")
    if state.is_submitted() and not submitted_lock(ctx.store).add(run["id"]):
        raise ApiError("State update failed: this run has already been submitted.")
    if isinstance(state, Cancelled):
        for task_run in ctx.store.find("task_run", "flow_run_id", run["id"]):
            if not is_finished(task_run["state"]):
                set_task_run_state(ctx, task_run["id"], state)
    run = write_flow_run_state(ctx, run, state)
    if state.is_submitted() and ctx.agent_id and ctx.store.get("agent", ctx.agent_id):
        # agents send X-PREFECT-AGENT-ID on every request; Server records who submitted the run
        run = ctx.store.update("flow_run", run["id"], agent_id=ctx.agent_id)
    return run


def set_task_run_state(ctx: RequestContext, task_run_id: str, state: State) -> dict:
    """Server's set_task_run_state: Running only in a Running flow run, cached inputs carried. Returns the row."""
    task_run = ctx.store.get("task_run", task_run_id)
    if task_run is None:
        raise ApiError(f"State update failed for task run ID {task_run_id}")
    flow_run = ctx.store.get("flow_run", task_run["flow_run_id"]) or {}
    if state.is_running() and flow_run.get("state") != "Running":
        raise ApiError(f"State update failed for task run ID {task_run_id}: provided a running state but "
                       f"associated flow run {task_run['flow_run_id']} is not in a running state.")
    old = task_run["serialized_state"] or {}
    if not state.cached_inputs and old.get("cached_inputs"):
        # keep the inputs cached by an earlier state, as Server does, so retries can reuse them
        state.cached_inputs = load_state(old, f"task run {task_run_id}").cached_inputs
    return write_task_run_state(ctx, task_run, state)


def _set_states(ctx: RequestContext, input: dict, kind: str, apply: Callable[[RequestContext, str, State], Any]
                ) -> dict:
    """Applies each `{<kind>_id, state}` of a set_<kind>_states batch with `apply`, all or none.

    Args:
        kind: "flow_run" or "task_run"
        apply: set_flow_run_state or set_task_run_state
    """
    results: List[dict] = []
    for item in input["states"]:
        run_id = item[f"{kind}_id"]
        check_state_size(item["state"])
        apply(ctx, run_id, load_state(item["state"], f"{kind.replace('_', ' ')} {run_id}"))
        results.append({"id": run_id, "status": "SUCCESS", "message": None})
    return {"states": results}


def set_flow_run_states(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_flow_run_states: applies each state with Server's rules (module doc), all or none."""
    return _set_states(ctx, input, "flow_run", set_flow_run_state)


def set_task_run_states(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_task_run_states: applies each task run state, all or none."""
    return _set_states(ctx, input, "task_run", set_task_run_state)


def cancel_flow_run(ctx: RequestContext, input: dict) -> dict:
    """Mutation cancel_flow_run: Cancelled, or Cancelling for a Running run; no-op when finished."""
    run = ctx.store.get("flow_run", input["flow_run_id"])
    if run is None:
        raise ApiError(f"Invalid flow run ID: {input['flow_run_id']}.")
    if is_finished(run["state"]):
        return {"state": run["state"]}
    current = load_state(run["serialized_state"], f"flow run {run['id']}")
    if current.is_running():
        new: State = Cancelling("Flow run is cancelling")
    else:
        new = Cancelled("Flow run is cancelled")
    run = set_flow_run_state(ctx, run["id"], new)
    return {"state": run["state"]}


RESOLVERS: Dict[str, Callable] = {
    "set_flow_run_states": set_flow_run_states,
    "set_task_run_states": set_task_run_states,
    "cancel_flow_run": cancel_flow_run,
}
