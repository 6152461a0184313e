"""Runs stranded by a dead or cut-off agent come back to the queue and run exactly once (agents.agent.recovery,
agents.flowrun), with real agents, flow runs and signals."""
from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from agents.testing import start_agent
from tests.faults.faults import (GAVE_UP, REQUEUED, create_runs, executions, figures, registered_dag, runs, utc_now,
                                 wait_finished, wait_until)
from prefect_emulator.testing import REPO_ROOT, Emulator

pytestmark = pytest.mark.slow
RUNS = 6


def submitted_by(emu: Emulator, ids, count: int) -> bool:
    return sum(r["state"] == "Submitted" for r in runs(emu, ids)) >= count


def taken_and_running(emu: Emulator, run_id: str) -> bool:
    """The run was submitted a second time (after its re-queue) and that submission's process runs it."""
    [row] = runs(emu, [run_id])
    return row["state"] == "Running" and [s["state"] for s in row["states"]].count("Submitted") == 2


def test_runs_submitted_to_a_killed_agent_are_requeued_and_run_once(tmp_path: Path) -> None:
    with Emulator(tmp_path) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "killed-dag")
        # the doomed agent's flow runs take 20 s to load their DAG: killed while every run is Submitted
        doomed = start_agent(["start", "-l", label, "--name", "doomed", "--limit", "0"],
                             dict(env, DAGS_TEST_LOAD_DELAY="20"), tmp_path / "doomed.log")
        try:
            ids = create_runs(emu, flow, RUNS)
            wait_until(lambda: submitted_by(emu, ids, RUNS), 60, f"{RUNS} runs Submitted by the doomed agent")
            os.killpg(doomed.proc.pid, signal.SIGKILL)  # the agent and its flow-run processes, as docker kill
            killed_at = utc_now()
        finally:
            doomed.stop()
        with start_agent(["start", "-l", label, "--name", "rescuer"], env, tmp_path / "rescuer.log"):
            rows = wait_finished(emu, ids, timeout=150)
    result = figures("agent SIGKILL with runs Submitted (host)", ids, rows, tmp_path / "markers", killed_at)
    assert (result["lost"], result["duplicated"], result["not_executed"]) == (0, 0, 0), rows
    assert result["success"] == RUNS
    assert result["requeued"] == RUNS
    assert result["seconds_to_recover"] <= 60, "stranded runs must be back in the queue within 60 s"
    for row in rows:
        assert any(REQUEUED in log["message"] and "'doomed'" in log["message"] for log in row["logs"]), row


def test_a_paused_agent_whose_flow_run_wakes_after_its_run_was_taken_gives_it_up(tmp_path: Path) -> None:
    with Emulator(tmp_path) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "paused-dag")
        paused = start_agent(["start", "-l", label, "--name", "paused"], dict(env, DAGS_TEST_LOAD_DELAY="5"),
                             tmp_path / "paused.log")
        try:
            [run_id] = create_runs(emu, flow, 1, {"seconds": 10})
            wait_until(lambda: submitted_by(emu, [run_id], 1), 60, "the run Submitted by the paused agent")
            # once its flow-run process started (stopped sooner, the agent's own read-back of its Submitted
            # state finds the run taken, and no process starts), freeze the agent and the process, which
            # loads the DAG for 5 s, as a network cut would
            paused.wait_for_output(f"Completed deployment of flow run {run_id}", timeout=60)
            os.killpg(paused.proc.pid, signal.SIGSTOP)
            with start_agent(["start", "-l", label, "--name", "taker"], env, tmp_path / "taker.log"):
                wait_until(lambda: taken_and_running(emu, run_id), 120, "the run re-queued, run by the other agent")
                os.killpg(paused.proc.pid, signal.SIGCONT)
                # the paused process now reaches the API while the taker runs it: it must give the run up
                wait_until(lambda: any(GAVE_UP in log["message"] for log in runs(emu, [run_id])[0]["logs"]),
                           60, "the late flow-run process giving the run up")
                wait_finished(emu, [run_id], timeout=60)
        finally:
            os.killpg(paused.proc.pid, signal.SIGCONT)
            paused.stop()
        [row] = runs(emu, [run_id])
    result = figures("agent paused, its run taken by another (host)", [run_id], [row], tmp_path / "markers")
    assert (result["success"], result["duplicated"], result["not_executed"]) == (1, 0, 0), row
    states = [s["state"] for s in row["states"]]
    assert states.count("Running") == 1 and states[-1] == "Success", states
    assert states.count("Submitted") == 2, states  # the paused agent's, then the taker's


