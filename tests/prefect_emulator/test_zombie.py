"""Prefect Server's zombie killer, ported from Server 1.4.1's tests/services/test_zombie_killer.py, over HTTP with
prefect's Client, and with real agents whose processes are killed.

Server's zombie killer never fails a Running flow run: it retries (or fails) the task runs left Running by a
flow run whose heartbeat is stale, and fails stale Cancelling flow runs (prefect_emulator/zombies.py). Server's
tests write an old heartbeat into the database and call `reap_zombie_task_runs()` /
`reap_zombie_cancelling_flow_runs()`, asserting the count returned. Here prefect's Client drives an emulator
served from a thread of the test (a 1 s heartbeat timeout, no background loop), and the test runs the zombie
killer's round itself, `run_once(now)` with `now` past the timeout, so no heartbeat has to go stale in real
time; the count is read from the lines the round logs (one `ZOMBIE task run <id> marked <state>` or
`ZOMBIE flow run <id>` line per run handled). A negative case makes a control task run a zombie just after it
and checks that the same round reaped the control: the round that would have taken it did happen. A recent
heartbeat is one the round's `now` is within the timeout of (the control's is written back into the store, as
Server's tests write heartbeats). The tests with real agents and a real emulator process keep real time: they
test the emulator's own loop.

Ported (Server test -> test here):
- test_zombie_killer_fails_task_run -> test_running_task_of_a_silent_run_is_failed_and_the_run_stays_running
- test_zombie_killer_does_not_fail_flow_run_if_heartbeat_disabled -> test_heartbeats_switched_off_...
- test_zombie_killer_fails_task_run_if_heartbeat_setting_set_but_not_disabled -> test_heartbeats_enabled_...
- test_zombie_killer_does_not_apply_if_task_run_is_scheduled[Scheduled, Retrying]
- test_zombie_killer_does_not_apply_if_heartbeat_is_recent
- test_zombie_killer_creates_logs -> test_failing_a_task_run_writes_a_task_run_log
- TestZombieKillerRetries: retries_if_max_retries_greater_than_0, respects_retry_delay,
  respects_retry_delay_in_postgres_readable_syntax ("17 days 01:00:03"), stops_retrying_if_max_retries_exceeded,
  does_not_retry_if_flow_run_is_not_running[Failed, Cancelling]
- TestZombieKillerCancellingFlowRuns: fail_flow_run_if_heartbeat_elapsed, does_not_fail_flow_run_if_heartbeat_
  not_elapsed, does_not_fail_flow_run_if_not_in_cancelling_state (here with a stale heartbeat too: the rule this
  project's emulator used to break), does_not_fail_flow_run_if_heartbeat_disabled, creates_logs

Left out: test_zombie_killer_fails_task_run_if_heartbeat_setting_not_set (Server empties the flow group's
settings in the database; through the API a flow group always has them, and the default flow group is the
first case) and test_zombie_killer_retries_if_retry_delay_missing (prefect refuses a task with max_retries and
no retry_delay, and so does the emulator's registration, as Server's FlowSchema does); the
`delete_other_flow_runs` fixture (each test watches only its own runs).
"""
from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pendulum
import psutil
import pytest
from prefect import Client
from prefect.engine.state import Cancelling, Failed, Retrying, Running, Scheduled, State, Submitted

from tests.prefect_emulator.agents import agent_env, start_local_agent, wait_for_flow_runs
from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.in_process import InThread
from tests.prefect_emulator.prefect_session import (create_tenant_and_project, flow_run_rows, prefect_session,
                                                     register_flow_script, write_flow_script)
from prefect_emulator.services import wall_clock
from prefect_emulator.testing import Emulator, prefect_env, stop

TIMEOUT = 1.0  # heartbeat timeout of the module's emulator
ROUND_BOUND = 20.0  # seconds a real-process test waits for a round at most (a loaded 2-core CI machine)
TASK_RUN = """query($id: uuid!) { task_run_by_pk(id: $id) {
  name state state_start_time state_timestamp state_message
  logs(order_by: {timestamp: asc}) { message level name }
} }"""
RUN = """query($id: uuid!) { flow_run_by_pk(id: $id) {
  state state_message times_resurrected
  task_runs { id state state_message task { slug } }
  logs(where: {name: {_like: "prefect-server.%"}}, order_by: {timestamp: asc}) { message level name task_run_id }
} }"""
FLOW_RUN_MESSAGE = "No heartbeat detected from the flow run; marking the run as failed."


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[InThread]:
    """This module's emulator (conftest's `module_client` points at it): a 1 s zombie cutoff; no service runs
    but the rounds the tests run."""
    with InThread(heartbeat_timeout=TIMEOUT) as emu:
        yield emu


