"""Lazarus, ported from Prefect Server 1.4.1's tests/services/test_lazarus.py, driven over HTTP with prefect's Client.

Server's tests call `Lazarus().run_once()` after writing an old heartbeat straight into the database, and assert
on the count it returns. Here prefect's Client drives an emulator served from a thread of the test (runs stale
after 1 s, no background loop), and the test runs Lazarus's round itself, `run_once(now)` with `now` past the
staleness, so no heartbeat has to go stale in real time; the count is read from the lines the round logs (one
`LAZARUS flow run <id> ...` line per rescheduled or failed run). A negative case ("Lazarus leaves this run
alone") makes a control run stuck just after it and checks that the same round rescheduled the control: the
round that would have taken the run did happen. One test keeps a real emulator process with
`--lazarus-interval 0.2 --lazarus-stale-after 1`: it tests the emulator's own loop and those options.

Ported (Server test -> test here):
- test_lazarus_restarts_flow_run[Running, Submitted] -> test_stuck_run_is_rescheduled_once_and_counted
- test_lazarus_does_not_restart_flow_run_if_lazarus_disabled / _if_heartbeat_disabled /
  _if_lazarus_and_heartbeat_disabled [Running, Submitted] -> test_flow_group_settings_switch_lazarus_off
- test_lazarus_restarts_flow_run_if_lazarus_setting_set_but_not_disabled -> test_lazarus_enabled_explicitly_...
- test_lazarus_creates_flow_run_log -> test_rescheduling_writes_a_flow_run_log
- test_lazarus_doesnt_restart_flow_run_that_isnt_running[Failed, Success, Pending, Scheduled]
- test_lazarus_doesnt_restart_flow_run_with_active_tasks[Running, Retrying, Resume, Paused, Scheduled]
- test_lazarus_doesnt_restart_flow_run_with_recent_heartbeat
- test_lazarus_doesnt_restart_flow_run_if_exceeding_times_attempted_limit[Running, Submitted] and
  test_lazarus_logs_even_if_flow_run_exceeding_times_attempted_limit -> reached for real here: the run is
  made stuck and rescheduled 3 times, then fails on the 4th (Server sets times_resurrected to the limit in the
  database, which no API allows).

Left out: the `delete_other_flow_runs` fixture (each test watches only its own runs and the log lines naming
them, so other runs do not matter); Server's "Update failed" version-lock branch (Server 1.4.1 itself enforces
no version lock, and neither does the emulator, so a Scheduled state is never refused).
"""
from __future__ import annotations

import datetime
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest
from prefect import Client
from prefect.engine.state import (Failed, Paused, Pending, Resume, Retrying, Running, Scheduled, State, Submitted,
                                  Success)

from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.in_process import InThread
from tests.prefect_emulator.prefect_session import (create_tenant_and_project, prefect_session,
                                                     register_flow_script, write_flow_script)
from prefect_emulator.services import wall_clock
from prefect_emulator.testing import Emulator

STALE_AFTER = 1.0
INTERVAL = 0.2  # --lazarus-interval of the real-process test
ROUND_BOUND = 20.0  # seconds the real-process test waits for Lazarus at most (a loaded 2-core CI machine)
RUN = "query($id: uuid!) { flow_run_by_pk(id: $id) { state version times_resurrected } }"
LOGS = """query($id: uuid!) {
  log(where: {flow_run_id: {_eq: $id}, name: {_like: "prefect-server.Lazarus%"}}, order_by: {timestamp: asc}) {
    message level name
  }
}"""


class FastLazarusEmulator(Emulator):
    """The emulator with Lazarus every 0.2 s for runs 1 s without heartbeat; the zombie killer kept out of it."""

    def args(self) -> List[str]:
        return super().args() + ["--lazarus-interval", str(INTERVAL), "--lazarus-stale-after", str(STALE_AFTER)]


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[InThread]:
    """This module's emulator (conftest's `module_client` points at it): runs stale after 1 s; no service runs
    but the rounds the tests run."""
    with InThread(lazarus_stale_after=STALE_AFTER, heartbeat_timeout=3600) as emu:
        yield emu


@pytest.fixture(scope="module")
def emulator(module_emulator: InThread) -> InThread:
    return module_emulator


@pytest.fixture(scope="module")
def client(module_client: Client) -> Client:
    return module_client


