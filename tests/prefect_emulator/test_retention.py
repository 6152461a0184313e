"""Retention: `--retain-days` removes finished runs (with their task runs, states, logs) some days after they
ended, `--retain-log-days` old log lines; runs that never finished stay; the file gives the space back; and an
idempotency key whose run is gone makes a new run."""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Dict, Optional

import pytest

from prefect_emulator import retention
from prefect_emulator.services import Retention
from prefect_emulator.store import Store
from prefect_emulator.timestamps import to_iso
from tests.prefect_emulator.in_process import InProcess

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)


def ago(days: float) -> str:
    return to_iso(NOW - datetime.timedelta(days=days))


def add_run(store: Store, state: str, ended: Optional[float], stamped: float, logs_at: float = 0.0) -> str:
    """A flow run in `state` that ended `ended` days ago (None: no end time), with 3 task runs, their states
    and 4 log lines written `logs_at` days ago."""
    run = store.insert("flow_run", {"state": state, "end_time": None if ended is None else ago(ended),
                                    "state_timestamp": ago(stamped), "labels": []})
    store.insert("flow_run_state", {"flow_run_id": run["id"], "state": state, "timestamp": ago(stamped)})
    for n in range(3):
        task_run = store.insert("task_run", {"flow_run_id": run["id"], "state": state, "map_index": -1})
        store.insert("task_run_state", {"task_run_id": task_run["id"], "state": state})
        store.insert("log", {"flow_run_id": run["id"], "task_run_id": task_run["id"], "message": f"task {n}",
                             "timestamp": ago(logs_at)})
    store.insert("log", {"flow_run_id": run["id"], "message": "flow", "timestamp": ago(logs_at)})
    return run["id"]


def counts(store: Store) -> Dict[str, int]:
    return {t: store.count(t) for t in ("flow_run", "flow_run_state", "task_run", "task_run_state", "log")}


def test_finished_runs_go_after_the_retention_period_and_the_rest_stays(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "emulator.db"))
    try:
        with store.transaction():
            old = [add_run(store, "Success", 40, 40), add_run(store, "Failed", 31, 31),
                   add_run(store, "Cancelled", None, 45)]  # cancelled before it started: dated by its state
            kept = {
                "recent": add_run(store, "Success", 10, 10),
                "running for long": add_run(store, "Running", None, 90),
                "scheduled long ago": add_run(store, "Scheduled", None, 90),
                "ended long ago, running again": add_run(store, "Running", 60, 1),
            }
        before = counts(store)
        removed = retention.purge(store, NOW, retain_days=30, retain_log_days=None)
        assert removed["flow_run"] == 3 and removed["task_run"] == 9 and removed["log"] == 12
        assert removed["flow_run_state"] == 3 and removed["task_run_state"] == 9
        after = counts(store)
        assert {t: before[t] - after[t] for t in before} == {t: removed[t] for t in before}
        assert all(store.get("flow_run", run_id) is None for run_id in old)
        assert all(store.get("flow_run", run_id) is not None for run_id in kept.values()), kept
        assert len(store.find("task_run", "flow_run_id", kept["recent"])) == 3
        assert retention.purge(store, NOW, retain_days=30, retain_log_days=None) == {}  # nothing left to do
    finally:
        store.close()


def test_old_log_lines_go_whatever_their_run(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "emulator.db"))
    try:
        with store.transaction():
            running = add_run(store, "Running", None, 1, logs_at=20)
            recent = add_run(store, "Success", 1, 1, logs_at=1)
        removed = retention.purge(store, NOW, retain_days=None, retain_log_days=7)
        assert removed["log"] == 4 and set(removed) == {"log", "pages"}
        assert store.find("log", "flow_run_id", running) == []
        assert len(store.find("log", "flow_run_id", recent)) == 4
        assert len(store.find("task_run", "flow_run_id", running)) == 3  # only the lines went
    finally:
        store.close()


def test_a_purge_works_in_small_transactions_and_gives_the_space_back(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "emulator.db"
    store = Store(str(path))
    try:
        with store.transaction():
            for _ in range(120):
                run = add_run(store, "Success", 100, 100)
                for n in range(20):
                    store.insert("log", {"flow_run_id": run, "message": "x" * 400, "timestamp": ago(100)})
        pages = store.page_count()
        commits = []
        transaction = store.transaction

        def counted():
            commits.append(store.count("flow_run"))
            return transaction()

        monkeypatch.setattr(store, "transaction", counted)
        monkeypatch.setattr(retention, "BATCH_RUNS", 25)
        removed = retention.purge(store, NOW, retain_days=30, retain_log_days=None)
        assert removed["flow_run"] == 120 and len(commits) == 5  # 25 runs a transaction
        assert commits == [120, 95, 70, 45, 20]
        assert removed["pages"] > 0 and store.page_count() < pages / 4, (pages, store.page_count())
    finally:
        store.close()


def test_the_service_logs_what_it_removed() -> None:
    store = Store()
    try:
        with store.transaction():
            add_run(store, "Success", 50, 50)
        service = Retention(store, retain_days=30, retain_log_days=None)
        lines = service.report(service.run_once(NOW))
        assert len(lines) == 1 and lines[0].startswith("RETENTION removed ")
        assert "1 flow run row(s)" in lines[0] and "runs finished more than 30 day(s) ago" in lines[0]
        assert service.report(service.run_once(NOW)) == []
    finally:
        store.close()


def test_an_idempotency_key_whose_run_is_gone_makes_a_new_run() -> None:
    from prefect.engine.state import Success

    emulator = InProcess()
    flow_id = emulator.flow_run("kept-key")["flow_id"]
    make = {"flow_id": flow_id, "idempotency_key": "nightly-2026-10-01"}
    first = emulator.mutate("create_flow_run", make)["id"]
    assert emulator.mutate("create_flow_run", make)["id"] == first  # the key holds while its run exists
    emulator.set_state(first, Success("done"))
    store = emulator.emulator.store
    with store.transaction():
        store.update("flow_run", first, end_time=ago(100))
    assert retention.purge(store, NOW, retain_days=30, retain_log_days=None)["flow_run"] == 1
    second = emulator.mutate("create_flow_run", make)["id"]
    assert second != first and store.get("flow_run", second)["idempotency_key"] == make["idempotency_key"]
