"""Parity: flow run and task run states, as Prefect Server 1.4.1 (release 2022.09.23) answers them.

Ports PrefectHQ/server `tests/graphql/test_states.py` (18 cases: TestSetFlowRunStates 7,
TestSetTaskRunStates 8, TestCancelFlowRun 3) and the GraphQL-reachable cases of `tests/api/test_states.py`
(58 of 60 cases: TestTaskRunStates 28, TestFlowRunStates 26, TestCancelFlowRun 4), each sent over HTTP with
set_flow_run_states / set_task_run_states / cancel_flow_run and checked through Hasura queries.

Left out of tests/api/test_states.py: `test_cancelling_bad_flow_run_id_errors` with "" and None (2 cases):
the GraphQL schema types flow_run_id as `UUID!`, so neither reaches Server's code (the unknown-uuid case is
ported). Server's payload-size cases send 16 MB of JSON; the ports send 2.4 MB, over Server's 1 MB state
limit and under the emulator's 10 MB request limit.

The 31 cases after the ports (marked "from Server's source") pin behaviours of issue 8 that Server's tests do not
cover: any state may follow a finished one, the Submitted lock is a lock (not a state rule), end_time only
for Success/Failed/Cached/TimedOut/Looped/Cancelled, start_time only for Running, the state hierarchy.
"""
from __future__ import annotations

import os
import uuid

import pendulum
import pytest
from prefect.engine.results import PrefectResult
from prefect.engine.state import (Cancelled, Failed, Mapped, Pending, Retrying, Running, Scheduled, Skipped, State,
                                  Submitted, Success, TriggerFailed)

from tests.parity.runs_setup import (SET_FLOW_RUN_STATES, SET_TASK_RUN_STATES, flow_run, set_flow_run_state,
                                     set_task_run_state, task_run, task_runs_of, when)
from tests.parity.runs_setup import runs  # noqa: F401  (a fixture: pytest finds it by this name)


CANCEL = "mutation($input: cancel_flow_run_input!) { cancel_flow_run(input: $input) { state } }"
ALL_STATES = State.children()


def flow_states(*items):
    """The input of set_flow_run_states for (flow run id, state[, version]) items."""
    return {"input": {"states": [dict(flow_run_id=i[0], state=i[1].serialize(), **({"version": i[2]} if len(i) > 2
                                                                                   else {})) for i in items]}}


def task_states(*items):
    """The input of set_task_run_states for (task run id, state[, extra fields]) items."""
    return {"input": {"states": [dict(task_run_id=i[0], state=i[1].serialize(), **(i[2] if len(i) > 2 else {}))
                                 for i in items]}}


def big_nonsense_state():
    """Server's "nonsense payload, just large": 2 x 600 000 random latin-1 characters (2.4 MB as JSON)."""
    return {str(i): os.urandom(600_000).decode("latin-1") for i in range(2)}