@pytest.fixture(scope="module")
def new_flow(client: Client, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Registers a new flow (its own flow group, so its settings are its own); no agent covers its label."""
    folder = tmp_path_factory.mktemp("flows")

    def register() -> str:
        name = "lazarus-" + uuid.uuid4().hex[:8]
        return register_flow_script(write_flow_script(folder / f"{name}.py", name, ["nobody-" + name]), PROJECT)

    return register


@pytest.fixture(scope="module")
def flow_id(new_flow: Callable[[], str]) -> str:
    return new_flow()


def run_row(client: Client, run_id: str) -> dict:
    return dict(client.graphql(RUN, variables={"id": run_id}).data.flow_run_by_pk)


def lazarus_lines(emulator: Any, run_id: str) -> List[str]:
    """The emulator's log lines about Lazarus handling this run (Server's run_once() count, per run)."""
    return [line for line in emulator.log().splitlines() if line.startswith(f"LAZARUS flow run {run_id} ")]


def stuck_run(client: Client, flow_id: str, state: State) -> str:
    """A new run of `flow_id` moved to `state` (Submitted/Running stamp the heartbeat), then left without any."""
    run_id = client.create_flow_run(flow_id=flow_id)
    client.set_flow_run_state(run_id, state)
    return run_id


def lazarus_round(emulator: InThread, now: Optional[datetime.datetime] = None) -> None:
    """One Lazarus round as of `now` (default: just past the staleness of every heartbeat so far)."""
    emulator.run_once(emulator.emulator.lazarus, now or wall_clock() + datetime.timedelta(seconds=STALE_AFTER + 1))


def reschedule(emulator: InThread, run_id: str, attempt: int = 1) -> None:
    """A round past the staleness, which must take the run (for the `attempt`-th time)."""
    lazarus_round(emulator)
    assert len(lazarus_lines(emulator, run_id)) >= attempt, f"run {run_id} not rescheduled (#{attempt})"


def after_a_control_run_is_rescheduled(emulator: InThread, client: Client, flow_id: str,
                                       beating: Optional[str] = None) -> None:
    """Makes a control run stuck now and runs a round that must take it: runs made stuck earlier were judged
    in that same round (one round looks at every stale run, in one transaction). With `beating`, that run
    sends a heartbeat first (as a live flow runner does) and the round is within the staleness of it."""
    control = stuck_run(client, flow_id, Running())
    now = None
    if beating is not None:
        client.update_flow_run_heartbeat(beating)
        now = emulator.recent_and_stale(beating, control, STALE_AFTER)
    lazarus_round(emulator, now)
    assert lazarus_lines(emulator, control), "the control run was never rescheduled"


@pytest.mark.parametrize("state", [Running(), Submitted()], ids=["Running", "Submitted"])
def test_stuck_run_is_rescheduled_once_and_counted(emulator: InThread, client: Client, flow_id: str,
                                                   state: State) -> None:
    run_id = stuck_run(client, flow_id, state)
    reschedule(emulator, run_id)
    row = run_row(client, run_id)
    assert row["state"] == "Scheduled" and row["times_resurrected"] == 1, row
    # a Scheduled run is no candidate: nothing more happens, however much later
    lazarus_round(emulator, wall_clock() + datetime.timedelta(seconds=3 * STALE_AFTER))
    assert len(lazarus_lines(emulator, run_id)) == 1
    assert run_row(client, run_id)["times_resurrected"] == 1


@pytest.mark.parametrize("state", [Running(), Submitted()], ids=["Running", "Submitted"])
@pytest.mark.parametrize("mutations", [["disable_flow_lazarus_process"], ["disable_flow_heartbeat"],
                                       ["disable_flow_lazarus_process", "disable_flow_heartbeat"]],
                         ids=["lazarus-off", "heartbeat-off", "both-off"])
def test_flow_group_settings_switch_lazarus_off(emulator: InThread, client: Client, flow_id: str,
                                                new_flow: Callable[[], str], state: State,
                                                mutations: List[str]) -> None:
    switched_off = new_flow()
    for mutation in mutations:
        answer = client.graphql(f"mutation($input: {mutation}_input!) {{ {mutation}(input: $input) {{ success }} }}",
                                variables={"input": {"flow_id": switched_off}})
        assert answer.data[mutation].success
    run_id = stuck_run(client, switched_off, state)
    after_a_control_run_is_rescheduled(emulator, client, flow_id)
    row = run_row(client, run_id)
    assert row["state"] == type(state).__name__ and row["times_resurrected"] == 0, row
    assert lazarus_lines(emulator, run_id) == []


@pytest.mark.parametrize("state", [Running(), Submitted()], ids=["Running", "Submitted"])
def test_lazarus_enabled_explicitly_still_reschedules(emulator: InThread, client: Client,
                                                      new_flow: Callable[[], str], state: State) -> None:
    enabled = new_flow()
    answer = client.graphql("mutation($input: enable_flow_lazarus_process_input!) { "
                            "enable_flow_lazarus_process(input: $input) { success } }",
                            variables={"input": {"flow_id": enabled}})
    assert answer.data.enable_flow_lazarus_process.success
    run_id = stuck_run(client, enabled, state)
    reschedule(emulator, run_id)
    row = run_row(client, run_id)
    assert row["state"] == "Scheduled" and row["times_resurrected"] == 1, row


def test_rescheduling_writes_a_flow_run_log(emulator: InThread, client: Client, flow_id: str) -> None:
    run_id = stuck_run(client, flow_id, Running())
    reschedule(emulator, run_id)
    logs = client.graphql(LOGS, variables={"id": run_id}).data.log
    assert [(log.message, log.level, log.name) for log in logs] == [
        ("Rescheduled by a Lazarus process. This is attempt 1.", "INFO", "prefect-server.Lazarus.FlowRun")]
    state = client.get_flow_run_info(run_id).state
    assert isinstance(state, Scheduled) and state.message == "Rescheduled by a Lazarus process."


@pytest.mark.parametrize("state", [Failed(), Success(), Pending(), Scheduled()],
                         ids=["Failed", "Success", "Pending", "Scheduled"])
def test_run_that_is_not_submitted_or_running_is_left_alone(emulator: InThread, client: Client, flow_id: str,
                                                            state: State) -> None:
    run_id = stuck_run(client, flow_id, state)
    after_a_control_run_is_rescheduled(emulator, client, flow_id)
    assert run_row(client, run_id)["state"] == type(state).__name__
    assert lazarus_lines(emulator, run_id) == []


@pytest.mark.parametrize("task_state", [Running(), Retrying(), Resume(), Paused(), Scheduled()],
                         ids=["Running", "Retrying", "Resume", "Paused", "Scheduled"])
def test_run_with_a_task_run_due_or_in_progress_is_left_alone(emulator: InThread, client: Client, flow_id: str,
                                                              task_state: State) -> None:
    run_id = stuck_run(client, flow_id, Running())
    task_run = client.get_flow_run_info(run_id).task_runs[0]
    client.set_task_run_state(task_run.id, task_state)
    version = run_row(client, run_id)["version"]
    after_a_control_run_is_rescheduled(emulator, client, flow_id)
    row = run_row(client, run_id)
    assert row["state"] == "Running" and row["version"] == version, row
    assert lazarus_lines(emulator, run_id) == []


def test_run_with_a_recent_heartbeat_is_left_alone(emulator: InThread, client: Client, flow_id: str) -> None:
    run_id = stuck_run(client, flow_id, Running())
    after_a_control_run_is_rescheduled(emulator, client, flow_id, beating=run_id)
    assert run_row(client, run_id)["state"] == "Running"
    assert lazarus_lines(emulator, run_id) == []


@pytest.mark.parametrize("state", [Running(), Submitted()], ids=["Running", "Submitted"])
def test_run_rescheduled_three_times_is_failed_with_an_error_log(emulator: InThread, client: Client, flow_id: str,
                                                                  state: State) -> None:
    run_id = client.create_flow_run(flow_id=flow_id)
    for attempt in (1, 2, 3):
        # picked up again, then stuck again; Running each time: Server's submitted lock refuses a second
        # Submitted of a run within 30 s, so only the last round is in `state` (the one Server's test sets)
        client.set_flow_run_state(run_id, Running())
        reschedule(emulator, run_id, attempt)
        row = run_row(client, run_id)
        assert row["state"] == "Scheduled" and row["times_resurrected"] == attempt, row
    client.set_flow_run_state(run_id, state)
    reschedule(emulator, run_id, 4)
    row = run_row(client, run_id)
    assert row["state"] == "Failed" and row["times_resurrected"] == 3, row
    assert "marked Failed" in lazarus_lines(emulator, run_id)[-1]
    logs = client.graphql(LOGS, variables={"id": run_id}).data.log
    assert [log.message for log in logs[:3]] == [
        f"Rescheduled by a Lazarus process. This is attempt {n}." for n in (1, 2, 3)]
    last = logs[-1]
    assert len(logs) == 4 and last.level == "ERROR" and last.name == "prefect-server.Lazarus.FlowRun"
    assert "A Lazarus process attempted to reschedule this run 3 times" in last.message
    assert "Marking as failed" in last.message


def test_the_emulators_own_loop_reschedules_a_stuck_run(tmp_path: Path) -> None:
    # the real process with --lazarus-interval and --lazarus-stale-after: its loop, not the test, runs Lazarus
    with FastLazarusEmulator(tmp_path, heartbeat_timeout=3600) as emu, \
            prefect_session(emu.url, tmp_path / "home") as client:
        create_tenant_and_project(client, PROJECT)
        flow_id = register_flow_script(write_flow_script(tmp_path / "stuck.py", "stuck", ["nobody"]), PROJECT)
        run_id = stuck_run(client, flow_id, Running())
        deadline = time.monotonic() + ROUND_BOUND
        while not lazarus_lines(emu, run_id):
            assert time.monotonic() < deadline, f"run {run_id} not rescheduled within {ROUND_BOUND}s"
            time.sleep(INTERVAL / 2)
        row = run_row(client, run_id)
        assert row["state"] == "Scheduled" and row["times_resurrected"] == 1, row
        assert lazarus_lines(emu, run_id) == [
            f"LAZARUS flow run {run_id} rescheduled: no heartbeat for 1 s and no task run in progress "
            "(attempt 1 of 3)"]
