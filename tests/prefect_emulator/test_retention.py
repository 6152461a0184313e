"""Retention (--retain-days, --retain-log-days): finished runs that ended before the cutoff go with their task runs,
states and logs; runs that never finished stay whatever their age; old logs go alone; freed pages go back to
the file system; a removed run's idempotency key makes a new run; the emulator logs what it removed."""
from __future__ import annotations

import datetime
import sqlite3
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

from prefect_emulator import retention
from prefect_emulator.context import RequestContext
from prefect_emulator.runs import create_flow_run
from prefect_emulator.store import Store
from prefect_emulator.timestamps import to_iso
from prefect_emulator.testing import Emulator

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
OLD = retention.RUNS_PER_BATCH + 10  # old finished runs: more than one batch
FLOW = "00000000-0000-4000-8000-0000000000f1"


def ago(days: float, now: datetime.datetime = NOW) -> str:
    return to_iso(now - datetime.timedelta(days=days))


def add_run(store: Store, name: str, state: str, ended_days_ago: Optional[float], logs_days_ago: float,
            key: Optional[str] = None, now: datetime.datetime = NOW) -> str:
    """A flow run with two task runs, a state each, and three logs written `logs_days_ago` (days before `now`)."""
    run = store.insert("flow_run", {"flow_id": FLOW, "name": name, "state": state, "idempotency_key": key,
                                    "end_time": None if ended_days_ago is None else ago(ended_days_ago, now)})
    store.insert("flow_run_state", {"flow_run_id": run["id"], "state": state, "version": 1})
    for _ in range(2):
        task_run = store.insert("task_run", {"flow_run_id": run["id"], "state": state, "map_index": -1})
        store.insert("task_run_state", {"task_run_id": task_run["id"], "state": state, "version": 1})
        store.insert("task_run_artifact", {"task_run_id": task_run["id"], "kind": "markdown", "data": {}})
    for n in range(3):
        store.insert("log", {"flow_run_id": run["id"], "message": f"{name} {n}", "timestamp": ago(logs_days_ago, now)})
    return run["id"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(str(tmp_path / "emulator.db"))
    with store.transaction():
        store.insert("flow_group", {"id": FLOW, "name": "g"})
        store.insert("flow", {"id": FLOW, "flow_group_id": FLOW, "name": "f", "archived": False, "version": 1})
        for n in range(OLD):
            add_run(store, f"old-success-{n}", "Success", 40, 40)
        add_run(store, "old-failed", "Failed", 31, 31, key="used-once")
        add_run(store, "recent-success", "Success", 5, 20)
        add_run(store, "old-never-ended", "Running", None, 60)
        add_run(store, "ended-but-rescheduled", "Scheduled", 90, 90)  # an end time, yet not finished now
    yield store
    store.close()


def names(store: Store) -> set:
    return {row["name"] for row in store.all("flow_run")}


def counts(store: Store) -> Dict[str, int]:
    return {t: store.count(t) for t in ("flow_run", "flow_run_state", "task_run", "task_run_state",
                                        "task_run_artifact", "log")}


def test_finished_runs_past_the_cutoff_go_with_everything_they_own(store: Store) -> None:
    removed = retention.purge(store, 30, None, now=NOW)
    assert names(store) == {"recent-success", "old-never-ended", "ended-but-rescheduled"}
    assert removed == {"flow_runs": OLD + 1, "task_runs": 2 * (OLD + 1), "logs": 3 * (OLD + 1), "pages": removed["pages"]}
    assert counts(store) == {"flow_run": 3, "flow_run_state": 3, "task_run": 6, "task_run_state": 6,
                             "task_run_artifact": 6, "log": 9}  # nothing of the removed runs is left behind
    assert retention.purge(store, 30, None, now=NOW)["flow_runs"] == 0  # and a second purge finds nothing


def test_old_logs_go_alone_and_runs_stay(store: Store) -> None:
    removed = retention.purge(store, None, 25, now=NOW)
    assert removed["flow_runs"] == 0 and removed["logs"] == (OLD + 1) * 3 + 2 * 3
    assert len(names(store)) == OLD + 4
    assert {row["message"] for row in store.all("log")} == {f"recent-success {n}" for n in range(3)}


def test_freed_pages_go_back_to_the_file_system(store: Store, tmp_path: Path) -> None:
    with store.transaction():  # enough rows that removing them frees whole pages
        for n in range(300):
            add_run(store, f"bulk-{n}", "Success", 50, 50)
    with sqlite3.connect(str(tmp_path / "emulator.db")) as conn:
        pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    removed = retention.purge(store, 30, None, now=NOW)
    assert removed["pages"] > 0
    assert store.query("PRAGMA freelist_count")[0][0] == 0
    assert store.query("PRAGMA page_count")[0][0] <= pages_before - removed["pages"]


def test_a_removed_runs_idempotency_key_makes_a_new_run(store: Store) -> None:
    ctx = RequestContext(store)
    with store.transaction():
        first = create_flow_run(ctx, {"flow_id": FLOW, "idempotency_key": "daily"})["id"]
        assert create_flow_run(ctx, {"flow_id": FLOW, "idempotency_key": "daily"})["id"] == first
        store.update("flow_run", first, state="Success", end_time=ago(45))
    retention.purge(store, 30, None, now=NOW)
    with store.transaction():
        again = create_flow_run(ctx, {"flow_id": FLOW, "idempotency_key": "daily"})["id"]
    assert again != first and store.get("flow_run", first) is None


def test_the_emulator_purges_at_start_and_logs_what_it_removed(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    store = Store(str(db))
    now = datetime.datetime.now(datetime.timezone.utc)
    with store.transaction():
        add_run(store, "long-gone", "Success", 400, 400, now=now)
        add_run(store, "yesterday", "Success", 1, 1, now=now)
    store.close()
    with Emulator(tmp_path, db=db, extra_args=["--retain-days", "365", "--retain-log-days", "90"]) as emu:
        deadline = time.monotonic() + 30
        while "RETENTION" not in emu.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        runs = emu.graphql("{ flow_run { name } }")["data"]["flow_run"]
    text = emu.log_path.read_text()
    assert "retain_days=365, retain_log_days=90" in text
    assert "RETENTION removed 1 flow run(s) with 2 task run(s), and 3 log line(s)" in text, text
    assert [run["name"] for run in runs] == ["yesterday"]
