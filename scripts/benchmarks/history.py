"""Issue 15: the emulator on a year of history, 100,000 flow runs of a 10-task flow with 20 log lines each
(1,000,000 task runs, 2,000,000 logs, and 3 states per run), in a --db file.

How the file is filled: not through the API (that would take hours), but with the store's own row encoding
(prefect_emulator.dbfile.encode_row) written by SQLite in transactions of 1,000 runs; the tenant, project, flow
and its tasks are made through the Store API. Runs are 5 minutes apart over the year before now, ended, 1 in 20
Failed; the last 5 are Running (their task runs done) and 10 Scheduled ahead, so the agent's queue has
candidates to weigh. Task runs have no states of their own here (the issue's figures count none).

Measured over HTTP against an emulator started on that file: the start to /health, resident memory, the p50 of
the agent's queue poll, flow_run by id, the UI runs page (order_by start_time, limit 10, with states), the
aggregate by state and one run's newest 100 logs; then the poll p50 while a --retain-days purge removes the
oldest tenth of the runs, the purge's duration, and the file's size.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Tuple

import requests

from .report import Row, percentile, progress, rss_mb
from prefect_emulator.dbfile import encode_row, insert_sql
from prefect_emulator.store import Store
from prefect_emulator.timestamps import to_iso
from prefect_emulator.testing import Emulator

RUN_SPACING = dt.timedelta(minutes=5)
QUERIES: Dict[str, str] = {
    "agent queue poll (get_runs_in_queue)":
        "mutation($input: get_runs_in_queue_input!) { get_runs_in_queue(input: $input) { flow_run_ids } }",
    "flow_run(where: {id: {_eq}})": "query($id: uuid) { flow_run(where: {id: {_eq: $id}}) { id state version } }",
    "UI runs page (order_by start_time desc, limit 10, states)":
        "query { flow_run(order_by: {start_time: desc}, limit: 10) "
        "{ id name state start_time states(order_by: {timestamp: asc}) { state timestamp } } }",
    "flow_run_aggregate(where: state) count":
        'query { flow_run_aggregate(where: {state: {_eq: "Failed"}}) { aggregate { count } } }',
    "one run's newest 100 logs":
        "query($id: uuid) { log(where: {flow_run_id: {_eq: $id}}, order_by: {timestamp: desc}, limit: 100) "
        "{ id message timestamp level } }",
}
TARGETS = {"agent queue poll (get_runs_in_queue)": "<= 5 ms", "flow_run(where: {id: {_eq}})": "<= 5 ms"}


def fill(path: Path, runs: int, tasks: int, logs: int) -> Tuple[str, str]:
    """Writes the history into a new --db file; returns (tenant id, a run id from the middle)."""
    store = Store(str(path))
    with store.transaction():
        tenant = store.insert("tenant", {"name": "history", "slug": "history"})["id"]
        project = store.insert("project", {"tenant_id": tenant, "name": "history"})["id"]
        group = store.insert("flow_group", {"tenant_id": tenant, "name": "history"})["id"]
        flow = store.insert("flow", {"tenant_id": tenant, "project_id": project, "flow_group_id": group,
                                     "name": "history", "version": 1, "archived": False})["id"]
        task_ids = [store.insert("task", {"tenant_id": tenant, "flow_id": flow, "slug": f"task-{n}",
                                          "name": f"task-{n}"})["id"] for n in range(tasks)]
    store.close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    now = dt.datetime.now(dt.timezone.utc)
    first = now - RUN_SPACING * (runs - 15)
    middle = ""
    batch: Dict[str, List[dict]] = {}
    for i in range(runs):
        start = first + RUN_SPACING * i
        run_id = str(uuid.uuid4())
        middle = middle or (run_id if i == runs // 2 else "")
        if i >= runs - 10:
            state, ended = "Scheduled", None
        elif i >= runs - 15:
            state, ended = "Running", None
        else:
            state, ended = ("Failed" if i % 20 == 0 else "Success"), start + dt.timedelta(seconds=40)
        stamp, end = to_iso(start), ended and to_iso(ended)
        batch.setdefault("flow_run", []).append({
            "id": run_id, "created": stamp, "updated": stamp, "tenant_id": tenant, "flow_id": flow,
            "name": f"run-{i}", "state": state, "version": 3, "labels": ["history"], "parameters": {},
            "context": {}, "scheduled_start_time": stamp, "state_start_time": stamp if state == "Scheduled" else None,
            "start_time": None if state == "Scheduled" else stamp, "end_time": end, "state_timestamp": end or stamp,
            "state_message": f"{state} benchmark", "auto_scheduled": False, "times_resurrected": 0})
        for version, name in enumerate(("Scheduled", "Running", state)):
            batch.setdefault("flow_run_state", []).append({
                "id": str(uuid.uuid4()), "tenant_id": tenant, "flow_run_id": run_id, "state": name,
                "version": version + 1, "timestamp": stamp, "message": name})
        task_runs = []
        for n, task_id in enumerate(task_ids):
            task_runs.append(str(uuid.uuid4()))
            batch.setdefault("task_run", []).append({
                "id": task_runs[-1], "created": stamp, "updated": stamp, "tenant_id": tenant, "flow_run_id": run_id,
                "task_id": task_id, "map_index": -1, "version": 2, "start_time": stamp, "end_time": end,
                "state": "Pending" if state == "Scheduled" else "Success", "state_timestamp": stamp})
        for n in range(logs):
            at = to_iso(start + dt.timedelta(seconds=n))
            batch.setdefault("log", []).append({
                "id": str(uuid.uuid4()), "created": at, "updated": at, "tenant_id": tenant, "flow_run_id": run_id,
                "task_run_id": task_runs[n % tasks] if n % 2 else None, "timestamp": at, "level": "INFO",
                "name": "prefect.CloudTaskRunner", "message": f"log line {n} of run {i}", "info": {}})
        if (i + 1) % 1000 == 0 or i == runs - 1:
            _write(conn, batch)
            batch = {}
            if (i + 1) % 10000 == 0:
                progress(f"history: {i + 1:,} runs written")
    conn.close()
    return tenant, middle


def _write(conn: sqlite3.Connection, batch: Dict[str, List[dict]]) -> None:
    conn.execute("BEGIN")
    for table, rows in batch.items():
        encoded = [encode_row(table, dict({"created": None, "updated": None}, **row)) for row in rows]
        conn.executemany(insert_sql(table, encoded[0][0]), [values for _names, values in encoded])
    conn.execute("COMMIT")


def timed(session: requests.Session, url: str, body: dict, repetitions: int) -> List[float]:
    """Milliseconds of each of `repetitions` requests of `body`."""
    samples = []
    for _ in range(repetitions):
        began = time.perf_counter()
        answer = session.post(url, json=body, timeout=120).json()
        samples.append((time.perf_counter() - began) * 1000)
        if answer.get("errors"):
            raise RuntimeError(f"{body['query'][:60]}: {answer['errors']}")
    return samples


def measure(quick: bool) -> List[Row]:
    """The rows of issue 15 (10,000 runs when quick, else 100,000)."""
    runs = 10000 if quick else 100000
    repetitions = 10 if quick else 30
    rows: List[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        db = Path(tmp) / "history.db"
        began = time.monotonic()
        progress(f"history: filling {runs:,} runs x 10 task runs x 20 logs")
        tenant, run_id = fill(db, runs, 10, 20)
        filled = time.monotonic() - began
        size = sum(p.stat().st_size for p in Path(tmp).glob("history.db*")) / 1e6
        emulator = Emulator(Path(tmp), db=db)
        began = time.monotonic()
        emulator.start()
        start_s = time.monotonic() - began
        try:
            session = requests.Session()
            variables = {"id": run_id, "input": {"before": dt.datetime.now(dt.timezone.utc).isoformat(),
                                                 "labels": ["other-label"], "tenant_id": tenant}}
            p50 = {}
            for name, text in QUERIES.items():
                p50[name] = percentile(timed(session, emulator.url, {"query": text, "variables": variables},
                                             repetitions), 50)
            rss = rss_mb(emulator.proc.pid) or float("nan")
        finally:
            emulator.stop()
        # the emulator's own time for each request (its GRAPHQL log lines, in the order they were sent): what
        # the store costs, without the HTTP round trip and the client, which a loaded machine stretches most
        handled = server_ms(emulator.log())
        inside = {name: percentile(handled[n * repetitions:(n + 1) * repetitions], 50)
                  for n, name in enumerate(QUERIES)}
        purge = purge_figures(Path(tmp), db, tenant, runs)
    label = f"{runs:,} runs (x10 task runs, x20 logs)"
    rows.append(Row("15", f"history: filled by the store's row encoding in SQL, {label}; file MB",
                    f"{size:.0f}", vs=f"filled in {filled:.0f} s"))
    rows.append(Row("15", f"history: start on that file to /health, s", f"{start_s:.2f}", target="<= 3 s"))
    rows.append(Row("15", "history: resident memory after the queries, MB", f"{rss:.0f}", target="<= 250 MB"))
    for name, figure in p50.items():
        rows.append(Row("15", f"history p50 ms over HTTP (emulator's own): {name}",
                        f"{figure:.1f} ({inside[name]:.1f})", target=TARGETS.get(name, "<= 20 ms")))
    rows.append(Row("15", f"history: agent poll p50 ms over HTTP (emulator's own) while --retain-days purges "
                          f"{purge['removed']}", f"{purge['poll']:.1f} ({purge['inside']:.1f})",
                    vs=f"purge took {purge['seconds']:.0f} s, {purge['polls']} polls", target="polls not stalled"))
    return rows


def purge_figures(tmp: Path, db: Path, tenant: str, runs: int) -> Dict[str, object]:
    """Starts the emulator with --retain-days keeping 90% of the year, polls as an agent until the purge's
    RETENTION line appears; returns the poll p50, the purge's duration and what it removed."""
    days = (RUN_SPACING * runs * 0.9).total_seconds() / 86400
    emulator = Emulator(tmp, db=db, extra_args=["--retain-days", f"{days:.3f}"])
    began = time.monotonic()
    emulator.start()
    samples: List[float] = []
    body = {"query": QUERIES["agent queue poll (get_runs_in_queue)"], "variables": {"input": {
        "before": dt.datetime.now(dt.timezone.utc).isoformat(), "labels": ["other-label"], "tenant_id": tenant}}}
    try:
        with requests.Session() as session:
            deadline = time.monotonic() + 1800
            while "RETENTION" not in emulator.log() and time.monotonic() < deadline:
                samples += timed(session, emulator.url, body, 1)
        line = next((l for l in emulator.log().splitlines() if "RETENTION" in l), "RETENTION (none in time)")
    finally:
        emulator.stop()
    inside = percentile(server_ms(emulator.log()), 50)
    found = re.search(r"removed (\d+) flow run\(s\) with (\d+) task run\(s\), and (\d+) log", line)
    removed = f"{int(found[1]):,} runs, {int(found[2]):,} task runs, {int(found[3]):,} logs" if found else line
    return {"poll": percentile(samples, 50), "inside": inside, "seconds": time.monotonic() - began,
            "polls": len(samples), "removed": removed}


def server_ms(log: str) -> List[float]:
    """The `ms` of each GRAPHQL line of an emulator's log, in order."""
    return [json.loads(line[len("GRAPHQL "):])["ms"] for line in log.splitlines() if line.startswith("GRAPHQL ")]
