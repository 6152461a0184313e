"""The distributed DAG (dags/distributed-primes): executor chosen from the environment of the process that
loads the flow, results right, outputs kept inside data/, and partitions spread over the workers of a real Dask
cluster. The executor itself (agents.dagkit.executors) has its own tests in tests/runtime/test_dagkit_executors.py."""
from __future__ import annotations

import json
import os
import runpy
from pathlib import Path
from typing import Iterator

import pytest
from prefect.executors import DaskExecutor, LocalDaskExecutor

from tests.dags.conftest import DATA
from tests.dags.dag_files import ESCAPES, PRIMES_DAG, dag_env, escaping_path, load_flow, run_local, task_state
from prefect_emulator.testing import free_port


def primes_up_to(limit: int) -> int:
    """Counts primes <= limit by trial division (deliberately not a sieve: an independent method)."""
    count = 0
    for n in range(2, limit + 1):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


@pytest.fixture
def clean_env(monkeypatch) -> None:
    """No cluster address or agent name from the developer's shell."""
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.delenv("DAGS_AGENT_NAME", raising=False)


@pytest.fixture(scope="module")
def dag_namespace():
    """The DAG file's globals (its plain functions), loaded without running its main block."""
    return runpy.run_path(str(PRIMES_DAG), run_name="dag_under_test")


def test_without_scheduler_address_the_flow_runs_on_a_local_dask_executor(data_tmp, clean_env, monkeypatch):
    monkeypatch.setenv("DAGS_AGENT_NAME", "agent-7")
    flow = load_flow(PRIMES_DAG)
    assert isinstance(flow.executor, LocalDaskExecutor)
    state = flow.run(parameters={"limit": 5000, "partitions": 6, "output_dir": str(data_tmp / "out")})
    assert state.is_successful(), state.result
    result = json.loads((data_tmp / "out" / "result.json").read_text())
    assert result["total_primes"] == primes_up_to(5000)
    assert result["executor"] == {"type": "LocalDaskExecutor", "address": None}
    assert result["agent_name"] == "agent-7"
    parts = result["partitions"]
    assert [p["index"] for p in parts] == list(range(6))
    assert parts[0]["start"] == 2 and parts[-1]["stop"] == 5001
    assert all(a["stop"] == b["start"] for a, b in zip(parts, parts[1:])), "ranges must tile 2..limit"
    assert all(p["worker_address"] is None and p["pid"] == os.getpid() for p in parts)
    assert task_state(state, "summarize").result == result
    run_file = data_tmp / "out" / "runs" / f"{result['flow_run_id']}.json"
    assert json.loads(run_file.read_text()) == result
    assert not [p for p in (data_tmp / "out").rglob(".*")], "no temporary files left"


def test_each_partition_is_logged_with_the_worker_that_ran_it(data_tmp, clean_env, caplog):
    caplog.set_level("INFO", logger="prefect")
    state = load_flow(PRIMES_DAG).run(parameters={"limit": 1000, "partitions": 3, "output_dir": str(data_tmp)})
    assert state.is_successful()
    result = task_state(state, "summarize").result
    messages = [r.getMessage() for r in caplog.records]
    for part in result["partitions"]:
        assert (f"partition {part['index']} ran on {part['worker']} (host {part['hostname']})") in messages
    assert any(m.startswith(f"168 primes <= 1000 in 3 partitions on {len(result['workers'])} distinct worker")
               for m in messages), messages


