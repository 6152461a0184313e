"""Counts the primes up to `limit` in `partitions` mapped tasks, on a Dask cluster when there is one.

plan       splits [2, limit] into equal ranges;
count      (mapped, one task per range) sieves its range and records which worker ran it: the hostname, the
           process id, and on a distributed cluster `distributed.get_worker().address`;
summarize  adds the counts up, logs which worker ran each partition, and writes result.json (and
           runs/<flow-run-id>.json) atomically under output_dir.

The executor is chosen when this file is executed, i.e. in the process that runs the flow: prefect's script
storage exec()s this file in the flow-run process, so the module-level `choose_executor()` reads that
process's environment. With DASK_SCHEDULER_ADDRESS set (e.g. tcp://dask-scheduler:8786) the tasks go to
that cluster through a DaskExecutor; otherwise they run on a LocalDaskExecutor (a thread pool in the
flow-run process). DAGS_AGENT_NAME (set by the runtime to the agent that spawned the run) is read there too
and passed to the tasks as a constant, because on a cluster the tasks run on Dask workers whose
environment does not have it.

Parameters (relative paths are taken from the repository root, /app inside the containers):
    limit        count the primes <= limit           (default 500000000)
    partitions   how many mapped tasks               (default 16)
    output_dir   where result.json goes              (default data/output/distributed-primes)

The defaults make ~4 s of sieving (about 0.25 s per partition), enough to show distribution: the fixed cost
of a flow run on a cluster (connect, parameters, plan, summarize, and ~20 ms of prefect per partition: 0.7 s
with almost no work) stays small beside it, and 2 workers finish it about 1.7x sooner than 1
(scripts/benchmark.py --only dask measures it).

Run it here with `python dags/distributed-primes/distributed_primes.py --local [--param partitions=4]`,
or register and host it with `python dags/distributed-primes/distributed_primes.py`.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import pathlib
import pickle
import socket
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import prefect
from prefect import Flow, Parameter, task
from prefect.executors import DaskExecutor, Executor, LocalDaskExecutor
from prefect.run_configs import LocalRun

# prefect's script storage exec()s this file with only __file__ in its globals: the functions defined below
# would have no __module__, and cloudpickle, which pickles the tasks sent to Dask workers, would then search
# every module in sys.modules for each of them (over 1 s per flow run with prefect and dask imported). Any
# name of our own, not an importable module, ends that search; they are still pickled by value.
if "__name__" not in globals():
    __name__ = "dag_distributed_primes"

PROJECT = "My Tests"
FLOW_NAME = "distributed-primes"
# dags/<name>/<file>.py -> the repository root (/app in the image), where data/ lives
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_LIMIT = 10 ** 9
MAX_PARTITIONS = 10_000
# numbers a partition sieves at a time: its memory stays a few MiB whatever the range, and in the CPU cache
SIEVE_BLOCK = 1 << 20


# ---------------------------------------------------------------- executor

class SchedulerDaskExecutor(DaskExecutor):
    """prefect's DaskExecutor on an existing scheduler: its connection failure says what to check, and each
    worker process takes in the flow run's prefect config once instead of three times per task.

    Why the config: prefect's flow runner gives every task the whole `prefect.context`, `config` included (the
    flow-run process's settings: its API address and credentials, among others), and on the worker
    `prefect.context(...)` merges that Box into the worker's own config at each of three nested levels of
    run_task and TaskRunner.run: about 24 ms of CPU per task, which is most of a mapped task's overhead on a
    worker (measured with py-spy; scripts/benchmark.py --only dask prints the per-task figure). Here `submit`
    takes `config` out of the task's context and sends it beside the task as (token, pickled config); on the
    worker, run_with_flow_config merges it into the worker's config once per process and token, and sets the
    result as `prefect.context.config` while the task runs: what prefect's own merge gives the task, without
    the copies. Each task still carries all it needs, so a task moved to another worker (one lost, one added)
    runs as before. The connection wrapper only wraps the connection: errors raised while the flow runs pass
    through unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # while started: id(config) -> (config, token, pickled config); the config is kept so that its id stays
        # its own. Emptied when the executor stops: it holds the run's settings, credentials included.
        self._flow_configs: Dict[int, Tuple[Any, str, bytes]] = {}

    @contextmanager
    def start(self) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                stack.enter_context(super().start())
            except OSError as exc:
                raise ConnectionError(
                    f"cannot reach the Dask scheduler at DASK_SCHEDULER_ADDRESS={self.address} ({exc}): start "
                    f"the dask-scheduler service (docker compose up dask-scheduler), fix the address, or unset "
                    f"DASK_SCHEDULER_ADDRESS to run the tasks on a local thread pool") from exc
            try:
                yield
            finally:
                self._flow_configs = {}

    def __getstate__(self) -> dict:
        return dict(super().__getstate__(), _flow_configs={})

    def submit(self, fn: Callable, *args: Any, extra_context: Optional[dict] = None, **kwargs: Any) -> Any:
        """prefect's submit, with the task context's `config` sent as a token and its pickle (see the class)."""
        context = kwargs.get("context")
        if not isinstance(context, dict) or "config" not in context:
            return super().submit(fn, *args, extra_context=extra_context, **kwargs)
        context = dict(context)
        config = context.pop("config")
        known = self._flow_configs.get(id(config))
        if known is None:
            known = self._flow_configs[id(config)] = (config, uuid.uuid4().hex, pickle.dumps(config))
        return super().submit(run_with_flow_config, known[1], known[2], fn, *args, extra_context=extra_context,
                              **dict(kwargs, context=context))


