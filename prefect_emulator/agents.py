"""Agents (register_agent is called once at agent start-up), agent configs, and task run artifacts.

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

from typing import Callable, Dict

from .context import RequestContext, default_tenant_id, require


def register_agent(ctx: RequestContext, input: dict) -> dict:
    """Mutation register_agent: records an agent (type, name, sorted labels); returns {id}.

    As on Server, an agent that starts again with the same tenant, name, type, core version (the client's
    X-PREFECT-CORE-VERSION header) and labels gets its existing row back, so restarts do not pile up rows.
    """
    tenant_id = input.get("tenant_id") or default_tenant_id(ctx)
    require(ctx, "tenant", tenant_id, "tenant")
    if input.get("agent_config_id"):
        require(ctx, "agent_config", input["agent_config_id"], "agent config")
    labels = sorted(input.get("labels") or [])
    for agent in ctx.store.find("agent", "tenant_id", tenant_id):
        if (agent["name"], agent["type"], agent["core_version"], agent["labels"]) == (
                input.get("name"), input["type"], ctx.core_version, labels):
            return {"id": agent["id"]}
    row = ctx.store.insert("agent", {
        "tenant_id": tenant_id, "name": input.get("name"), "type": input["type"], "labels": labels,
        "agent_config_id": input.get("agent_config_id"), "core_version": ctx.core_version,
    })
    return {"id": row["id"]}


def delete_agent(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_agent: removes an agent; success false for an unknown one, as on Server; the runs it
    took lose the reference (Server's foreign key: ON DELETE SET NULL)."""
    if ctx.store.get("agent", input["agent_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.delete("agent", input["agent_id"])
    return {"success": True, "error": None}


def create_agent_config(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_agent_config: stores agent settings for a tenant; returns {id}."""
    require(ctx, "tenant", input["tenant_id"], "tenant")
    row = ctx.store.insert("agent_config", {"tenant_id": input["tenant_id"], "name": input.get("name"),
                                            "settings": input.get("settings") or {}})
    return {"id": row["id"]}


def delete_agent_config(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_agent_config (the UI's Automations page): success false for an unknown id, as Server's
    affected_rows; agents that named it lose the reference (Server's foreign key: ON DELETE SET NULL)."""
    if ctx.store.get("agent_config", input["agent_config_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.delete("agent_config", input["agent_config_id"])
    return {"success": True, "error": None}


def create_task_run_artifact(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_task_run_artifact: attaches a link/markdown artifact to a task run; returns {id}."""
    task_run = require(ctx, "task_run", input["task_run_id"], "task run")
    row = ctx.store.insert("task_run_artifact", {"tenant_id": task_run["tenant_id"], "task_run_id": task_run["id"],
                                                 "kind": input["kind"], "data": input["data"]})
    return {"id": row["id"]}


def update_task_run_artifact(ctx: RequestContext, input: dict) -> dict:
    """Mutation update_task_run_artifact: replaces an artifact's data; returns success_payload."""
    require(ctx, "task_run_artifact", input["task_run_artifact_id"], "task run artifact")
    ctx.store.update("task_run_artifact", input["task_run_artifact_id"], data=input["data"])
    return {"success": True, "error": None}


def delete_task_run_artifact(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_task_run_artifact: removes an artifact; returns success_payload."""
    require(ctx, "task_run_artifact", input["task_run_artifact_id"], "task run artifact")
    ctx.store.delete("task_run_artifact", input["task_run_artifact_id"])
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {
    "delete_agent_config": delete_agent_config,
    "register_agent": register_agent,
    "delete_agent": delete_agent,
    "create_agent_config": create_agent_config,
    "create_task_run_artifact": create_task_run_artifact,
    "update_task_run_artifact": update_task_run_artifact,
    "delete_task_run_artifact": delete_task_run_artifact,
}