@pytest.fixture(scope="module")
def new_flow(module_client: Client, module_workdir: Path) -> Callable[..., str]:
    """Registers a new flow (its own flow group); no agent covers its label. Keyword arguments go to
    write_flow_script (max_retries, retry_delay)."""
    def register(**options: Any) -> str:
        name = "zombie-" + uuid.uuid4().hex[:8]
        script = write_flow_script(module_workdir / f"{name}.py", name, ["nobody-" + name], **options)
        return register_flow_script(script, PROJECT)

    return register


@pytest.fixture(scope="module")
def flow_id(new_flow: Callable[..., str]) -> str:
    return new_flow()


def greet_task_run(client: Client, run_id: str) -> str:
    """The id of the run's `greet-1` task run (the task with the flow's retry settings)."""
    runs = client.graphql(RUN, variables={"id": run_id}).data.flow_run_by_pk.task_runs
    return next(t.id for t in runs if t.task.slug == "greet-1")


def running_task(client: Client, flow_id: str) -> Tuple[str, str]:
    """A new run of `flow_id`, Running (which stamps its heartbeat) with its greet-1 task run Running, then
    left without heartbeats. Returns (flow run id, task run id)."""
    run_id = client.create_flow_run(flow_id=flow_id)
    client.set_flow_run_state(run_id, Submitted())
    client.set_flow_run_state(run_id, Running())
    task_run_id = greet_task_run(client, run_id)
    client.set_task_run_state(task_run_id, Running())
    return run_id, task_run_id


def task_row(client: Client, task_run_id: str) -> Any:
    return client.graphql(TASK_RUN, variables={"id": task_run_id}).data.task_run_by_pk


def run_row(client: Client, run_id: str) -> Any:
    return client.graphql(RUN, variables={"id": run_id}).data.flow_run_by_pk


def zombie_lines(emulator: Any, kind: str, run_id: str) -> List[str]:
    """The emulator's log lines about the zombie killer handling this task run or flow run (Server's count)."""
    return [line for line in emulator.log().splitlines() if line.startswith(f"ZOMBIE {kind} run {run_id} ")]


def wait_for(check: Callable[[], bool], what: str, bound: float = ROUND_BOUND) -> None:
    deadline = time.monotonic() + bound
    while not check():
        assert time.monotonic() < deadline, f"{what} within {bound}s"
        time.sleep(0.1)


def zombie_round(emulator: InThread, now: Optional[datetime.datetime] = None) -> datetime.datetime:
    """One zombie killer round as of `now` (default: just past the timeout of every heartbeat so far)."""
    now = now or wall_clock() + datetime.timedelta(seconds=TIMEOUT + 1)
    emulator.run_once(emulator.emulator.zombie_killer, now)
    return now


def reap(emulator: InThread, task_run_id: str, times: int = 1) -> datetime.datetime:
    """A round past the timeout, which must reap the task run (for the `times`-th time). Returns its `now`."""
    now = zombie_round(emulator)
    assert len(zombie_lines(emulator, "task", task_run_id)) >= times, f"task run {task_run_id} not reaped (#{times})"
    return now


def after_a_control_task_is_reaped(emulator: InThread, client: Client, flow_id: str,
                                   beating: Optional[str] = None) -> None:
    """Makes a control task run a zombie now and runs a round that must reap it: what was stale earlier was
    judged in that round. With `beating`, that flow run heartbeats first and the round is within the timeout
    of its heartbeat (InThread.recent_and_stale)."""
    run_id, control = running_task(client, flow_id)
    now = None
    if beating is not None:
        client.update_flow_run_heartbeat(beating)
        now = emulator.recent_and_stale(beating, run_id, TIMEOUT)
    zombie_round(emulator, now)
    assert zombie_lines(emulator, "task", control), "the control task run was not reaped"