def test_scheduler_address_in_the_environment_of_the_loading_process_selects_dask_executor(clean_env, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://dask-scheduler:8786")
    flow = load_flow(PRIMES_DAG)
    assert isinstance(flow.executor, DaskExecutor)
    assert flow.executor.address == "tcp://dask-scheduler:8786"
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    assert isinstance(load_flow(PRIMES_DAG).executor, LocalDaskExecutor), "re-loading re-reads the environment"


def test_malformed_scheduler_address_fails_the_dags_load_naming_the_variable(clean_env, monkeypatch):
    """Every malformed form is in tests/runtime/test_dagkit_executors.py; here, that the DAG's load fails on one."""
    address = "tcp://dask-scheduler"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    with pytest.raises(ValueError) as info:
        load_flow(PRIMES_DAG)
    message = str(info.value)
    assert f"DASK_SCHEDULER_ADDRESS={address!r} is not a Dask scheduler address" in message
    assert "tcp://dask-scheduler:8786" in message


def test_unreachable_scheduler_fails_the_run_saying_what_to_check(tmp_path, data_tmp):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    env = dag_env(tmp_path / "home", DASK_SCHEDULER_ADDRESS=address,
                  DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s")  # dask's own setting: fail in 1 s, not 30
    proc = run_local(PRIMES_DAG, {"output_dir": str(data_tmp / "out")}, env, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert f"cannot reach the Dask scheduler at DASK_SCHEDULER_ADDRESS={address}" in output, output
    assert "unset DASK_SCHEDULER_ADDRESS to run the tasks on a local thread pool" in output
    assert not (data_tmp / "out").exists()


@pytest.mark.parametrize("params, expected", [
    ({"partitions": 0}, "parameter partitions must be an integer from 1 to"),
    ({"limit": "many"}, "parameter limit must be an integer from 2 to"),
    ({"limit": 1}, "parameter limit must be an integer from 2 to"),
    ({"limit": 10, "partitions": 20}, "parameter partitions=20 is more than the 9 numbers in 2..10"),
    ({"limit": True}, "parameter limit must be an integer"),
])
def test_bad_parameters_fail_with_a_clear_error(data_tmp, clean_env, params, expected):
    state = load_flow(PRIMES_DAG).run(parameters=dict(params, output_dir=str(data_tmp)))
    assert state.is_failed()
    assert expected in str(task_state(state, "plan").result)
    assert not (data_tmp / "result.json").exists()


@pytest.mark.parametrize("kind", ESCAPES)
def test_output_dir_outside_data_is_refused_before_any_work_and_nothing_is_written(tmp_path: Path, data_tmp: Path,
                                                                                 clean_env, kind: str) -> None:
    """The ETL DAG's rule, by the same helper (agents.dagkit.datafiles): a run's parameters must not make the
    agent write anywhere else it can. The check is in `plan`, so no partition is counted for nothing."""
    target = tmp_path / "escaped"
    given = escaping_path(kind, target, data_tmp)
    state = load_flow(PRIMES_DAG).run(parameters={"limit": 1000, "partitions": 2, "output_dir": given})
    assert state.is_failed()
    message = str(task_state(state, "plan").result)
    assert f"parameter output_dir must point inside the data folder {DATA.resolve()}" in message, message
    assert "pass a path such as data/output/distributed-primes" in message
    assert not [t for t, s in state.result.items() if t.name == "count" and s.is_successful()], "no work was done"
    assert not target.exists() or list(target.iterdir()) == []


def test_output_dir_that_is_no_path_is_refused(clean_env) -> None:
    state = load_flow(PRIMES_DAG).run(parameters={"limit": 1000, "partitions": 2, "output_dir": "  "})
    assert "parameter output_dir must be a non-empty path" in str(task_state(state, "plan").result)


def test_parameters_given_as_text_on_the_command_line_are_accepted(data_tmp, clean_env):
    """Every form is in tests/runtime/test_dagkit_checks.py (int_parameter); here, that the DAG takes them."""
    state = load_flow(PRIMES_DAG).run(parameters={"limit": "1000", "partitions": 3.0, "output_dir": str(data_tmp)})
    assert state.is_successful(), state.result
    assert task_state(state, "summarize").result["total_primes"] == 168


@pytest.mark.parametrize("start, stop", [(0, 2), (2, 3), (0, 100), (90, 97), (97, 98), (1000, 1100), (7919, 7920)])
def test_segmented_sieve_counts_match_trial_division(dag_namespace, start, stop):
    expected = primes_up_to(stop - 1) - primes_up_to(start - 1) if start > 0 else primes_up_to(stop - 1)
    assert dag_namespace["count_primes"](start, stop) == expected


def test_task_functions_exec_d_by_script_storage_name_a_module_so_cloudpickle_need_not_search(clean_env):
    """Without a __module__, cloudpickle searches all of sys.modules for each function it sends to a worker."""
    import sys

    import cloudpickle

    flow = load_flow(PRIMES_DAG)
    count_fn = next(t for t in flow.tasks if t.name == "count").run
    assert count_fn.__module__ == "dag_distributed_primes"
    assert count_fn.__module__ not in sys.modules, "not importable on a worker: must be pickled by value"
    assert cloudpickle.loads(cloudpickle.dumps(count_fn))({"index": 0, "start": 2, "stop": 100})["primes"] == 25


@pytest.mark.parametrize("block", [1, 2, 7, 64, 1000])
@pytest.mark.parametrize("start, stop", [(0, 100), (90, 1000), (7919, 9000)])
def test_segmented_sieve_counts_the_same_whatever_the_block_size(dag_namespace, start, stop, block):
    """Block edges fall on primes, on composites and on p*p: the count must not depend on them."""
    expected = primes_up_to(stop - 1) - primes_up_to(start - 1) if start > 0 else primes_up_to(stop - 1)
    assert dag_namespace["count_primes"](start, stop, block) == expected


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A real two-worker Dask cluster of separate processes on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local_cluster:
        yield local_cluster


@pytest.mark.slow
# prefect's DaskExecutor registers its worker-status plugin on every connection: expected, not a problem
@pytest.mark.filterwarnings("ignore:Scheduler already contains a plugin with name worker-status")
def test_partitions_run_on_two_distinct_workers_of_a_real_dask_cluster(tmp_path, data_tmp, cluster):
    """The flow runs in a subprocess (`python <dag>.py --local`) that only learns the cluster from
    DASK_SCHEDULER_ADDRESS in its environment, as a flow-run process spawned by an agent would."""
    worker_addresses = set(cluster.scheduler_info["workers"])
    assert len(worker_addresses) == 2
    out = data_tmp / "out"
    env = dag_env(tmp_path / "home", DASK_SCHEDULER_ADDRESS=cluster.scheduler_address,
                  DAGS_AGENT_NAME="dask-agent-1")
    proc = run_local(PRIMES_DAG, {"limit": 400_000, "partitions": 12, "output_dir": str(out)}, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Connecting to an existing Dask cluster at {cluster.scheduler_address}" in proc.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["executor"] == {"type": "DaskExecutor", "address": cluster.scheduler_address}
    assert result["agent_name"] == "dask-agent-1"
    assert result["total_primes"] == 33860  # pi(400000), a published value
    assert set(result["workers"]) == worker_addresses, "both workers took partitions"
    assert {p["worker_address"] for p in result["partitions"]} == worker_addresses
    assert len({p["pid"] for p in result["partitions"]}) == 2, "two worker processes, not threads of one"
    assert os.getpid() not in {p["pid"] for p in result["partitions"]}
