"""Flows, their tasks and edges, and flow groups: registration, versioning, archiving, settings.

Versioning follows Prefect Server 1.4.1: a flow joins the version group of the newest flow with the same
name in the same project (or the `version_group_id` given); the flow group is the version group's row;
a new version gets max(version) + 1 and archives every other version of its group; an idempotency key equal
to the flow group's last one returns the newest unarchived flow instead of making a version.

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Dict, List

from prefect.utilities.graphql import decompress

from .context import RequestContext
from .scheduler import schedule_flow_runs, unschedule
from .errors import ApiError
from .tenancy import require

_DEFAULT_SETTINGS = {"heartbeat_enabled": True, "lazarus_enabled": True, "version_locking_enabled": False}


def create_flow(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_flow: registers a serialized flow as a new version (or the existing one, see module doc)."""
    serialized = input["serialized_flow"]
    if not isinstance(serialized, dict) or not isinstance(serialized.get("name"), str):
        raise ApiError("Invalid serialized_flow: expected the JSON object of flow.serialize(), with a name.")
    return {"id": _create(ctx, serialized, input)}


def create_flow_from_compressed_string(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_flow_from_compressed_string: create_flow for prefect's gzip+base64 payload."""
    try:
        serialized = decompress(input["serialized_flow"])
    except Exception as exc:
        raise ApiError(f"Invalid serialized_flow: not a compressed flow ({type(exc).__name__}); "
                       "send prefect.utilities.graphql.compress(flow.serialize()).")
    return create_flow(ctx, dict(input, serialized_flow=serialized))


def _create(ctx: RequestContext, serialized: dict, input: dict) -> str:
    store = ctx.store
    project = require(ctx, "project", input["project_id"], "project")
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
            _archive(ctx, other["id"])
    if input.get("set_schedule_active") and flow["schedule"]:
        schedule_flow_runs(ctx, store.update("flow", flow["id"], is_schedule_active=True))
    return flow["id"]


def _archive(ctx: RequestContext, flow_id: str) -> None:
    ctx.store.update("flow", flow_id, archived=True, is_schedule_active=False)
    unschedule(ctx, flow_id)


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
            "max_retries": task.get("max_retries"), "retry_delay": task.get("retry_delay"),
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
    for edge in edges:
        try:
            up = slugs[edge["upstream_task"]["slug"]]
            down = slugs[edge["downstream_task"]["slug"]]
        except (KeyError, TypeError):
            raise ApiError("Edges could not be registered - some edges reference tasks that do not exist "
                           "within this flow.")
        ctx.store.insert("edge", {"tenant_id": flow["tenant_id"], "flow_id": flow["id"], "upstream_task_id": up,
                                  "downstream_task_id": down, "key": edge.get("key"),
                                  "mapped": bool(edge.get("mapped"))})
        if edge.get("mapped"):
            ctx.store.update("task", down, mapped=True)


def register_tasks(ctx: RequestContext, input: dict) -> dict:
    """Mutation register_tasks: adds tasks (by slug, once each) to a flow."""
    flow = require(ctx, "flow", input["flow_id"], "flow")
    _register_tasks(ctx, flow, input["serialized_tasks"])
    return {"success": True, "error": None}


def register_edges(ctx: RequestContext, input: dict) -> dict:
    """Mutation register_edges: adds edges between a flow's tasks, named by slug."""
    flow = require(ctx, "flow", input["flow_id"], "flow")
    _register_edges(ctx, flow, input["serialized_edges"])
    return {"success": True, "error": None}


def delete_flow_rows(ctx: RequestContext, flow_id: str) -> None:
    """Deletes a flow with its tasks, edges and runs (Postgres cascades do this on Server)."""
    from .runs import delete_flow_run_rows  # late import: runs imports this module's neighbours
    store = ctx.store
    for run in store.find("flow_run", "flow_id", flow_id):
        delete_flow_run_rows(ctx, run["id"])
    for table in ("edge", "task"):
        store.delete_where(table, "flow_id", flow_id)
    store.delete("flow", flow_id)


def delete_flow(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow: deletes one flow version with its tasks, edges and runs."""
    require(ctx, "flow", input["flow_id"], "flow")
    delete_flow_rows(ctx, input["flow_id"])
    return {"success": True, "error": None}


def archive_flow(ctx: RequestContext, input: dict) -> dict:
    """Mutation archive_flow: archives a flow version (it then refuses new runs)."""
    require(ctx, "flow", input["flow_id"], "flow")
    _archive(ctx, input["flow_id"])
    return {"success": True, "error": None}


def update_flow_project(ctx: RequestContext, input: dict) -> dict:
    """Mutation update_flow_project: moves a flow version to another project."""
    require(ctx, "flow", input["flow_id"], "flow")
    require(ctx, "project", input["project_id"], "project")
    ctx.store.update("flow", input["flow_id"], project_id=input["project_id"])
    return {"id": input["flow_id"]}


def _schedule(active: bool) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        flow = require(ctx, "flow", input["flow_id"], "flow")
        group = ctx.store.get("flow_group", flow["flow_group_id"]) or {}
        if active and not (flow["schedule"] or group.get("schedule")):
            # Server answers success=false (no error): Flow.register asks for this on every flow
            return {"success": False, "error": f"Flow {flow['id']} has no schedule to activate."}
        flow = ctx.store.update("flow", flow["id"], is_schedule_active=active)
        if active:
            schedule_flow_runs(ctx, flow)
        else:
            unschedule(ctx, flow["id"])
        return {"success": True, "error": None}
    return resolve


def _flow_setting(key: str, value: bool) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        flow = require(ctx, "flow", input["flow_id"], "flow")
        group = require(ctx, "flow_group", flow["flow_group_id"], "flow group")
        ctx.store.update("flow_group", group["id"], settings=dict(group["settings"] or {}, **{key: value}))
        for version in ctx.store.find("flow", "flow_group_id", group["id"]):
            ctx.store.update("flow", version["id"], settings=dict(version["settings"] or {}, **{key: value}))
        return {"success": True, "error": None}
    return resolve


def _flow_group_column(column: str, field: str) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        require(ctx, "flow_group", input["flow_group_id"], "flow group")
        value = input.get(field)
        if column == "labels" and value is not None:
            value = sorted(set(value))
        ctx.store.update("flow_group", input["flow_group_id"], **{column: value})
        return {"success": True, "error": None}
    return resolve


def delete_flow_group(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow_group: deletes a flow group and every version in it."""
    require(ctx, "flow_group", input["flow_group_id"], "flow group")
    for flow in ctx.store.find("flow", "flow_group_id", input["flow_group_id"]):
        delete_flow_rows(ctx, flow["id"])
    ctx.store.delete("flow_group", input["flow_group_id"])
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {
    "create_flow": create_flow,
    "create_flow_from_compressed_string": create_flow_from_compressed_string,
    "register_tasks": register_tasks,
    "register_edges": register_edges,
    "delete_flow": delete_flow,
    "archive_flow": archive_flow,
    "update_flow_project": update_flow_project,
    "set_schedule_active": _schedule(True),
    "set_schedule_inactive": _schedule(False),
    "enable_flow_heartbeat": _flow_setting("heartbeat_enabled", True),
    "disable_flow_heartbeat": _flow_setting("heartbeat_enabled", False),
    "enable_flow_lazarus_process": _flow_setting("lazarus_enabled", True),
    "disable_flow_lazarus_process": _flow_setting("lazarus_enabled", False),
    "delete_flow_group": delete_flow_group,
    "set_flow_group_labels": _flow_group_column("labels", "labels"),
    "set_flow_group_description": _flow_group_column("description", "description"),
    "set_flow_group_run_config": _flow_group_column("run_config", "run_config"),
    "set_flow_group_default_parameters": _flow_group_column("default_parameters", "parameters"),
}