def switch_heartbeats(client: Client, flow_id: str, on: bool) -> None:
    mutation = "enable_flow_heartbeat" if on else "disable_flow_heartbeat"
    answer = client.graphql(f"mutation($input: {mutation}_input!) {{ {mutation}(input: $input) {{ success }} }}",
                            variables={"input": {"flow_id": flow_id}})
    assert answer.data[mutation].success


# --- task runs ---------------------------------------------------------------------------------------------
def test_running_task_of_a_silent_run_is_failed_and_the_run_stays_running(module_emulator: InThread,
                                                                          module_client: Client,
                                                                          flow_id: str) -> None:
    run_id, task_run_id = running_task(module_client, flow_id)
    reap(module_emulator, task_run_id)
    assert task_row(module_client, task_run_id).state == "Failed"
    assert run_row(module_client, run_id).state == "Running"
    assert len(zombie_lines(module_emulator, "task", task_run_id)) == 1
    assert "marked Failed" in zombie_lines(module_emulator, "task", task_run_id)[0]


def test_heartbeats_switched_off_leave_the_task_running(module_emulator: InThread, module_client: Client,
                                                        flow_id: str, new_flow: Callable[..., str]) -> None:
    off = new_flow()
    switch_heartbeats(module_client, off, on=False)
    run_id, task_run_id = running_task(module_client, off)
    after_a_control_task_is_reaped(module_emulator, module_client, flow_id)
    assert task_row(module_client, task_run_id).state == "Running"
    assert zombie_lines(module_emulator, "task", task_run_id) == []


def test_heartbeats_enabled_explicitly_still_fail_the_task(module_emulator: InThread, module_client: Client,
                                                           new_flow: Callable[..., str]) -> None:
    on = new_flow()
    switch_heartbeats(module_client, on, on=True)
    _, task_run_id = running_task(module_client, on)
    reap(module_emulator, task_run_id)
    assert task_row(module_client, task_run_id).state == "Failed"


@pytest.mark.parametrize("state_class", [Scheduled, Retrying], ids=["Scheduled", "Retrying"])
def test_task_run_that_is_scheduled_is_left_alone(module_emulator: InThread, module_client: Client, flow_id: str,
                                                  state_class: type) -> None:
    run_id, task_run_id = running_task(module_client, flow_id)
    module_client.set_task_run_state(task_run_id, state_class(start_time=pendulum.now("UTC").add(hours=1)))
    after_a_control_task_is_reaped(module_emulator, module_client, flow_id)
    assert task_row(module_client, task_run_id).state == state_class.__name__
    assert zombie_lines(module_emulator, "task", task_run_id) == []


def test_task_of_a_run_with_a_recent_heartbeat_is_left_alone(module_emulator: InThread, module_client: Client,
                                                             flow_id: str) -> None:
    run_id, task_run_id = running_task(module_client, flow_id)
    # a heartbeat just sent, as a live flow runner sends them, and the round within the timeout of it
    after_a_control_task_is_reaped(module_emulator, module_client, flow_id, beating=run_id)
    assert task_row(module_client, task_run_id).state == "Running"
    assert run_row(module_client, run_id).state == "Running"
    assert zombie_lines(module_emulator, "task", task_run_id) == []


def test_failing_a_task_run_writes_a_task_run_log(module_emulator: InThread, module_client: Client,
                                                  flow_id: str) -> None:
    run_id, task_run_id = running_task(module_client, flow_id)
    reap(module_emulator, task_run_id)
    row = task_row(module_client, task_run_id)
    # the task run's name as stored (None until a runner names it), as Server's test reads it back
    expected = (f"No heartbeat detected from the remote task; marking the task run {task_run_id} ({row.name}) "
                "as failed.")
    assert [(log.message, log.level, log.name) for log in row.logs] == [
        (expected, "ERROR", "prefect-server.ZombieKiller.TaskRun")]
    assert row.state_message == expected


# --- retries -------------------------------------------------------------------------------------------------
def start_time_after_the_round(row: Any, now: datetime.datetime) -> float:
    """Seconds from the instant of the round that set the Retrying state to the state's start time."""
    return (pendulum.parse(row.state_start_time) - now).total_seconds()


