"""Goal 3: the emulator at 100 / 5,000 / 20,000 stored runs.

At each size: the p50 of the queries an agent, a flow runner and the UI send most (the agent's queue poll,
flow_run by id filter, a UI page ordered by start time with states, an aggregate count, and the lookup by
primary key as a baseline), and the emulator's resident memory. At the largest size: requests/s of the
flow_run-by-id query with 1 and 4 client threads. Runs are stored through the public API (batches of
create_flow_run mutations, then set_flow_run_states to Running and Success for 9 runs in 10, as in a history
where most runs are done and some wait: a UI page then sorts real start times).
"""
from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

import requests

from .orchestra import Orchestra
from .report import Row, percentile, progress, rss_mb

QUERIES: Dict[str, str] = {
    "agent queue poll (get_runs_in_queue)":
        "mutation($input: get_runs_in_queue_input!) { get_runs_in_queue(input: $input) { flow_run_ids } }",
    "flow_run(where: {id: {_eq}})":
        "query($id: uuid) { flow_run(where: {id: {_eq: $id}}) { id state version } }",
    "UI page (order_by start_time desc, limit 10, states)":
        "query { flow_run(order_by: {start_time: desc}, limit: 10) "
        "{ id name state start_time states(order_by: {timestamp: asc}) { state timestamp } } }",
    "flow_run_aggregate count":
        "query { flow_run_aggregate { aggregate { count } } }",
    "flow_run_by_pk (baseline)":
        "query($id: uuid!) { flow_run_by_pk(id: $id) { id state } }",
}


def store_runs(orch: Orchestra, count: int, batch: int = 100) -> List[str]:
    """Creates `count` runs and moves 9 in 10 of them through Running to Success; returns their ids."""
    from prefect.engine.state import Running, Success

    ids = orch.create_runs(count, batch=batch)
    done = [run_id for i, run_id in enumerate(ids) if i % 10]
    for state in (Running("benchmark"), Success("benchmark")):
        for first in range(0, len(done), batch):
            states = [{"flow_run_id": run_id, "state": state.serialize()} for run_id in done[first:first + batch]]
            orch.query("mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
                       "{ states { id } } }", {"input": {"states": states}})
    return ids


def timed(send: Callable[[], None], repetitions: int) -> List[float]:
    """Milliseconds of each of `repetitions` calls of `send`."""
    samples = []
    for _ in range(repetitions):
        began = time.perf_counter()
        send()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def throughput(url: str, body: dict, threads: int, seconds: float) -> float:
    """Requests/s that `threads` clients (one HTTP session each) get for `seconds`."""
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                session.post(url, json=body, timeout=60).raise_for_status()
                counts[i] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / seconds


def measure(quick: bool) -> List[Row]:
    """The rows of goal 3 (sizes 100 / 1,000 and 10 samples when quick, else 100 / 5,000 / 20,000 and 30)."""
    sizes = [100, 1000] if quick else [100, 5000, 20000]
    repetitions = 10 if quick else 30
    p50: Dict[str, Dict[int, float]] = {name: {} for name in QUERIES}
    memory: Dict[int, float] = {}
    rates: Dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp, Orchestra(Path(tmp), "scale") as orch:
        tenant = orch.query("{ tenant { id } }")["tenant"][0]["id"]
        session = requests.Session()
        stored: List[str] = []
        for size in sizes:
            progress(f"emulator: storing runs up to {size}")
            stored += store_runs(orch, size - len(stored))
            run_id = stored[len(stored) // 2]
            variables = {"id": run_id, "input": {"before": dt.datetime.now(dt.timezone.utc).isoformat(),
                                                 "labels": ["other-label"], "tenant_id": tenant}}
            for name, text in QUERIES.items():
                body = {"query": text, "variables": variables}

                def send() -> None:
                    answer = session.post(orch.emulator.url, json=body, timeout=60).json()
                    if answer.get("errors"):
                        raise RuntimeError(f"{name}: {answer['errors']}")

                p50[name][size] = percentile(timed(send, repetitions), 50)
            memory[size] = rss_mb(orch.emulator.proc.pid) or float("nan")
        body = {"query": QUERIES["flow_run(where: {id: {_eq}})"], "variables": {"id": stored[0]}}
        for threads in (1, 4):
            progress(f"emulator: {threads} client thread(s)")
            rates[threads] = throughput(orch.emulator.url, body, threads, 2.0 if quick else 5.0)
    header = " / ".join(f"{s:,}" for s in sizes)
    rows = []
    for name in QUERIES:
        figures = [p50[name][s] for s in sizes]
        growth = figures[-1] / figures[0] if figures[0] else float("nan")
        target = {"agent queue poll (get_runs_in_queue)": "<= 2x of 100-run",
                  "flow_run(where: {id: {_eq}})": "<= 2x of 100-run",
                  "UI page (order_by start_time desc, limit 10, states)": "<= 20 ms at 20,000"}.get(name, "")
        rows.append(Row("3", f"emulator p50 ms at {header} runs: {name}",
                        " / ".join(f"{f:.1f}" for f in figures), vs=f"{growth:.1f}x growth", target=target))
    rows.append(Row("3", f"emulator requests/s at {sizes[-1]:,} runs, 1 / 4 client threads",
                    f"{rates[1]:.0f} / {rates[4]:.0f}", vs=f"{rates[4] / rates[1]:.2f}x with 4",
                    target="scales with threads"))
    rows.append(Row("3", f"emulator RSS MB at {header} runs", " / ".join(f"{memory[s]:.0f}" for s in sizes)))
    return rows
