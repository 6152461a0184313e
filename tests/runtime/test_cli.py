"""The command line's help for mistakes: "did you mean", a cloud backend without a key, a wait on no agent,
and user errors printed once per front end (no traceback)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from agents.labels import covers
from agents.testing import run_cli, runtime_env, start_agent
from prefect_emulator.testing import Emulator
from tests.runtime.conftest import DAGS, write_plain_dag

DEAD_API = "http://127.0.0.1:1"


@pytest.fixture
def offline_env(tmp_path: Path, empty_env_dir: Path) -> Dict[str, str]:
    """No API: every case below must fail (or answer) before any network call."""
    return runtime_env(DEAD_API, tmp_path / "home", empty_env_dir, DAGS_API_WAIT_TIMEOUT="0")


@pytest.mark.parametrize("args", [["trigger", "flow-test-helo"], ["serve", "flow-test-helo"],
                                  ["register", "flow-test-helo"], ["register", "flow-test-hello", "etl-seattle"]])
def test_a_mistyped_dag_name_gets_a_did_you_mean(args: List[str], offline_env: Dict[str, str]) -> None:
    result = run_cli(args, offline_env, timeout=60)
    assert result.returncode == 1, result.stdout
    assert "known DAGs are distributed-primes, etl-seattle-weather, flow-test-hello; did you mean " in result.stdout
    guessed = "'etl-seattle-weather'" if "etl-seattle" in args else "'flow-test-hello'"
    assert result.stdout.rstrip().endswith(f"did you mean {guessed}?"), result.stdout
    assert "Traceback" not in result.stdout


def test_a_name_like_no_dag_gets_no_guess(offline_env: Dict[str, str]) -> None:
    result = run_cli(["trigger", "zzz"], offline_env, timeout=60)
    assert result.returncode == 1
    assert "unknown DAG 'zzz': known DAGs are" in result.stdout and "did you mean" not in result.stdout


def test_config_flags_a_cloud_backend_without_a_key(offline_env: Dict[str, str]) -> None:
    result = run_cli(["config"], dict(offline_env, PREFECT__BACKEND="cloud"), timeout=60)
    assert result.returncode == 0, result.stdout
    assert "api key: MISSING: PREFECT__BACKEND is 'cloud' but no API key is set: put " \
           "PREFECT__CLOUD__API_KEY=<your key> in " in result.stdout


def test_config_says_a_cloud_key_is_set_without_printing_it(offline_env: Dict[str, str]) -> None:
    secret = "cloud-key-never-printed"
    result = run_cli(["config"], dict(offline_env, PREFECT__BACKEND="cloud", PREFECT__CLOUD__API_KEY=secret),
                     timeout=60)
    assert result.returncode == 0, result.stdout
    assert "api key: set (not shown)" in result.stdout
    assert secret not in result.stdout
    server = run_cli(["config"], offline_env, timeout=60)
    assert "backend: server" in server.stdout and "api key" not in server.stdout


def test_a_user_error_deep_in_a_script_is_one_clean_line(offline_env: Dict[str, str]) -> None:
    # The API wait fails in agents.cli.connection; the script's front end prints it, with no traceback.
    result = subprocess.run([sys.executable, "test-hello.py", "--register"], cwd=str(DAGS / "flow-test-hello"),
                            env=offline_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stdout
    assert f"Error: the Prefect API at {DEAD_API} did not answer after 1 attempts" in result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("agent, run, expected", [
    (["a", "b"], ["a"], True), (["a"], ["a", "b"], False), ([], [], True), (["a"], [], False), ([], ["a"], False),
])
def test_covers_is_prefect_servers_label_rule(agent: List[str], run: List[str], expected: bool) -> None:
    assert covers(agent, run) is expected


def wait_until_polled(emulator: Emulator, name: str, timeout: float = 30) -> None:
    """Waits until the agent called `name` has asked the API for runs once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agents = emulator.graphql("query { agent { name last_queried } }")["data"]["agent"]
        if any(a["name"] == name and a["last_queried"] for a in agents):
            return
        time.sleep(0.2)
    raise AssertionError(f"agent {name!r} never polled: {agents}")


@pytest.mark.slow
def test_trigger_wait_warns_once_when_no_agent_covering_the_labels_polls(module_emulator: Emulator,
                                                                        module_env: Dict[str, str],
                                                                        tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "unserved", ["unserved-label", "second-label"])
    env = dict(module_env, DAGS_FOLDER=str(dags))
    assert run_cli(["register", "unserved"], env).returncode == 0
    # An agent with the right labels that never polls (a dead one), and a live one with other labels.
    answer = module_emulator.graphql('mutation { register_agent(input: {type: "LocalAgent", name: "dead-agent", '
                                     'labels: ["unserved-label", "second-label"]}) { id } }')
    assert "errors" not in answer, answer
    with start_agent(["start", "--label", "unserved-label", "--name", "live-other-agent"], env,
                     tmp_path / "agent.log"):
        wait_until_polled(module_emulator, "live-other-agent")
        result = run_cli(["trigger", "unserved", "--wait", "--timeout", "3"], env)
    assert result.returncode == 2, result.stdout
    warning = ("warning: no agent with labels covering ['second-label', 'unserved-label'] has polled the API in "
               "the last 60s: the run stays Scheduled until one does; start one with `python -m agents serve "
               "unserved` (in the stack: its service dag-unserved) or `python -m agents start --label "
               "second-label --label unserved-label`")
    assert result.stdout.count("warning: no agent") == 1, result.stdout
    assert warning in result.stdout


@pytest.mark.slow
def test_trigger_wait_does_not_warn_when_a_covering_agent_polls(module_emulator: Emulator,
                                                              module_env: Dict[str, str], tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "served", ["served-label"])
    env = dict(module_env, DAGS_FOLDER=str(dags))
    with start_agent(["serve", "served", "--name", "served-agent"], env, tmp_path / "agent.log"):
        wait_until_polled(module_emulator, "served-agent")
        result = run_cli(["trigger", "served", "--wait", "--timeout", "300"], env)
    assert result.returncode == 0, result.stdout
    assert "warning" not in result.stdout
    assert "finished: Success" in result.stdout