def test_task_with_retries_left_is_retrying_now_and_logged(module_emulator: InThread, module_client: Client,
                                                           new_flow: Callable[..., str]) -> None:
    _, task_run_id = running_task(module_client, new_flow(max_retries=1, retry_delay=0))
    now = reap(module_emulator, task_run_id)
    row = task_row(module_client, task_run_id)
    assert row.state == "Retrying"
    assert pendulum.parse(row.state_start_time) <= now  # due at once, as of the round
    expected = "No heartbeat detected from the remote task; retrying the run.This will be retry 1 of 1."
    assert row.state_message == expected
    assert [(log.message, log.level, log.name) for log in row.logs] == [
        (expected, "ERROR", "prefect-server.ZombieKiller.TaskRun")]
    assert "marked Retrying" in zombie_lines(module_emulator, "task", task_run_id)[0]


@pytest.mark.parametrize("delay", [datetime.timedelta(hours=1), datetime.timedelta(days=17, hours=1, seconds=3)],
                         ids=["01:00:00", "17 days 01:00:03"])
def test_retry_is_due_after_the_task_retry_delay(module_emulator: InThread, module_client: Client,
                                                 new_flow: Callable[..., str], delay: datetime.timedelta) -> None:
    _, task_run_id = running_task(module_client, new_flow(max_retries=1, retry_delay=delay.total_seconds()))
    now = reap(module_emulator, task_run_id)
    row = task_row(module_client, task_run_id)
    assert row.state == "Retrying"
    assert abs(start_time_after_the_round(row, now) - delay.total_seconds()) < 1, row


def test_task_that_used_its_retries_is_failed(module_emulator: InThread, module_client: Client,
                                              new_flow: Callable[..., str]) -> None:
    _, task_run_id = running_task(module_client, new_flow(max_retries=1, retry_delay=0))
    reap(module_emulator, task_run_id)
    assert task_row(module_client, task_run_id).state == "Retrying"
    module_client.set_task_run_state(task_run_id, Running())  # the retry starts, and its process dies too
    reap(module_emulator, task_run_id, times=2)
    assert task_row(module_client, task_run_id).state == "Failed"


@pytest.mark.parametrize("flow_state", [Failed(), Cancelling()], ids=["Failed", "Cancelling"])
def test_task_of_a_run_that_is_not_running_is_failed_despite_retries(module_emulator: InThread,
                                                                     module_client: Client,
                                                                     new_flow: Callable[..., str],
                                                                     flow_state: State) -> None:
    run_id, task_run_id = running_task(module_client, new_flow(max_retries=1, retry_delay=0))
    module_client.set_flow_run_state(run_id, flow_state)
    reap(module_emulator, task_run_id)
    assert task_row(module_client, task_run_id).state == "Failed"


# --- flow runs -------------------------------------------------------------------------------------------------
def cancelling_run(client: Client, flow_id: str) -> str:
    """A new run of `flow_id` made Running, then Cancelling (both stamp the heartbeat); no task run Running."""
    run_id = client.create_flow_run(flow_id=flow_id)
    client.set_flow_run_state(run_id, Submitted())
    client.set_flow_run_state(run_id, Running())
    client.set_flow_run_state(run_id, Cancelling())
    return run_id


def test_silent_cancelling_run_is_failed_with_a_flow_run_log(module_emulator: InThread, module_client: Client,
                                                              flow_id: str) -> None:
    run_id = cancelling_run(module_client, flow_id)
    zombie_round(module_emulator)
    assert zombie_lines(module_emulator, "flow", run_id), f"flow run {run_id} not failed"
    row = run_row(module_client, run_id)
    assert (row.state, row.state_message) == ("Failed", FLOW_RUN_MESSAGE)
    assert [(log.message, log.level, log.name, log.task_run_id) for log in row.logs] == [
        (FLOW_RUN_MESSAGE, "ERROR", "prefect-server.ZombieKiller.FlowRun", None)]
    assert len(zombie_lines(module_emulator, "flow", run_id)) == 1


