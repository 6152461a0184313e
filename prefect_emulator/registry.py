"""Flows, their tasks and edges, and flow groups: registration, versioning, archiving, settings.

Versioning follows Prefect Server 1.4.1: a flow joins the version group of the newest flow with the same
name in the same project (or the `version_group_id` given); the flow group is the version group's row;
a new version gets max(version) + 1 and archives every other version of its group; an idempotency key equal
to the flow group's last one returns the newest unarchived flow instead of making a version.

Archiving (archive_flow, or the automatic archive when a new version registers) deletes the version's
auto-scheduled runs that are still Scheduled and cancels its other Scheduled runs ("Flow <id> was archived."),
as Server does. Unknown ids answer `success: false` where Server's mutation does (archive_flow, delete_flow,
set_schedule_active/inactive, the flow group setters) and Server's error text elsewhere.

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

import datetime
import re
import uuid
from typing import Any, Callable, Dict, List

from packaging import version as versions
from prefect.engine.state import Cancelled
from prefect.utilities.graphql import decompress

from . import filters
from .context import RequestContext, require
from .scheduler import schedule_flow_runs, unschedule
from .errors import ApiError
from .states import set_flow_run_state

_DEFAULT_SETTINGS = {"heartbeat_enabled": True, "lazarus_enabled": True, "version_locking_enabled": False}
CORE_VERSION_CUTOFF = "0.6.1"  # Server's config.core_version_cutoff
_DURATION = re.compile(r"^(?:(\d+) days?,? ?)?(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def create_flow(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_flow: registers a serialized flow as a new version (or the existing one, see module doc)."""
    serialized = input["serialized_flow"]
    if not isinstance(serialized, dict) or not isinstance(serialized.get("name"), str):
        raise ApiError("Invalid serialized_flow: expected the JSON object of flow.serialize(), with a name.")
    core = serialized.get("__version__")
    if core and versions.parse(core) < versions.parse(CORE_VERSION_CUTOFF):
        raise ApiError(f"Prefect backends require new flows to be built with Prefect {CORE_VERSION_CUTOFF}+, "
                       f"but this flow was built with Prefect {core}.")
    _check_tasks(serialized.get("tasks") or [])
    return {"id": _create(ctx, serialized, input)}


def _check_tasks(tasks: Any) -> None:
    """Server validates serialized tasks with pydantic before writing anything; the same check, its message."""
    if not isinstance(tasks, list):
        return
    for index, task in enumerate(tasks):
        if isinstance(task, dict) and retry_delay_seconds(task.get("retry_delay")) is False:
            raise ApiError(f"1 validation error for FlowSchema\ntasks -> {index} -> retry_delay\n"
                           "  invalid duration format (type=value_error.duration)")


def retry_delay_seconds(value: Any) -> Any:
    """A task's retry_delay as seconds (None stays None), or False when it is not a duration.

    Accepts what pydantic's timedelta does for Server: a number of seconds or "[D days, ]HH:MM:SS[.f]".
    """
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        return False
    days, hours, minutes, seconds = match.groups()
    return datetime.timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes),
                              seconds=float(seconds)).total_seconds()


