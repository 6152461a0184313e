"""Parity: task runs (get or create, info, heartbeats, names, mapped children) as Prefect Server 1.4.1
(release 2022.09.23) answers them.

Ports the task run half of PrefectHQ/server `tests/graphql/test_runs.py` (12 cases: TestGetOrCreateTaskRunInfo 2,
TestGetTaskRunInfo 2, TestGetOrCreateTaskRun 2, TestUpdateTaskRunHeartbeat 2, TestSetTaskRunName 1,
TestMappedChildren 3) and 20 of the 24 task run cases of `tests/api/test_runs.py` (TestGetOrCreateTaskRunInfo 3,
TestGetTaskRunInfo 14, TestSetTaskRunName 3), sent over HTTP. TestUpdateTaskRunHeartbeat.test_update_heartbeat
is the twin of the GraphQL case and is covered by it (its "no heartbeat before" check included).

Adapted: test_get_or_create_task_run_info_hits_db inserts a task run row (version 17) into the database; here
the row is made with get_or_create_task_run and a Success state. test_task_run_populates_cache_key deletes task
runs and rewrites the task's cache_key in the database; here the flow is registered with that cache_key and a
new map index makes the task run.
Left out of tests/api/test_runs.py (task run half), 3 cases: TestUpdateTaskRunHeartbeat
test_update_heartbeat_with_bad_id (the Python function raises; the GraphQL resolver answers success: true
without waiting, as the GraphQL case asserts); TestSetTaskRunName test_set_task_run_name_must_have_value[None]
and test_set_task_run_id_none (GraphQL's `String!` / `UUID!` refuse null before Server's code runs).
Two cases after the ports pin get_or_create_task_run_info's refusals, which Server's tests do not cover.
"""
from __future__ import annotations

import uuid

import pendulum
import prefect
import pytest
from prefect.engine.state import Failed, Retrying, Running, Success

from tests.parity.api import unique
from tests.parity.runs_setup import (create_flow, create_flow_run, get_or_create_task_run, rename,
                                     set_task_run_state, task_ids, task_run, task_runs_of, when)
from tests.parity.runs_setup import runs  # noqa: F401  (a fixture: pytest finds it by this name)


INFO = """mutation($input: get_or_create_task_run_info_input!) {
    get_or_create_task_run_info(input: $input) { id version state serialized_state } }"""
GET_INFO = "query($id: UUID!) { get_task_run_info(task_run_id: $id) { id serialized_state state version } }"
MAPPED = "query($id: UUID!) { mapped_children(task_run_id: $id) { min_start_time max_end_time state_counts } }"
GET_OR_CREATE = "mutation($input: get_or_create_task_run_input!) { get_or_create_task_run(input: $input) { id } }"


def find_task_run(api, flow_run_id, task_id, map_index):
    """The task run of (flow run, task, map index), or None."""
    rows = api.data("query($f: uuid!, $t: uuid!, $m: Int!) { task_run(where: {flow_run_id: {_eq: $f}, "
                    "task_id: {_eq: $t}, map_index: {_eq: $m}}) { id states { state task_run_id } } }",
                    {"f": flow_run_id, "t": task_id, "m": map_index})["task_run"]
    return rows[0] if rows else None


def state_count(api, flow_run_id):
    """How many task run states the task runs of a flow run have."""
    return api.data("query($id: uuid!) { task_run_state_aggregate(where: {task_run: {flow_run_id: {_eq: $id}}}) "
                    "{ aggregate { count } } }", {"id": flow_run_id})["task_run_state_aggregate"]["aggregate"]["count"]


def info(api, flow_run_id, task_id, map_index=None):
    return api.mutate("get_or_create_task_run_info", {"flow_run_id": flow_run_id, "task_id": task_id,
                                                      "map_index": map_index}, "id version state serialized_state")