# ------------------------------------------------------------------ tests/graphql/test_states.py
class TestSetFlowRunStates:
    def test_set_flow_run_state(self, api, runs):
        answer = api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Running())))
        assert answer["set_flow_run_states"]["states"] == [{"id": runs.flow_run_id, "status": "SUCCESS",
                                                            "message": None}]
        row = flow_run(api, runs.flow_run_id)
        assert (row["version"], row["state"]) == (2, "Running")

    def test_set_flow_run_state_with_version(self, api, runs):
        answer = api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Running(), 1)))
        assert answer["set_flow_run_states"]["states"][0]["status"] == "SUCCESS"
        row = flow_run(api, runs.flow_run_id)
        assert (row["version"], row["state"]) == (2, "Running")

    def test_set_multiple_flow_run_states(self, api, runs):
        ids = [runs.flow_run_id, runs.flow_run_id_2, runs.flow_run_id_3]
        answer = api.data(SET_FLOW_RUN_STATES, flow_states((ids[0], Running()), (ids[1], Success()),
                                                           (ids[2], Retrying())))
        assert answer["set_flow_run_states"]["states"] == [{"id": i, "status": "SUCCESS", "message": None}
                                                           for i in ids]
        assert [(flow_run(api, i)["version"], flow_run(api, i)["state"]) for i in ids] == [
            (2, "Running"), (3, "Success"), (4, "Retrying")]

    def test_set_multiple_flow_run_states_with_one_failed(self, api, runs):
        bad_id = str(uuid.uuid4())
        answer = api.post(SET_FLOW_RUN_STATES, flow_states((bad_id, Success(), 100),
                                                           (runs.flow_run_id_3, Retrying(), 4)))
        assert answer["data"]["set_flow_run_states"] is None
        assert f"State update failed for flow run ID {bad_id}" in answer["errors"][0]["message"]

    def test_set_flow_run_state_with_result(self, api, runs):
        state = Success(result=PrefectResult(location="10"))
        api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, state)))
        row = flow_run(api, runs.flow_run_id)
        assert (row["version"], row["state"]) == (2, "Success")

    def test_set_flow_run_states_rejects_states_with_large_payloads(self, api, runs):
        variables = flow_states((runs.flow_run_id, Running()))
        variables["input"]["states"].append({"flow_run_id": runs.flow_run_id_2, "state": big_nonsense_state()})
        assert "State payload is too large" in api.error(SET_FLOW_RUN_STATES, variables)

    def test_set_flow_run_states_submitted_lock_on_same_flow_run_id(self, api, runs):
        first = api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Submitted())))
        second = api.error(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Submitted())))
        assert first["set_flow_run_states"]["states"][0]["status"] == "SUCCESS"
        assert "State update failed: this run has already been submitted." in second


class TestSetTaskRunStates:
    def test_set_task_run_state(self, api, runs):
        runs.running_flow_run_id
        answer = api.data(SET_TASK_RUN_STATES, task_states((runs.task_run_id, Running())))
        assert answer["set_task_run_states"]["states"][0]["id"] == runs.task_run_id
        row = task_run(api, runs.task_run_id)
        assert (row["version"], row["state"]) == (2, "Running")

    def test_set_task_run_state_with_version(self, api, runs):
        task_run_id = runs.task_run_id
        runs.running_flow_run_id
        api.data(SET_TASK_RUN_STATES, task_states((task_run_id, Running(), {"version": 0})))
        row = task_run(api, task_run_id)
        assert (row["version"], row["state"]) == (2, "Running")

    def test_set_multiple_task_run_states(self, api, runs):
        ids = [runs.task_run_id, runs.task_run_id_2, runs.task_run_id_3]
        runs.running_flow_run_id
        answer = api.data(SET_TASK_RUN_STATES, task_states((ids[0], Running()), (ids[1], Success()),
                                                           (ids[2], Retrying(), {"version": 1})))
        assert answer["set_task_run_states"]["states"] == [{"id": i, "status": "SUCCESS", "message": None}
                                                           for i in ids]
        assert [(task_run(api, i)["version"], task_run(api, i)["state"]) for i in ids] == [
            (2, "Running"), (3, "Success"), (3, "Retrying")]

    def test_set_multiple_task_run_states_with_one_failed(self, api, runs):
        bad_id = str(uuid.uuid4())
        task_run_id_3 = runs.task_run_id_3
        runs.running_flow_run_id
        answer = api.post(SET_TASK_RUN_STATES, task_states((bad_id, Success(), {"version": 100}),
                                                           (task_run_id_3, Retrying())))
        assert answer["data"]["set_task_run_states"] is None
        assert f"State update failed for task run ID {bad_id}" in answer["errors"][0]["message"]

    def test_set_task_run_state_with_result(self, api, runs):
        api.data(SET_TASK_RUN_STATES, task_states((runs.task_run_id, Success(result=PrefectResult(location="10")))))
        row = task_run(api, runs.task_run_id)
        assert (row["version"], row["state"]) == (2, "Success")

    def test_set_task_run_state_with_correct_flow_run_state(self, api, runs):
        task_run_id = runs.task_run_id
        api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Running(), 1)))
        api.data(SET_TASK_RUN_STATES, task_states((task_run_id, Running(), {"flow_run_version": 2})))
        row = task_run(api, task_run_id)
        assert (row["version"], row["state"]) == (2, "Running")

    def test_set_task_run_state_fails_with_wrong_flow_run_state(self, api, runs):
        task_run_id = runs.task_run_id
        api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id_2, Running(), 2)))
        message = api.error(SET_TASK_RUN_STATES, task_states((task_run_id, Running(), {"flow_run_version": 5})))
        assert "State update failed" in message
        row = task_run(api, task_run_id)
        assert (row["version"], row["state"]) == (1, "Pending")

    def test_set_task_run_states_rejects_states_with_large_payloads(self, api, runs):
        variables = task_states((runs.task_run_id, Running()))
        variables["input"]["states"].append({"task_run_id": runs.task_run_id_2, "state": big_nonsense_state()})
        runs.running_flow_run_id
        assert "State payload is too large" in api.error(SET_TASK_RUN_STATES, variables)


