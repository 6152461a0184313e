"""Trigger latency by default: an idle agent's request budget, and `trigger` waking the agents (agents.agent.waking),
with real agents polling the real emulator."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest
import requests
from agents.testing import run_cli, start_agent
from tests.faults.faults import wait_until
from prefect_emulator.testing import Emulator, free_port
from tests.runtime.conftest import write_plain_dag

pytestmark = pytest.mark.slow

# The polls an agent with DAGS_AGENT_MAX_POLL_INTERVAL above prefect's 10 s makes before its long sleep:
# the first, then one after each of prefect's sleeps 0.5, 1, 2, 4, 8 and 10 s (agents.agent.hosting.poll_intervals).
POLLS_BEFORE_THE_LONG_SLEEP = 7


def polls(emulator: Emulator) -> int:
    """The queue polls (get_runs_in_queue requests) the emulator has logged so far."""
    return emulator.log().count('"fields": ["get_runs_in_queue"]')


def requests_made(emulator: Emulator) -> int:
    """Every GraphQL request the emulator has logged so far."""
    return sum(1 for line in emulator.log().splitlines() if line.startswith("GRAPHQL "))


def without_poll_setting(env: Dict[str, str]) -> Dict[str, str]:
    """The environment with the agents' defaults (the runtime tests otherwise poll fast)."""
    return {k: v for k, v in env.items() if k != "DAGS_AGENT_MAX_POLL_INTERVAL"}


def test_an_idle_agent_with_default_settings_makes_at_most_one_request_a_second(
        module_emulator: Emulator, module_env: Dict[str, str], tmp_path: Path) -> None:
    # The budget (README, agents.settings.MAX_POLL_INTERVAL) is one request a second, polls and the
    # recovery sweep together. A 10 s window holds at most 10 polls 1.1 s apart (one at each edge) and one
    # sweep: 11. prefect's own backoff floor (0.25 s) would make 40, a 0.5 s cap 20, the former 30 s
    # reconnect check on top of 1 s polls 12 or more.
    with start_agent(["start", "--label", "idle-budget"], without_poll_setting(module_env), tmp_path / "a.log"):
        time.sleep(4)  # past prefect's start-up backoff (0.5, 1 s, then the cap)
        before = requests_made(module_emulator)
        time.sleep(10)
        made = requests_made(module_emulator) - before
    assert 5 <= made <= 11, f"{made} requests in 10 s"


def test_trigger_wakes_an_agent_in_a_long_sleep_and_the_run_starts_before_its_next_poll(
        module_emulator: Emulator, module_env: Dict[str, str], tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "woken", ["woken-label"])
    env = dict(module_env, DAGS_FOLDER=str(dags), DAGS_AGENT_MAX_POLL_INTERVAL="3600")
    assert run_cli(["register", "woken"], env).returncode == 0
    runtime = Path(env["PREFECT__HOME_DIR"]) / "agents-running"
    start = polls(module_emulator)
    with start_agent(["start", "--label", "woken-label", "--name", "sleeper"], env, tmp_path / "a.log") as agent:
        # the agent records its API's address for `trigger` once it serves it
        wait_until(lambda: any(r["name"] == "sleeper" and r["labels"] == ["woken-label"] and r["pid"] == agent.proc.pid
                               for r in (json.loads(p.read_text()) for p in runtime.glob("*.json"))), 10,
                   "the agent's runtime file")
        # prefect's backoff up to 10 s, then the next poll is an hour away
        wait_until(lambda: polls(module_emulator) - start >= POLLS_BEFORE_THE_LONG_SLEEP, 60,
                   "the agent reached its long sleep")
        # a poke naming the labels of a run it may not take leaves it asleep, and says so
        [record] = [json.loads(p.read_text()) for p in runtime.glob("*.json")
                    if json.loads(p.read_text())["pid"] == agent.proc.pid]
        asleep = polls(module_emulator)
        other = requests.get(record["address"] + "/api/poke", params={"labels": "other-label"}, timeout=5)
        assert other.json() == {"woken": False}
        time.sleep(1.0)  # a woken loop polls within milliseconds
        assert polls(module_emulator) == asleep, "a poke for a run of other labels woke the agent"
        # one without labels (as prefect's own pokes come) wakes it
        assert requests.get(record["address"] + "/api/poke", timeout=5).json() == {"woken": True}
        wait_until(lambda: polls(module_emulator) > asleep, 10, "a poll after a poke without labels")
        asleep = polls(module_emulator)
        result = run_cli(["trigger", "woken", "--wait", "--timeout", "120"], env)
        assert result.returncode == 0, f"{result.stdout}\n--- agent ---\n{agent.output()}"
        assert "state Running" in result.stdout and "finished: Success" in result.stdout
        assert polls(module_emulator) > asleep, "the run started without a poll"


