"""A DAG registered anywhere runs anywhere: registered in a container, it runs on a host agent; registered
from the host, it runs on a container agent; and registering it from both makes one version.

The host side is this checkout (its own path), the containers' is the image's /app: script storage records
the path relative to the repository root and every agent runs its flow runs from its own root.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator

import pytest

from agents.testing import run_cli, runtime_env, start_agent
from tests.stack.conftest import running_stack
from tests.stack.stack import Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HELLO = "flow-test-hello"
ETL = "etl-seattle-weather"


@pytest.fixture(scope="module")
def api_only(built_image: str) -> Iterator[Stack]:
    """The API and init only: no DAG service registers anything until a test says so."""
    with running_stack(services=["init"]) as stk:
        yield stk


@pytest.fixture
def host_env(api_only: Stack, tmp_path: Path) -> Dict[str, str]:
    """`python -m agents` on the host, pointed at the stack's published API."""
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    return runtime_env(api_only.api_url, tmp_path / "home", env_dir)


def registered(output: str, name: str) -> re.Match:
    found = re.search(rf"^registered {re.escape(name)} version (\d+) \((new version|unchanged)\).* flow id (\S+)$",
                      output, flags=re.M)
    assert found, output
    return found


def run_id_of(output: str) -> str:
    found = re.search(r"created flow run (\S+)", output)
    assert found, output
    return found.group(1)


def test_registered_in_a_container_runs_on_a_host_agent(api_only: Stack, host_env: Dict[str, str],
                                                        tmp_path: Path) -> None:
    inside = api_only.run("run", "--rm", "--no-deps", "-T", f"dag-{HELLO}", "python", "-m", "agents", "register",
                          HELLO)
    created = registered(inside.stdout, HELLO)
    assert created.group(2) == "new version", inside.stdout
    # The host registers the same DAG: same serialized flow, so the container's version stands.
    again = run_cli(["register", HELLO], host_env)
    assert again.returncode == 0, again.stdout
    assert registered(again.stdout, HELLO).group(2, 3) == ("unchanged", created.group(3)), again.stdout

    elsewhere = tmp_path / "agent-cwd"
    elsewhere.mkdir()
    with start_agent(["start", "--label", "hello", "--name", "host-agent"], host_env, tmp_path / "agent.log",
                     cwd=elsewhere) as agent:
        result = run_cli(["trigger", HELLO, "--wait", "--timeout", "300"], host_env, cwd=elsewhere)
    assert result.returncode == 0, f"{result.stdout}\n--- host agent ---\n{agent.output()}"
    assert "Run by host-agent" in result.stdout
    assert api_only.runs([run_id_of(result.stdout)])[0]["agent"]["name"] == "host-agent"


def test_registered_from_the_host_runs_on_a_container_agent(api_only: Stack, host_env: Dict[str, str]) -> None:
    first = run_cli(["register", ETL], host_env)
    assert first.returncode == 0, first.stdout
    created = registered(first.stdout, ETL)
    assert created.group(2) == "new version", first.stdout

    # The DAG's service registers it again at start: the host's version stands.
    api_only.up("--no-build", f"dag-{ETL}", timeout=300)
    service_log = api_only.logs(f"dag-{ETL}")
    assert registered(service_log, ETL).group(2, 3) == ("unchanged", created.group(3)), service_log

    output_dir = f"{api_only.output_dir}/portable"
    result = run_cli(["trigger", ETL, "--param", f"output_dir={output_dir}", "--wait", "--timeout", "300"],
                     host_env)
    assert result.returncode == 0, f"{result.stdout}\n{api_only.recent_logs()}"
    agent = api_only.runs([run_id_of(result.stdout)])[0]["agent"]["name"]
    hostname = agent.rpartition("@")[2]
    assert api_only.service_of_hostname().get(hostname) == f"dag-{ETL}", agent