def test_a_flow_run_process_started_with_a_stale_submission_writes_nothing(tmp_path: Path) -> None:
    # the flow-run command itself, started by hand as a late agent would have: another agent holds the run
    with Emulator(tmp_path) as emu:
        label, env, flow = registered_dag(emu, tmp_path, "stale-dag")
        with start_agent(["start", "-l", label, "--name", "owner"], env, tmp_path / "owner.log"):
            [run_id] = create_runs(emu, flow, 1, {"seconds": 2})
            wait_until(lambda: runs(emu, [run_id])[0]["state"] == "Running", 60, "the run Running")
            before = runs(emu, [run_id])[0]
            late = dict(env, PREFECT__CONTEXT__FLOW_RUN_ID=run_id, PREFECT__CONTEXT__FLOW_ID=flow,
                        DAGS_AGENT_ID=str(uuid.uuid4()), DAGS_SUBMISSION_ID=uuid.uuid4().hex,
                        PREFECT__CLOUD__SEND_FLOW_RUN_LOGS="true")
            proc = subprocess.run([sys.executable, "-m", "agents.flowrun"], env=late, cwd=REPO_ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            rows = wait_finished(emu, [run_id], timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert GAVE_UP in proc.stdout, proc.stdout
    states = [s["state"] for s in rows[0]["states"]]
    assert states[:len(before["states"])] == [s["state"] for s in before["states"]]
    assert states.count("Running") == 1 and states[-1] == "Success", states
    assert executions(tmp_path / "markers") == {run_id: 1}


def test_a_submission_is_ours_only_while_it_is_the_newest_state_right_after_a_scheduled_one(tmp_path: Path) -> None:
    from prefect.engine.state import Running, Submitted

    from agents.submission import SUBMISSION_KEY, submission_problem
    from tests.prefect_emulator.prefect_session import prefect_session

    with Emulator(tmp_path) as emu:
        _, _, flow = registered_dag(emu, tmp_path, "submit-dag")
        with prefect_session(emu.url, tmp_path / "session") as client:
            [run_id] = create_runs(emu, flow, 1)
            client.set_flow_run_state(run_id, Submitted(message="mine", context={SUBMISSION_KEY: "s1"}))
            assert submission_problem(client, run_id, "s1") is None
            assert "another state" in submission_problem(client, run_id, "s2")
            client.set_flow_run_state(run_id, Running(message="someone else's process"))
            assert "another state was written after this submission" in submission_problem(client, run_id, "s1")
            # a Running run picked up for a retry: ours only right after the very Running state it was seen in
            # (another run: Server's 30 s Submitted lock refuses a second Submitted of the first one)
            [retried] = create_runs(emu, flow, 1)
            client.set_flow_run_state(retried, Running(message="its process died; a task is due again"))
            seen = client.get_flow_run_info(retried).version
            client.set_flow_run_state(retried, Submitted(message="retry", context={SUBMISSION_KEY: "s3"}))
            assert submission_problem(client, retried, "s3", running_version=seen) is None
            assert "not the Running state" in submission_problem(client, retried, "s3", running_version=seen - 1)
            assert "Scheduled" in submission_problem(client, retried, "s3")


@pytest.mark.parametrize("taken_to", ["Running", "Success"])
def test_a_submission_that_lands_late_on_a_run_taken_meanwhile_puts_back_the_state_it_overwrote(
        tmp_path: Path, taken_to: str) -> None:
    # An agent picks the run Scheduled, then its Submitted write is delayed (a network cut: prefect's client
    # retries) while another agent's process runs the run; Server takes the late write once its 30 s
    # Submitted lock has expired (here: the other process's states are written without a Submitted one, so
    # there is no lock to wait for). Left Submitted, the run would be re-queued by the late agent's recovery
    # sweep and run again (a Success run ran twice in the stack's network-cut scenario).
    from prefect.engine.state import Running, Success

    from agents.agent.hosting import DagsAgent
    from tests.prefect_emulator.prefect_session import prefect_session

    with Emulator(tmp_path) as emu:
        label, _, flow = registered_dag(emu, tmp_path, "late-dag")
        with prefect_session(emu.url, tmp_path / "session") as client:
            [run_id] = create_runs(emu, flow, 1)
            late = DagsAgent(name="late", labels=[label], flow_run_fork=False)
            late.client.attach_headers({"X-PREFECT-AGENT-ID": late._register_agent()})
            [picked] = late._get_flow_run_metadata([run_id])  # what its poll read: the run Scheduled
            client.set_flow_run_state(run_id, Running("the other agent's process"))
            if taken_to == "Success":
                client.set_flow_run_state(run_id, Success("the other agent's process"))
            with pytest.raises(ValueError, match="State update failed"):  # prefect's agent: someone else's run
                late._mark_flow_as_submitted(picked)
            [row] = runs(emu, [run_id])
    states = [s["state"] for s in row["states"]]
    assert states[-2:] == ["Submitted", taken_to] and row["state"] == taken_to, row["states"]
    assert "put back by agent late" in row["states"][-1]["message"], row["states"]
    assert any(f"put the run back to {taken_to}" in log["message"] for log in row["logs"]), row["logs"]


class AtOnce(concurrent.futures.Executor):
    """Runs each job as it is submitted: its future is done before prefect adds its done-callback, as a
    worker thread can make it when the job ends at once."""

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:  # type: ignore[override]
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def test_a_run_whose_deploy_ended_at_once_is_deployed_again_by_the_next_poll(tmp_path: Path) -> None:
    # the deploy ends at once when the run's Submitted write is refused: here by Server's 30 s Submitted lock,
    # which another agent's Submitted state (then undone) left on the run. prefect's loop tracked the run only
    # after its job's callback had run, so the run stayed "submitting" and this agent never polled it again
    from prefect.engine.state import Scheduled, Submitted

    from agents.agent.hosting import DagsAgent
    from tests.prefect_emulator.prefect_session import prefect_session

    with Emulator(tmp_path) as emu:
        label, _, flow = registered_dag(emu, tmp_path, "quick-dag")
        with prefect_session(emu.url, tmp_path / "session") as client:
            [run_id] = create_runs(emu, flow, 1)
            client.set_flow_run_state(run_id, Submitted("another agent"))
            client.set_flow_run_state(run_id, Scheduled("another agent let it go"))
            agent = DagsAgent(name="quick", labels=[label], flow_run_fork=False)
            agent.client.attach_headers({"X-PREFECT-AGENT-ID": agent._register_agent()})
            assert [r.id for r in agent._submit_deploy_flow_run_jobs(AtOnce())] == [run_id]
            [row] = runs(emu, [run_id])
            assert row["state"] == "Scheduled", row["states"]  # the Submitted write was refused: nothing ran
            assert run_id not in agent.submitting_flow_runs
            assert run_id in agent._get_ready_flow_runs()  # the next poll deploys it again
