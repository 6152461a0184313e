"""Scaled agents never execute a run twice: Server's submitted lock lets only one of them set a run Submitted
(a second Submitted for the same run within 30 s is refused, whatever the run's state)."""
from __future__ import annotations

import collections
import re
import threading
import time
import uuid
from pathlib import Path
from typing import List, Optional

import pytest
from prefect import Client
from prefect.engine.state import Submitted

from tests.prefect_emulator.agents import agent_env, start_local_agent, wait_for_flow_runs
from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.prefect_session import (create_tenant_and_project, flow_run_rows, prefect_session,
                                            register_flow_script, write_flow_script)
from prefect_emulator.testing import Emulator, prefect_env, stop

RUNS = 30
AGENTS = 3


def wait_for_text(path: Path, text: str, timeout: float) -> None:
    """Waits until `text` shows up in the file at `path` (an agent's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {path} after {timeout}s:\n"
                         + (path.read_text(errors="replace")[-3000:] if path.exists() else "(no file)"))


@pytest.mark.slow
def test_three_agents_with_the_same_labels_run_each_of_thirty_runs_exactly_once(tmp_path: Path) -> None:
    label = "shared-" + uuid.uuid4().hex[:8]
    markers = tmp_path / "markers"
    markers.mkdir()
    with Emulator(tmp_path) as emu, prefect_session(emu.url, tmp_path / "home") as client:
        create_tenant_and_project(client, PROJECT)
        script = write_flow_script(tmp_path / "once.py", "once", [label], marker_dir=markers)
        flow_id = register_flow_script(script, PROJECT)
        # heartbeats in a thread of the flow run rather than one more Python process per run: 2 cores
        (tmp_path / "agent-home").mkdir()
        env = agent_env(prefect_env(emu.url, tmp_path / "agent-home"), PREFECT__CLOUD__HEARTBEAT_MODE="thread")
        logs = [tmp_path / f"agent-{i}.log" for i in range(AGENTS)]
        agents = [start_local_agent(env, [label], log, name=f"agent-{i}") for i, log in enumerate(logs)]
        try:
            for log in logs:
                wait_for_text(log, "Waiting for flow runs", timeout=180)
            # all runs at once while the three agents poll: they race for every one of them
            run_ids = [client.create_flow_run(flow_id=flow_id, parameters={"greeting": f"run {i}"})
                       for i in range(RUNS)]
            rows = wait_for_flow_runs(client, run_ids, timeout=480, agents=agents)
        finally:
            for agent in agents:
                stop(agent)

        assert {i: r["state"] for i, r in rows.items() if r["state"] != "Success"} == {}
        histories = client.graphql("""query($ids: [uuid!]) {
            flow_run(where: {id: {_in: $ids}}) { id states { state } }
        }""", variables={"ids": run_ids}).data.flow_run
        submitted = {run.id: [s.state for s in run.states].count("Submitted") for run in histories}
        assert submitted == {i: 1 for i in run_ids}, "a run was moved to Submitted more or less than once"

    executions = collections.Counter(name.split(".")[0] for name in (p.name for p in markers.iterdir()))
    assert set(executions) == set(run_ids), "markers from unknown runs, or runs that left no marker"
    assert {i: n for i, n in executions.items() if n != 1} == {}, "runs executed more than once"

    deployed = collections.Counter()
    for log in logs:
        deployed.update(re.findall(r"Completed deployment of flow run ([0-9a-f-]{36})", log.read_text()))
    assert deployed == collections.Counter({i: 1 for i in run_ids}), "a run was deployed by two agents"


def race_to_submit(api_url: str, run_id: str, version: int, contenders: int) -> List[Optional[str]]:
    """`contenders` threads, each with its own Client, set the same run to Submitted at the same moment.

    Returns:
        Per thread, None when its update was accepted, else the error text it got.
    """
    barrier = threading.Barrier(contenders)
    outcome: List[Optional[str]] = [None] * contenders

    def contend(slot: int) -> None:
        client = Client(api_server=api_url)
        client.tenant_id  # resolve the tenant before the race, not inside it
        barrier.wait()
        try:
            client.set_flow_run_state(run_id, Submitted(message=f"agent {slot}"), version=version)
        except Exception as exc:  # the refused one gets prefect's ClientError (or a version-lock signal)
            outcome[slot] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=contend, args=(slot,)) for slot in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcome


def test_concurrent_submitted_updates_on_one_scheduled_run_let_exactly_one_win(module_client: Client,
                                                                               module_emulator: Emulator,
                                                                               module_workdir: Path) -> None:
    script = write_flow_script(module_workdir / "race.py", "race", ["race-" + uuid.uuid4().hex[:8]])
    flow_id = register_flow_script(script, PROJECT)
    for attempt in range(10):
        run_id = module_client.create_flow_run(flow_id=flow_id)
        before = flow_run_rows(module_client, [run_id])[run_id]
        assert before["state"] == "Scheduled"

        outcome = race_to_submit(module_emulator.url, run_id, before["version"], contenders=2)

        winners = [o for o in outcome if o is None]
        assert len(winners) == 1, f"attempt {attempt}: {len(winners)} of 2 Submitted updates accepted: {outcome}"
        after = flow_run_rows(module_client, [run_id])[run_id]
        assert after["state"] == "Submitted"
        assert after["version"] == before["version"] + 1, "the refused update still bumped the version"


def test_a_second_submitted_within_the_lock_is_refused(module_client: Client, module_workdir: Path) -> None:
    script = write_flow_script(module_workdir / "late.py", "late", ["late-" + uuid.uuid4().hex[:8]])
    run_id = module_client.create_flow_run(flow_id=register_flow_script(script, PROJECT))
    version = flow_run_rows(module_client, [run_id])[run_id]["version"]
    module_client.set_flow_run_state(run_id, Submitted(message="first agent"), version=version)

    # a second agent that read the run while it was still Scheduled, and so sends the old version
    with pytest.raises(Exception) as refused:
        module_client.set_flow_run_state(run_id, Submitted(message="second agent"), version=version)
    # prefect's agent recognises the refusal by this text (Agent._deploy_flow_run): with any other text the
    # losing agent marks the run Failed while the winning agent runs it (Server says exactly this)
    assert "State update failed" in str(refused.value), str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert flow_run_rows(module_client, [run_id])[run_id]["state"] == "Submitted"
    # and one without any version is refused as well
    with pytest.raises(Exception) as refused:
        module_client.set_flow_run_state(run_id, Submitted(message="third agent"))
    assert "State update failed" in str(refused.value), str(refused.value)
    assert flow_run_rows(module_client, [run_id])[run_id]["state"] == "Submitted"


def test_the_agent_that_submits_a_run_is_recorded_on_it(module_client: Client, module_emulator: Emulator,
                                                        module_workdir: Path) -> None:
    # Server stores the submitting agent (X-PREFECT-AGENT-ID, which every agent attaches) on the run;
    # the UI shows it, and it is how one finds which of the scaled replicas ran what
    script = write_flow_script(module_workdir / "owned.py", "owned", ["owned-" + uuid.uuid4().hex[:8]])
    run_id = module_client.create_flow_run(flow_id=register_flow_script(script, PROJECT))
    agent_client = Client(api_server=module_emulator.url)
    agent_id = agent_client.register_agent(agent_type="LocalAgent", name="owner", labels=["owned"])
    agent_client.attach_headers({"X-PREFECT-AGENT-ID": agent_id})

    agent_client.set_flow_run_state(run_id, Submitted(message="mine"))

    run = module_client.graphql('query($id: uuid!) { flow_run_by_pk(id: $id) { agent_id agent { name } } }',
                                variables={"id": run_id}).data.flow_run_by_pk
    assert (run.agent_id, run.agent.name if run.agent else None) == (agent_id, "owner")
