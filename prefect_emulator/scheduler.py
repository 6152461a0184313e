"""Auto-scheduled runs for flows whose schedule is active (Prefect Server's scheduler service, simplified).

As on Server: a flow that is not archived, has `is_schedule_active` and a schedule (its flow group's
schedule wins over its own) gets a Scheduled run for each of its next `MAX_RUNS` clock events later than its
latest auto-scheduled run; each run carries an idempotency key made from its start time (and its event's
parameters and labels), so scheduling twice never makes duplicates. It runs when a schedule is activated and
then from the emulator's background loop.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from typing import Callable, Dict, List

import pendulum
from prefect.schedules import Schedule
from prefect.schedules.clocks import Clock, CronClock, IntervalClock
from prefect.serialization.schedule import ScheduleSchema

from .context import RequestContext
from .errors import ApiError
from .tenancy import require
from .runs import create_flow_run, delete_flow_run_rows
from .console import log
from .timestamps import parse, to_iso

MAX_RUNS = 10  # Server's max_scheduled_runs_per_flow


def schedule_flow_runs(ctx: RequestContext, flow: dict) -> List[str]:
    """Creates the flow's next scheduled runs.

    Args:
        ctx: the request (or background loop) context
        flow: the flow row

    Returns:
        the ids of the runs created (empty when the flow is not schedulable or is up to date)
    """
    store = ctx.store
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
    auto = [r["scheduled_start_time"] for r in store.find("flow_run", "flow_id", flow["id"]) if r["auto_scheduled"]]
    last = max((parse(t) for t in auto), default=None)
    created = []
    for event in schedule.next(n=MAX_RUNS, return_events=True):
        start = parse(event.start_time)
        if last is not None and start <= last:
            continue
        key = f"auto-scheduled:{to_iso(start)}"
        if event.parameter_defaults or event.labels is not None:
            digest = hashlib.md5((json.dumps(event.parameter_defaults, sort_keys=True, default=str)
                                  + json.dumps(event.labels)).encode()).hexdigest()
            key += f":{digest}"
        run_id = create_flow_run(ctx, {
            "flow_id": flow["id"], "scheduled_start_time": to_iso(start), "idempotency_key": key,
            "parameters": event.parameter_defaults or None, "labels": event.labels,
        })["id"]
        store.update("flow_run", run_id, auto_scheduled=True)
        created.append(run_id)
    return created


def unschedule(ctx: RequestContext, flow_id: str) -> None:
    """Deletes the flow's auto-scheduled runs that are still Scheduled (archiving or pausing its schedule)."""
    for run in ctx.store.find("flow_run", "flow_id", flow_id):
        if run["auto_scheduled"] and run["state"] == "Scheduled":
            delete_flow_run_rows(ctx, run["id"])


def schedule_all(ctx: RequestContext) -> int:
    """Schedules runs for every schedulable flow. Returns how many runs were created."""
    count = 0
    for flow in ctx.store.all("flow"):
        if flow["is_schedule_active"] and not flow["archived"]:
            count += len(schedule_flow_runs(ctx, flow))
    return count


def _reschedule_group(ctx: RequestContext, group_id: str) -> None:
    """After a flow group's schedule changed: drop its versions' pending auto runs, make new ones."""
    for flow in ctx.store.find("flow", "flow_group_id", group_id):
        unschedule(ctx, flow["id"])
        schedule_flow_runs(ctx, flow)


def set_flow_group_schedule(ctx: RequestContext, input: dict) -> dict:
    """Mutation set_flow_group_schedule: the UI's schedule editor (cron and interval clocks); the flow group's
    schedule then wins over the flows' own, and pending auto-scheduled runs are remade from it."""
    group = require(ctx, "flow_group", input["flow_group_id"], "flow group")
    timezone = input.get("timezone") or "UTC"
    try:
        start = pendulum.now(timezone)
    except Exception:
        raise ApiError(f"Invalid timezone {timezone!r}: use an IANA name such as UTC or Europe/Lisbon.")
    clocks: List[Clock] = []
    for cron in input.get("cron_clocks") or []:
        try:
            clocks.append(CronClock(cron["cron"], start_date=start, parameter_defaults=cron.get("parameter_defaults")))
        except ValueError as exc:
            raise ApiError(f"{exc}: use five fields, e.g. '0 6 * * *' for 06:00 every day.")
    for interval in input.get("interval_clocks") or []:
        if interval["interval"] < 60:
            raise ApiError(f"Invalid interval {interval['interval']}: intervals are whole seconds, at least 60.")
        clocks.append(IntervalClock(datetime.timedelta(seconds=interval["interval"]), start_date=start,
                                    parameter_defaults=interval.get("parameter_defaults")))
    if not clocks:
        raise ApiError("A schedule needs at least one clock: give cron_clocks or interval_clocks "
                       "(delete_flow_group_schedule removes a schedule).")
    ctx.store.update("flow_group", group["id"], schedule=ScheduleSchema().dump(Schedule(clocks=clocks)))
    _reschedule_group(ctx, group["id"])
    return {"success": True, "error": None}


def delete_flow_group_schedule(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_flow_group_schedule: back to the flows' own schedules."""
    group = require(ctx, "flow_group", input["flow_group_id"], "flow group")
    ctx.store.update("flow_group", group["id"], schedule=None)
    _reschedule_group(ctx, group["id"])
    return {"success": True, "error": None}


RESOLVERS: Dict[str, Callable] = {
    "set_flow_group_schedule": set_flow_group_schedule,
    "delete_flow_group_schedule": delete_flow_group_schedule,
}
