"""`serve`, `start`, `trigger --wait` and the tutorial path, with real agents running real flow runs."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest
from agents.testing import Background, run_cli, start_agent
from prefect_emulator.testing import REPO_ROOT, Emulator, free_port, prefect_env, wait_for_http
from tests.runtime.conftest import DAGS, repo_dag_names, write_plain_dag

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dag", repo_dag_names())
def test_serve_then_trigger_wait_succeeds_for_every_repo_dag(dag: str, module_env: Dict[str, str],
                                                            tmp_path: Path) -> None:
    # a copy of the DAG beside a data/ of its own (agents.settings.project_root), so that its default
    # outputs land there and not in the checkout's data/output
    shutil.copytree(REPO_ROOT / "dags" / dag, tmp_path / "dags" / dag)
    (tmp_path / "data").mkdir()
    shutil.copy(REPO_ROOT / "data" / "seattle-weather.csv", tmp_path / "data")
    env = dict(module_env, DAGS_FOLDER=str(tmp_path / "dags"))
    with start_agent(["serve", dag], env, tmp_path / "agent.log", cwd=tmp_path) as agent:
        assert f"registered {dag} version" in agent.output()
        result = run_cli(["trigger", dag, "--wait", "--timeout", "600"], env, timeout=700)
        assert result.returncode == 0, f"{result.stdout}\n--- agent ---\n{agent.output()}"
        assert "state Running" in result.stdout
        assert "finished: Success" in result.stdout
        if dag == "flow-test-hello":
            assert "Test Hello, Cloud!" in result.stdout
            assert f"Run by flow-test-hello@" in result.stdout  # DAGS_AGENT_NAME reached the task


def test_agent_serves_the_prefect_health_endpoint_and_is_named_after_its_labels(module_env: Dict[str, str],
                                                                                 tmp_path: Path) -> None:
    port = free_port()
    with Background([sys.executable, "-m", "agents", "start", "--label", "health-only",
                     "--agent-address", f"http://127.0.0.1:{port}"], module_env, tmp_path / "a.log") as agent:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=60, proc=agent.proc)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}:\n{agent.output()}")
        assert f"agent 'health-only@{socket.gethostname()}'" in agent.output()


def test_two_agents_with_different_labels_each_run_only_their_runs(module_env: Dict[str, str],
                                                                    tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "left-dag", ["left"])
    write_plain_dag(dags, "right-dag", ["right"])
    env = dict(module_env, DAGS_FOLDER=str(dags))
    assert run_cli(["register"], env).returncode == 0
    with start_agent(["start", "--label", "left", "--name", "agent-left"], env, tmp_path / "left.log"), \
            start_agent(["start", "--label", "right", "--name", "agent-right"], env, tmp_path / "right.log"):
        left = run_cli(["trigger", "left-dag", "--wait", "--timeout", "300"], env)
        right = run_cli(["trigger", "right-dag", "--wait", "--timeout", "300"], env)
    assert left.returncode == 0, left.stdout
    assert right.returncode == 0, right.stdout
    assert "run by agent-left" in left.stdout and "agent-right" not in left.stdout
    assert "run by agent-right" in right.stdout and "agent-left" not in right.stdout


def test_plain_flow_file_in_a_dags_folder_registers_and_runs_with_parameters(module_env: Dict[str, str],
                                                                           tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "plain-dropped", ["dropped"])
    env = dict(module_env, DAGS_FOLDER=str(dags))
    with start_agent(["serve", "plain-dropped"], env, tmp_path / "agent.log"):
        ok = run_cli(["trigger", "plain-dropped", "--param", "name=Ada", "--wait", "--timeout", "300"], env)
        failed = run_cli(["trigger", "plain-dropped", "--param", "fail=true", "--wait", "--timeout", "300"], env)
    assert ok.returncode == 0, ok.stdout
    assert "Hello Ada, run by plain-dropped@" in ok.stdout
    assert failed.returncode == 1, failed.stdout
    assert "failing as asked by the fail parameter" in failed.stdout
    assert "finished: Failed" in failed.stdout


def test_trigger_wait_times_out_with_exit_2_when_no_agent_matches(module_env: Dict[str, str],
                                                                  tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "orphan", ["nobody-serves-this"])
    env = dict(module_env, DAGS_FOLDER=str(dags))
    assert run_cli(["register"], env).returncode == 0
    started = time.monotonic()
    result = run_cli(["trigger", "orphan", "--wait", "--timeout", "3"], env)
    assert result.returncode == 2, result.stdout
    assert "timed out after 3s" in result.stdout
    assert time.monotonic() - started < 60


def test_trigger_bad_inputs_are_clear_errors(module_env: Dict[str, str]) -> None:
    unknown = run_cli(["trigger", "no-such-dag"], module_env)
    assert unknown.returncode == 1
    assert "unknown DAG 'no-such-dag': known DAGs are " + ", ".join(repo_dag_names()) in unknown.stdout
    malformed = run_cli(["trigger", "flow-test-hello", "--param", "novalue"], module_env)
    assert malformed.returncode == 2
    assert "malformed --param 'novalue': write it as KEY=VALUE" in malformed.stdout
    wrong_name = run_cli(["trigger", "flow-test-hello", "--param", "x=1"], module_env)
    assert wrong_name.returncode == 1
    assert "flow 'flow-test-hello' has no parameter 'x'" in wrong_name.stdout


def test_trigger_of_an_unregistered_dag_says_how_to_register(module_env: Dict[str, str], tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "never-registered", ["plain"])
    result = run_cli(["trigger", "never-registered"], dict(module_env, DAGS_FOLDER=str(dags)))
    assert result.returncode == 1
    assert "is not registered in project 'My Tests': run `python -m agents register never-registered`" \
        in result.stdout


def test_tutorial_way_python_test_hello_registers_and_hosts(module_emulator: Emulator, module_env: Dict[str, str],
                                                           tmp_path: Path) -> None:
    folder = DAGS / "flow-test-hello"
    with Background([sys.executable, "test-hello.py"], module_env, tmp_path / "script.log", cwd=folder) as script:
        script.wait_for_output("registered flow-test-hello version", timeout=90)
        script.wait_for_output("polling for runs", timeout=60)
        flows = module_emulator.graphql('query { flow(where: {name: {_eq: "flow-test-hello"}}) '
                                        '{ id project { name } } }')["data"]["flow"]
        assert flows and flows[0]["project"]["name"] == "My Tests"
        result = run_cli(["trigger", "flow-test-hello", "--wait", "--timeout", "300"], module_env)
        assert result.returncode == 0, f"{result.stdout}\n--- script ---\n{script.output()}"
        assert "Test Hello, Cloud!" in result.stdout
        assert script.proc.poll() is None  # still hosting


def test_local_runs_a_dag_with_no_orchestrator(tmp_path: Path, empty_env_dir: Path) -> None:
    # The API points where nothing listens: --local must not need one.
    env = prefect_env(f"http://127.0.0.1:{free_port()}", tmp_path / "home", DAGS_ENV_DIR=str(empty_env_dir))
    hello = subprocess.run([sys.executable, "test-hello.py", "--local"], cwd=str(DAGS / "flow-test-hello"),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert hello.returncode == 0, hello.stdout
    assert "Test Hello, Cloud!" in hello.stdout
    path = write_plain_dag(tmp_path / "dags", "plain-local", ["plain"])
    path.write_text(path.read_text() + _MAIN_BLOCK)
    ok = subprocess.run([sys.executable, str(path), "--local", "--param", "name=Local"], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout
    assert "Hello Local, run by no agent" in ok.stdout
    failed = subprocess.run([sys.executable, str(path), "--local", "--param", "fail=true"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert failed.returncode == 1, failed.stdout
    assert "finished: Failed" in failed.stdout
    bad = subprocess.run([sys.executable, str(path), "--local", "--param", "nope"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert bad.returncode == 2 and "write it as KEY=VALUE" in bad.stdout


_MAIN_BLOCK = f"""

