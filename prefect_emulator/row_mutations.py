"""Mutations that act on one row given by its id and answer Server's `success_payload`: `success: false` for
an id that names no row (as Server's messages and cloud hooks answer), else the change and `success: true`."""
from __future__ import annotations

from typing import Any, Callable, Dict

from .context import RequestContext

Resolver = Callable[[RequestContext, Dict[str, Any]], dict]


def setting(table: str, id_key: str, doc: str, **values: Any) -> Resolver:
    """A mutation that sets `values` on the row of `table` whose id is `input[id_key]`."""
    def resolve(ctx: RequestContext, input: Dict[str, Any]) -> dict:
        if ctx.store.get(table, input[id_key]) is None:
            return {"success": False, "error": None}
        ctx.store.update(table, input[id_key], **values)
        return {"success": True, "error": None}
    resolve.__doc__ = doc
    return resolve


def deleting(table: str, id_key: str, doc: str) -> Resolver:
    """A mutation that deletes the row of `table` whose id is `input[id_key]`."""
    def resolve(ctx: RequestContext, input: Dict[str, Any]) -> dict:
        if ctx.store.get(table, input[id_key]) is None:
            return {"success": False, "error": None}
        ctx.store.delete(table, input[id_key])
        return {"success": True, "error": None}
    resolve.__doc__ = doc
    return resolve
