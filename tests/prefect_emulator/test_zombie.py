"""Prefect Server's zombie killer: a Running run whose heartbeats stop is Failed after --heartbeat-timeout."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import psutil
import pytest
from prefect import Client
from prefect.engine.state import Running, Submitted

from tests.prefect_emulator.agents import agent_env, start_local_agent, wait_for_flow_runs
from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.prefect_session import (create_tenant_and_project, flow_run_rows, prefect_session,
                                            register_flow_script, write_flow_script)
from tests.processes import Emulator, prefect_env, stop

# long enough that a starved heartbeat process on a loaded 2-core CI machine does not fail a live run
HEARTBEAT_TIMEOUT = 6.0
TASK_QUERY = """query($id: uuid!) {
  flow_run_by_pk(id: $id) { task_runs { state task { slug } } }
}"""


def wait_for_sleeping_task(client: Client, run_id: str, timeout: float = 60) -> None:
    """Waits until the flow's sleeping task (`greet-1`) is Running: the flow-run process is mid-task."""
    deadline = time.monotonic() + timeout
    while not any(t.task.slug == "greet-1" and t.state == "Running" for t in
                  client.graphql(TASK_QUERY, variables={"id": run_id}).data.flow_run_by_pk.task_runs):
        assert time.monotonic() < deadline, "the sleeping task never reached Running"
        time.sleep(0.5)


@contextmanager
def sleeping_run(tmp_path: Path, prefix: str, emulator_options: Dict[str, Any],
                 agent_options: Dict[str, str]) -> Iterator[Tuple[Client, subprocess.Popen, str]]:
    """A real agent running a flow run whose second task sleeps for minutes; everything stopped after.

    Args:
        tmp_path: the test's folder
        prefix: the start of the run's unique label
        emulator_options: keyword arguments of Emulator
        agent_options: prefect variables for the agent and its flow-run processes

    Yields:
        The client (pointed at the emulator), the agent process and the run id, once the task sleeps.
    """
    label = prefix + "-" + uuid.uuid4().hex[:8]
    home = tmp_path / "agent-home"
    home.mkdir()
    with Emulator(tmp_path, **emulator_options) as emu, \
            prefect_session(emu.url, tmp_path / "home") as client:
        create_tenant_and_project(client, PROJECT)
        script = write_flow_script(tmp_path / "sleepy.py", "sleepy", [label], sleep=300)
        flow_id = register_flow_script(script, PROJECT)
        env = agent_env(prefect_env(emu.url, home), **agent_options)
        agent = start_local_agent(env, [label], tmp_path / "agent.log")
        try:
            run_id = client.create_flow_run(flow_id=flow_id)
            wait_for_flow_runs(client, [run_id], timeout=120, states={"Running"}, agents=[agent])
            wait_for_sleeping_task(client, run_id)
            yield client, agent, run_id
        finally:
            stop(agent)


@pytest.mark.slow
def test_run_whose_agent_and_flow_process_are_killed_is_failed_with_a_heartbeat_message(tmp_path: Path) -> None:
    # prefect's default heartbeat mode: a `prefect heartbeat flow-run` child process, here every second
    with sleeping_run(tmp_path, "zombie", {"heartbeat_timeout": HEARTBEAT_TIMEOUT},
                      {"PREFECT__CLOUD__HEARTBEAT_INTERVAL": "1"}) as (client, agent, run_id):
        # control: while heartbeats arrive, the run outlives the timeout twice over
        time.sleep(2 * HEARTBEAT_TIMEOUT)
        assert flow_run_rows(client, [run_id])[run_id]["state"] == "Running", \
            "a run with live heartbeats was failed: the timeout ignores heartbeats"

        os.killpg(agent.pid, signal.SIGKILL)  # agent, flow-run process and heartbeat process alike
        agent.wait(timeout=10)
        killed = time.monotonic()
        wait_for_flow_runs(client, [run_id], timeout=HEARTBEAT_TIMEOUT + 15, states={"Failed"}, poll=0.25)
        took = time.monotonic() - killed

        state = client.get_flow_run_state(run_id)
        assert state.is_failed()
        assert "heartbeat" in (state.message or "").lower(), f"message does not say why: {state.message!r}"
        # heartbeats stopped at most one interval before the kill, so the failure cannot come much sooner
        assert took >= HEARTBEAT_TIMEOUT - 1.5, f"failed {took:.1f}s after the kill, before the timeout"
        # as Server's zombie killer: the task that was running is failed too
        after = client.graphql(TASK_QUERY, variables={"id": run_id}).data.flow_run_by_pk.task_runs
        tasks = {t.task.slug: t.state for t in after}
        assert tasks.get("greet-1") == "Failed", f"the killed task is left {tasks.get('greet-1')}: {tasks}"


