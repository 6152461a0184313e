"""Retention: `--retain-days N` removes finished flow runs whose end time is more than N days old, with their task
runs, states, artifacts and logs; `--retain-log-days N` removes log lines older than N days (by their
timestamp). By default nothing is removed, as Prefect Server removes nothing.

A run that never finished (no end time, or a state that is not an end state) is kept whatever its age. A purge
deletes in small transactions (`RUNS_PER_BATCH` runs, `LOGS_PER_BATCH` logs), each holding the store
exclusively for a few milliseconds, and lets waiting queries and mutations in between, so agents' polls go on
during a purge. The pages freed go back to the file system a few at a time (incremental vacuum, which files
are made with). Each purge that removed something logs a RETENTION line.

An idempotency key lives in its run's row: once the run is removed, creating a run with that key makes a new
run, as if the key had never been used.
"""
from __future__ import annotations

import datetime
import time
from typing import Dict, Optional

from .runs import delete_flow_runs
from .states import END_STATES
from .store import Store
from .timestamps import to_iso

RUNS_PER_BATCH = 50
LOGS_PER_BATCH = 2000
PAGES_PER_VACUUM = 2000
PURGE_SECONDS = 3600.0  # a purge an hour: history older than days is what retention is about
_PAUSE = 0.002  # between two batches, so that a query or mutation waiting for the store gets in first


def cutoff(days: float, now: Optional[datetime.datetime] = None) -> str:
    """The stored timestamp `days` before now."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return to_iso(now - datetime.timedelta(days=days))


def purge(store: Store, retain_days: Optional[float], retain_log_days: Optional[float],
          now: Optional[datetime.datetime] = None) -> Dict[str, int]:
    """Removes what retention no longer keeps, batch after batch, then gives the freed pages back.

    Args:
        store: the store
        retain_days: keep finished runs that ended less than this many days ago (None: keep every run)
        retain_log_days: keep logs written less than this many days ago (None: keep logs with their run)
        now: the time to count from (tests move it)

    Returns:
        how many flow runs, task runs and logs were removed, and how many pages were given back
    """
    removed = {"flow_runs": 0, "task_runs": 0, "logs": 0, "pages": 0}
    if retain_days is not None:
        before = cutoff(retain_days, now)
        ends = ", ".join("?" * len(END_STATES))
        while True:
            with store.transaction():
                ids = [row[0] for row in store.query(
                    f'SELECT id FROM flow_run WHERE end_time < ? AND state IN ({ends}) ORDER BY end_time LIMIT ?',
                    (before, *sorted(END_STATES), RUNS_PER_BATCH))]
                gone = delete_flow_runs(store, ids)
            removed["flow_runs"] += len(ids)
            removed["task_runs"] += gone["task_run"]
            removed["logs"] += gone["log"]
            if len(ids) < RUNS_PER_BATCH:
                break
            time.sleep(_PAUSE)
    if retain_log_days is not None:
        before = cutoff(retain_log_days, now)
        while True:
            with store.transaction():
                count = store.execute("DELETE FROM log WHERE _seq IN (SELECT _seq FROM log WHERE timestamp < ? "
                                      "LIMIT ?)", (before, LOGS_PER_BATCH))
            removed["logs"] += count
            if count < LOGS_PER_BATCH:
                break
            time.sleep(_PAUSE)
    if removed["flow_runs"] or removed["logs"]:
        removed["pages"] = vacuum(store)
    return removed


def vacuum(store: Store) -> int:
    """Gives free pages back to the file system, PAGES_PER_VACUUM at a time; returns how many."""
    freed = 0
    while True:
        with store.transaction():
            free = store.query("PRAGMA freelist_count")[0][0]
            if not free:
                return freed
            store.query(f"PRAGMA incremental_vacuum({PAGES_PER_VACUUM})")
            after = store.query("PRAGMA freelist_count")[0][0]
        if after >= free:  # a file without incremental auto-vacuum keeps its free pages for new rows
            return freed
        freed += free - after
        time.sleep(_PAUSE)


def describe(removed: Dict[str, int], retain_days: Optional[float], retain_log_days: Optional[float]) -> str:
    """The RETENTION line of a purge."""
    kept = []
    if retain_days is not None:
        kept.append(f"finished runs that ended within {retain_days:g} days")
    if retain_log_days is not None:
        kept.append(f"logs of the last {retain_log_days:g} days")
    return (f"RETENTION removed {removed['flow_runs']} flow run(s) with {removed['task_runs']} task run(s), and "
            f"{removed['logs']} log line(s) in all; {removed['pages']} free page(s) given back (keeping "
            f"{' and '.join(kept)})")
