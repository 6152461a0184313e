"""Auto-scheduled runs for flows whose schedule is active (Prefect Server's scheduler service, simplified).

As on Server: a flow that is not archived, has `is_schedule_active` and a schedule (its flow group's
schedule wins over its own) gets a Scheduled run for each of its next `MAX_RUNS` clock events; events without
parameters or labels only when later than its latest auto-scheduled run. Each run carries an idempotency key
made from its start time (and its event's parameters and labels), so scheduling twice never makes duplicates.
It runs when a schedule is activated (as of the wall clock) and then from the emulator's background loop
(services.Scheduler, Server's scheduler service), as of the instant its round is given.

Flow group schedules are stored as Server stores them: `{"type": "Schedule", "clocks": [...]}` with the
clocks as the UI sent them (interval in microseconds) and `start_date` null unless a timezone was given.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from typing import Callable, Dict, List, Optional

import pendulum
from prefect.serialization.schedule import ClockSchema, ScheduleSchema

from . import filters
from .context import RequestContext
from .errors import ApiError
from .runs import create_flow_run, run_with_key
from .store import Store
from .console import log
from .timestamps import parse, to_iso

MAX_RUNS = 10  # Server's max_scheduled_runs_per_flow


def planned_runs(store: Store, flow: dict, now: Optional[datetime.datetime] = None) -> List[dict]:
    """The runs a round as of `now` would create for the flow (reads only): the `create_flow_run` inputs of its
    next MAX_RUNS clock events, less those made already.

    Args:
        store: the tables
        flow: the flow row
        now: the instant the events come after (None: the wall clock, as prefect's Schedule.next takes it)
    """
    if flow["archived"] or not flow["is_schedule_active"]:
        return []
    group = store.get("flow_group", flow["flow_group_id"]) or {}
    data = group.get("schedule") or flow["schedule"]
    if not data:
        return []
    try:
        schedule = ScheduleSchema().load(data)
    except Exception as exc:  # a flow registered with a schedule prefect cannot read: say so, skip it
        log(f"SCHEDULER cannot read the schedule of flow {flow['id']}: {exc!r}")
        return []
    latest = filters.select(store, "flow_run", where={"flow_id": {"_eq": flow["id"]}, "auto_scheduled": {"_eq": True}},
                            order_by=[{"scheduled_start_time": "desc_nulls_last"}], limit=1)
    last = parse(latest[0]["scheduled_start_time"]) if latest else None
    planned = []
    for event in schedule.next(n=MAX_RUNS, after=now, return_events=True):
        start = parse(event.start_time)
        distinct = bool(event.parameter_defaults) or event.labels is not None
        if not distinct and last is not None and start <= last:
            continue  # Server: events with parameters or labels rely on their idempotency key alone
        key = f"auto-scheduled:{to_iso(start)}"
        if distinct:
            digest = hashlib.md5((json.dumps(event.parameter_defaults, sort_keys=True, default=str)
                                  + json.dumps(event.labels)).encode()).hexdigest()
            key += f":{digest}"
            if run_with_key(store, flow["id"], key):
                continue  # made by an earlier round
        planned.append({"flow_id": flow["id"], "scheduled_start_time": to_iso(start), "idempotency_key": key,
                        "parameters": event.parameter_defaults or None, "labels": event.labels})
    return planned


def schedule_flow_runs(ctx: RequestContext, flow: dict, now: Optional[datetime.datetime] = None) -> List[str]:
    """Creates the flow's next scheduled runs (`planned_runs`).

    Args:
        ctx: the request (or background loop) context
        flow: the flow row
        now: the instant the events come after (None: the wall clock, as prefect's Schedule.next takes it)

    Returns:
        the ids of the runs created (empty when the flow is not schedulable or is up to date)
    """
    created = []
    for input in planned_runs(ctx.store, flow, now):
        run_id = create_flow_run(ctx, input)["id"]
        ctx.store.update("flow_run", run_id, auto_scheduled=True)
        created.append(run_id)
    return created


def unschedule(ctx: RequestContext, flow_id: str) -> None:
    """Deletes the flow's auto-scheduled runs that are still Scheduled (archiving or pausing its schedule)."""
    pending = {"flow_id": {"_eq": flow_id}, "auto_scheduled": {"_eq": True}, "state": {"_eq": "Scheduled"}}
    for run in filters.select(ctx.store, "flow_run", where=pending):
        ctx.store.delete("flow_run", run["id"])


def any_planned(store: Store, now: datetime.datetime) -> bool:
    """True when a round as of `now` would create a run (reads only)."""
    return any(planned_runs(store, flow, now) for flow in store.all("flow"))


def schedule_all(ctx: RequestContext, now: datetime.datetime) -> int:
    """Schedules runs for every schedulable flow as of `now` (the body of services.Scheduler.run_once). Returns
    how many runs were created."""
    count = 0
    for flow in ctx.store.all("flow"):
        if flow["is_schedule_active"] and not flow["archived"]:
            count += len(schedule_flow_runs(ctx, flow, now))
    return count


def _unschedule_group(ctx: RequestContext, group_id: str) -> None:
    """After a flow group's schedule changed: drop its versions' pending auto runs (the background loop, like
    Server's scheduler service, makes the new ones)."""
    for flow in ctx.store.find("flow", "flow_group_id", group_id):
        unschedule(ctx, flow["id"])


def _clocks(input: dict) -> List[dict]:
    """The UI's cron and interval clocks as Server stores them (interval seconds -> microseconds)."""
    clocks = [dict(cron, type="CronClock") for cron in input.get("cron_clocks") or []]
    for interval in input.get("interval_clocks") or []:
        clock = {"type": "IntervalClock", "interval": interval["interval"] * 1000000}
        if interval.get("parameter_defaults"):
            clock["parameter_defaults"] = interval["parameter_defaults"]
        clocks.append(clock)
    return clocks


def set_flow_group_schedule(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_flow_group_schedule: the UI's schedule editor (cron and interval clocks); the flow group's
    schedule then wins over the flows' own. Success is false for an unknown flow group, as on Server."""
    timezone = input.get("timezone")
    start_date = None
    if timezone:
        if timezone not in pendulum.timezones:
            raise ApiError(f"Invalid timezone provided for schedule: {timezone} (use an IANA name such as "
                           "UTC or Europe/Lisbon)")
        start_date = {"dt": pendulum.now(timezone).naive().to_iso8601_string(), "tz": timezone}
    clocks = _clocks(input)
    for clock in clocks:
        clock["start_date"] = start_date
        try:
            ClockSchema().load(clock)
        except Exception as exc:
            # Server's text first; then what prefect said and an example
            raise ApiError(f"Invalid clock provided for schedule: {clock} ({exc}: a cron has five fields, "
                           "e.g. '0 6 * * *' for 06:00 every day)")
    if ctx.store.get("flow_group", input["flow_group_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.update("flow_group", input["flow_group_id"], schedule={"type": "Schedule", "clocks": clocks})
    _unschedule_group(ctx, input["flow_group_id"])
    return {"success": True, "error": None}


def delete_flow_group_schedule(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow_group_schedule: back to the flows' own schedules (success false if unknown)."""
    if ctx.store.get("flow_group", input["flow_group_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.update("flow_group", input["flow_group_id"], schedule=None)
    _unschedule_group(ctx, input["flow_group_id"])
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {
    "set_flow_group_schedule": set_flow_group_schedule,
    "delete_flow_group_schedule": delete_flow_group_schedule,
}