def test_cancelling_run_with_a_recent_heartbeat_is_left_alone(module_emulator: InThread, module_client: Client,
                                                              flow_id: str) -> None:
    run_id = cancelling_run(module_client, flow_id)
    after_a_control_task_is_reaped(module_emulator, module_client, flow_id, beating=run_id)
    assert run_row(module_client, run_id).state == "Cancelling"
    assert zombie_lines(module_emulator, "flow", run_id) == []


def test_silent_running_run_is_never_failed(module_emulator: InThread, module_client: Client,
                                            flow_id: str) -> None:
    # Server fails Cancelling runs only; a Running one is Lazarus's to reschedule
    run_id = module_client.create_flow_run(flow_id=flow_id)
    module_client.set_flow_run_state(run_id, Submitted())
    module_client.set_flow_run_state(run_id, Running())
    after_a_control_task_is_reaped(module_emulator, module_client, flow_id)
    row = run_row(module_client, run_id)
    assert row.state == "Running" and list(row.logs) == [], row
    assert zombie_lines(module_emulator, "flow", run_id) == []


def test_silent_cancelling_run_with_heartbeats_switched_off_stays_cancelling(
        module_emulator: InThread, module_client: Client, flow_id: str, new_flow: Callable[..., str]) -> None:
    off = new_flow()
    switch_heartbeats(module_client, off, on=False)
    run_id = cancelling_run(module_client, off)
    after_a_control_task_is_reaped(module_emulator, module_client, flow_id)
    assert run_row(module_client, run_id).state == "Cancelling"
    assert zombie_lines(module_emulator, "flow", run_id) == []


# --- real processes killed ---------------------------------------------------------------------------------
# long enough that a starved heartbeat process on a loaded 2-core CI machine does not fail a live task
HEARTBEAT_TIMEOUT = 6.0
LAZARUS = ["--lazarus-interval", "1", "--lazarus-stale-after", str(HEARTBEAT_TIMEOUT + 2)]


def wait_for_task_state(client: Client, run_id: str, states: set, timeout: float = 60) -> str:
    """Waits until the run's greet-1 task run is in one of `states`; returns that state."""
    found = {}

    def check() -> bool:
        found.update({t.task.slug: t.state for t in run_row(client, run_id).task_runs})
        return found.get("greet-1") in states

    wait_for(check, f"greet-1 of {run_id} never reached {sorted(states)} (last {found})", timeout)
    return found["greet-1"]


@contextmanager
def sleeping_run(tmp_path: Path, prefix: str, emulator_options: Dict[str, Any], agent_options: Dict[str, str],
                 **flow_options: Any) -> Iterator[Tuple[Client, subprocess.Popen, str, Callable[[], subprocess.Popen]]]:
    """A real agent running a flow run whose `greet` task sleeps for minutes on its first attempt; everything
    stopped after.

    Args:
        tmp_path: the test's folder
        prefix: the start of the run's unique label
        emulator_options: keyword arguments of Emulator
        agent_options: prefect variables for the agent and its flow-run processes
        **flow_options: write_flow_script's max_retries and retry_delay

    Yields:
        The client (pointed at the emulator), the agent process, the run id once the task sleeps, and a
        function that starts one more agent for the same label (stopped at the end too).
    """
    label = prefix + "-" + uuid.uuid4().hex[:8]
    agents: List[subprocess.Popen] = []
    with Emulator(tmp_path, **emulator_options) as emu, \
            prefect_session(emu.url, tmp_path / "home") as client:
        create_tenant_and_project(client, PROJECT)
        script = write_flow_script(tmp_path / "sleepy.py", "sleepy", [label], sleep=300,
                                   marker_dir=tmp_path, **flow_options)
        flow_id = register_flow_script(script, PROJECT)

        def another_agent() -> subprocess.Popen:
            home = tmp_path / f"agent-home-{len(agents)}"
            home.mkdir()
            env = agent_env(prefect_env(emu.url, home), **agent_options)
            agents.append(start_local_agent(env, [label], tmp_path / f"agent-{len(agents)}.log"))
            return agents[-1]

        try:
            agent = another_agent()
            run_id = client.create_flow_run(flow_id=flow_id)
            wait_for_flow_runs(client, [run_id], timeout=120, states={"Running"}, agents=[agent])
            wait_for_task_state(client, run_id, {"Running"})
            yield client, agent, run_id, another_agent
        finally:
            for proc in agents:
                stop(proc)


