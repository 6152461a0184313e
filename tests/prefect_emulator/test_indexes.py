"""The emulator's indexes choose which rows a query looks at, never what it answers: every query gives the same
rows in the same order through the indexes as through a scan of the whole table, over a store with many runs
(ties, nulls, several tenants and flows), after updates, deletes and a rolled-back transaction, and after a
restart on the same --db file. The readers-writer lock lets readers share and keeps writers alone."""
from __future__ import annotations

import datetime
import random
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from prefect_emulator import filters, sql
from prefect_emulator.rwlock import ReadWriteLock
from prefect_emulator.runs import queue_where
from prefect_emulator.states import SCHEDULED_STATES
from prefect_emulator.store import Store
from prefect_emulator.timestamps import to_iso

STATES = ["Scheduled", "Submitted", "Running", "Success", "Failed", "Retrying", None]
TENANTS = ["00000000-0000-4000-8000-00000000000" + str(i) for i in range(2)]
FLOWS = ["00000000-0000-4000-8000-0000000000f" + str(i) for i in range(3)]
BASE = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def stamp(rng: random.Random) -> Optional[str]:
    """A timestamp from a small set (many ties), or null one time in five."""
    return None if rng.random() < 0.2 else to_iso(BASE + datetime.timedelta(minutes=rng.randrange(40)))


def add_run(store: Store, rng: random.Random) -> dict:
    """A flow run with random state, times, name and labels, a task run and one or two states."""
    flow = rng.choice(FLOWS)
    run = store.insert("flow_run", {
        "tenant_id": TENANTS[FLOWS.index(flow) % 2], "flow_id": flow, "state": rng.choice(STATES),
        "name": rng.choice(["amber-otter", "brisk-heron", "calm-lynx", None]), "version": rng.randrange(4),
        "labels": rng.choice([[], ["a"], ["a", "b"]]), "start_time": stamp(rng), "state_start_time": stamp(rng),
        "scheduled_start_time": stamp(rng), "heartbeat": stamp(rng),
    })
    store.insert("task_run", {"tenant_id": run["tenant_id"], "flow_run_id": run["id"], "map_index": -1,
                              "state": rng.choice(STATES), "state_start_time": stamp(rng)})
    for version in range(rng.randrange(1, 3)):
        store.insert("flow_run_state", {"tenant_id": run["tenant_id"], "flow_run_id": run["id"],
                                        "state": rng.choice(STATES), "timestamp": stamp(rng), "version": version})
    return run


def fill(store: Store, count: int, seed: int = 7) -> List[dict]:
    rng = random.Random(seed)
    with store.transaction():
        for i, flow in enumerate(FLOWS):
            store.insert("flow", {"id": flow, "tenant_id": TENANTS[i % 2], "name": f"flow-{i}",
                                  "project_id": TENANTS[0] if i else TENANTS[1], "archived": i == 2})
        return [add_run(store, rng) for _ in range(count)]


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    store = Store()
    fill(store, 700)
    yield store
    store.close()


def some_id(store: Store, n: int) -> str:
    runs = store.all("flow_run")
    return runs[n % len(runs)]["id"]


def wheres(store: Store) -> List[dict]:
    """Where clauses that use an index, and some that cannot."""
    ids = [some_id(store, n) for n in (3, 350, 699)]
    later = to_iso(BASE + datetime.timedelta(minutes=20))
    return [
        {},
        {"id": {"_eq": ids[1]}},
        {"id": {"_in": ids + ["00000000-0000-4000-8000-000000000999"]}},
        {"state": {"_eq": "Running"}},
        {"state": {"_in": ["Scheduled", "Retrying"]}, "start_time": {"_is_null": True}},
        {"state": {"_eq": "Success"}, "flow_id": {"_eq": FLOWS[1]}},
        {"state": {"_neq": "Success"}},
        {"state": {"_eq": None}},  # a null comparison argument is ignored
        {"state": {"_is_null": True}},
        {"flow": {"id": {"_eq": FLOWS[2]}}, "name": {"_ilike": "%o%"}},
        {"flow": {"project_id": {"_eq": TENANTS[0]}, "archived": {"_eq": False}}},
        {"tenant_id": {"_eq": TENANTS[1]}, "state_start_time": {"_lte": later}},
        {"_and": [{"state": {"_in": ["Failed", "Running"]}}, {"flow_id": {"_eq": FLOWS[0]}}]},
        {"_or": [{"state": {"_eq": "Failed"}}, {"id": {"_eq": ids[0]}}]},
        {"_or": [{"state": {"_eq": "Failed"}}, {"name": {"_eq": "calm-lynx"}}]},
        {"_or": []},
        {"_not": {"state": {"_eq": "Success"}}},
        {"task_runs": {"state": {"_eq": "Running"}}},
        {"states": {"state": {"_eq": "Failed"}, "timestamp": {"_gt": later}}},
        {"state": {"_eq": "Running"}, "task_runs": {"state": {"_in": SCHEDULED_STATES}}},
        queue_where(TENANTS[0], later),
        {"name": {"_like": "%o_%"}},
        {"name": {"_nlike": "calm%"}, "version": {"_gt": 1}},
        {"version": {"_nin": [0, 2]}, "state": {"_similar": "S%"}},
        {"labels": {"_contains": ["a"]}, "state": {"_eq": "Success"}},  # jsonb: Python tests what SQLite finds
        {"_not": {"name": {"_ilike": "%O%"}}},
        {"flow": {"name": {"_similar": "flow-_"}}, "start_time": {"_gte": later}},
        {"_or": [{"name": {"_ilike": "calm%"}}, {"version": {"_lte": 0}}]},
    ]


