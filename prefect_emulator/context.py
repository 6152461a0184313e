"""What a resolver knows about the request it serves."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from .errors import ApiError
from .hook_sender import HookSender
from .store import Store


class RequestContext:
    """Handed to every resolver as `info.context`.

    Args:
        store: the emulator's tables
        tenant_id: the X-PREFECT-TENANT-ID header a cloud client sends, if any
        core_version: the X-PREFECT-CORE-VERSION header (stored on agents)
        agent_id: the X-PREFECT-AGENT-ID header an agent sends once registered
        hooks: where cloud hook calls go (None: no hook is called)
    """

    def __init__(self, store: Store, tenant_id: Optional[str] = None, core_version: Optional[str] = None,
                 agent_id: Optional[str] = None, hooks: Optional[HookSender] = None) -> None:
        self.store = store
        self.hooks = hooks
        # what to do once the writes made so far are committed (cloud hook calls): run_after_commit()
        self.after_commit: List[Callable[[], None]] = []
        self.agent_id = agent_id
        self.tenant_id = tenant_id
        self.core_version = core_version


def require(ctx: RequestContext, table: str, row_id: Any, what: str) -> dict:
    """Returns the row, or raises an error naming the missing id (shared by every api module)."""
    row = ctx.store.get(table, row_id)
    if row is None:
        raise ApiError(f"Invalid {what} ID: {row_id} does not exist.")
    return row


def default_tenant_id(ctx: RequestContext) -> str:
    """The tenant a request acts for: the header a cloud client sends, else the oldest tenant."""
    if ctx.tenant_id and ctx.store.get("tenant", ctx.tenant_id):
        return ctx.tenant_id
    tenants = ctx.store.all("tenant")
    if not tenants:
        raise ApiError("No tenant exists: create one with `prefect server create-tenant --name NAME`.")
    return tenants[0]["id"]


def run_after_commit(ctx: RequestContext) -> None:
    """Runs (and forgets) what the committed writes of `ctx` left to do."""
    pending, ctx.after_commit = ctx.after_commit, []
    for action in pending:
        action()