def flow_run_processes(agent_pid: int) -> list:
    """Command lines of the agent's `prefect execute flow-run` children still alive."""
    try:
        children = psutil.Process(agent_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
            if "execute flow-run" in cmdline and child.status() != psutil.STATUS_ZOMBIE:
                found.append(cmdline)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_running_run_cancelled_through_the_api_stops_mid_task_and_ends_cancelled(tmp_path: Path) -> None:
    # the flow runner looks for Cancelling every second (agent_env), in a heartbeat thread
    options = {"PREFECT__CLOUD__HEARTBEAT_MODE": "thread"}
    with sleeping_run(tmp_path, "cancel", {}, options) as (client, agent, run_id):
        client.cancel_flow_run(run_id)

        wait_for_flow_runs(client, [run_id], timeout=60, states={"Cancelled"}, agents=[agent])
        # the point of cancelling: the flow-run process stops (prefect's runner reacts to Cancelling;
        # a run flipped straight to Cancelled would sleep on for minutes)
        deadline = time.monotonic() + 30
        while flow_run_processes(agent.pid):
            assert time.monotonic() < deadline, f"flow run still executing: {flow_run_processes(agent.pid)}"
            time.sleep(0.5)
        tasks = {t.task_slug: type(t.state).__name__ for t in client.get_flow_run_info(run_id).task_runs}
        assert tasks.get("greeting") == "Success" and tasks.get("greet-1") == "Cancelled", tasks
        assert set(tasks.values()) <= {"Success", "Cancelled"}, f"unfinished task runs left behind: {tasks}"


def test_silent_running_run_is_failed_with_its_running_task_and_a_log_saying_why(tmp_path: Path) -> None:
    # the same rule without processes to kill: a run set Running by hand that never heartbeats again
    with Emulator(tmp_path, heartbeat_timeout=1) as emu, prefect_session(emu.url, tmp_path / "home") as client:
        create_tenant_and_project(client, PROJECT)
        script = write_flow_script(tmp_path / "silent.py", "silent", ["silent"])
        flow_id = register_flow_script(script, PROJECT)
        silent, waiting = client.create_flow_run(flow_id=flow_id), client.create_flow_run(flow_id=flow_id)
        tasks = client.graphql({"query": {'flow_by_pk(id: "%s")' % flow_id: {"tasks": {"id", "slug"}}}})
        task_id = {t.slug: t.id for t in tasks.data.flow_by_pk.tasks}["greet-1"]
        client.set_flow_run_state(silent, Submitted(message="s"))
        client.set_flow_run_state(silent, Running(message="r"))
        task_run = client.get_task_run_info(silent, task_id)
        client.set_task_run_state(task_run.id, Running(message="busy"))

        wait_for_flow_runs(client, [silent], timeout=15, states={"Failed"}, poll=0.25)

        answer = client.graphql("""query($id: uuid!) { flow_run_by_pk(id: $id) {
            serialized_state task_runs { state task { slug } } logs { message level } } }""",
                                variables={"id": silent}).data.flow_run_by_pk
        assert "heartbeat" in answer.serialized_state["message"].lower()
        assert {t.task.slug: t.state for t in answer.task_runs}["greet-1"] == "Failed"
        # a run that never ran is no zombie
        assert flow_run_rows(client, [waiting])[waiting]["state"] == "Scheduled"
        # Server's zombie killer also logs the reason on the run, where `prefect run --watch` and the UI show it
        assert any("heartbeat" in log.message.lower() for log in answer.logs), \
            f"no log on the run says why it failed: {[log.message for log in answer.logs]}"


def test_cancelling_run_whose_process_is_gone_is_failed_instead_of_cancelling_forever(tmp_path: Path) -> None:
    # cancelling a Running run only asks its flow runner to stop (Cancelling); when that process is gone,
    # Server's zombie killer fails the run once heartbeats are stale (reap_zombie_cancelling_flow_runs)
    with Emulator(tmp_path, heartbeat_timeout=1) as emu, prefect_session(emu.url, tmp_path / "home") as client:
        create_tenant_and_project(client, PROJECT)
        flow_id = register_flow_script(write_flow_script(tmp_path / "gone.py", "gone", ["gone"]), PROJECT)
        run_id = client.create_flow_run(flow_id=flow_id)
        client.set_flow_run_state(run_id, Submitted(message="s"))
        client.set_flow_run_state(run_id, Running(message="r"))
        client.cancel_flow_run(run_id)
        assert flow_run_rows(client, [run_id])[run_id]["state"] in {"Cancelling", "Cancelled"}

        wait_for_flow_runs(client, [run_id], timeout=15, states={"Failed", "Cancelled"}, poll=0.25)