# ------------------------------------------------------------------ tests/graphql/test_runs.py
class TestTaskRunInfoQueries:
    def test_get_existing_task_run_id(self, api, runs):
        task_run_id = runs.task_run_id
        row = task_run(api, task_run_id)
        answer = info(api, runs.flow_run_id, runs.task_id)
        assert answer == {k: row[k] for k in ("id", "version", "state", "serialized_state")}

    def test_get_new_task_run_id(self, api, runs):
        runs.task_run_id
        assert find_task_run(api, runs.flow_run_id, runs.task_id, 12) is None
        answer = info(api, runs.flow_run_id, runs.task_id, 12)
        assert find_task_run(api, runs.flow_run_id, runs.task_id, 12)["id"] == answer["id"]

    def test_get_task_run_info(self, api, runs):
        output = api.data(GET_INFO, {"id": runs.task_run_id})["get_task_run_info"]
        assert (output["id"], output["version"], output["serialized_state"]["type"], output["state"]) == (
            runs.task_run_id, 1, "Pending", "Pending")
        set_task_run_state(api, runs.task_run_id, Success("hi"))
        output = api.data(GET_INFO, {"id": runs.task_run_id})["get_task_run_info"]
        assert (output["version"], output["serialized_state"]["type"], output["state"]) == (2, "Success", "Success")
        assert output["serialized_state"]["message"] == "hi"

    def test_get_task_run_info_handles_bad_ids(self, api):
        answer = api.post(GET_INFO, {"id": str(uuid.uuid4())})
        assert answer["errors"][0]["message"] == "Invalid task run ID"
        assert answer["data"]["get_task_run_info"] is None


class TestGetOrCreateTaskRunMutation:
    def test_get_or_create_task_run(self, api, runs):
        task_run_id = runs.task_run_id
        count = len(task_runs_of(api, runs.flow_run_id))
        assert get_or_create_task_run(api, runs.flow_run_id, runs.task_id) == task_run_id
        assert len(task_runs_of(api, runs.flow_run_id)) == count

    def test_get_or_create_task_run_new_task_run(self, api, runs):
        task_run_id = runs.task_run_id
        count = len(task_runs_of(api, runs.flow_run_id))
        assert get_or_create_task_run(api, runs.flow_run_id, runs.task_id, 10) != task_run_id
        assert len(task_runs_of(api, runs.flow_run_id)) == count + 1


class TestTaskRunHeartbeatAndName:
    def test_update_task_run_heartbeat(self, api, runs):
        task_run_id = runs.task_run_id
        assert task_run(api, task_run_id)["heartbeat"] is None
        before = pendulum.now("utc")
        assert api.mutate("update_task_run_heartbeat", {"task_run_id": task_run_id}, "success")["success"]
        assert when(task_run(api, task_run_id)["heartbeat"]) > before

    def test_update_task_run_heartbeat_invalid_id_is_still_success(self, api):
        assert api.mutate("update_task_run_heartbeat", {"task_run_id": str(uuid.uuid4())}, "success")["success"] is True

    def test_set_task_run_name(self, api, runs):
        assert task_run(api, runs.task_run_id)["name"] != "hello"
        api.mutate("set_task_run_name", {"task_run_id": runs.task_run_id, "name": "hello"}, "success")
        assert task_run(api, runs.task_run_id)["name"] == "hello"