if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
"""



@pytest.mark.parametrize("fork", ["1", "0"])
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_trigger_wait_exits_1_when_the_run_is_cancelled(module_emulator: Emulator, module_env: Dict[str, str],
                                                       tmp_path: Path, sigint: str, fork: str) -> None:
    # prefect cancels a running task by sending its process SIGINT; an agent started with SIGINT ignored (a
    # background job of a script: `python -m agents start &`) hands that down to its flow runs, which must
    # still be interrupted: the task sleeps 600 s, and must not reach Success
    dags = tmp_path / "dags"
    write_plain_dag(dags, "cancelled-dag", ["cancel-me"])
    env = dict(module_env, DAGS_FOLDER=str(dags), DAGS_FLOW_RUN_FORK=fork,
               PREFECT__CLOUD__CHECK_CANCELLATION_INTERVAL="1")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN if sigint == "ignored" else signal.default_int_handler)
    try:
        agent = start_agent(["serve", "cancelled-dag"], env, tmp_path / "agent.log")
    finally:
        signal.signal(signal.SIGINT, previous)
    with agent:
        with Background([sys.executable, "-m", "agents", "trigger", "cancelled-dag", "--param", "seconds=600",
                         "--wait", "--timeout", "120"], env, tmp_path / "trigger.log") as watcher:
            watcher.wait_for_output("Task 'maybe_fail': Starting task run", timeout=60)
            run_id = watcher.output().split("created flow run ")[1].split()[0]
            answer = module_emulator.graphql(
                "mutation($id: UUID!) { cancel_flow_run(input: {flow_run_id: $id}) { state } }", {"id": run_id})
            assert "errors" not in answer, answer
            code = watcher.proc.wait(timeout=90)
    assert code == 1, watcher.output()
    assert "finished: Cancelled" in watcher.output()
    tasks = module_emulator.graphql("query($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}}) "
                                    "{ state task { name } } }", {"id": run_id})["data"]["task_run"]
    assert [t["state"] for t in tasks if t["task"]["name"] == "maybe_fail"] != ["Success"], tasks


def test_agent_address_defaults_to_prefects_own_variable(module_env: Dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = dict(module_env, PREFECT__CLOUD__AGENT__AGENT_ADDRESS=f"http://127.0.0.1:{port}")
    with Background([sys.executable, "-m", "agents", "start", "--label", "from-env"], env,
                    tmp_path / "a.log") as agent:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=60, proc=agent.proc)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}:\n{agent.output()}")


def test_serve_and_start_refuse_bad_input(module_env: Dict[str, str]) -> None:
    unknown = run_cli(["serve", "no-such-dag"], module_env)
    assert unknown.returncode == 1
    assert "unknown DAG 'no-such-dag': known DAGs are " in unknown.stdout
    bad_label = run_cli(["start", "--label", "two words"], module_env)
    assert bad_label.returncode == 2
    assert "invalid label 'two words'" in bad_label.stdout


def test_bad_poll_interval_is_a_clear_error(module_env: Dict[str, str]) -> None:
    result = run_cli(["start", "--label", "x"], dict(module_env, DAGS_AGENT_MAX_POLL_INTERVAL="fast"))
    assert result.returncode == 1
    assert "DAGS_AGENT_MAX_POLL_INTERVAL must be a number of seconds, got 'fast'" in result.stdout


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_bad_dead_run_bound_is_a_clear_error(module_env: Dict[str, str], value: str) -> None:
    result = run_cli(["start", "--label", "x"], dict(module_env, DAGS_DEAD_RUN_AFTER=value))
    assert result.returncode == 1
    assert f"DAGS_DEAD_RUN_AFTER must be " in result.stdout and repr(value) in result.stdout, result.stdout
