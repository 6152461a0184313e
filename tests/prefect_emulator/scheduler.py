"""Auto-scheduled runs for flows whose schedule is active (Prefect Server's scheduler service, simplified).

As on Server: a flow that is not archived, has `is_schedule_active` and a schedule (its flow group's
schedule wins over its own) gets a Scheduled run for each of its next `MAX_RUNS` clock events later than its
latest auto-scheduled run; each run carries an idempotency key made from its start time (and its event's
parameters and labels), so scheduling twice never makes duplicates. It runs when a schedule is activated and
then from the emulator's background loop.
"""
from __future__ import annotations

import hashlib
import json
from typing import List

from prefect.serialization.schedule import ScheduleSchema

from .context import RequestContext
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