def create_flow_from_compressed_string(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_flow_from_compressed_string: create_flow for prefect's gzip+base64 payload."""
    try:
        serialized = decompress(input["serialized_flow"])
    except Exception:
        # Server's text, then how to make a valid payload
        raise ApiError("Unable to decompress serialized flow: send "
                       "prefect.utilities.graphql.compress(flow.serialize()).")
    return create_flow(ctx, dict(input, serialized_flow=serialized))


def _create(ctx: RequestContext, serialized: dict, input: dict) -> str:
    store = ctx.store
    project = store.get("project", input["project_id"])
    if project is None:
        raise ApiError(f"Invalid project. Project {input['project_id']} does not exist.")
    tenant_id = project["tenant_id"]
    name = serialized["name"]
    version_group_id = input.get("version_group_id")
    if not version_group_id:
        same_name = [f for f in store.find("flow", "project_id", project["id"]) if f["name"] == name]
        version_group_id = same_name[-1]["version_group_id"] if same_name else str(uuid.uuid4())
    key = input.get("idempotency_key")

    groups = [g for g in store.all("flow_group") if g["tenant_id"] == tenant_id and g["name"] == version_group_id]
    if groups:
        group = groups[0]
        last_key = (group.get("settings") or {}).get("idempotency_key")
        if key and last_key == key:
            live = [f for f in store.find("flow", "flow_group_id", group["id"]) if not f["archived"]]
            if live:
                return max(live, key=lambda f: f["version"] or 0)["id"]
        group = store.update("flow_group", group["id"], settings=dict(group.get("settings") or {}, idempotency_key=key))
    else:
        group = store.insert("flow_group", {
            "tenant_id": tenant_id, "name": version_group_id, "labels": None, "run_config": None,
            "default_parameters": {}, "schedule": None, "description": None,
            "settings": dict(_DEFAULT_SETTINGS, idempotency_key=key),
        })

    versions = [f for f in store.find("flow", "version_group_id", version_group_id) if f["tenant_id"] == tenant_id]
    version = max([f["version"] or 0 for f in versions] or [0]) + 1
    tasks = serialized.get("tasks") or []
    edges = serialized.get("edges") or []
    flow = store.insert("flow", {
        "tenant_id": tenant_id, "project_id": project["id"], "name": name, "serialized_flow": serialized,
        "environment": serialized.get("environment"), "run_config": serialized.get("run_config"),
        "core_version": serialized.get("__version__"), "storage": serialized.get("storage"),
        "parameters": serialized.get("parameters") or [], "version_group_id": version_group_id,
        "version": version, "archived": False, "flow_group_id": group["id"],
        "description": input.get("description"), "schedule": serialized.get("schedule"),
        "is_schedule_active": False, "settings": {k: v for k, v in (group["settings"] or {}).items()
                                                  if k != "idempotency_key"},
    })
    _register_tasks(ctx, flow, tasks)
    _register_edges(ctx, flow, edges)
    for other in versions:
        if not other["archived"]:
            archive(ctx, other["id"])
    if input.get("set_schedule_active", True) is not False:
        try:
            activate_schedule(ctx, flow["id"])
        except ApiError:
            pass  # as on Server: a schedule that cannot run (required parameters) leaves the flow registered, off
    return flow["id"]


def archive(ctx: RequestContext, flow_id: str) -> bool:
    """Archives a flow version as Server does (module doc). Returns False when the flow does not exist."""
    if ctx.store.get("flow", flow_id) is None:
        return False
    ctx.store.update("flow", flow_id, archived=True)
    unschedule(ctx, flow_id)
    waiting = {"flow_id": {"_eq": flow_id}, "state": {"_eq": "Scheduled"}, "auto_scheduled": {"_eq": False}}
    for run in filters.select(ctx.store, "flow_run", where=waiting):
        set_flow_run_state(ctx, run["id"], Cancelled(f"Flow {flow_id} was archived."))
    return True


def activate_schedule(ctx: RequestContext, flow_id: str) -> bool:
    """Server's set_schedule_active: False for an unknown flow or one with no schedule (its own or its flow
    group's); refuses when a required parameter has no value from the flow group or every clock."""
    flow = ctx.store.get("flow", flow_id)
    if flow is None:
        return False
    group = ctx.store.get("flow_group", flow["flow_group_id"]) or {}
    required = {p.get("name") for p in flow["parameters"] or [] if p.get("required")}
    if flow["schedule"] is not None and required:
        unset = required.difference(group.get("default_parameters") or {})
        clocks = (flow["schedule"] or {}).get("clocks") or []
        if not all(unset <= set((c.get("parameter_defaults") or {}).keys()) for c in clocks):
            raise ApiError("Can not schedule a flow that has required parameters.")
    if flow["schedule"] is None and group.get("schedule") is None:
        return False
    schedule_flow_runs(ctx, ctx.store.update("flow", flow_id, is_schedule_active=True))
    return True


def _register_tasks(ctx: RequestContext, flow: dict, tasks: List[dict]) -> None:
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and t.get("slug") for t in tasks):
        raise ApiError("Invalid serialized_tasks: expected a list of serialized tasks, each with a slug.")
    known = {t["slug"] for t in ctx.store.find("task", "flow_id", flow["id"])}
    reference = set((flow["serialized_flow"] or {}).get("reference_tasks") or [])
    for task in tasks:
        if task["slug"] in known:
            continue
        known.add(task["slug"])
        task_id = task.get("id")
        if task_id is None or ctx.store.get("task", task_id) is not None:
            task_id = str(uuid.uuid4())
        ctx.store.insert("task", {
            "id": task_id, "tenant_id": flow["tenant_id"], "flow_id": flow["id"], "name": task.get("name"),
            "slug": task["slug"], "description": task.get("description"), "type": task.get("type"),
            "max_retries": task.get("max_retries"), "retry_delay": retry_delay_seconds(task.get("retry_delay")),
            "trigger": _text(task.get("trigger")), "tags": task.get("tags") or [],
            "mapped": False, "auto_generated": bool(task.get("auto_generated")),
            "cache_key": task.get("cache_key"), "is_reference_task": task["slug"] in reference or None,
        })


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("fn") or value.get("type") or str(value)
    return value