ORDERS = [
    None,
    [{"start_time": "desc"}],
    [{"start_time": "asc"}],
    [{"scheduled_start_time": "asc_nulls_first"}],
    [{"state_start_time": "desc_nulls_last"}],
    [{"state_start_time": "asc"}, {"name": "desc"}],
    [{"heartbeat": "desc", "version": "asc"}],
    [{"heartbeat": None}, {"start_time": "asc"}],
    [{"name": "asc"}, {"start_time": "desc"}],
    [{"flow": {"name": "desc"}}, {"start_time": "asc"}],
    [{"task_runs_aggregate": {"count": "desc"}}, {"state": "asc_nulls_first"}],
    [{"labels": "asc"}, {"version": "desc"}],  # jsonb: sorted in Python
]
PAGES = [(None, None), (10, None), (10, 5), (0, None), (3, 200), (1000, 750), (None, 40)]


def ids_of(rows: List[dict]) -> List[str]:
    return [row["id"] for row in rows]


def same_both_ways(store: Store, where: dict, order_by: Optional[list], limit: Optional[int],
                   offset: Optional[int], scans: Optional[dict] = None) -> List[str]:
    """The ids SQLite selects, checked against Python's scan of the whole table. `scans` keeps each scan for
    the other pages of the same query (Python applies offset and limit last, so a page is a slice of it)."""
    args = dict(where=where, order_by=order_by, limit=limit, offset=offset)
    indexed = ids_of(filters.select(store, "flow_run", **args))
    key = repr((where, order_by))
    if scans is None or key not in scans:
        scanned = ids_of(filters.select(store, "flow_run", use_sql=False, where=where, order_by=order_by))
        if scans is not None:
            scans[key] = scanned
    else:
        scanned = scans[key]
    start = offset or 0
    assert indexed == scanned[start:None if limit is None else start + limit], args
    return indexed


def test_every_query_gives_the_same_rows_in_the_same_order_with_and_without_indexes(store: Store) -> None:
    answered = 0
    scans: dict = {}
    for where in wheres(store):
        for order_by in ORDERS:
            for limit, offset in PAGES:
                answered += bool(same_both_ways(store, where, order_by, limit, offset, scans))
    assert answered > 500  # most combinations select rows: the comparison is not between empty lists


def test_the_filters_on_indexed_columns_search_an_index_instead_of_scanning(store: Store) -> None:
    plans = {}
    for where in wheres(store):
        plan = " | ".join(store.explain("flow_run", sql.where_sql("flow_run", where)))
        plans[str(where)] = plan
    searched = [w for w, plan in plans.items() if "SCAN flow_run" not in plan]
    # all but {}, _neq, null and pattern-only filters, _not, and conditions that hold for most runs
    assert len(searched) >= 10, plans
    assert "USING INDEX flow_run__state__state_start_time" in plans[str({"state": {"_eq": "Running"}})]
    assert "SCAN flow_run" in plans[str({"state": {"_neq": "Success"}})]


