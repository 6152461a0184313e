"""Cloud mode end to end: the backend and API key come from an env file, as a user's env/local.env would give
them, and the API (the emulator started with --api-key semantics, key from its environment) refuses any
request without that key. Only the tutorial DAG's service is started (with init and the emulator)."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests

from prefect_emulator.testing import free_port
from tests.stack.conftest import running_stack, stack_env
from tests.stack.stack import COMPOSE_FILE, Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HELLO = "flow-test-hello"


def write_cloud_override(folder: Path, key: str) -> Path:
    """An override that gives every prefect service the cloud backend and `key` through an extra env file
    (appended to compose.yaml's env_file list, so it wins like env/local.env does), and the emulator the
    same key through its environment. Nothing carries the key on a command line."""
    cloud_env = folder / "cloud.env"
    cloud_env.write_text(f"PREFECT__BACKEND=cloud\nPREFECT__CLOUD__API=http://emulator:4200\n"
                         f"PREFECT__CLOUD__API_KEY={key}\n")
    emulator_env = folder / "emulator.env"
    emulator_env.write_text(f"PREFECT_EMULATOR_API_KEY={key}\n")
    for path in (cloud_env, emulator_env):
        path.chmod(0o600)
    services = Stack("dagsprobe", [COMPOSE_FILE], stack_env(free_port())).run("config", "--services").stdout.split()
    prefect_services = [s for s in services if s == "init" or s.startswith(("dag-", "agent-"))]
    override = {"services": {s: {"env_file": [{"path": str(cloud_env)}]} for s in prefect_services}}
    override["services"]["emulator"] = {"env_file": [{"path": str(emulator_env)}]}
    path = folder / "compose.cloud.yaml"
    path.write_text(json.dumps(override, indent=2))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def cloud(built_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    key = f"pcu_{uuid.uuid4().hex}"
    override = write_cloud_override(tmp_path_factory.mktemp("cloud"), key)
    with running_stack([override], services=[f"dag-{HELLO}"]) as stk:
        yield {"stack": stk, "key": key}


def test_prefect_services_get_the_cloud_backend_from_the_env_file(cloud):
    stack: Stack = cloud["stack"]
    proc = stack.exec(f"dag-{HELLO}", "python", "-m", "agents", "config")
    assert proc.returncode == 0, proc.stderr
    assert "cloud" in proc.stdout
    assert cloud["key"] not in proc.stdout, "`agents config` printed the API key"


def test_run_on_the_cloud_backend_ends_in_success(cloud):
    stack: Stack = cloud["stack"]
    proc = stack.exec(f"dag-{HELLO}", "python", "-m", "agents", "trigger", HELLO, "--wait", "--timeout", "240",
                      timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}"
    assert "finished: Success" in proc.stdout
    assert "Test Hello, Cloud!" in proc.stdout


def test_the_api_refuses_requests_without_the_key(cloud):
    stack: Stack = cloud["stack"]
    query = {"query": "{ flow { name } }"}
    anonymous = requests.post(stack.api_url, json=query, timeout=10)
    assert anonymous.status_code == 401 or anonymous.json().get("errors"), anonymous.text
    wrong = requests.post(stack.api_url, json=query, timeout=10, headers={"Authorization": "Bearer pcu_wrong"})
    assert wrong.status_code == 401 or wrong.json().get("errors"), wrong.text
    right = requests.post(stack.api_url, json=query, timeout=10,
                          headers={"Authorization": f"Bearer {cloud['key']}"})
    assert HELLO in {f["name"] for f in right.json()["data"]["flow"]}


def test_the_key_is_in_no_log_and_no_command_line(cloud):
    stack: Stack = cloud["stack"]
    logs = stack.run("logs", "--no-color", timeout=120).stdout
    assert cloud["key"] not in logs
    for container in stack.containers(all_states=True):
        inspect = json.loads(subprocess.run(["docker", "inspect", container["id"]], capture_output=True,
                                            text=True, check=True, timeout=60).stdout)[0]
        command_line = " ".join((inspect["Config"]["Cmd"] or []) + (inspect["Config"]["Entrypoint"] or []))
        assert cloud["key"] not in command_line, f"{container['name']} has the key on its command line"