class TestMappedChildren:
    @pytest.fixture
    def mapped_children(self, api, runs):
        """Ten children (map index 0-9) of `task_id` in a Running flow run: 3 Success, 2 Failed, 1 Retrying,
        3 Running, 1 Pending."""
        flow_run_id = runs.running_flow_run_id
        children = [get_or_create_task_run(api, flow_run_id, runs.task_id, i) for i in range(10)]
        for index, state in [(0, Success), (1, Success), (2, Success), (3, Failed), (4, Failed), (5, Retrying),
                             (6, Running), (7, Running), (8, Running)]:
            set_task_run_state(api, children[index], state())
        return children

    def test_query_mapped_children(self, api, runs, mapped_children):
        answer = api.data(MAPPED, {"id": runs.task_run_id})["mapped_children"]
        assert answer["min_start_time"] is not None and answer["max_end_time"] is not None
        assert answer["state_counts"] == {"Success": 3, "Failed": 2, "Retrying": 1, "Running": 3, "Pending": 1}

    def test_query_mapped_children_with_non_mapped_parent_task_run_id(self, api, runs, mapped_children):
        answer = api.data(MAPPED, {"id": mapped_children[1]})["mapped_children"]
        assert answer == {"min_start_time": None, "max_end_time": None, "state_counts": {}}

    def test_query_mapped_children_with_invalid_task_run_id(self, api, runs, mapped_children):
        answer = api.data(MAPPED, {"id": str(uuid.uuid4())})["mapped_children"]
        assert answer == {"min_start_time": None, "max_end_time": None, "state_counts": {}}


# ------------------------------------------------------------------ tests/api/test_runs.py
class TestGetOrCreateTaskRunInfo:
    def test_get_or_create_task_run_info_hits_db(self, api, runs):
        existing = get_or_create_task_run(api, runs.flow_run_id, runs.task_id, 12)
        set_task_run_state(api, existing, Success(message="hi"))
        row = task_run(api, existing)
        answer = info(api, runs.flow_run_id, runs.task_id, 12)
        assert answer == {k: row[k] for k in ("id", "version", "state", "serialized_state")}
        assert (answer["version"], answer["state"], answer["serialized_state"]["message"]) == (2, "Success", "hi")

    def test_get_or_create_task_run_info_inserts_into_db(self, api, runs):
        assert find_task_run(api, runs.flow_run_id, runs.task_id, 12) is None
        answer = info(api, runs.flow_run_id, runs.task_id, 12)
        found = find_task_run(api, runs.flow_run_id, runs.task_id, 12)
        assert found["id"] == answer["id"]
        assert (found["states"][0]["task_run_id"], found["states"][0]["state"]) == (answer["id"], answer["state"])

    def test_properly_inserts_run_and_state(self, api, runs):
        answer = info(api, runs.flow_run_id, runs.task_id, 12)
        found = find_task_run(api, runs.flow_run_id, runs.task_id, 12)
        assert found["id"] == answer["id"]
        assert found["states"] == [{"state": "Pending", "task_run_id": answer["id"]}]