class TestCancelFlowRunMutation:
    @pytest.mark.parametrize("state,res_state,version", [(Running(), "Cancelling", 3), (Success(), "Success", 2),
                                                         (Submitted(), "Cancelled", 3)],
                             ids=["Running", "Success", "Submitted"])
    def test_cancel_flow_run(self, api, runs, state, res_state, version):
        api.data(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, state, 1)))
        answer = api.data(CANCEL, {"input": {"flow_run_id": runs.flow_run_id}})
        assert answer["cancel_flow_run"]["state"] == res_state
        row = flow_run(api, runs.flow_run_id)
        assert (row["version"], row["state"]) == (version, res_state)


# ------------------------------------------------------------------ tests/api/test_states.py
class TestTaskRunStates:
    def test_set_task_run_state(self, api, runs):
        set_task_run_state(api, runs.task_run_id, Failed())
        row = task_run(api, runs.task_run_id)
        assert (row["version"], row["state"], row["serialized_state"]["type"]) == (2, "Failed", "Failed")

    @pytest.mark.parametrize("state", [Failed(), Success()], ids=["Failed", "Success"])
    def test_set_task_run_state_fails_with_wrong_task_run_id(self, api, state):
        assert "State update failed" in api.error(SET_TASK_RUN_STATES, task_states((str(uuid.uuid4()), state)))

    @pytest.mark.parametrize("state_class", [s for s in ALL_STATES if not s().is_running()],
                             ids=lambda s: s.__name__)
    def test_state_does_not_set_heartbeat_unless_running(self, api, runs, state_class):
        assert task_run(api, runs.task_run_id)["heartbeat"] is None
        set_task_run_state(api, runs.task_run_id, state_class())
        assert task_run(api, runs.task_run_id)["heartbeat"] is None

    def test_running_state_sets_heartbeat(self, api, runs):
        task_run_id = runs.task_run_id
        runs.running_flow_run_id
        assert task_run(api, task_run_id)["heartbeat"] is None
        before = pendulum.now("UTC")
        set_task_run_state(api, task_run_id, Running())
        assert when(task_run(api, task_run_id)["heartbeat"]) > before

    def test_trigger_failed_state_does_not_set_end_time(self, api, runs):
        set_task_run_state(api, runs.task_run_id, TriggerFailed())
        row = task_run(api, runs.task_run_id)
        assert not row["start_time"] and not row["end_time"]

    @pytest.mark.parametrize("flow_run_state", [Pending(), Running(), Failed(), Success()],
                             ids=["Pending", "Running", "Failed", "Success"])
    def test_running_states_can_not_be_set_if_flow_run_is_not_running(self, api, runs, flow_run_state):
        task_run_id = runs.task_run_id
        set_flow_run_state(api, runs.flow_run_id, flow_run_state)
        if flow_run_state.is_running():
            set_task_run_state(api, task_run_id, Running())
            assert task_run(api, task_run_id)["state"] == "Running"
        else:
            message = api.error(SET_TASK_RUN_STATES, task_states((task_run_id, Running())))
            assert "is not in a running state" in message
            assert task_run(api, task_run_id)["state"] != "Running"


