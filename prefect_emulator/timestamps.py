"""Timestamps as the emulator stores and compares them: ISO 8601 strings in UTC, microsecond precision."""
from __future__ import annotations

import datetime
import re
from typing import Any, Optional

import pendulum

# The form to_iso writes (UTC, microseconds, fixed width): such strings sort as the instants they name, so they
# are compared as they are instead of being parsed for every comparison.
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def now() -> str:
    """Returns the current time as the emulator stores it (UTC ISO 8601 with microseconds)."""
    return to_iso(datetime.datetime.now(datetime.timezone.utc))


def to_iso(value: datetime.datetime) -> str:
    """Formats a datetime as a UTC ISO string; naive datetimes are taken as UTC (Postgres timestamptz does)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse(value: Any) -> datetime.datetime:
    """Parses a timestamp sent by a client (ISO string or datetime) into an aware UTC datetime.

    Args:
        value: an ISO 8601 string such as pendulum's isoformat() output, or a datetime

    Returns:
        the aware datetime in UTC

    Raises:
        ValueError: when the value is not a timestamp, naming what was received
    """
    if isinstance(value, datetime.datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = pendulum.parse(value)
        except Exception:
            raise ValueError(f"invalid timestamp {value!r}: expected ISO 8601, e.g. 2024-01-31T12:00:00+00:00")
        if not isinstance(dt, datetime.datetime):
            raise ValueError(f"invalid timestamp {value!r}: expected a date and a time")
    else:
        raise ValueError(f"invalid timestamp {value!r}: expected an ISO 8601 string")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc)


def normalize(value: Any) -> Optional[str]:
    """Returns `value` as the emulator's canonical timestamp string (None stays None)."""
    if value is None:
        return None
    return to_iso(parse(value))


def sort_key(value: Any) -> str:
    """`value` (a timestamp) as a string that orders and compares as the instant it names: the canonical form,
    which is what the emulator stores, as it is; anything else normalized (raises ValueError as parse does)."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return value
    return to_iso(parse(value))