class TestGetTaskRunInfo:
    def test_task_run(self, api, runs):
        assert task_run(api, get_or_create_task_run(api, runs.flow_run_id, runs.task_id))

    def test_task_run_populates_cache_key(self, api, project_id):
        flow_id = create_flow(api, project_id, prefect.Flow(unique("cached"), tasks=[prefect.Task("t",
                                                                                                cache_key="test")]))
        flow_run_id = create_flow_run(api, flow_id=flow_id)
        task_run_id = get_or_create_task_run(api, flow_run_id, task_ids(api, flow_id)["t"], 3)
        assert task_run(api, task_run_id)["cache_key"] == "test"

    def test_task_run_does_not_populate_cache_key_unless_specified(self, api, runs):
        assert task_run(api, get_or_create_task_run(api, runs.flow_run_id, runs.task_id))["cache_key"] is None

    def test_task_run_starts_in_pending_state(self, api, runs):
        ids = [get_or_create_task_run(api, runs.flow_run_id, runs.task_id, m) for m in (None, 12)]
        rows = [task_run(api, i) for i in ids]
        assert all(r["state"] == "Pending" and r["serialized_state"]["type"] == "Pending" for r in rows)

    def test_task_run_pulls_current_state(self, api, runs):
        task_run_id = get_or_create_task_run(api, runs.flow_run_id, runs.task_id)
        set_task_run_state(api, task_run_id, Success())
        row = task_run(api, task_run_id)
        assert (row["state"], row["serialized_state"]["type"]) == ("Success", "Success")

    def test_task_run_with_map_index_none_stored_as_negative_one(self, api, runs):
        assert task_run(api, get_or_create_task_run(api, runs.flow_run_id, runs.task_id))["map_index"] == -1

    def test_task_run_with_map_index(self, api, runs):
        assert task_run(api, get_or_create_task_run(api, runs.flow_run_id, runs.task_id, 10))

    def test_task_run_fails_with_fake_flow_run_id(self, api, runs):
        variables = {"input": {"flow_run_id": str(uuid.uuid4()), "task_id": runs.task_id}}
        assert "Invalid ID" in api.error(GET_OR_CREATE, variables)

    def test_task_run_fails_with_fake_task_id(self, api, runs):
        variables = {"input": {"flow_run_id": runs.flow_run_id, "task_id": str(uuid.uuid4())}}
        assert "Invalid ID" in api.error(GET_OR_CREATE, variables)

    def test_task_run_retrieves_existing_task_run(self, api, runs):
        assert get_or_create_task_run(api, runs.flow_run_id, runs.task_id) == runs.task_run_id

    def test_task_run_creates_new_task_run_for_map_index(self, api, runs):
        existing = {t["id"] for t in task_runs_of(api, runs.flow_run_id)}
        new_id = get_or_create_task_run(api, runs.flow_run_id, runs.task_id, 1)
        assert new_id not in existing
        assert len(task_runs_of(api, runs.flow_run_id)) == len(existing) + 1

    def test_task_run_creates_new_task_run_for_map_index_on_first_call_only(self, api, runs):
        existing = {t["id"] for t in task_runs_of(api, runs.flow_run_id)}
        first, second = (get_or_create_task_run(api, runs.flow_run_id, runs.task_id, 1) for _ in range(2))
        assert first not in existing and second == first

    def test_task_run_inserts_state_if_tr_doesnt_exist(self, api, runs):
        before = state_count(api, runs.flow_run_id)
        for map_index in (1, 1, 2):
            get_or_create_task_run(api, runs.flow_run_id, runs.task_id, map_index)
        assert state_count(api, runs.flow_run_id) == before + 2

    def test_task_run_doesnt_insert_state_if_tr_already_exists(self, api, runs):
        runs.task_run_id
        before = state_count(api, runs.flow_run_id)
        for _ in range(3):
            get_or_create_task_run(api, runs.flow_run_id, runs.task_id)
        assert state_count(api, runs.flow_run_id) == before


class TestSetTaskRunName:
    def test_set_task_run_name(self, api, runs):
        assert rename(api, "task", runs.task_run_id, "hello")["data"]["set_task_run_name"]["success"] is True
        assert task_run(api, runs.task_run_id)["name"] == "hello"

    def test_set_task_run_name_must_have_value(self, api, runs):
        assert "Invalid name" in rename(api, "task", runs.task_run_id, "")["errors"][0]["message"]

    def test_set_task_run_id_invalid(self, api):
        assert rename(api, "task", str(uuid.uuid4()), "hello")["data"]["set_task_run_name"]["success"] is False


# ------------------------------------------------------------------ from Server's source (issue 8)
def test_get_or_create_task_run_info_with_an_unknown_task_says_invalid_task_id(api, runs):
    """Server's get_or_create_task_run_info: "Invalid task ID" when the task run must be made for no task."""
    message = api.error(INFO, {"input": {"flow_run_id": runs.flow_run_id, "task_id": str(uuid.uuid4())}})
    assert message.startswith("Invalid task ID")
    assert find_task_run(api, runs.flow_run_id, runs.task_id, 5) is None


def test_get_or_create_task_run_info_with_an_unknown_flow_run_makes_nothing(api, runs):
    """Server refuses the insert (a foreign key); the emulator names the missing flow run."""
    flow_run_id = str(uuid.uuid4())
    message = api.error(INFO, {"input": {"flow_run_id": flow_run_id, "task_id": runs.task_id}})
    assert message == f"Invalid flow run ID: flow run {flow_run_id} does not exist."
    assert task_runs_of(api, flow_run_id) == []