def kill_agent(agent: subprocess.Popen) -> float:
    """SIGKILLs the agent's whole process group (agent, flow-run and heartbeat processes alike); returns when."""
    os.killpg(agent.pid, signal.SIGKILL)
    agent.wait(timeout=10)
    return time.monotonic()


def executions(tmp_path: Path, run_id: str) -> int:
    """How many times the run's greet task started (one marker file each)."""
    return len(list(tmp_path.glob(f"{run_id}.*")))


@pytest.mark.slow
def test_killed_run_without_retries_has_its_task_failed_then_is_rescheduled_by_lazarus(tmp_path: Path) -> None:
    # prefect's default heartbeat mode: a `prefect heartbeat flow-run` child process, here every second
    with sleeping_run(tmp_path, "zombie", {"heartbeat_timeout": HEARTBEAT_TIMEOUT, "extra_args": LAZARUS},
                      {"PREFECT__CLOUD__HEARTBEAT_INTERVAL": "1"}) as (client, agent, run_id, _):
        # control: while heartbeats arrive, the task outlives the timeout (its flow run went Running before
        # this sleep; without heartbeats, a zombie round, 1 s apart, would have reaped it by the end)
        time.sleep(HEARTBEAT_TIMEOUT + 2)
        assert wait_for_task_state(client, run_id, {"Running"}, timeout=1) == "Running", \
            "a task with live heartbeats was reaped: the timeout ignores heartbeats"

        killed = kill_agent(agent)
        wait_for_task_state(client, run_id, {"Failed"}, timeout=HEARTBEAT_TIMEOUT + 15)
        took = time.monotonic() - killed
        # heartbeats stopped at most one interval before the kill, so the verdict cannot come much sooner
        assert took >= HEARTBEAT_TIMEOUT - 1.5, f"reaped {took:.1f}s after the kill, before the timeout"
        row = run_row(client, run_id)
        assert row.state == "Running", "Server's zombie killer never fails a Running flow run"
        assert [log.name for log in row.logs] == ["prefect-server.ZombieKiller.TaskRun"]
        # nothing is due or running any more: Lazarus puts the run back in the queue
        wait_for_flow_runs(client, [run_id], timeout=30, states={"Scheduled"}, poll=0.25)
        row = run_row(client, run_id)
        assert row.times_resurrected == 1 and row.state_message == "Rescheduled by a Lazarus process."
        assert executions(tmp_path, run_id) == 1


@pytest.mark.slow
def test_killed_run_with_retries_left_is_retried_by_another_agent_and_succeeds(tmp_path: Path) -> None:
    options = {"PREFECT__CLOUD__HEARTBEAT_INTERVAL": "1"}
    # Lazarus as Server's (10 minutes): prefect's agent marks the retried task run Submitted before its new
    # process heartbeats, and a Lazarus round in that window would reschedule the run under it (the agents of
    # this project close that window: tests/faults/test_zombie_runs.py)
    with sleeping_run(tmp_path, "retry", {"heartbeat_timeout": HEARTBEAT_TIMEOUT}, options,
                      max_retries=1, retry_delay=1) as (client, agent, run_id, another_agent):
        kill_agent(agent)
        second = another_agent()
        assert wait_for_task_state(client, run_id, {"Retrying", "Submitted", "Running", "Success"},
                                   timeout=HEARTBEAT_TIMEOUT + 20) != "Failed"
        # prefect's agent takes a Running run whose task run is due again (Server's get_runs_in_queue)
        wait_for_flow_runs(client, [run_id], timeout=90, agents=[second])
        row = run_row(client, run_id)
        assert row.state == "Success", row
        zombie_logs = [log.message for log in row.logs if log.name == "prefect-server.ZombieKiller.TaskRun"]
        assert zombie_logs == ["No heartbeat detected from the remote task; retrying the run."
                               "This will be retry 1 of 1."]
        assert executions(tmp_path, run_id) == 2  # the killed attempt and the retry, nothing more


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
    with sleeping_run(tmp_path, "cancel", {}, options) as (client, agent, run_id, _):
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