class TestFlowRunStates:
    def test_set_flow_run_state(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Running())
        row = flow_run(api, runs.flow_run_id)
        assert (row["version"], row["state"], row["serialized_state"]["type"]) == (2, "Running", "Running")

    @pytest.mark.parametrize("state", [Running(), Success()], ids=["Running", "Success"])
    def test_set_flow_run_state_fails_with_wrong_flow_run_id(self, api, state):
        assert "State update failed" in api.error(SET_FLOW_RUN_STATES, flow_states((str(uuid.uuid4()), state)))

    def test_trigger_failed_state_does_not_set_end_time(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, TriggerFailed())
        row = flow_run(api, runs.flow_run_id)
        assert not row["start_time"] and not row["end_time"]

    @pytest.mark.parametrize("state_class", [s for s in ALL_STATES if not s().is_running() and not s().is_submitted()],
                             ids=lambda s: s.__name__)
    def test_state_does_not_set_heartbeat_unless_running_or_submitted(self, api, runs, state_class):
        assert flow_run(api, runs.flow_run_id)["heartbeat"] is None
        set_flow_run_state(api, runs.flow_run_id, state_class())
        assert flow_run(api, runs.flow_run_id)["heartbeat"] is None

    def test_state_submitted_lock_on_same_flow_run_id(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Submitted())
        message = api.error(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Submitted())))
        assert "State update failed: this run has already been submitted." in message

    @pytest.mark.parametrize("state", [Running(), Submitted()], ids=["Running", "Submitted"])
    def test_running_and_submitted_state_sets_heartbeat(self, api, runs, state):
        assert flow_run(api, runs.flow_run_id)["heartbeat"] is None
        before = pendulum.now("UTC")
        set_flow_run_state(api, runs.flow_run_id, state)
        assert when(flow_run(api, runs.flow_run_id)["heartbeat"]) > before

    def test_setting_flow_run_to_cancelled_state_sets_unfinished_task_runs_to_cancelled(self, api, runs):
        ids = [t["id"] for t in task_runs_of(api, runs.flow_run_id)]
        set_flow_run_state(api, runs.flow_run_id, Running())
        assert len(ids) >= 3, "the flow_run_id setup has changed"
        pending, running, rest = ids[0], ids[1], ids[2:]
        set_task_run_state(api, pending, Pending())
        set_task_run_state(api, running, Running())
        for task_run_id in rest:
            set_task_run_state(api, task_run_id, Success())
        set_flow_run_state(api, runs.flow_run_id, Cancelled())
        now = {t["id"]: t["state"] for t in task_runs_of(api, runs.flow_run_id)}
        assert now[pending] == "Cancelled" and now[running] == "Cancelled"
        assert all(now[i] == "Success" for i in rest)


class TestCancelFlowRun:
    def test_cancelling_bad_flow_run_id_errors(self, api):
        assert "Invalid flow run ID" in api.error(CANCEL, {"input": {"flow_run_id": str(uuid.uuid4())}})

    def test_cancelling_finished_flow_run_is_noop(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Success())
        assert api.data(CANCEL, {"input": {"flow_run_id": runs.flow_run_id}})["cancel_flow_run"]["state"] == "Success"
        assert flow_run(api, runs.flow_run_id)["state"] == "Success"

    def test_cancelling_running_flow_run_returns_cancelling(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Running())
        answer = api.data(CANCEL, {"input": {"flow_run_id": runs.flow_run_id}})
        assert answer["cancel_flow_run"]["state"] == "Cancelling"

    def test_cancelling_non_running_flow_run_returns_cancelled(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Submitted())
        assert flow_run(api, runs.flow_run_id)["state"] == "Submitted"
        answer = api.data(CANCEL, {"input": {"flow_run_id": runs.flow_run_id}})
        assert answer["cancel_flow_run"]["state"] == "Cancelled"


# ------------------------------------------------------------------ from Server's source (issue 8)
@pytest.mark.parametrize("late", [Running(), Failed(), Pending(), Scheduled(), Submitted()],
                         ids=lambda s: type(s).__name__)
