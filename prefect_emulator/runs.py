"""Flow runs and task runs: creating them, the agents' work queue, heartbeats, names and labels.

Labels of a new run follow Prefect Server 1.4.1: the `labels` given to create_flow_run, else the run_config
given to it, else the flow group's labels when set (not null), else the flow group's run_config, else the
flow's run_config labels, else its environment labels. The queue (get_runs_in_queue) hands a run only to an
agent whose labels include all of the run's labels, and a run without labels only to agents without labels;
like Server, it looks at the 3 x 25 runs that became ready first and hands out at most 25 of them.

Unknown ids are answered as Server answers them: heartbeats `success: true` (Server writes them in the
background and never reports), delete_flow_run, set_flow_run_name/_labels and set_task_run_name
`success: false`, mapped_children an empty payload.

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Optional

from prefect.engine.state import Pending, Scheduled

from . import filters
from .context import RequestContext
from .errors import ApiError
from .states import SCHEDULED_STATES, write_flow_run_state, write_task_run_state
from .store import Store
from .timestamps import now, parse, sort_key

QUEUE_LIMIT = 25  # Server's queued_runs_returned_limit

_ADJECTIVES = ["amber", "brisk", "calm", "daring", "eager", "fuzzy", "gentle", "hasty", "icy", "jolly",
               "keen", "lively", "mellow", "nimble", "olive", "proud", "quiet", "rapid", "sturdy", "tidy"]
_ANIMALS = ["otter", "heron", "lynx", "marten", "ibis", "gecko", "tapir", "finch", "bison", "koala",
            "panda", "quail", "raven", "sloth", "toucan", "walrus", "yak", "zebra", "okapi", "puffin"]


def _run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"


def _run_labels(input: dict, flow: dict, group: dict) -> List[str]:
    if input.get("labels") is not None:
        labels = input["labels"]
    elif input.get("run_config") is not None:
        labels = input["run_config"].get("labels") or []
    elif group.get("labels") is not None:
        labels = group["labels"]
    elif group.get("run_config") is not None:
        labels = group["run_config"].get("labels") or []
    elif flow.get("run_config") is not None:
        labels = flow["run_config"].get("labels") or []
    elif flow.get("environment") is not None:
        labels = flow["environment"].get("labels") or []
    else:
        labels = []
    return sorted(labels)


def run_with_key(store: Store, flow_id: str, key: str) -> Optional[dict]:
    """The flow's run made with this idempotency key, if any (Server's unique index on (key, flow_id))."""
    same = filters.select(store, "flow_run", where={"flow_id": {"_eq": flow_id}, "idempotency_key": {"_eq": key}},
                          limit=1)
    return same[0] if same else None


def create_flow_run(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_flow_run: a Scheduled run with its Pending task runs; returns {id}."""
    store = ctx.store
    if input.get("flow_id"):
        flow = store.get("flow", input["flow_id"])
        if flow is None:
            raise ApiError(f"Flow {input['flow_id']} not found")
    elif input.get("version_group_id"):
        live = [f for f in store.find("flow", "version_group_id", input["version_group_id"]) if not f["archived"]]
        if not live:
            raise ApiError(f"Version group {input['version_group_id']} has no unarchived flows.")
        flow = max(live, key=lambda f: f["version"] or 0)
    else:
        raise ApiError("A flow id or version group ID must be provided.")
    if flow["archived"]:
        raise ApiError(f"Flow {flow['id']} is archived. Run the newest version of its flow group instead "
                       f"(version_group_id {flow['version_group_id']}).")
    key = input.get("idempotency_key")
    same = run_with_key(store, flow["id"], key) if key else None
    if same:
        return {"id": same["id"]}
    for field in ("parameters", "context", "run_config"):
        if input.get(field) is not None and not isinstance(input[field], dict):
            raise ApiError(f"Invalid {field}: expected a JSON object, got {input[field]!r:.100}")

    group = store.get("flow_group", flow["flow_group_id"]) or {}
    parameters = {p["name"]: p.get("default") for p in flow["parameters"] or [] if p.get("default")}
    parameters.update(group.get("default_parameters") or {})
    parameters.update(input.get("parameters") or {})
    missing = sorted(p["name"] for p in flow["parameters"] or [] if p.get("required") and p["name"] not in parameters)
    if missing:
        # Server formats a Python set: {'x', 'y'}
        raise ApiError("Required parameters were not supplied: {" + ", ".join(repr(m) for m in missing) + "}")
    run_config = input.get("run_config")
    if run_config is None:
        run_config = group.get("run_config") if group.get("run_config") is not None else flow["run_config"]
    start = input.get("scheduled_start_time") or now()

    run = store.insert("flow_run", {
        "tenant_id": flow["tenant_id"], "flow_id": flow["id"], "labels": _run_labels(input, flow, group),
        "parameters": parameters, "run_config": run_config, "context": input.get("context") or {},
        "scheduled_start_time": start, "name": input.get("flow_run_name") or _run_name(),
        "idempotency_key": key, "auto_scheduled": False, "times_resurrected": 0, "version": 0,
    })
    # Server's insert trigger: one Pending task run (map_index -1) per task of the flow
    for task in store.find("task", "flow_id", flow["id"]):
        task_run = store.insert("task_run", {
            "tenant_id": flow["tenant_id"], "flow_run_id": run["id"], "task_id": task["id"], "map_index": -1,
            "cache_key": task["cache_key"], "version": 0,
        })
        write_task_run_state(ctx, task_run, Pending("Task run created"))
    write_flow_run_state(ctx, run, Scheduled("Flow run scheduled.", start_time=parse(start)))
    return {"id": run["id"]}


