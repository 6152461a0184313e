"""Runs the distributed DAG's flow in this process and prints one JSON line per timed run (not a test).

    python scripts/benchmarks/primes_runner.py DAG LIMIT PARTITIONS REPETITIONS --cluster ADDRESS=WORKERS ...
    python scripts/benchmarks/primes_runner.py DAG LIMIT PARTITIONS REPETITIONS --plain

With --cluster (repeatable) the flow is loaded once per cluster with DASK_SCHEDULER_ADDRESS set to its
address (the DAG chooses its executor from the environment, as in a flow-run process); after waiting for
that cluster's workers and one small untimed run (the workers import prefect and the DAG's functions), the
repetitions alternate between the clusters, so that every cluster sees the same machine load. While one
cluster runs the flow the others are paused (SIGSTOP, then SIGCONT), as if it were the only cluster on the
machine, as in the stack: their idle heartbeats would otherwise take CPU from the busy workers, which costs
two busy workers more than one (on 2 cores, the one has a core to spare). --plain times
count_primes over the same partitions in this process instead (the work without Prefect or Dask).
Each line: {"cluster": address or "plain", "wall": s, "task_seconds": s, "task_cpu": s}: the partitions' own
wall and CPU times added up (the task bodies, wherever they ran).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

from prefect.utilities.storage import extract_flow_from_file

from agents.dagkit.datafiles import data_root


def emit(cluster: str, wall: float, task_seconds: float, task_cpu: float) -> None:
    print(json.dumps({"cluster": cluster, "wall": wall, "task_seconds": task_seconds, "task_cpu": task_cpu}),
          flush=True)


def plain(dag: str, limit: int, partitions: int, repetitions: int) -> None:
    """Times count_primes over the DAG's partitions, one after the other, in this process."""
    namespace = runpy.run_path(dag, run_name="primes_runner")
    for _ in range(repetitions):
        began, cpu = time.perf_counter(), time.thread_time()
        for part in namespace["plan_partitions"](limit, partitions):
            namespace["count_primes"](part["start"], part["stop"])
        emit("plain", time.perf_counter() - began, time.perf_counter() - began, time.thread_time() - cpu)


def signal_all(pids: List[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@contextmanager
def only_running(address: str, pids: Dict[str, List[int]]) -> Iterator[None]:
    """Pauses the processes of every cluster but `address` (pids: the processes by cluster) for the block."""
    others = [pid for other, group in pids.items() if other != address for pid in group]
    signal_all(others, signal.SIGSTOP)
    try:
        yield
    finally:
        signal_all(others, signal.SIGCONT)


def on_clusters(dag: str, limit: int, partitions: int, repetitions: int, clusters: List[Tuple[str, int]]) -> None:
    """Runs the flow on each cluster in turn, `repetitions` times each, alternating, the others paused."""
    from distributed import Client

    flows = []
    pids: Dict[str, List[int]] = {}
    for address, workers in clusters:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            pids[address] = [client.run_on_scheduler(os.getpid), *client.run(os.getpid).values()]
        os.environ["DASK_SCHEDULER_ADDRESS"] = address
        flows.append((address, extract_flow_from_file(file_path=dag)))
    # under data/, where the DAG may write (agents.dagkit.datafiles); git ignores data/.pytest-*
    with tempfile.TemporaryDirectory(prefix=".pytest-benchmark-", dir=str(data_root())) as out:
        for address, flow in flows:
            flow.run(parameters={"output_dir": out, "limit": 10_000, "partitions": 4})  # warm-up
        for _ in range(repetitions):
            for address, flow in flows:
                with only_running(address, pids):
                    began = time.perf_counter()
                    state = flow.run(parameters={"output_dir": out, "limit": limit, "partitions": partitions})
                    wall = time.perf_counter() - began
                if not state.is_successful():
                    sys.exit(f"the flow run on {address} failed: {state.message}")
                with open(os.path.join(out, "result.json")) as fh:
                    result = json.load(fh)
                parts = result["partitions"]
                emit(address, wall, sum(p["seconds"] for p in parts), sum(p["cpu_seconds"] for p in parts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag")
    parser.add_argument("limit", type=int)
    parser.add_argument("partitions", type=int)
    parser.add_argument("repetitions", type=int)
    parser.add_argument("--cluster", action="append", default=[], help="ADDRESS=WORKERS")
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()
    if args.plain:
        plain(args.dag, args.limit, args.partitions, args.repetitions)
    else:
        clusters = [(c.rsplit("=", 1)[0], int(c.rsplit("=", 1)[1])) for c in args.cluster]
        on_clusters(args.dag, args.limit, args.partitions, args.repetitions, clusters)


if __name__ == "__main__":
    main()
