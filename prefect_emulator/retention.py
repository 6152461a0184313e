"""Retention: finished runs older than `--retain-days`, and log lines older than `--retain-log-days`, removed.

Prefect Server keeps everything (so does the emulator unless told otherwise), and a year of hourly runs is
millions of task runs and log lines. A finished run goes `retain_days` after it ended, with its task runs, states,
logs and artifacts (the foreign keys' cascades, tables.FOREIGN_KEYS); a run that never finished stays, however
old. A run counts as finished in one of states.END_STATES, and as ended at its `end_time`, or at its state's
timestamp when it never started (a run Cancelled while Scheduled). Log lines go `retain_log_days` after their
timestamp, whatever their run.

The work is done in small transactions (`BATCH_RUNS` runs, `BATCH_LOGS` log lines), each choosing its rows while
reading, so that agents' polls go on between them, then the freed pages are given back to the file system
(incremental vacuum, set up when the file was made) a few at a time.

A run's idempotency key goes with it: creating a run again with that key makes a new run, as on Server once the
old run has been deleted.
"""
from __future__ import annotations

import datetime
from typing import Dict, List, Optional

from .states import END_STATES
from .store import Store
from .timestamps import to_iso

INTERVAL_SECONDS = 3600.0  # a round an hour, the first at start
# Each transaction holds the store (agents' polls wait for it): at 100 runs, 6,400 rows at 10 tasks and 20 log
# lines, a transaction took 1.7 s in a 4 GB file and polls waited 1.4 s (scripts/benchmark.py --only history)
BATCH_RUNS = 10
BATCH_LOGS = 500
RECLAIM_PAGES = 2000  # 8 MB of 4 KiB pages a step
_FINISHED = tuple(sorted(END_STATES))


def _finished_before(cutoff: str) -> tuple:
    states = ", ".join("?" * len(_FINISHED))
    return (f'"state" IN ({states}) AND ("end_time" < ? OR ("end_time" IS NULL AND "state_timestamp" < ?))',
            [*_FINISHED, cutoff, cutoff])


def purge(store: Store, now: datetime.datetime, retain_days: Optional[float],
          retain_log_days: Optional[float]) -> Dict[str, int]:
    """Removes what is older than the retention periods as of `now` (None: keep everything).

    Returns:
        how many rows went per table, and "pages" the file gave back
    """
    removed: Dict[str, int] = {}
    if retain_days:
        condition = _finished_before(to_iso(now - datetime.timedelta(days=retain_days)))
        _in_batches(store, "flow_run", condition, BATCH_RUNS, removed)
    if retain_log_days:
        condition = ('"timestamp" < ?', [to_iso(now - datetime.timedelta(days=retain_log_days))])
        _in_batches(store, "log", condition, BATCH_LOGS, removed)
    if removed:
        removed["pages"] = 0
        while True:
            freed, left = store.reclaim(RECLAIM_PAGES)
            removed["pages"] += freed
            if not freed or not left:
                break
    return removed


def _in_batches(store: Store, table: str, condition: tuple, batch: int, removed: Dict[str, int]) -> None:
    while True:
        with store.reading():
            ids: List[str] = store.ids(table, condition, batch)
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with store.transaction():  # the condition again: a row may have changed since it was chosen
            gone = store.delete_where(table, (f'"id" IN ({marks}) AND {condition[0]}', [*ids, *condition[1]]))
        for name, count in gone.items():
            removed[name] = removed.get(name, 0) + count
        if len(ids) < batch:
            return


def describe(removed: Dict[str, int], retain_days: Optional[float], retain_log_days: Optional[float]) -> str:
    """One log line about a purge."""
    parts = [f"{count} {name.replace('_', ' ')} row(s)" for name, count in sorted(removed.items()) if name != "pages"]
    periods = []
    if retain_days:
        periods.append(f"runs finished more than {retain_days:g} day(s) ago")
    if retain_log_days:
        periods.append(f"log lines older than {retain_log_days:g} day(s)")
    return (f"RETENTION removed {', '.join(parts)} ({' and '.join(periods)}); "
            f"{removed.get('pages', 0)} free page(s) given back to the file system")
