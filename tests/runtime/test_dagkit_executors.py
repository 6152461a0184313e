"""The Dask executor of the runtime (agents.dagkit.executors), which any DAG may choose: which executor an
environment selects, the errors that name the variable, and on a real cluster of separate processes, the flow
run's config merged once per worker and the executor's functions sent by value (a worker need not have the
project). The distributed DAG's own tests (tests/dags/test_distributed_primes.py) run it through that DAG."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, Iterator, List

import prefect
import pytest
from prefect.executors import DaskExecutor, LocalDaskExecutor

from agents import settings
from agents.dagkit.executors import SchedulerDaskExecutor, choose_executor, describe_executor, worker_identity


def test_without_an_address_the_tasks_run_on_a_local_thread_pool() -> None:
    for env in ({}, {"DASK_SCHEDULER_ADDRESS": ""}, {"DASK_SCHEDULER_ADDRESS": "   "}):
        executor = choose_executor(env)
        assert isinstance(executor, LocalDaskExecutor) and executor.scheduler == "threads", env
        assert describe_executor(executor) == {"type": "LocalDaskExecutor", "address": None}


@pytest.mark.parametrize("address", ["tcp://dask-scheduler:8786", " tcp://10.0.0.5:8786 ", "tls://sched.example:8786",
                                     "inproc://10.0.0.5/1234/1"])
def test_an_address_selects_the_scheduler_executor_on_it(address: str) -> None:
    executor = choose_executor({"DASK_SCHEDULER_ADDRESS": address})
    assert isinstance(executor, SchedulerDaskExecutor) and isinstance(executor, DaskExecutor)
    assert executor.address == address.strip()
    assert describe_executor(executor) == {"type": "DaskExecutor", "address": address.strip()}


def test_the_process_environment_is_read_when_none_is_given(monkeypatch) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://dask-scheduler:8786")
    assert choose_executor().address == "tcp://dask-scheduler:8786"
    assert settings.dask_scheduler_address() == "tcp://dask-scheduler:8786"
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    assert isinstance(choose_executor(), LocalDaskExecutor)


@pytest.mark.parametrize("address", ["dask-scheduler", "tcp://dask-scheduler", "tcp://host:port"])
def test_malformed_scheduler_address_is_refused_naming_the_variable(address: str) -> None:
    with pytest.raises(ValueError) as info:
        choose_executor({"DASK_SCHEDULER_ADDRESS": address})
    message = str(info.value)
    assert f"DASK_SCHEDULER_ADDRESS={address!r} is not a Dask scheduler address" in message
    assert "tcp://dask-scheduler:8786" in message and "unset it to run the tasks on a local thread pool" in message


def test_off_a_cluster_a_task_is_identified_by_host_process_and_thread() -> None:
    identity = worker_identity()
    assert identity["worker_address"] is None and identity["pid"] == os.getpid()
    assert identity["worker"] == f"{identity['hostname']}:{os.getpid()}:{identity['thread']}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A real two-worker Dask cluster of separate processes on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local_cluster:
        yield local_cluster


@prefect.task
def where(index: int) -> Dict[str, object]:
    """Which worker ran it, and whether the project's package is importable there."""
    import importlib.util

    try:
        found = importlib.util.find_spec("agents") is not None
    except (ImportError, ValueError):
        found = False
    return dict(worker_identity(), agents_importable=found)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Scheduler already contains a plugin with name worker-status")
def test_workers_that_cannot_import_the_project_still_run_the_tasks(cluster) -> None:
    """run_with_flow_config and worker_identity travel by value: a cluster of stock prefect and distributed
    (no checkout on its path) runs a DAG's tasks, as it did when the executor lived in the DAG file."""
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        def forget_the_project() -> None:
            import sys as worker_sys

            for name in [n for n in worker_sys.modules if n == "agents" or n.startswith("agents.")]:
                del worker_sys.modules[name]
            worker_sys.modules["agents"] = None  # type: ignore[assignment]  # `import agents` now fails

        try:
            client.run(forget_the_project)
            with prefect.Flow("where", executor=SchedulerDaskExecutor(address=cluster.scheduler_address)) as flow:
                spots = where.map(list(range(4)))
            state = flow.run()
            assert state.is_successful(), [s.result for s in state.result.values()]
            results = state.result[spots].result
            assert {r["agents_importable"] for r in results} == {False}
            assert {r["worker_address"] for r in results} <= set(cluster.scheduler_info["workers"])
        finally:
            client.run(lambda: sys.modules.pop("agents", None))


@prefect.task
def config_probe(index: int) -> Dict[str, object]:
    """What a task on a worker sees of prefect's config: the probe value, a stock key, and which object it is."""
    config = prefect.context.config
    return {"value": config.get("dags_probe", {}).get("value"), "api": config.cloud.api, "pid": os.getpid(),
            "config_id": id(config)}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Scheduler already contains a plugin with name worker-status")
def test_tasks_on_a_cluster_see_the_flow_runs_config_merged_once_per_worker(cluster):
    """The executor sends a task's config beside it and each worker merges it once per flow run: every task
    must still see the flow-run process's settings (its own keys and overridden stock ones), the next flow run
    must see its own and not a cached one, and no task may see another run's once its run is over."""
    import cloudpickle
    from prefect.utilities.configuration import set_temporary_config

    executor = SchedulerDaskExecutor(address=cluster.scheduler_address)
    with prefect.Flow("config-probe", executor=executor) as flow:
        probes = config_probe.map(list(range(12)))

    def run(settings: Dict[str, str]) -> List[Dict[str, object]]:
        with set_temporary_config(settings):
            state = flow.run()
        assert state.is_successful(), state
        return state.result[probes].result

    stock_api = prefect.config.cloud.api
    first = run({"dags_probe.value": "first", "cloud.api": "http://first.invalid:4200"})
    stopped = cloudpickle.dumps(executor)
    second = run({"dags_probe.value": "second", "cloud.api": "http://second.invalid:4200"})
    prefect.config.pop("dags_probe", None)  # set_temporary_config restores the keys it changed, not new ones
    third = run({})
    assert {(r["value"], r["api"]) for r in first} == {("first", "http://first.invalid:4200")}
    assert {(r["value"], r["api"]) for r in second} == {("second", "http://second.invalid:4200")}
    assert {(r["value"], r["api"]) for r in third} == {(None, stock_api)}
    assert len({r["pid"] for r in first}) == 2, "both workers ran probes"
    assert b"first.invalid" not in stopped, "a stopped executor keeps no run's settings (credentials among them)"
    never_started = SchedulerDaskExecutor(address=cluster.scheduler_address)
    with pytest.raises(ValueError, match="not been started"):  # prefect's own error, not an AttributeError
        never_started.submit(config_probe.run, 0, context={"config": prefect.config})
    for results in (first, second):
        by_worker: Dict[int, set] = {}
        for r in results:
            by_worker.setdefault(r["pid"], set()).add(r["config_id"])
        assert all(len(ids) == 1 for ids in by_worker.values()), f"merged per task, not per worker: {by_worker}"
