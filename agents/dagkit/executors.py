"""The executor of a DAG whose tasks may go to a Dask cluster: the stack's, or a local thread pool without one.

In a DAG file::

    from agents.dagkit.executors import choose_executor

    with Flow("my-dag", executor=choose_executor(), run_config=LocalRun(labels=["dask"])) as flow:
        ...

`choose_executor()` reads DASK_SCHEDULER_ADDRESS (through agents.settings) when the DAG file is executed, i.e.
in the process that runs the flow: prefect's script storage exec()s the file in the flow-run process, so the
executor follows that process's environment. The stack sets the variable in every agent
(tcp://dask-scheduler:8786, env/stack.env); `python <dag>.py --local` on the host has none and runs the tasks
on a LocalDaskExecutor (threads of the flow-run process). With the address, the tasks go to that cluster
through `SchedulerDaskExecutor`, prefect's DaskExecutor with two changes (its docstring says why): a
connection failure says what to check, and each worker takes in the flow run's prefect config once per run.

`describe_executor(executor)` is what a run's result may record of it; `worker_identity()`, called in a task,
says where that task ran (the Dask worker's address on a cluster).

What a task needs on a worker travels with it: the DAG's own functions (pickled by value, see
`dags/distributed-primes`) and this module's functions that run there (`run_with_flow_config`,
`worker_identity`), pickled by value too, so a worker needs prefect and distributed but not this project.
Anything that only the flow-run process knows (such as DAGS_AGENT_NAME) is read there and passed to the tasks as
a constant: a worker's environment is its own.
"""
from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
import uuid
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import cloudpickle
import prefect
from prefect.executors import DaskExecutor, Executor, LocalDaskExecutor

from agents import settings

# the functions of this module that run on a worker go there by value: a worker need not install the project
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# flow configs a worker process keeps merged (see SchedulerDaskExecutor): one per flow run, the newest few
WORKER_FLOW_CONFIGS = 8


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

    Args:
        address: the scheduler, e.g. tcp://dask-scheduler:8786 (and any other argument of DaskExecutor)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # while started: id(config) -> (config, token, pickled config); the config is kept so that its id stays
        # its own. Emptied when the executor stops: it holds the run's settings, credentials included.
        self._flow_configs: Dict[int, Tuple[Any, str, bytes]] = {}

    @contextmanager
    def start(self) -> Iterator[None]:
        """prefect's start (connects to the scheduler), failing with what to check when nothing answers."""
        with ExitStack() as stack:
            try:
                stack.enter_context(super().start())
            except OSError as exc:
                raise ConnectionError(
                    f"cannot reach the Dask scheduler at {settings.DASK_SCHEDULER_ENV}={self.address} ({exc}): "
                    f"start the dask-scheduler service (docker compose up dask-scheduler), fix the address, or "
                    f"unset {settings.DASK_SCHEDULER_ENV} to run the tasks on a local thread pool") from exc
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
        A SchedulerDaskExecutor on that address, or a LocalDaskExecutor(scheduler="threads").

    Raises:
        ValueError: the address is not one a Dask client accepts; the message names the variable and the fix.
    """
    address = settings.dask_scheduler_address(env)
    if not address:
        return LocalDaskExecutor(scheduler="threads")
    # distributed's own parser, so that we accept exactly what a Client accepts
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as exc:
        raise ValueError(f"{settings.DASK_SCHEDULER_ENV}={address!r} is not a Dask scheduler address ({exc}): "
                         f"set it to e.g. tcp://dask-scheduler:8786, or unset it to run the tasks on a "
                         f"local thread pool") from exc
    return SchedulerDaskExecutor(address=address)


def describe_executor(executor: Executor) -> Dict[str, Any]:
    """What a run's result may record of its executor: prefect's class ("DaskExecutor" for a cluster, whatever
    the subclass) and, for a cluster, the scheduler's address (None otherwise)."""
    kind = "DaskExecutor" if isinstance(executor, DaskExecutor) else type(executor).__name__
    return {"type": kind, "address": getattr(executor, "address", None)}


def worker_identity() -> Dict[str, Any]:
    """Where the calling task runs, for a DAG to record which worker ran what.

    Returns:
        {"hostname", "pid", "thread", "worker_address", "worker"}: worker_address is the Dask worker's address
        (None off a cluster), and "worker" that address, else hostname:pid:thread (a LocalDaskExecutor runs the
        tasks on threads of the flow-run process).
    """
    identity: Dict[str, Any] = {"hostname": socket.gethostname(), "pid": os.getpid(),
                                "thread": threading.current_thread().name, "worker_address": None}
    try:
        from distributed import get_worker

        identity["worker_address"] = get_worker().address
    except (ImportError, ValueError):
        pass  # not on a distributed worker
    identity["worker"] = identity["worker_address"] or "{hostname}:{pid}:{thread}".format(**identity)
    return identity
