"""Messages, the UI's Notifications page: Server's api/messages.py on the `message` table.

Server writes messages itself only through the PREFECT_MESSAGE cloud hook (cloud_hooks.py, type CLOUD_HOOK);
the three mutations mark one read or unread, or delete it, and answer `success: false` for an id that matches
no message (Server's `affected_rows`).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .context import RequestContext
from .errors import ApiError

MESSAGE_TYPES = ("CLOUD_HOOK", "REQUIRES_APPROVAL")  # Server's PREFECT_MESSAGE_TYPES

SDL = '''
input mark_message_as_read_input { message_id: UUID! }
input mark_message_as_unread_input { message_id: UUID! }
input delete_message_input { message_id: UUID! }
extend type Mutation {
  mark_message_as_read(input: mark_message_as_read_input!): success_payload
  mark_message_as_unread(input: mark_message_as_unread_input!): success_payload
  delete_message(input: delete_message_input!): success_payload
}
'''


def create_message(ctx: RequestContext, type: str, content: dict, tenant_id: str, text: Optional[str] = None
                   ) -> dict:
    """Server's messages.create_message: a new unread message of one of MESSAGE_TYPES."""
    if type not in MESSAGE_TYPES:
        raise ApiError("Invalid message type.")
    return ctx.store.insert("message", {"tenant_id": tenant_id, "user_id": None, "read": False, "type": type,
                                        "text": text, "content": content})


def _set_read(read: bool) -> Callable[..., dict]:
    def resolve(ctx: RequestContext, input: Dict[str, Any]) -> dict:
        if ctx.store.get("message", input["message_id"]) is None:
            return {"success": False, "error": None}
        ctx.store.update("message", input["message_id"], read=read)
        return {"success": True, "error": None}
    resolve.__doc__ = f"Mutation mark_message_as_{'read' if read else 'unread'}."
    return resolve


def delete_message(ctx: RequestContext, input: Dict[str, Any]) -> dict:
    """Mutation delete_message."""
    if ctx.store.get("message", input["message_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.delete("message", input["message_id"])
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {
    "mark_message_as_read": _set_read(True),
    "mark_message_as_unread": _set_read(False),
    "delete_message": delete_message,
}