def queue_where(tenant_id: str, before: str) -> dict:
    """The `flow_run_bool_exp` of the runs ready at `before` (a stored timestamp): Scheduled-like runs due by
    then, and Running runs with a task run so due (a task run to retry)."""
    due = {"state": {"_in": SCHEDULED_STATES}, "state_start_time": {"_lte": before}}
    return {"tenant_id": {"_eq": tenant_id}, "_or": [due, {"state": {"_eq": "Running"}, "task_runs": due}]}


def get_runs_in_queue(ctx: RequestContext, input: dict) -> dict:
    """Mutation get_runs_in_queue: ids of runs ready for an agent with these labels (module doc)."""
    store = ctx.store
    before = sort_key(input.get("before") or now())
    agent_labels = set(input.get("labels") or [])
    candidates = filters.select(store, "flow_run", where=queue_where(input["tenant_id"], before),
                                order_by=[{"state_start_time": "asc"}], limit=QUEUE_LIMIT * 3)
    chosen = []
    for run in candidates:
        run_labels = set(run["labels"] or [])
        if run_labels - agent_labels:
            continue  # the agent lacks one of the run's labels
        if not run_labels and agent_labels:
            continue  # unlabelled runs go only to unlabelled agents
        chosen.append(run["id"])
        if len(chosen) == QUEUE_LIMIT:
            break
    agent_id = input.get("agent_id") or ctx.agent_id
    if agent_id and store.get("agent", agent_id):
        store.update("agent", agent_id, last_queried=now())
    return {"flow_run_ids": chosen}


def _task_run_for(ctx: RequestContext, input: dict, missing_task: str, missing_run: str) -> dict:
    """The task run of (flow run, task, map index), made Pending when new (Server's get_or_create_task_run*).

    Args:
        ctx: the request
        input: flow_run_id, task_id and map_index (None means -1, the unmapped run)
        missing_task: Server's error text when the task run must be made but its task does not exist
        missing_run: the same when its flow run does not exist
    """
    store = ctx.store
    map_index = -1 if input.get("map_index") is None else input["map_index"]
    for task_run in store.find("task_run", "flow_run_id", input["flow_run_id"]):
        if task_run["task_id"] == input["task_id"] and task_run["map_index"] == map_index:
            return task_run
    task = store.get("task", input["task_id"])
    if task is None:
        raise ApiError(f"{missing_task}: task {input['task_id']} does not exist.")
    run = store.get("flow_run", input["flow_run_id"])
    if run is None:
        raise ApiError(f"{missing_run}: flow run {input['flow_run_id']} does not exist.")
    task_run = store.insert("task_run", {
        "tenant_id": run["tenant_id"], "flow_run_id": run["id"], "task_id": task["id"], "map_index": map_index,
        "cache_key": task["cache_key"], "version": 0,
    })
    return write_task_run_state(ctx, task_run, Pending("Task run created"))


