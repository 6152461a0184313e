"""The one error type for mistakes the user fixes, and how the click front ends print it.

Every module raises `UserError` with a message that names the problem and the fix; nothing converts it
into another type on the way. Each front end (`agents.cli`, `agents.cli.script`) catches it once, in its
click command class, and prints `Error: <message>` without a traceback.
"""
from __future__ import annotations

from typing import Any, Optional

import click


class UserError(Exception):
    """A problem the user fixes: bad input, a missing key, an unreachable API, an unknown DAG.

    Args:
        message: what is wrong and how to fix it
        option: the command-line option at fault (e.g. "--param"): the front end then reports a usage
            error naming it (exit 2); without one, a plain error (exit 1)
    """

    def __init__(self, message: str, option: Optional[str] = None) -> None:
        super().__init__(message)
        self.option = option


def click_error(error: UserError) -> click.ClickException:
    """The click exception that prints `error` as the front ends do: exit 2 for an option, else 1."""
    if error.option:
        return click.BadParameter(str(error), param_hint=error.option)
    return click.ClickException(str(error))


class UserErrorsAsClick:
    """Mixin for a click command or group: a UserError raised by a command becomes a clean `Error: ...`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except UserError as exc:
            raise click_error(exc) from None


class Group(UserErrorsAsClick, click.Group):
    """The `python -m agents` group."""


class Command(UserErrorsAsClick, click.Command):
    """A DAG script's command."""