def _register_edges(ctx: RequestContext, flow: dict, edges: List[dict]) -> None:
    if not isinstance(edges, list):
        raise ApiError("Invalid serialized_edges: expected a list of serialized edges.")
    slugs = {t["slug"]: t["id"] for t in ctx.store.find("task", "flow_id", flow["id"])}
    known = {(e["upstream_task_id"], e["downstream_task_id"], e["key"])
             for e in ctx.store.find("edge", "flow_id", flow["id"])}
    for edge in edges:
        try:
            up = slugs[edge["upstream_task"]["slug"]]
            down = slugs[edge["downstream_task"]["slug"]]
        except (KeyError, TypeError):
            raise ApiError("Edges could not be registered - some edges reference tasks that do not exist "
                           "within this flow.")
        if (up, down, edge.get("key")) in known:
            continue  # Server: on conflict (edge_flow_id_task_ids_key) do nothing
        known.add((up, down, edge.get("key")))
        ctx.store.insert("edge", {"tenant_id": flow["tenant_id"], "flow_id": flow["id"], "upstream_task_id": up,
                                  "downstream_task_id": down, "key": edge.get("key"),
                                  "mapped": bool(edge.get("mapped"))})
        if edge.get("mapped"):
            ctx.store.update("task", down, mapped=True)


def register_tasks(ctx: RequestContext, input: dict) -> dict:
    """Mutation register_tasks: adds tasks (by slug, once each) to a flow."""
    flow = require(ctx, "flow", input["flow_id"], "flow")
    _check_tasks(input["serialized_tasks"])
    _register_tasks(ctx, flow, input["serialized_tasks"])
    return {"success": True, "error": None}


def register_edges(ctx: RequestContext, input: dict) -> dict:
    """Mutation register_edges: adds edges between a flow's tasks, named by slug."""
    flow = require(ctx, "flow", input["flow_id"], "flow")
    _register_edges(ctx, flow, input["serialized_edges"])
    return {"success": True, "error": None}