def _task_run_info(task_run: dict) -> dict:
    return {"id": task_run["id"], "version": task_run["version"], "state": task_run["state"],
            "serialized_state": task_run["serialized_state"]}


def get_or_create_task_run(ctx: RequestContext, input: dict) -> dict:
    """Mutation get_or_create_task_run: the task run of (flow run, task, map index); returns {id}."""
    return {"id": _task_run_for(ctx, input, "Invalid ID", "Invalid ID")["id"]}


def get_or_create_task_run_info(ctx: RequestContext, input: dict) -> dict:
    """Mutation get_or_create_task_run_info: as get_or_create_task_run, with version and state."""
    return _task_run_info(_task_run_for(ctx, input, "Invalid task ID", "Invalid flow run ID"))


def get_task_run_info(ctx: RequestContext, task_run_id: str) -> dict:
    """Query get_task_run_info: id, version and state of a task run."""
    task_run = ctx.store.get("task_run", task_run_id)
    if task_run is None:
        raise ApiError("Invalid task run ID")
    return _task_run_info(task_run)


def mapped_children(ctx: RequestContext, task_run_id: str) -> dict:
    """Query mapped_children: state counts and time span of a mapped task run's children (the runs of the same
    task and flow run with map_index >= 0); empty for an unknown id or a run that is itself a child."""
    parent = ctx.store.get("task_run", task_run_id)
    children = []
    if parent is not None and parent["map_index"] < 0:
        children = [t for t in ctx.store.find("task_run", "flow_run_id", parent["flow_run_id"])
                    if t["task_id"] == parent["task_id"] and t["map_index"] >= 0]
    counts: Dict[str, int] = {}
    for child in children:
        counts[child["state"]] = counts.get(child["state"], 0) + 1
    starts = [c["start_time"] for c in children if c["start_time"]]
    ends = [c["end_time"] for c in children if c["end_time"]]
    return {"min_start_time": min(starts) if starts else None, "max_end_time": max(ends) if ends else None,
            "state_counts": counts}


def _heartbeat(table: str, field: str) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        if ctx.store.get(table, input[field]) is not None:
            ctx.store.update(table, input[field], heartbeat=now())
        return {"success": True, "error": None}  # Server answers before its background write, never failing
    return resolve


def _rename(table: str, field: str) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        if not input["name"]:
            raise ApiError(f"Invalid name: the new name of {table.replace('_', ' ')} {input[field]} is empty.")
        return {"success": _update(ctx, table, input[field], name=input["name"]), "error": None}
    return resolve


def _update(ctx: RequestContext, table: str, row_id: str, **changes: Any) -> bool:
    """Updates a row if it exists; returns whether it did (Server: bool(affected_rows))."""
    if ctx.store.get(table, row_id) is None:
        return False
    ctx.store.update(table, row_id, **changes)
    return True


def set_flow_run_labels(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_flow_run_labels: replaces a run's labels (sorted, as Server stores them)."""
    return {"success": _update(ctx, "flow_run", input["flow_run_id"], labels=sorted(input["labels"])),
            "error": None}


def delete_flow_run(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow_run: deletes a run with its states, task runs and logs (Store.delete's cascade);
    success false if unknown."""
    if ctx.store.get("flow_run", input["flow_run_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.delete("flow_run", input["flow_run_id"])
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {
    "create_flow_run": create_flow_run,
    "get_runs_in_queue": get_runs_in_queue,
    "get_or_create_task_run": get_or_create_task_run,
    "get_or_create_task_run_info": get_or_create_task_run_info,
    "get_task_run_info": get_task_run_info,
    "mapped_children": mapped_children,
    "update_flow_run_heartbeat": _heartbeat("flow_run", "flow_run_id"),
    "update_task_run_heartbeat": _heartbeat("task_run", "task_run_id"),
    "set_flow_run_name": _rename("flow_run", "flow_run_id"),
    "set_task_run_name": _rename("task_run", "task_run_id"),
    "set_flow_run_labels": set_flow_run_labels,
    "delete_flow_run": delete_flow_run,
}
