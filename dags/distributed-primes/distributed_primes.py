"""Counts the primes up to `limit` in `partitions` mapped tasks, on the stack's Dask cluster when there is one.

plan (checks the parameters, splits [2, limit] into equal ranges), count (mapped: sieves one range and records
the worker that ran it), summarize (adds the counts up, logs who ran what, writes result.json and
runs/<flow-run-id>.json atomically). The runtime gives the executor (agents.dagkit.executors: the cluster at
DASK_SCHEDULER_ADDRESS where the flow runs, else a thread pool) and keeps the outputs in data/
(agents.dagkit.datafiles). The defaults make ~4 s of sieving: 2 workers finish it about 1.7x sooner than 1
(scripts/benchmark.py --only dask).

Parameters (relative paths are taken from the repository root, /app inside the containers):
    limit        count the primes <= limit           (default 500000000)
    partitions   how many mapped tasks               (default 16)
    output_dir   where result.json goes, in data/    (default data/output/distributed-primes)

Run it here with `python dags/distributed-primes/distributed_primes.py --local [--param partitions=4]`.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from typing import Any, Dict, List, Optional

import prefect
from prefect import Flow, Parameter, task
from prefect.run_configs import LocalRun

from agents.dagkit.checks import int_parameter
from agents.dagkit.datafiles import confined_path, write_files_atomically
from agents.dagkit.executors import choose_executor, describe_executor, worker_identity

# Script storage exec()s this file with only __file__ in its globals: without a module name of our own, not an
# importable one, cloudpickle would search all of sys.modules for each function it sends to a worker (over 1 s
# per run). The functions are still pickled by value, so the workers need not have this file.
if "__name__" not in globals():
    __name__ = "dag_distributed_primes"

PROJECT = "My Tests"
FLOW_NAME = "distributed-primes"
MAX_LIMIT, MAX_PARTITIONS = 10 ** 9, 10_000
SIEVE_BLOCK = 1 << 20  # numbers a partition sieves at a time: a few MiB of memory, in the CPU cache


def plan_partitions(limit: int, partitions: int) -> List[Dict[str, int]]:
    """Splits [2, limit] into `partitions` half-open ranges [start, stop) of (nearly) equal size."""
    span = limit - 1  # how many numbers in [2, limit]
    if partitions > span:
        raise ValueError(f"parameter partitions={partitions} is more than the {span} numbers in 2..{limit}: "
                         f"pass partitions <= {span} or a larger limit")
    bounds = [2 + span * i // partitions for i in range(partitions + 1)]
    return [{"index": i, "start": bounds[i], "stop": bounds[i + 1]} for i in range(partitions)]


def count_primes(start: int, stop: int, block: int = SIEVE_BLOCK) -> int:
    """Counts the primes p with start <= p < stop: a segmented sieve of Eratosthenes, `block` numbers at a time.

    It allocates nothing per prime or per block: Dask's Nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536,
    which makes every temporary buffer over 128 KiB a fresh mmap that the kernel zeroes, and a sieve that made
    a buffer per prime ran ~1.2x slower on a worker than in a plain process. This one runs the same in both.
    """
    start = max(start, 2)
    if stop <= start:
        return 0
    root = math.isqrt(stop - 1)
    small = bytearray([1]) * (root + 1)
    small[0:2] = b"\x00\x00"
    for p in range(2, math.isqrt(root) + 1):
        if small[p]:
            small[p * p::p] = bytes(len(range(p * p, root + 1, p)))
    primes = [p for p in range(2, root + 1) if small[p]]
    size = min(block, stop - start)
    ones, window = bytearray([1]) * size, bytearray(size)
    zeros: Dict[int, bytearray] = {}  # zero fills by length, made once (a bytes fill would be copied each time)
    total = 0
    for low in range(start, stop, size):
        high = min(low + size, stop)
        window[:] = ones  # same length: a copy into place, no allocation
        for p in primes:
            if p * p >= high:
                break
            first = max(p * p, (low + p - 1) // p * p)
            if first < high:
                count = len(range(first, high, p))
                window[first - low:high - low:p] = zeros.get(count) or zeros.setdefault(count, bytearray(count))
        total += window.count(1, 0, high - low)
    return total


@task(name="plan", checkpoint=False)
def plan(limit: Any, partitions: Any, output_dir: Any) -> List[Dict[str, int]]:
    """Checks the parameters, output_dir included (before the work, not after), and splits the work."""
    confined_path(output_dir, "output_dir", example=f"data/output/{FLOW_NAME}")
    return plan_partitions(int_parameter(limit, "limit", 2, MAX_LIMIT),
                           int_parameter(partitions, "partitions", 1, MAX_PARTITIONS))


@task(name="count", checkpoint=False)
def count(partition: Dict[str, int]) -> Dict[str, Any]:
    """Counts the primes of one partition; seconds is wall time, cpu_seconds this thread's CPU time."""
    began, cpu = time.perf_counter(), time.thread_time()
    primes = count_primes(partition["start"], partition["stop"])
    result = dict(partition, primes=primes, seconds=round(time.perf_counter() - began, 4),
                  cpu_seconds=round(time.thread_time() - cpu, 4), **worker_identity())
    prefect.context.get("logger").info("partition %d [%d, %d): %d primes, ran on host %s worker %s (pid %d)",
                                       result["index"], result["start"], result["stop"], primes,
                                       result["hostname"], result["worker"], result["pid"])
    return result