def delete_flow(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow: deletes one flow version with its tasks, edges and runs (Store.delete's cascade;
    success false if unknown)."""
    if ctx.store.get("flow", input["flow_id"]) is None:
        return _outcome(False)
    ctx.store.delete("flow", input["flow_id"])
    return _outcome(True)


def _outcome(done: bool) -> dict:
    """success_payload as Server answers it: success is whether a row was changed, no error text."""
    return {"success": done, "error": None}


def archive_flow(ctx: RequestContext, input: dict) -> dict:
    """Mutation archive_flow: archives a flow version (it then refuses new runs); success false if unknown."""
    return _outcome(archive(ctx, input["flow_id"]))


def update_flow_project(ctx: RequestContext, input: dict) -> dict:
    """Mutation update_flow_project: moves a flow version to another project of its tenant."""
    flow = ctx.store.get("flow", input["flow_id"])
    project = ctx.store.get("project", input["project_id"])
    if flow is None or project is None or project["tenant_id"] != flow["tenant_id"]:
        raise ApiError("Invalid flow or project ID.")
    ctx.store.update("flow", flow["id"], project_id=project["id"])
    return {"id": flow["id"]}


def set_schedule_active(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_schedule_active: see activate_schedule (Flow.register asks it of every flow)."""
    return _outcome(activate_schedule(ctx, input["flow_id"]))


def set_schedule_inactive(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_schedule_inactive: turns the schedule off and deletes its pending auto-scheduled runs."""
    if ctx.store.get("flow", input["flow_id"]) is None:
        return _outcome(False)
    ctx.store.update("flow", input["flow_id"], is_schedule_active=False)
    unschedule(ctx, input["flow_id"])
    return _outcome(True)


def _flow_setting(**values: bool) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        flow = ctx.store.get("flow", input["flow_id"])
        if flow is None:
            raise ApiError("Invalid flow ID.")
        group = ctx.store.get("flow_group", flow["flow_group_id"])
        if group is None:
            raise ApiError("Invalid flow group ID")
        ctx.store.update("flow_group", group["id"], settings=dict(group["settings"] or {}, **values))
        # the flows' copy is what the emulator's zombie killer reads
        for version in ctx.store.find("flow", "flow_group_id", group["id"]):
            ctx.store.update("flow", version["id"], settings=dict(version["settings"] or {}, **values))
        return _outcome(True)
    return resolve


def _flow_group_column(column: str, field: str) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        if ctx.store.get("flow_group", input["flow_group_id"]) is None:
            return _outcome(False)
        value = input.get(field)
        if column == "labels" and value:
            value = sorted(set(value))
        ctx.store.update("flow_group", input["flow_group_id"], **{column: value})
        return _outcome(True)
    return resolve


def delete_flow_group(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow_group: deletes a flow group and every version in it (success false if unknown)."""
    if ctx.store.get("flow_group", input["flow_group_id"]) is None:
        return _outcome(False)
    ctx.store.delete("flow_group", input["flow_group_id"])
    return _outcome(True)


RESOLVERS: Dict[str, Callable] = {
    "create_flow": create_flow,
    "create_flow_from_compressed_string": create_flow_from_compressed_string,
    "register_tasks": register_tasks,
    "register_edges": register_edges,
    "delete_flow": delete_flow,
    "archive_flow": archive_flow,
    "update_flow_project": update_flow_project,
    "set_schedule_active": set_schedule_active,
    "set_schedule_inactive": set_schedule_inactive,
    # Server writes both keys: heartbeat_enabled (read by its services) and disable_heartbeat (by the runner)
    "enable_flow_heartbeat": _flow_setting(heartbeat_enabled=True, disable_heartbeat=False),
    "disable_flow_heartbeat": _flow_setting(heartbeat_enabled=False, disable_heartbeat=True),
    "enable_flow_lazarus_process": _flow_setting(lazarus_enabled=True),
    "disable_flow_lazarus_process": _flow_setting(lazarus_enabled=False),
    "delete_flow_group": delete_flow_group,
    "set_flow_group_labels": _flow_group_column("labels", "labels"),
    "set_flow_group_description": _flow_group_column("description", "description"),
    "set_flow_group_run_config": _flow_group_column("run_config", "run_config"),
    "set_flow_group_default_parameters": _flow_group_column("default_parameters", "parameters"),
}
