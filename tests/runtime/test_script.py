"""A DAG script's own command line and the tutorial's container entrypoint, scripts/run_in_docker.sh."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from agents.testing import FAST
from prefect_emulator.testing import REPO_ROOT, Emulator, prefect_env
from tests.runtime.conftest import DAGS

HELLO = DAGS / "flow-test-hello"
RUN_IN_DOCKER = REPO_ROOT / "scripts" / "run_in_docker.sh"


def hello_flows(emulator: Emulator, key: Optional[str] = None) -> List[dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    answer = emulator.graphql('query { flow(where: {name: {_eq: "flow-test-hello"}}) { id version } }',
                              headers=headers)
    assert "errors" not in answer, answer
    return answer["data"]["flow"]


def bare_env(home: Path, env_dir: Path, **extra: str) -> Dict[str, str]:
    """An environment with no PREFECT_ variable at all: everything must come from env files or `extra`."""
    env = prefect_env("http://unused", home, **FAST)
    for key in [k for k in env if k.startswith("PREFECT")]:
        del env[key]
    env.update(PREFECT__HOME_DIR=str(home), DAGS_ENV_DIR=str(env_dir), **extra)
    return env


def test_env_files_configure_prefect_even_though_the_script_imported_it_first(tmp_path: Path) -> None:
    # test-hello.py imports prefect (which reads its config) before agents.cli.script loads env/ files:
    # the endpoint below only exists in local.env, so registering there proves the config was re-applied.
    with Emulator(tmp_path) as emu:
        env_dir = tmp_path / "env"
        env_dir.mkdir()
        (env_dir / "defaults.env").write_text("PREFECT__BACKEND=server\nDAGS_DEFAULT_PROJECT=My Tests\n")
        (env_dir / "local.env").write_text(f"PREFECT__SERVER__ENDPOINT={emu.url}\n")
        result = subprocess.run([sys.executable, "test-hello.py", "--register"], cwd=str(HELLO),
                                env=bare_env(tmp_path / "home", env_dir), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=120)
        assert result.returncode == 0, result.stdout
        assert "registered flow-test-hello version 1 (new version) in 'My Tests'" in result.stdout
        assert len(hello_flows(emu)) == 1


def test_run_in_docker_maps_the_tutorial_key_to_prefect_cloud(tmp_path: Path) -> None:
    key = "tutorial-key-not-to-be-printed"
    with Emulator(tmp_path, api_key=key) as emu:
        env = bare_env(tmp_path / "home", tmp_path, PREFECT__CLOUD__API=emu.url, PREFECT_AUTH_KEY=key,
                       DAG_PATH=str(HELLO), DAG_NAME="test-hello.py", PYTHON=sys.executable)
        result = subprocess.run(["bash", str(RUN_IN_DOCKER), "--register"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=120)
        assert result.returncode == 0, result.stdout
        assert "-> Prefect backend: cloud" in result.stdout
        assert "registered flow-test-hello version 1" in result.stdout
        assert key not in result.stdout
        assert len(hello_flows(emu, key)) == 1


def test_run_in_docker_without_dag_path_says_what_to_set(tmp_path: Path) -> None:
    env = bare_env(tmp_path / "home", tmp_path, DAG_NAME="test-hello.py")
    result = subprocess.run(["bash", str(RUN_IN_DOCKER)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=60)
    assert result.returncode == 2
    assert "set DAG_PATH" in result.stdout


def test_run_in_docker_with_a_missing_script_names_it(tmp_path: Path) -> None:
    env = bare_env(tmp_path / "home", tmp_path, DAG_PATH=str(HELLO), DAG_NAME="nope.py")
    result = subprocess.run(["bash", str(RUN_IN_DOCKER)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{HELLO}/nope.py does not exist" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--local", "--register"], "--local and --register exclude each other"),
    (["--param", "a=1"], "--param is for --local runs"),
    (["--local", "--param", "name=x"], "has no parameter 'name'"),
])
def test_script_bad_arguments_are_clear_errors(tmp_path: Path, args: List[str], message: str) -> None:
    env = bare_env(tmp_path / "home", tmp_path)
    result = subprocess.run([sys.executable, "test-hello.py"] + args, cwd=str(HELLO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert result.returncode == 2, result.stdout
    assert message in result.stdout


def test_wrong_cloud_key_is_a_clear_error_without_the_key(tmp_path: Path) -> None:
    with Emulator(tmp_path, api_key="the-right-key") as emu:
        env = bare_env(tmp_path / "home", tmp_path, PREFECT__BACKEND="cloud", PREFECT__CLOUD__API=emu.url,
                       PREFECT__CLOUD__API_KEY="a-wrong-key")
        result = subprocess.run([sys.executable, "-m", "agents", "register", "flow-test-hello"], cwd=str(REPO_ROOT),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert result.returncode == 1, result.stdout
    assert f"the Prefect API at {emu.url} refused the API key" in result.stdout
    assert "a-wrong-key" not in result.stdout and "Traceback" not in result.stdout
