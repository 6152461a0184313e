"""The emulator holding a year of history: 100,000 flow runs of a 10-task flow, each with its 10 task runs, their
states and 20 log lines (1,000,000 task runs, 2,000,000 log lines), in a --db file.

How the file is filled: one run goes through the public API as Prefect makes it (create_flow_run makes the 10
task runs and their Pending states; then Submitted, Running and Success for the run and Running and Success for
each task run; 20 log lines through write_run_logs). Its rows are then copied, with new ids and times spread over
the past year (1 run in 50 Failed; the last 0.5% are Scheduled in the coming hours, not yet due), straight
into the file through the store's own inserts, which is what the API's mutations call: filling 6 million rows
request by request would take hours and measure the fill, not the history.

Then, on an emulator started afresh on that file: the time from its start to /health; the p50 of the queries
agents, flow runners, the UI and the dashboard send most; its resident memory after them; and a purge
(`--retain-days`) of the oldest runs while an agent polls: the poll's p50 and p90 during the purge, what went
and how long it took, and the file's size before and after.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import requests

from .emulator_scale import timed
from .report import REPO_ROOT, Row, percentile, progress, rss_mb
from prefect_emulator.testing import Emulator, free_port, graphql_data, wait_for_http

TASKS = 10
LOG_LINES = 20
QUERIES: Dict[str, str] = {
    "agent queue poll (get_runs_in_queue)":
        "mutation($input: get_runs_in_queue_input!) { get_runs_in_queue(input: $input) { flow_run_ids } }",
    "flow_run(where: {id: {_eq}})":
        "query($id: uuid) { flow_run(where: {id: {_eq: $id}}) { id state version } }",
    "UI runs page (order_by start_time desc, limit 10, states)":
        "query { flow_run(order_by: {start_time: desc}, limit: 10) "
        "{ id name state start_time states(order_by: {timestamp: asc}) { state timestamp } } }",
    "flow page runs (where flow, scheduled_start_time desc, limit 10)":
        "query($flow: uuid) { flow_run(where: {flow_id: {_eq: $flow}}, order_by: {scheduled_start_time: desc}, "
        "limit: 10) { id name state scheduled_start_time } }",
    "flow_run_aggregate(where: state) count":
        'query { flow_run_aggregate(where: {state: {_eq: "Success"}}) { aggregate { count } } }',
    "one run's logs (newest 100)":
        "query($id: uuid) { log(where: {flow_run_id: {_eq: $id}}, order_by: {timestamp: desc}, limit: 100) "
        "{ timestamp level message } }",
    "one run's task runs with states":
        "query($id: uuid!) { flow_run_by_pk(id: $id) { task_runs { id state states { state timestamp } } } }",
}
GOALS = {"agent queue poll (get_runs_in_queue)": "<= 5 ms", "flow_run(where: {id: {_eq}})": "<= 5 ms",
         "UI runs page (order_by start_time desc, limit 10, states)": "<= 20 ms",
         "flow_run_aggregate(where: state) count": "<= 20 ms", "one run's logs (newest 100)": "<= 20 ms"}


def template_run(url: str) -> Dict[str, str]:
    """A tenant, a project, a 10-task flow and one run of it taken to Success through the API, as a flow
    runner reports it. Returns the ids of the tenant, flow and run."""
    import prefect
    from prefect.engine.state import Running, Submitted, Success

    def mutate(name: str, input: dict) -> dict:
        return graphql_data(url, f"mutation($input: {name}_input!) {{ {name}(input: $input) {{ id }} }}",
                     {"input": input})[name]

    tenant_id = mutate("create_tenant", {"name": "history", "slug": "history"})["id"]
    project = mutate("create_project", {"tenant_id": tenant_id, "name": "history"})["id"]
    with prefect.Flow("history", run_config=prefect.run_configs.LocalRun(labels=["history"])) as flow:
        previous = None
        for n in range(TASKS):
            previous = prefect.task(lambda x=None: x, name=f"step-{n}")(previous)
    flow_id = mutate("create_flow", {"project_id": project, "serialized_flow": flow.serialize()})["id"]
    run_id = mutate("create_flow_run", {"flow_id": flow_id})["id"]
    states = "mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) { states { id } } }"
    task_states = ("mutation($input: set_task_run_states_input!) { set_task_run_states(input: $input) "
                   "{ states { id } } }")
    for version, state in enumerate((Submitted("history"), Running("history"))):
        graphql_data(url, states, {"input": {"states": [{"flow_run_id": run_id, "version": version,
                                                  "state": state.serialize()}]}})
    task_runs = graphql_data(url, "query($id: uuid!) { flow_run_by_pk(id: $id) { task_runs { id version } } }",
                      {"id": run_id})["flow_run_by_pk"]["task_runs"]
    for offset, state in enumerate((Running("history"), Success("history"))):
        graphql_data(url, task_states, {"input": {"states": [
            {"task_run_id": t["id"], "version": t["version"] + offset, "state": state.serialize()} for t in task_runs]}})
    now = dt.datetime.now(dt.timezone.utc)
    logs = [{"flow_run_id": run_id, "task_run_id": task_runs[n % TASKS]["id"], "name": "prefect.TaskRunner",
             "level": "INFO", "message": f"Task 'step-{n % TASKS}': Finished task run for task with final state: "
                                         f"'Success' (line {n})",
             "timestamp": (now + dt.timedelta(milliseconds=n)).isoformat()} for n in range(LOG_LINES)]
    graphql_data(url, "mutation($input: write_run_logs_input!) { write_run_logs(input: $input) { success } }",
          {"input": {"logs": logs}})
    graphql_data(url, states, {"input": {"states": [{"flow_run_id": run_id, "version": 2, "state": Success("history").serialize()}]}})
    return {"tenant_id": tenant_id, "flow_id": flow_id, "run_id": run_id}


def clone_runs(db: Path, run_id: str, count: int, batch: int = 250) -> float:
    """Copies the template run `count - 1` times into the file (module doc). Returns the seconds it took."""
    from prefect_emulator.store import Store
    from prefect_emulator.timestamps import to_iso

    started = time.monotonic()
    store = Store(str(db))
    try:
        run = store.get("flow_run", run_id)
        run_states = store.find("flow_run_state", "flow_run_id", run_id)
        task_runs = store.find("task_run", "flow_run_id", run_id)
        task_states = {t["id"]: store.find("task_run_state", "task_run_id", t["id"]) for t in task_runs}
        logs = store.find("log", "flow_run_id", run_id)
        now = dt.datetime.now(dt.timezone.utc)
        year_ago = now - dt.timedelta(days=365)
        step = dt.timedelta(days=365) / count
        cutoff = int(count * 0.995)
        for first in range(1, count, batch):
            with store.transaction():
                for n in range(first, min(first + batch, count)):
                    at = year_ago + step * n
                    shift = at - dt.datetime.fromisoformat(run["start_time"])

                    def moved(row: dict, **changes: object) -> dict:
                        copy = {k: v for k, v in row.items() if k not in ("id", "created", "updated")}
                        for column in ("start_time", "end_time", "state_timestamp", "state_start_time",
                                       "scheduled_start_time", "timestamp", "heartbeat"):
                            if copy.get(column):
                                copy[column] = to_iso(dt.datetime.fromisoformat(copy[column]) + shift)
                        copy.update(changes)
                        return copy

                    waiting = n >= cutoff
                    state = "Scheduled" if waiting else "Failed" if n % 50 == 0 else "Success"
                    # the waiting runs are the coming hours' schedule, as Server's scheduler makes it ahead:
                    # the idle agent's poll reads them through the index and finds none due yet
                    due = to_iso(now + dt.timedelta(minutes=1 + n - cutoff)) if waiting else None
                    new = store.insert("flow_run", moved(run, name=f"history-{n}", state=state, **(
                        {"start_time": None, "end_time": None, "scheduled_start_time": due,
                         "state_start_time": due} if waiting else {})))
                    for row in run_states:
                        store.insert("flow_run_state", moved(row, flow_run_id=new["id"]))
                    ids = {}
                    for task_run in task_runs:
                        ids[task_run["id"]] = store.insert("task_run", moved(task_run, flow_run_id=new["id"]))["id"]
                        for row in task_states[task_run["id"]]:
                            store.insert("task_run_state", moved(row, task_run_id=ids[task_run["id"]]))
                    for row in logs:
                        store.insert("log", moved(row, flow_run_id=new["id"], task_run_id=ids.get(row["task_run_id"])))
            if first % 10000 < batch:
                progress(f"history: {first:,} of {count:,} runs written")
    finally:
        store.close()
    return time.monotonic() - started


def start_emulator(workdir: Path, db: Path, *args: str) -> tuple:
    """Starts an emulator on `db`; returns (its process, its URL, seconds from start to a healthy /health)."""
    port = free_port()
    log = open(workdir / f"emulator-{port}.log", "ab")
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "prefect_emulator", "--port", str(port), "--db", str(db), *args],
                            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/health", timeout=300, proc=proc)
    return proc, url, time.monotonic() - began


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def measure(quick: bool) -> List[Row]:
    """The history section (2,000 runs and 10 samples when quick, else 100,000 and 30)."""
    count = 2000 if quick else 100_000
    repetitions = 10 if quick else 30
    rows: List[Row] = []
    shape = f"{count:,} runs x {TASKS} task runs x {LOG_LINES} log lines"
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        workdir = Path(tmp)
        db = workdir / "history.db"
        emulator = Emulator(workdir, db=db).start()
        try:
            ids = template_run(emulator.url)
        finally:
            emulator.stop()
        progress(f"history: cloning the template run into {shape}")
        fill_seconds = clone_runs(db, ids["run_id"], count)
        size_mb = os.path.getsize(db) / 1e6
        rows.append(Row("15", f"history file: {shape} (1 through the API, the rest copied by store inserts)",
                        f"{size_mb:.0f} MB", vs=f"filled in {fill_seconds:.0f} s"))
        proc, url, start_seconds = start_emulator(workdir, db)
        try:
            rows.append(Row("15", "history: emulator start on that file to /health", f"{start_seconds:.2f} s",
                            target="<= 3 s"))
            session = requests.Session()
            some_run = graphql_data(url, '{ flow_run(where: {name: {_eq: "history-%d"}}) { id } }' % (count // 2))
            variables = {"id": some_run["flow_run"][0]["id"], "flow": ids["flow_id"],
                         "input": {"before": dt.datetime.now(dt.timezone.utc).isoformat(), "labels": ["history"],
                                   "tenant_id": ids["tenant_id"]}}
            for name, text in QUERIES.items():
                body = {"query": text, "variables": variables}

                def send() -> None:
                    answer = session.post(url, json=body, timeout=120).json()
                    if answer.get("errors"):
                        raise RuntimeError(f"{name}: {answer['errors']}")

                send()  # the first call warms SQLite's cache of the pages it reads
                rows.append(Row("15", f"history p50 ms: {name}", f"{percentile(timed(send, repetitions), 50):.1f}",
                                target=GOALS.get(name, "")))
            poll = {"query": QUERIES["agent queue poll (get_runs_in_queue)"], "variables": variables}
            fresh = timed(lambda: requests.post(url, json=poll, timeout=120).raise_for_status(), repetitions)
            rows.append(Row("15", "history p50 ms: agent queue poll, a new connection each (as prefect's Client "
                                  "sends it)", f"{percentile(fresh, 50):.1f}", target="<= 5 ms"))
            rows.append(Row("15", "history: emulator resident memory after those queries",
                            f"{rss_mb(proc.pid):.0f} MB", target="<= 250 MB"))
        finally:
            stop(proc)
        rows += purge_while_polling(workdir, db, ids, repetitions)
    return rows


def purge_while_polling(workdir: Path, db: Path, ids: Dict[str, str], repetitions: int) -> List[Row]:
    """Restarts the emulator with --retain-days 300 (its first round, at start, removes the oldest ~18% of the
    runs) and times an agent's poll, every 0.1 s, until the round has logged what it removed."""
    before_mb = os.path.getsize(db) / 1e6
    proc, url, _seconds = start_emulator(workdir, db, "--retain-days", "300")
    log_path = sorted(workdir.glob("emulator-*.log"), key=os.path.getmtime)[-1]
    body = {"query": QUERIES["agent queue poll (get_runs_in_queue)"],
            "variables": {"input": {"labels": ["history"], "tenant_id": ids["tenant_id"]}}}
    samples: List[float] = []
    began = time.monotonic()
    line = ""
    try:
        with requests.Session() as session:
            while time.monotonic() - began < 1800:
                t0 = time.perf_counter()
                session.post(url, json=body, timeout=120).raise_for_status()
                samples.append((time.perf_counter() - t0) * 1000)
                found = [l for l in log_path.read_text().splitlines() if "RETENTION removed" in l]
                if found:
                    line = found[-1]
                    break
                time.sleep(0.1)
        took = time.monotonic() - began
        calm = timed(lambda: requests.post(url, json=body, timeout=120).raise_for_status(), repetitions)
    finally:
        stop(proc)
    after_mb = os.path.getsize(db) / 1e6
    removed = line.split("RETENTION removed ", 1)[-1].split(" (", 1)[0] if line else "nothing logged"
    return [
        Row("15", "history: purge of runs finished over 300 days ago (--retain-days 300), at start", f"{took:.0f} s",
            vs=removed),
        Row("15", f"history: agent poll p50 / p90 ms during the purge ({len(samples)} polls) / after it",
            f"{percentile(samples, 50):.1f} / {percentile(samples, 90):.1f} / {percentile(calm, 50):.1f}",
            target="polls go on"),
        Row("15", "history: file size before / after the purge", f"{before_mb:.0f} / {after_mb:.0f} MB"),
    ]