def test_trigger_succeeds_when_no_agent_answers_the_poke(module_env: Dict[str, str], tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_plain_dag(dags, "unanswered", ["unanswered-label"])
    closed = free_port()
    env = dict(module_env, DAGS_FOLDER=str(dags), PREFECT__LOGGING__LEVEL="DEBUG",
               DAGS_POKE_ADDRESSES=f"http://no-such-agent.invalid:8081, http://127.0.0.1:{closed}")
    assert run_cli(["register", "unanswered"], env).returncode == 0
    # A registered agent that is alive (this test's process) but serves nothing at its address.
    runtime = Path(env["PREFECT__HOME_DIR"]) / "agents-running"
    runtime.mkdir(parents=True, exist_ok=True)
    record = runtime / f"{os.getpid()}.json"
    record.write_text(json.dumps({"pid": os.getpid(), "address": f"http://127.0.0.1:{closed}", "name": "mute",
                                  "labels": ["unanswered-label"], "api": env["PREFECT__CLOUD__API"]}))
    # and one whose process is gone (killed without its clean-up): its file is dropped, it is not poked
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = runtime / f"{gone.pid}.json"
    stale.write_text(json.dumps({"pid": gone.pid, "address": f"http://127.0.0.1:{free_port()}", "name": "gone",
                                 "labels": ["unanswered-label"], "api": env["PREFECT__CLOUD__API"]}))
    try:
        result = run_cli(["trigger", "unanswered"], env)
    finally:
        record.unlink()
    assert result.returncode == 0, result.stdout
    assert not stale.exists(), "the runtime file of a process that is gone was kept"
    assert "created flow run" in result.stdout
    assert result.stdout.count(f"could not poke the agent at http://127.0.0.1:{closed}") == 2, result.stdout
    assert "could not resolve http://no-such-agent.invalid:8081" in result.stdout


def test_a_malformed_poke_address_is_refused_before_the_run_is_created(module_emulator: Emulator,
                                                                       module_env: Dict[str, str]) -> None:
    before = module_emulator.graphql("query { flow_run { id } }")["data"]["flow_run"]
    result = run_cli(["trigger", "flow-test-hello"], dict(module_env, DAGS_POKE_ADDRESSES="agents:8081"))
    assert result.returncode == 1
    assert ("DAGS_POKE_ADDRESSES must list agent API addresses as http://HOST:PORT (comma-separated), "
            "got 'agents:8081'") in result.stdout
    assert module_emulator.graphql("query { flow_run { id } }")["data"]["flow_run"] == before


def test_an_agent_address_whose_port_is_taken_is_a_clear_error(module_env: Dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"http://127.0.0.1:{taken.getsockname()[1]}"
        result = run_cli(["start", "--label", "port-taken", "--agent-address", address], module_env)
    assert result.returncode == 1, result.stdout
    assert f"Error: the agent cannot serve its API at {address}: Address already in use; choose another port " \
           "(--agent-address or PREFECT__CLOUD__AGENT__AGENT_ADDRESS)" in result.stdout