@task(name="summarize", checkpoint=False)
def summarize(results: List[Dict[str, Any]], limit: Any, output_dir: Any, agent_name: Optional[str],
              executor: Dict[str, Any]) -> Dict[str, Any]:
    """Adds up the partitions, logs who ran what, and writes result.json; returns the result document."""
    folder = confined_path(output_dir, "output_dir", example=f"data/output/{FLOW_NAME}")
    logger = prefect.context.get("logger")
    results = sorted(results, key=lambda r: r["index"])
    workers = sorted({r["worker"] for r in results})
    run_id = prefect.context.get("flow_run_id")
    document = {
        "flow": FLOW_NAME, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "flow_run_id": run_id, "flow_run_name": prefect.context.get("flow_run_name"), "agent_name": agent_name,
        "executor": executor, "limit": int_parameter(limit, "limit", 2, MAX_LIMIT),
        "total_primes": sum(r["primes"] for r in results), "partitions": results, "workers": workers,
        "hosts": sorted({r["hostname"] for r in results}),
    }
    for r in results:
        logger.info("partition %d ran on %s (host %s)", r["index"], r["worker"], r["hostname"])
    logger.info("%d primes <= %d in %d partitions on %d distinct worker(s): %s (executor %s, agent %s)",
                document["total_primes"], document["limit"], len(results), len(workers), ", ".join(workers),
                executor["type"], agent_name or "-")
    payload = json.dumps(document, indent=2) + "\n"
    run_file = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(run_id or time.time_ns())) + ".json"
    write_files_atomically(folder / "runs", {run_file: payload})
    write_files_atomically(folder, {"result.json": payload})
    logger.info("wrote %s and runs/%s", folder / "result.json", run_file)
    return document


executor = choose_executor()
with Flow(FLOW_NAME, executor=executor, run_config=LocalRun(labels=["dask"])) as flow:
    limit = Parameter("limit", default=500_000_000)
    # more partitions than a small cluster has threads, so that every worker of a scaled cluster gets some
    partitions = Parameter("partitions", default=16)
    output_dir = Parameter("output_dir", default=f"data/output/{FLOW_NAME}")
    counts = count.map(plan(limit, partitions, output_dir))
    # constants, evaluated here in the flow-run process: the tasks on a cluster run where this is unknown
    summarize(counts, limit, output_dir, agent_name=os.environ.get("DAGS_AGENT_NAME") or None,
              executor=describe_executor(executor))


if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
