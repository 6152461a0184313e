"""Run logs written by flow runners, task runners and agents (write_run_logs).

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

from typing import Callable, Dict

from .context import RequestContext
from .errors import ApiError
from .timestamps import now


def write_run_logs(ctx: RequestContext, input: dict) -> dict:
    """Mutation write_run_logs: stores a batch of logs, all or none (unknown run ids refuse the batch)."""
    store = ctx.store
    for entry in input["logs"]:
        run = store.get("flow_run", entry["flow_run_id"])
        if run is None:
            raise ApiError(f"Invalid flow run ID: {entry['flow_run_id']} does not exist; no logs were written.")
        if entry.get("task_run_id") and store.get("task_run", entry["task_run_id"]) is None:
            raise ApiError(f"Invalid task run ID: {entry['task_run_id']} does not exist; no logs were written.")
        store.insert("log", {
            "tenant_id": run["tenant_id"], "flow_run_id": run["id"], "task_run_id": entry.get("task_run_id"),
            "timestamp": entry.get("timestamp") or now(), "name": entry.get("name"),
            "level": entry.get("level") or "INFO", "message": entry.get("message"), "info": entry.get("info"),
        })
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {"write_run_logs": write_run_logs}
