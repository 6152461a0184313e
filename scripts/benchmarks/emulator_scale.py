"""Goal 3: the emulator at 100 / 5,000 / 20,000 stored runs.

At each size: the p50 of the queries an agent, a flow runner and the UI send most (the agent's queue poll,
flow_run by id filter, two UI pages of 10 runs: the runs ordered by start time with their states, and the flow
page's runs table as the UI asks for it, an aggregate count, and the lookup by primary key as a baseline), and
the emulator's resident memory. At the largest size: requests/s of the flow_run-by-id query with 1 and 4
client threads, and the p50 of the lookup by primary key alone and while another client runs a query that
scans every run (a filter no index helps), which shows whether a query holds the whole emulator while it
runs. Runs are stored through the public API (batches of
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
    "UI flow page runs table (where flow/states/name, scheduled_start_time desc, limit 10)":
        "query($flow: uuid, $states: [String!]) { flow_run(where: {state: {_in: $states}, name: {_ilike: \"%\"}, "
        "flow: {id: {_eq: $flow}}}, order_by: [{scheduled_start_time: desc}], limit: 10, offset: 0) "
        "{ id name state scheduled_start_time start_time end_time } }",
    "flow_run_aggregate count":
        "query { flow_run_aggregate { aggregate { count } } }",
    "flow_run_by_pk (baseline)":
        "query($id: uuid!) { flow_run_by_pk(id: $id) { id state } }",
}
# a filter no index answers: every run's name is matched against the pattern
SCAN = 'query { flow_run_aggregate(where: {name: {_ilike: "%no-such-run%"}}) { aggregate { count } } }'


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


def beside_a_scan(url: str, body: dict, repetitions: int) -> List[float]:
    """Milliseconds of each of `repetitions` requests `body` while another client sends SCAN in a loop."""
    stop = threading.Event()

    def scan() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                session.post(url, json={"query": SCAN}, timeout=120).raise_for_status()

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        time.sleep(0.5)  # the scans are under way
        with requests.Session() as session:
            return timed(lambda: session.post(url, json=body, timeout=120).raise_for_status(), repetitions)
    finally:
        stop.set()
        scanner.join()


def measure(quick: bool) -> List[Row]:
    """The rows of goal 3 (sizes 100 / 1,000 and 10 samples when quick, else 100 / 5,000 / 20,000 and 30)."""
    sizes = [100, 1000] if quick else [100, 5000, 20000]
    repetitions = 10 if quick else 30
    p50: Dict[str, Dict[int, float]] = {name: {} for name in QUERIES}
    memory: Dict[int, float] = {}
    rates: Dict[int, float] = {}
    alone: List[float] = []
    beside: List[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp, Orchestra(Path(tmp), "scale") as orch:
        tenant = orch.query("{ tenant { id } }")["tenant"][0]["id"]
        session = requests.Session()
        stored: List[str] = []
        for size in sizes:
            progress(f"emulator: storing runs up to {size}")
            stored += store_runs(orch, size - len(stored))
            run_id = stored[len(stored) // 2]
            variables = {"id": run_id, "input": {"before": dt.datetime.now(dt.timezone.utc).isoformat(),
                                                 "labels": ["other-label"], "tenant_id": tenant},
                         "flow": orch.flow_id, "states": ["Scheduled", "Running", "Success", "Failed"]}
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
        progress("emulator: a cheap query beside a scanning one")
        pk = {"query": QUERIES["flow_run_by_pk (baseline)"], "variables": {"id": stored[0]}}
        alone = timed(lambda: session.post(orch.emulator.url, json=pk, timeout=60).raise_for_status(), repetitions)
        beside = beside_a_scan(orch.emulator.url, pk, repetitions)
        scan_ms = percentile(timed(lambda: session.post(orch.emulator.url, json={"query": SCAN},
                                                        timeout=120).raise_for_status(), 5), 50)
    header = " / ".join(f"{s:,}" for s in sizes)
    rows = []
    for name in QUERIES:
        figures = [p50[name][s] for s in sizes]
        growth = figures[-1] / figures[0] if figures[0] else float("nan")
        target = {"agent queue poll (get_runs_in_queue)": "<= 2x of 100-run",
                  "flow_run(where: {id: {_eq}})": "<= 2x of 100-run"}.get(name, "")
        if name.startswith("UI "):
            target = "<= 20 ms at 20,000"
        rows.append(Row("3", f"emulator p50 ms at {header} runs: {name}",
                        " / ".join(f"{f:.1f}" for f in figures), vs=f"{growth:.1f}x growth", target=target))
    rows.append(Row("3", f"emulator requests/s at {sizes[-1]:,} runs, 1 / 4 client threads",
                    f"{rates[1]:.0f} / {rates[4]:.0f}", vs=f"{rates[4] / rates[1]:.2f}x with 4",
                    target="scales with threads"))
    pk_figures = f"{percentile(alone, 50):.1f} / {percentile(beside, 50):.1f}"
    rows.append(Row("3", f"emulator p50 ms of flow_run_by_pk at {sizes[-1]:,} runs: alone / while another client "
                         f"loops a {scan_ms:.0f} ms scan", pk_figures, target="far below the scan's time"))
    rows.append(Row("3", f"emulator RSS MB at {header} runs", " / ".join(f"{memory[s]:.0f}" for s in sizes)))
    return rows