def test_like_patterns_compile_to_globs_that_match_the_same_texts() -> None:
    import sqlite3

    from prefect_emulator.filters import LikePattern

    conn = sqlite3.connect(":memory:")
    rng = random.Random(5)
    alphabet = "ab%_\\*?[]\né"
    checked = matched = 0
    for _ in range(3000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        text = "".join(rng.choice("ab*?[]\\\né") for _ in range(rng.randrange(6)))
        want = LikePattern(pattern).matches(text)
        got = conn.execute("SELECT ? GLOB ?", (text, sql.like_to_glob(pattern))).fetchone()[0]
        assert bool(got) == want, (pattern, text, sql.like_to_glob(pattern))
        checked += 1
        matched += want
    assert matched > 100, matched  # not only misses


def test_ordered_pages_with_ties_match_a_full_sort(store: Store) -> None:
    # 40 distinct minutes over 700 runs: every page edge falls inside a tie
    for offset in range(0, 60, 7):
        page = same_both_ways(store, {}, [{"start_time": "desc"}, {"version": "asc"}], 9, offset)
        assert len(page) == 9


def test_distinct_on_and_relation_arrays_agree_both_ways(store: Store) -> None:
    args = dict(order_by=[{"start_time": "asc"}], distinct_on=["state"], limit=4)
    assert (ids_of(filters.select(store, "flow_run", **args))
            == ids_of(filters.select(store, "flow_run", use_sql=False, **args)))
    run = store.all("flow_run")[11]
    states = filters.related(store, "flow_run", run, "states")
    assert states and all(s["flow_run_id"] == run["id"] for s in states)


def test_indexes_follow_updates_deletes_and_a_rolled_back_transaction() -> None:
    store = Store()
    runs = fill(store, 400, seed=11)
    running = {"state": {"_eq": "Running"}}
    page = [{"state_start_time": "asc"}]
    same_both_ways(store, running, page, 5, None)  # builds the state and order indexes before the writes
    moved, gone = runs[0], runs[1]
    with store.transaction():
        store.update("flow_run", moved["id"], state="Running", state_start_time=to_iso(BASE))
        store.delete("flow_run", gone["id"])
    assert moved["id"] in same_both_ways(store, running, None, None, None)
    assert same_both_ways(store, running, page, 1, None) == [moved["id"]]  # the earliest start of all
    assert gone["id"] not in same_both_ways(store, {}, page, None, None)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.update("flow_run", moved["id"], state="Failed")
            store.delete("flow_run", runs[2]["id"])
            raise RuntimeError("refused")
    assert moved["id"] in same_both_ways(store, running, page, 3, None)
    rng = random.Random(3)
    for _ in range(300):  # random writes, each index kept or rebuilt: still the scan's answers
        with store.transaction():
            victim = rng.choice(store.all("flow_run"))
            if rng.random() < 0.2:
                store.delete("flow_run", victim["id"])
            elif rng.random() < 0.2:
                add_run(store, rng)
            else:
                store.update("flow_run", victim["id"], state=rng.choice(STATES), start_time=stamp(rng))
    for where in wheres(store):
        for order_by in ORDERS[:5]:
            same_both_ways(store, where, order_by, 7, 3)
    store.close()


def test_rows_reloaded_from_the_database_are_indexed(tmp_path: Path) -> None:
    path = str(tmp_path / "emulator.db")
    store = Store(path)
    runs = fill(store, 300, seed=5)
    with store.transaction():
        store.update("flow_run", runs[9]["id"], state="Cancelling")
    store.close()
    reopened = Store(path)
    try:
        assert same_both_ways(reopened, {"state": {"_eq": "Cancelling"}}, None, None, None) == [runs[9]["id"]]
        for where in wheres(reopened):
            same_both_ways(reopened, where, [{"start_time": "desc"}], 10, 2)
    finally:
        reopened.close()


def test_readers_share_the_lock_and_a_writer_waits_for_them() -> None:
    lock = ReadWriteLock()
    second_reader, writer_in = threading.Event(), threading.Event()

    def read() -> None:
        with lock.reading():
            second_reader.set()

    def write() -> None:
        with lock.writing():
            writer_in.set()

    with lock.reading():
        threading.Thread(target=read).start()
        assert second_reader.wait(5), "a second reader waited for the first"
        writer = threading.Thread(target=write)
        writer.start()
        assert not writer_in.wait(0.2), "a writer got in while a reader held the lock"
        with pytest.raises(RuntimeError, match="cannot start writing"):
            with lock.writing():
                pass
    assert writer_in.wait(5), "the writer never got in after the reader left"
    writer.join(5)
    with lock.writing(), lock.writing(), lock.reading():
        pass  # a writer may nest writing and reading
