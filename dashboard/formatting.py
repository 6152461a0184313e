"""Jinja filters: timestamps in the dashboard's time zone (always with its name), durations, ages, state
colours (a state is always shown by its name too) and schedules with their time zone."""
from __future__ import annotations

from typing import Any, Optional

import pendulum
from flask import Flask, current_app

# Prefect UI 1.x's state colours (src/utils/states.js), keyed by state name.
STATE_COLORS = {
    "Scheduled": "#ffd000", "Submitted": "#fff", "Queued": "#ffd000", "Paused": "#99999c",
    "Pending": "#d3e1ec", "Running": "#27b1ff", "Cancelling": "#bdbdbd", "Retrying": "#ffb347",
    "Resume": "#27b1ff", "Success": "#2dcc70", "Cached": "#70ff70", "Mapped": "#97fff4",
    "Skipped": "#dde6f0", "Finished": "#003ccb", "Failed": "#eb0000", "TriggerFailed": "#c42800",
    "TimedOut": "#ff6e00", "Cancelled": "#9e9e9e", "Looped": "#97fff4",
}
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss zz"
LOG_TIME_FORMAT = "YYYY-MM-DD HH:mm:ss.SSS zz"


def _tz() -> str:
    return current_app.config["DASHBOARD"].timezone


def timestamp(value: Optional[str]) -> str:
    """An API timestamp in the dashboard's time zone with the zone's name, or an em dash."""
    if not value:
        return "—"
    return pendulum.parse(value).in_timezone(_tz()).format(TIME_FORMAT)


def log_time(value: Optional[str]) -> str:
    """A log line's timestamp to the millisecond, in the dashboard's time zone with its name."""
    if not value:
        return "—"
    return pendulum.parse(value).in_timezone(_tz()).format(LOG_TIME_FORMAT)


def duration(start: Optional[str], end: Optional[str] = None) -> str:
    """`1m 05s` (`0.4s` under 10 s) between two timestamps (until now when `end` is missing), or an em dash."""
    if not start:
        return "—"
    stop = pendulum.parse(end) if end else pendulum.now("utc")
    exact = max(0.0, (stop - pendulum.parse(start)).total_seconds())
    if exact < 10:
        return f"{exact:.1f}s"  # most task runs take less than a second: "0s" would say nothing
    seconds = int(exact)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def age(value: Optional[str]) -> str:
    """How long ago a timestamp was (`12 s ago`), or `never`."""
    if not value:
        return "never"
    seconds = int((pendulum.now("utc") - pendulum.parse(value)).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def state_color(name: Optional[str]) -> str:
    return STATE_COLORS.get(name or "", "#cccccc")


def schedule(value: Any) -> str:
    """A flow's schedule in words, each clock with its time zone: `every 1h (UTC)`, `cron 0 6 * * * (Europe/Lisbon)`."""
    clocks = (value or {}).get("clocks") or []
    if not clocks:
        return "no schedule"
    parts = []
    for clock in clocks:
        start = clock.get("start_date") or {}
        zone = start.get("tz") if isinstance(start, dict) else None
        zone = zone or "UTC"
        if clock.get("type") == "CronClock":
            parts.append(f"cron {clock.get('cron')} ({zone})")
        elif clock.get("type") == "IntervalClock":
            seconds = int(clock.get("interval", 0)) / 1_000_000
            parts.append(f"every {_interval(seconds)} ({zone})")
        else:
            parts.append(f"{clock.get('type', 'clock')} ({zone})")
    return ", ".join(parts)


def _interval(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(timestamp=timestamp, log_time=log_time, duration=duration, age=age, state_color=state_color,
                                 schedule=schedule)