def test_any_state_may_follow_a_finished_flow_run(api, runs, late):
    """Server's set_flow_run_state has no finished-run guard (the UI's "Mark as", a runner's late update)."""
    run_id = runs.flow_run_id_3
    set_flow_run_state(api, run_id, late)
    row = flow_run(api, run_id)
    assert (row["state"], row["version"]) == (type(late).__name__, 4)


def test_the_submitted_lock_holds_after_the_run_goes_back_to_scheduled(api, runs):
    """Server's Submitted guard is a 30 s lock per run id: going back to Scheduled does not release it."""
    set_flow_run_state(api, runs.flow_run_id, Submitted())
    set_flow_run_state(api, runs.flow_run_id, Scheduled())
    message = api.error(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Submitted())))
    assert message == "State update failed: this run has already been submitted."
    assert flow_run(api, runs.flow_run_id)["state"] == "Scheduled"


def test_a_running_run_never_submitted_may_become_submitted(api, runs):
    """No state rule: only the lock refuses Submitted, so a Running run that was never submitted accepts it."""
    set_flow_run_state(api, runs.flow_run_id_2, Submitted())
    assert flow_run(api, runs.flow_run_id_2)["state"] == "Submitted"


def test_the_submitted_lock_is_taken_even_when_the_batch_fails(api, runs):
    """Server takes the lock before it writes anything: a batch refused later still holds the lock."""
    bad = str(uuid.uuid4())
    api.error(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Submitted()), (bad, Running())))
    assert "already been submitted" in api.error(SET_FLOW_RUN_STATES, flow_states((runs.flow_run_id, Submitted())))


@pytest.mark.parametrize("state_class", ALL_STATES, ids=lambda s: s.__name__)
def test_end_time_only_for_the_states_servers_trigger_names(api, runs, state_class):
    """Server's trigger sets end_time for Success, Failed, Cached, TimedOut, Looped, Cancelled only, and
    start_time for Running only (not for Cancelling, Mapped, Skipped, TriggerFailed...)."""
    task_run_id = runs.task_run_id
    set_flow_run_state(api, runs.flow_run_id, state_class())
    if not state_class().is_running():  # a task run may be Running only in a Running flow run
        set_task_run_state(api, task_run_id, state_class())
    row = flow_run(api, runs.flow_run_id)
    ends = state_class.__name__ in ("Success", "Failed", "Cached", "TimedOut", "Looped", "Cancelled")
    assert bool(row["end_time"]) is ends
    assert bool(row["start_time"]) is (state_class.__name__ == "Running")
    if not state_class().is_running():
        assert bool(task_run(api, task_run_id)["end_time"]) is ends


def test_a_state_over_one_megabyte_is_refused_and_nothing_is_written(api, runs):
    """Server measures sys.getsizeof(json.dumps(state)) against 1 000 000 bytes before loading the state."""
    state = Success(message="x" * 1_000_000).serialize()
    message = api.error(SET_FLOW_RUN_STATES, {"input": {"states": [{"flow_run_id": runs.flow_run_id,
                                                                    "state": state}]}})
    assert message == "State payload is too large."
    assert flow_run(api, runs.flow_run_id)["state"] == "Scheduled"


def test_reference_data_maps_each_state_to_its_subclasses(api):
    """Server's state_hierarchy: {parent: [the parent and every subclass]}, e.g. Success -> Cached, Mapped..."""
    hierarchy = api.data("query { reference_data { state_hierarchy } }")["reference_data"]["state_hierarchy"]
    assert set(hierarchy["Success"]) == {"Success", "Cached", "Mapped", "Skipped"}
    assert set(hierarchy["Failed"]) == {"Failed", "TimedOut", "TriggerFailed", "ValidationFailed"}
    assert set(hierarchy["Running"]) == {"Running", "Cancelling"}
    assert hierarchy["Skipped"] == ["Skipped"]
    assert {Mapped.__name__, Skipped.__name__} <= set(hierarchy["Finished"])