# flow configs a worker process keeps merged (see SchedulerDaskExecutor): one per flow run, the newest few
WORKER_FLOW_CONFIGS = 8


def run_with_flow_config(token: str, pickled_config: bytes, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """On a Dask worker: runs prefect's task function `fn` with the flow run's config as prefect.context.config.

    The config is the flow run's merged into this worker's own, as prefect.context(config=...) would make it;
    it is merged once per worker process and token, then reused by every task of that flow run here.

    Args:
        token: names the flow run's config (unique per flow run and executor start)
        pickled_config: the flow-run process's prefect config, pickled
        fn: what prefect submitted (its run_task), with its arguments

    Returns:
        What `fn` returns.
    """
    from distributed import get_worker
    from prefect.utilities.collections import merge_dicts

    worker = get_worker()
    # the worker object lives as long as the process's worker does; this function is sent by value with each
    # task, so nothing of its own module survives from one task to the next
    merged: Dict[str, Any] = worker.__dict__.setdefault("dags_flow_configs", {})
    config = merged.get(token)
    if config is None:
        config = merge_dicts(prefect.context.get("config", {}), pickle.loads(pickled_config))
        merged[token] = config
        for old in list(merged)[:-WORKER_FLOW_CONFIGS]:
            merged.pop(old, None)
    saved = prefect.context.get("config")
    prefect.context.update(config=config)
    try:
        return fn(*args, **kwargs)
    finally:
        if saved is None:
            prefect.context.pop("config", None)
        else:
            prefect.context.update(config=saved)


def choose_executor(env: Optional[Mapping[str, str]] = None) -> Executor:
    """The executor for this run: the Dask cluster at DASK_SCHEDULER_ADDRESS, else a local thread pool.

    Args:
        env: the environment to read (the current process's when None)

    Returns:
        A DaskExecutor connected to that address, or a LocalDaskExecutor.
    """
    env = os.environ if env is None else env
    address = env.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if not address:
        return LocalDaskExecutor(scheduler="threads")
    # distributed's own parser, so that we accept exactly what a Client accepts
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as exc:
        raise ValueError(f"DASK_SCHEDULER_ADDRESS={address!r} is not a Dask scheduler address ({exc}): "
                         f"set it to e.g. tcp://dask-scheduler:8786, or unset it to run the tasks on a "
                         f"local thread pool") from exc
    return SchedulerDaskExecutor(address=address)


def describe_executor(executor: Executor) -> Dict[str, Any]:
    """What the result records about the executor: prefect's class and, for a cluster, the scheduler address."""
    kind = "DaskExecutor" if isinstance(executor, DaskExecutor) else type(executor).__name__
    return {"type": kind, "address": getattr(executor, "address", None)}


# ---------------------------------------------------------------- work

def as_int(value: Any, name: str, minimum: int, maximum: int) -> int:
    """Reads an integer parameter (an int, or digits as text from `--param k=v`), within bounds.

    Args:
        value: the parameter's value
        name: its name, for the error message
        minimum: smallest accepted value
        maximum: largest accepted value

    Returns:
        The integer.
    """
    number: Optional[int] = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None or not minimum <= number <= maximum:
        raise ValueError(f"parameter {name} must be an integer from {minimum} to {maximum}, got {value!r}: "
                         f"pass e.g. --param {name}={min(max(minimum, 8), maximum)}")
    return number


def plan_partitions(limit: int, partitions: int) -> List[Dict[str, int]]:
    """Splits [2, limit] into `partitions` contiguous half-open ranges of (nearly) equal size.

    Args:
        limit: the largest number to test
        partitions: how many ranges

    Returns:
        [{"index", "start", "stop"}], start inclusive, stop exclusive, covering 2..limit exactly once.
    """
    span = limit - 1  # how many numbers in [2, limit]
    if partitions > span:
        raise ValueError(f"parameter partitions={partitions} is more than the {span} numbers in 2..{limit}: "
                         f"pass partitions <= {span} or a larger limit")
    bounds = [2 + span * i // partitions for i in range(partitions + 1)]
    return [{"index": i, "start": bounds[i], "stop": bounds[i + 1]} for i in range(partitions)]


def count_primes(start: int, stop: int, block: int = SIEVE_BLOCK) -> int:
    """Counts the primes p with start <= p < stop (a segmented sieve of Eratosthenes, `block` numbers at a time).

    Why it is written this way: the sieve allocates nothing per prime or per block, only a few buffers per
    call. Dask's Nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ),
    which turns off glibc's adaptive mmap threshold: every temporary buffer over 128 KiB is then a fresh mmap
    whose pages fault in and are zeroed by the kernel. A sieve that built a zero buffer for each prime ran
    ~1.2x slower in such a worker than in a plain process; this one runs the same in both. Blocks of 1 MiB
    also stay in the CPU cache, where striding over the whole range did not.

    Args:
        start: first number of the range
        stop: one past the last number
        block: numbers sieved at a time (memory held is a few times this)

    Returns:
        How many primes the range holds.
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
    ones = bytearray([1]) * size
    window = bytearray(size)
    # Zero fills by length, made once: bytearray slice assignment copies any other type (bytes, memoryview)
    # into a new bytearray first, which is the per-prime allocation this function avoids.
    zeros: Dict[int, bytearray] = {}
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
                fill = zeros.get(count)
                if fill is None:
                    fill = zeros[count] = bytearray(count)
                window[first - low:high - low:p] = fill
        total += window.count(1, 0, high - low)
    return total


def worker_identity() -> Dict[str, Any]:
    """Where the calling code runs: hostname, pid, thread, and the Dask worker's address when on one.

    Returns:
        {"hostname", "pid", "thread", "worker_address", "worker"}; "worker" is the address on a cluster,
        else hostname:pid:thread (LocalDaskExecutor runs tasks on threads of the flow-run process).
    """
    identity: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "worker_address": None,
    }
    try:
        from distributed import get_worker

        identity["worker_address"] = get_worker().address
    except (ImportError, ValueError):
        pass  # not on a distributed worker
    identity["worker"] = identity["worker_address"] or "{hostname}:{pid}:{thread}".format(**identity)
    return identity


def write_json_atomically(path: pathlib.Path, document: Dict[str, Any]) -> None:
    """Writes JSON to a temporary file beside `path`, fsyncs it, then renames it over `path`.

    Args:
        path: the target file (its folder is created when missing)
        document: what to write

    Returns:
        None
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create the output folder {path.parent}: {exc.strerror or exc}; "
                           f"pass a writable folder with the parameter output_dir") from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---------------------------------------------------------------- tasks and flow

@task(name="plan", checkpoint=False)
def plan(limit: Any, partitions: Any) -> List[Dict[str, int]]:
    """Checks the parameters and splits the work (see plan_partitions)."""
    return plan_partitions(as_int(limit, "limit", 2, MAX_LIMIT),
                           as_int(partitions, "partitions", 1, MAX_PARTITIONS))


@task(name="count", checkpoint=False)
def count(partition: Dict[str, int]) -> Dict[str, Any]:
    """Counts the primes of one partition and says which worker did it."""
    began, cpu = time.perf_counter(), time.thread_time()
    primes = count_primes(partition["start"], partition["stop"])
    # seconds: wall time; cpu_seconds: this thread's CPU time (unlike wall time, not stretched by a busy machine)
    result = dict(partition, primes=primes, seconds=round(time.perf_counter() - began, 4),
                  cpu_seconds=round(time.thread_time() - cpu, 4), **worker_identity())
    prefect.context.get("logger").info(
        "partition %d [%d, %d): %d primes, ran on host %s worker %s (pid %d)", result["index"],
        result["start"], result["stop"], primes, result["hostname"], result["worker"], result["pid"])
    return result


@task(name="summarize", checkpoint=False)
def summarize(results: List[Dict[str, Any]], limit: Any, output_dir: Any, agent_name: Optional[str],
              executor: Dict[str, Any]) -> Dict[str, Any]:
    """Adds up the partitions, logs who ran what, and writes result.json; returns the result document."""
    logger = prefect.context.get("logger")
    results = sorted(results, key=lambda r: r["index"])
    workers = sorted({r["worker"] for r in results})
    flow_run_id = prefect.context.get("flow_run_id")
    document = {
        "flow": FLOW_NAME,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "flow_run_id": flow_run_id,
        "flow_run_name": prefect.context.get("flow_run_name"),
        "agent_name": agent_name,
        "executor": executor,
        "limit": as_int(limit, "limit", 2, MAX_LIMIT),
        "total_primes": sum(r["primes"] for r in results),
        "partitions": results,
        "workers": workers,
        "hosts": sorted({r["hostname"] for r in results}),
    }
    for r in results:
        logger.info("partition %d ran on %s (host %s)", r["index"], r["worker"], r["hostname"])
    logger.info("%d primes <= %d in %d partitions on %d distinct worker(s): %s (executor %s, agent %s)",
                document["total_primes"], document["limit"], len(results), len(workers), ", ".join(workers),
                executor["type"], agent_name or "-")
    if not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir).strip():
        raise ValueError(f"parameter output_dir must be a non-empty path, got {output_dir!r}: "
                         f"pass e.g. --param output_dir=data/output/{FLOW_NAME}")
    directory = pathlib.Path(str(output_dir).strip()).expanduser()
    directory = directory if directory.is_absolute() else REPO_ROOT / directory
    run_file = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(flow_run_id or time.time_ns()))
    write_json_atomically(directory / "runs" / f"{run_file}.json", document)
    write_json_atomically(directory / "result.json", document)
    logger.info("wrote %s and runs/%s.json", directory / "result.json", run_file)
    return document


executor = choose_executor()
with Flow(FLOW_NAME, executor=executor, run_config=LocalRun(labels=["dask"])) as flow:
    limit = Parameter("limit", default=500_000_000)
    # more partitions than a small cluster has threads, so that every worker of a scaled cluster gets some
    partitions = Parameter("partitions", default=16)
    output_dir = Parameter("output_dir", default=f"data/output/{FLOW_NAME}")
    counts = count.map(plan(limit, partitions))
    # Constants: evaluated here, in the flow-run process (see the module docstring)
    summarize(counts, limit, output_dir, agent_name=os.environ.get("DAGS_AGENT_NAME") or None,
              executor=describe_executor(executor))


if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
