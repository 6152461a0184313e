"""Both DAGs end to end through an orchestrator (the Prefect Server emulator) with the project's own CLI:
`python -m agents register`, `python -m agents serve DAG` (a LocalAgent with the DAG's labels), and
`python -m agents trigger DAG --wait`. The flow run is a real `prefect execute flow-run` process that loads
the DAG by script storage, so this checks what the unit tests cannot: the executor and DAGS_AGENT_NAME are
picked up from the environment of the agent's flow-run process.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.dags.dag_files import REPO_ROOT
from prefect_emulator.testing import Emulator, prefect_env, stop

pytestmark = pytest.mark.slow


def agents_cli(env: Dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs `python -m agents ARGS` to completion."""
    return subprocess.run([sys.executable, "-m", "agents", *args], cwd=str(REPO_ROOT), env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def emulator_and_env(tmp_path_factory) -> Iterator[Tuple[Emulator, Dict[str, str]]]:
    """One emulator for the module, initialised and with both DAGs registered, and the CLI environment."""
    work = tmp_path_factory.mktemp("orchestrator")
    with Emulator(work) as emulator:
        env = prefect_env(emulator.url, work / "prefect-home",
                          # quick agents and log shipping: the test waits on the runs, not on prefect's defaults
                          DAGS_AGENT_MAX_POLL_INTERVAL="0.5", PREFECT__CLOUD__LOGGING_HEARTBEAT="1",
                          PREFECT__CLOUD__CHECK_CANCELLATION_INTERVAL="1")
        for var in ("DASK_SCHEDULER_ADDRESS", "DAGS_AGENT_NAME"):
            env.pop(var, None)
        (work / "prefect-home").mkdir()
        init = agents_cli(env, "init", "--wait-timeout", "30")
        assert init.returncode == 0, init.stdout + init.stderr + emulator.log()
        registered = agents_cli(env, "register", "etl-seattle-weather", "distributed-primes")
        assert registered.returncode == 0, registered.stdout + registered.stderr + emulator.log()
        yield emulator, env


def run_logs(emulator: Emulator, run_id: str, until: str, timeout: float = 30) -> List[str]:
    """The messages the orchestrator holds for a flow run, read again until one contains `until`: logs
    are shipped in batches (every PREFECT__CLOUD__LOGGING_HEARTBEAT seconds), possibly after the run ended."""
    query = ("query($id: uuid!) { log(where: {flow_run_id: {_eq: $id}}, order_by: {timestamp: asc}) "
             "{ message } }")
    deadline = time.monotonic() + timeout
    while True:
        answer = emulator.graphql(query, {"id": run_id})
        assert "errors" not in answer, answer
        messages = [row["message"] for row in answer["data"]["log"]]
        if any(until in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def serve_and_trigger(env: Dict[str, str], dag: str, agent: str, params: Dict[str, object],
                      log: Path) -> Tuple[str, str]:
    """Hosts `dag` with `python -m agents serve`, triggers one run and waits for it.

    Returns:
        The run id, and the trigger command's output (the run's states and logs).
    """
    with open(log, "ab") as out:
        server = subprocess.Popen([sys.executable, "-m", "agents", "serve", dag, "--name", agent],
                                  cwd=str(REPO_ROOT), env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        args = ["trigger", dag, "--wait", "--timeout", "180"]
        for key, value in params.items():
            args += ["--param", f"{key}={json.dumps(value)}"]
        run = agents_cli(env, *args)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output + "\n--- agent log ---\n" + log.read_text(errors="replace")
        created = re.search(r"created flow run (\S+) of " + re.escape(dag), output)
        assert created, output
        return created.group(1), output
    finally:
        stop(server)


def test_etl_run_by_an_agent_records_the_agent_and_the_run_in_its_report(emulator_and_env, tmp_path, data_tmp):
    emulator, orchestrator = emulator_and_env
    out = data_tmp / "out"  # the ETL DAG writes only inside data/
    run_id, _ = serve_and_trigger(orchestrator, "etl-seattle-weather", "etl-agent-under-test",
                               {"output_dir": str(out)}, tmp_path / "agent.log")
    report = json.loads((out / "report.json").read_text())
    assert report["agent_name"] == "etl-agent-under-test"
    assert report["flow_run_id"] == run_id
    assert report["rows"] == {"read": 1461, "accepted": 1461, "rejected": 0}
    logs = run_logs(emulator, run_id, until="load: 0 rejected rows written to")
    assert "validate: 1461 rows read, 1461 accepted, 0 rejected" in logs, logs


@pytest.mark.filterwarnings("ignore:Scheduler already contains a plugin with name worker-status")
def test_distributed_run_by_an_agent_spreads_over_the_cluster_named_in_its_environment(emulator_and_env, tmp_path,
                                                                                    data_tmp):
    emulator, orchestrator = emulator_and_env
    from distributed import LocalCluster

    # the workers get the same prefect settings as the flow run, as the compose dask-worker service does
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env=dict(orchestrator)) as cluster:
        env = dict(orchestrator, DASK_SCHEDULER_ADDRESS=cluster.scheduler_address)
        out = data_tmp / "out"  # the distributed DAG, like the ETL DAG, writes only inside data/
        run_id, output = serve_and_trigger(env, "distributed-primes", "dask-agent-under-test",
                                   {"output_dir": str(out), "limit": 400_000, "partitions": 12},
                                   tmp_path / "agent.log")
        workers = set(cluster.scheduler_info["workers"])
    result = json.loads((out / "result.json").read_text())
    assert result["flow_run_id"] == run_id
    assert result["agent_name"] == "dask-agent-under-test"
    assert result["executor"] == {"type": "DaskExecutor", "address": cluster.scheduler_address}
    assert result["total_primes"] == 33860
    assert set(result["workers"]) == workers and len(workers) == 2
    # the tasks' logs, written on the Dask workers, reach the orchestrator and name the worker of each partition
    logs = run_logs(emulator, run_id, until="distinct worker(s)")
    for part in result["partitions"]:
        assert f"partition {part['index']} ran on {part['worker_address']} (host {part['hostname']})" in logs, logs
    assert any(m.startswith("33860 primes <= 400000 in 12 partitions on 2 distinct worker(s)") for m in logs), logs
    assert "Connecting to an existing Dask cluster at " + cluster.scheduler_address in output
