"""The API goes away, comes back empty, comes late, or meets many services at once: agents recover by
themselves and their health says the truth, with real emulator and agent processes."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import List

import pytest
import requests

from agents.testing import Background, start_agent
from tests.faults.faults import (counted_env, create_runs, figures, flow_id, register, registered_dag, runs,
                                 wait_finished, wait_until)
from agents.settings import API_WAIT_TIMEOUT
from prefect_emulator.testing import Emulator, free_port, wait_for_http

pytestmark = pytest.mark.slow
HEALTH = dict(DAGS_AGENT_HEALTH_TIMEOUT="4")


def health_code(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def run_batch(emu: Emulator, name: str, count: int) -> List[str]:
    """Creates `count` runs of DAG `name` and waits for them to finish; returns their ids."""
    ids = create_runs(emu, flow_id(emu, name), count)
    wait_finished(emu, ids, timeout=120)
    return ids


@pytest.mark.parametrize("keeps_data", [True, False], ids=["db", "in-memory"])
def test_agents_recover_by_themselves_after_an_emulator_restart(tmp_path: Path, keeps_data: bool) -> None:
    db = tmp_path / "api.sqlite" if keeps_data else None
    emu = Emulator(tmp_path, db=db).start()
    try:
        label, env, _ = registered_dag(emu, tmp_path, "restart-dag", **HEALTH)
        with start_agent(["start", "-l", label, "--name", "r1"], env, tmp_path / "r1.log") as one, \
                start_agent(["start", "-l", label, "--name", "r2"], env, tmp_path / "r2.log") as two:
            before = run_batch(emu, "restart-dag", 4)
            emu.stop()
            # health fails once the agents have gone DAGS_AGENT_HEALTH_TIMEOUT without a successful poll
            wait_until(lambda: health_code(one.health_url) == 503 and health_code(two.health_url) == 503, 30,
                       "both agents unhealthy while the API is down")
            emu = Emulator(tmp_path, db=db, port=emu.port).start()
            restarted = time.monotonic()
            if not keeps_data:
                register(env)  # a new, empty API: init and register again, as compose's init service does
            wait_until(lambda: health_code(one.health_url) == 200 and health_code(two.health_url) == 200, 60,
                       "both agents healthy again")
            healthy_after = time.monotonic() - restarted
            after = run_batch(emu, "restart-dag", 6)
            assert one.proc.poll() is None and two.proc.poll() is None, "an agent exited instead of recovering"
        ids = (before if keeps_data else []) + after
        rows = runs(emu, ids)
    finally:
        emu.stop()
    scenario = f"emulator restart ({'--db' if keeps_data else 'in memory + init/register'}, host)"
    result = figures(scenario, ids, rows, tmp_path / "markers")
    print(f"agents healthy {healthy_after:.1f}s after the API came back")
    assert result["success"] == len(ids), rows
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert {r["agent_id"] for r in runs_by_id(rows, after)} - {None}, "no agent ran the new runs"


def runs_by_id(rows: List[dict], ids: List[str]) -> List[dict]:
    return [r for r in rows if r["id"] in set(ids)]


def test_the_default_api_wait_covers_an_api_a_minute_late(monkeypatch: pytest.MonkeyPatch) -> None:
    # what init, serve and start wait by default when DAGS_API_WAIT_TIMEOUT is unset or empty
    for unset in (None, ""):
        if unset is None:
            monkeypatch.delenv("DAGS_API_WAIT_TIMEOUT", raising=False)
        else:
            monkeypatch.setenv("DAGS_API_WAIT_TIMEOUT", unset)
        assert API_WAIT_TIMEOUT.read() >= 60


def test_serve_and_start_wait_for_an_api_that_comes_late(tmp_path: Path) -> None:
    label = "late-" + uuid.uuid4().hex[:6]
    port = free_port()
    # the waits are the commands' own (backoff up to 5 s between attempts); the bound is only kept short
    env = counted_env(f"http://127.0.0.1:{port}", tmp_path, "late-dag", [label], DAGS_API_WAIT_TIMEOUT="90")
    agents = [start_agent(["serve", "late-dag", "--name", "late-serve"], env, tmp_path / "serve.log", wait=False),
              start_agent(["start", "-l", label, "--name", "late-start"], env, tmp_path / "start.log", wait=False)]
    try:
        # six failed attempts each (0.25, 0.5, 1, 2 and 4 s apart, then the 5 s cap): the API comes late
        wait_until(lambda: all(a.output().count("waiting for the Prefect API at") >= 6 or a.proc.poll() is not None
                               for a in agents), 80, "six failed attempts of each command")
        for agent in agents:
            assert agent.proc.poll() is None, agent.output()
        with Emulator(tmp_path, port=port) as emu:
            for agent in agents:
                wait_for_http(agent.health_url, timeout=90, proc=agent.proc)
            ids = create_runs(emu, flow_id(emu, "late-dag"), 3)
            rows = wait_finished(emu, ids, timeout=120)
    finally:
        for agent in agents:
            agent.stop()
    result = figures("API up after serve and start had waited (host)", ids, rows, tmp_path / "markers")
    assert (result["success"], result["duplicated"]) == (3, 0)


def test_serve_and_two_starts_against_an_api_without_tenant_all_come_up(tmp_path: Path) -> None:
    with Emulator(tmp_path) as emu:
        env = counted_env(emu.url, tmp_path, "first-dag", ["first"])
        agents = [start_agent(args, env, tmp_path / f"first-{i}.log", wait=False) for i, args in enumerate([
            ["serve", "first-dag", "--name", "first-serve"],
            ["start", "-l", "first", "--name", "first-a"],
            ["start", "-l", "first", "--name", "first-b"]])]
        try:
            for agent in agents:
                try:
                    wait_for_http(agent.health_url, timeout=120, proc=agent.proc)
                except (RuntimeError, TimeoutError) as exc:
                    pytest.fail(f"{exc}:\n{agent.output()}")
            tenants = emu.graphql("{ tenant { id } }")["data"]["tenant"]
            ids = create_runs(emu, flow_id(emu, "first-dag"), 3)
            rows = wait_finished(emu, ids, timeout=120)
        finally:
            for agent in agents:
                agent.stop()
    assert len(tenants) == 1
    for agent in agents:
        assert "Uniqueness violation" not in agent.output() and "Traceback" not in agent.output(), agent.output()
    assert [r["state"] for r in rows] == ["Success"] * 3
