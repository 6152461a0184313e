"""Messages, the UI's Notifications page: Server's api/messages.py on the `message` table.

Server writes messages itself only through the PREFECT_MESSAGE cloud hook (cloud_hooks.py, type CLOUD_HOOK);
the three mutations mark one read or unread, or delete it, and answer `success: false` for an id that matches
no message (Server's `affected_rows`).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from .context import RequestContext
from .errors import ApiError
from .row_mutations import deleting, setting

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


RESOLVERS: Dict[str, Callable] = {
    "mark_message_as_read": setting("message", "message_id", "Mutation mark_message_as_read.", read=True),
    "mark_message_as_unread": setting("message", "message_id", "Mutation mark_message_as_unread.", read=False),
    "delete_message": deleting("message", "message_id", "Mutation delete_message."),
}
