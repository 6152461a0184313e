"""Errors a resolver raises; graphql-core turns them into `{"errors": [{"message": ..., "path": ...}]}`."""
from __future__ import annotations

from typing import Optional

from graphql import GraphQLError


class ApiError(GraphQLError):
    """A refusal with a message for the client, optionally with an `extensions.code` the client acts on.

    Args:
        message: what went wrong and, where possible, how to fix it
        code: e.g. VERSION_LOCKING_ERROR or UNAUTHENTICATED (prefect's client looks for these)
    """

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message, extensions={"code": code} if code else None)
