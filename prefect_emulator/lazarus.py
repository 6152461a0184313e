"""Prefect Server's Lazarus service: flow runs stuck in Submitted or Running go back to Scheduled.

Server 1.4.1 (`prefect_server/services/towel/lazarus.py`) runs this every 10 minutes. A flow run is revived
when all of these hold:
- its state is Running or Submitted;
- its heartbeat is at least the staleness old (Server: 10 minutes), so a run between two states is left alone;
- none of its task runs is in a state that means work is due or under way (a subclass of Scheduled or
  Running in prefect: Scheduled, Retrying, Paused, Resume, Running, ...);
- its flow group's settings do not switch heartbeats or Lazarus off (`heartbeat_enabled: false` or
  `lazarus_enabled: false`, set by the disable_flow_heartbeat / disable_flow_lazarus_process mutations).

Each such run, oldest update first and at most 500 per round, is set Scheduled with the message "Rescheduled
by a Lazarus process.", its `times_resurrected` goes up by one, and an INFO log "Rescheduled by a Lazarus
process. This is attempt N." (name `prefect-server.Lazarus.FlowRun`) is written. A run already resurrected
the attempt limit of times (Server: 3) is set Failed instead, with an ERROR log saying so.
"""
from __future__ import annotations

import datetime
from typing import Dict, List, Tuple

import prefect
from prefect.engine.state import Failed, Running, Scheduled

from . import filters
from .context import RequestContext
from .errors import ApiError
from .logs import write_run_logs
from .states import set_flow_run_state
from .timestamps import to_iso

INTERVAL_SECONDS = 600.0  # Server's Lazarus loop_seconds_default
STALE_AFTER_SECONDS = 600.0  # Server reschedules runs whose heartbeat is 10 minutes old
ATTEMPT_LIMIT = 3  # Server's services.lazarus.resurrection_attempt_limit
BATCH = 500  # Server loads at most this many runs per round
LOG_NAME = "prefect-server.Lazarus.FlowRun"
RESCHEDULED = "Rescheduled by a Lazarus process."

# task run states that keep a run from being revived: work is due or under way (Server's LAZARUS_EXCLUDE)
ACTIVE_TASK_STATES = sorted(
    name for name, cls in vars(prefect.engine.state).items()
    if isinstance(cls, type) and issubclass(cls, (Scheduled, Running))
)


def candidates_where(now: datetime.datetime, stale_after: float) -> dict:
    """The `flow_run_bool_exp` of the runs to revive as of `now` (the same clause Server builds).

    Args:
        now: the instant of the round (UTC)
        stale_after: seconds since the last heartbeat after which a run counts as stuck
    """
    cutoff = now - datetime.timedelta(seconds=stale_after)
    switched_off = [{"settings": {"_contains": {setting: False}}}
                    for setting in ("heartbeat_enabled", "lazarus_enabled")]
    return {
        "state": {"_in": ["Running", "Submitted"]},
        "heartbeat": {"_lte": to_iso(cutoff)},
        "_and": [
            {"_not": {"task_runs": {"state": {"_in": ACTIVE_TASK_STATES}}}},
            {"_not": {"flow": {"flow_group": {"_or": switched_off}}}},
        ],
    }


def any_stuck(ctx: RequestContext, now: datetime.datetime, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    """True when a round as of `now` has a run to reschedule or fail (reads only)."""
    return bool(filters.select(ctx.store, "flow_run", where=candidates_where(now, stale_after), limit=1))


def resurrect(ctx: RequestContext, now: datetime.datetime, stale_after: float = STALE_AFTER_SECONDS,
              attempt_limit: int = ATTEMPT_LIMIT) -> Tuple[List[Tuple[str, int]], List[str]]:
    """One Lazarus round as of `now`: reschedules stuck runs, or fails those resurrected `attempt_limit` times
    already (the body of services.Lazarus.run_once).

    Call it inside a store transaction.

    Args:
        ctx: a request context on the store (no tenant: every tenant's runs)
        now: the instant of the round (UTC)
        stale_after: seconds since the last heartbeat after which a run counts as stuck
        attempt_limit: how many times a run may be rescheduled before it is failed instead

    Returns:
        ([(run id, attempt number) rescheduled], [run ids marked Failed])
    """
    runs = filters.select(ctx.store, "flow_run", where=candidates_where(now, stale_after),
                          order_by=[{"updated": "asc"}], limit=BATCH)
    rescheduled: List[Tuple[str, int]] = []
    failed: List[str] = []
    for run in runs:
        attempts = run.get("times_resurrected") or 0
        try:
            if attempts < attempt_limit:
                set_flow_run_state(ctx, run["id"], Scheduled(message=RESCHEDULED))
                ctx.store.update("flow_run", run["id"], times_resurrected=attempts + 1)
                _log(ctx, run["id"], "INFO", f"{RESCHEDULED} This is attempt {attempts + 1}.")
                rescheduled.append((run["id"], attempts + 1))
            else:
                message = (f"A Lazarus process attempted to reschedule this run {attempt_limit} times without "
                           "success. Marking as failed.")
                set_flow_run_state(ctx, run["id"], Failed(message=message))
                _log(ctx, run["id"], "ERROR", message)
                failed.append(run["id"])
        except ApiError:
            # refused by the state rules (Server: a version-lock failure): leave this run for the next round
            continue
    return rescheduled, failed


def _log(ctx: RequestContext, run_id: str, level: str, message: str) -> None:
    # what `prefect run --watch` and the UI show about why the run went back to the queue (or failed)
    entry: Dict[str, str] = {"flow_run_id": run_id, "name": LOG_NAME, "level": level, "message": message}
    write_run_logs(ctx, {"logs": [entry]})
