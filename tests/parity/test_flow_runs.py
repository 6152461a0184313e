"""Parity: flow runs (create, names, labels, heartbeats, delete, the agents' queue) as Prefect Server 1.4.1
(release 2022.09.23) answers them.

Ports the flow run half of PrefectHQ/server `tests/graphql/test_runs.py` (21 cases: TestCreateFlowRun 7,
TestCreateRunIdempotencyKey 1, TestGetRunsInQueue 6, TestSetFlowRunLabels 2, TestSetFlowRunName 1,
TestUpdateFlowRunHeartbeat 2, TestDeleteFlowRun 2) and 66 of the 78 flow run cases of `tests/api/test_runs.py`
(TestCreateRun 40, TestCreateRunIdempotencyKey 3, TestGetRunsInQueue 16, TestSetFlowRunLabels 2,
TestSetFlowRunName 3, TestDeleteFlowRuns 2), sent over HTTP. TestUpdateFlowRunHeartbeat.test_update_heartbeat
is the twin of the GraphQL case and is covered by it.

Adapted: test_create_flow_run_with_version_group_id archives 14 of 15 versions by hand; over GraphQL,
create_flow archives the older versions itself. Server's "delete all other flow runs" becomes a tenant of the
test's own; the two queue-cap cases and the two label-filter cases run as parametrized pairs.
Left out of tests/api/test_runs.py (flow run half), 11 cases:
- test_new_run_does_not_have_scheduled_state_if_defer_set_scheduled_state_is_true: `defer_set_scheduled_state`
  is a Python argument only; create_flow_run's GraphQL input has no such field.
- test_create_flow_run_with_version_group_id_uses_latest_version: it needs two unarchived versions in one
  group; over GraphQL, create_flow archives the older versions and no mutation unarchives a flow.
- TestGetRunsInQueue test_get_flow_run_in_queue_works_if_environment_labels_are_none / _are_missing: they
  rewrite `flow.environment` in the database; no public mutation can.
- TestUpdateFlowRunHeartbeat test_update_heartbeat_with_bad_id: the Python function raises, but the GraphQL
  resolver answers `success: true` without waiting (the GraphQL case asserts that).
- test_delete_flow_run_fails_if_none ("" and None), TestSetFlowRunLabels test_set_flow_run_labels_must_have_value
  and test_set_flow_run_id_none, TestSetFlowRunName test_set_flow_run_name_must_have_value[None] and
  test_set_flow_run_id_none (6 cases): GraphQL's `UUID!` / `String!` / `[String!]!` types refuse null and ""
  ids before Server's code runs.
"""
from __future__ import annotations

import uuid

import pendulum
import prefect
import pytest
from prefect.engine.state import Finished, Paused, Running, Scheduled
from prefect.run_configs import UniversalRun

from tests.parity.api import unique
from tests.parity.runs_setup import (create_flow, create_flow_run, flow_run, rename, set_flow_run_state,
                                     set_task_run_state, task_runs_of, when)
from tests.parity.runs_setup import runs  # noqa: F401  (a fixture: pytest finds it by this name)


CREATE = "mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }"
QUEUE_LIMIT = 25  # Server's config.queued_runs_returned_limit


def simple_flow_id(api, project_id, name="test", **kwargs):
    """Server's `simple_flow_id`: an empty flow named test (here one name per call, the tests share a server)."""
    return create_flow(api, project_id, prefect.Flow(name=unique(name), **kwargs))


def dated_run(api, project_id):
    """A run of a new simple flow scheduled for 2020-01-01 (Server's dt); returns (dt, run id)."""
    dt = pendulum.datetime(2020, 1, 1)
    return dt, create_flow_run(api, flow_id=simple_flow_id(api, project_id), scheduled_start_time=dt.isoformat())


def queue(api, tenant_id, **input):
    """get_runs_in_queue of a tenant: the flow run ids an agent would get."""
    return api.mutate("get_runs_in_queue", dict(input, tenant_id=tenant_id), "flow_run_ids")["flow_run_ids"]


def yesterday():
    return Scheduled(start_time=pendulum.now("utc").subtract(days=1))


def flow_of(api, flow_id, fields="version_group_id flow_group_id run_config"):
    return api.data(f'query {{ flow_by_pk(id: "{flow_id}") {{ {fields} }} }}')["flow_by_pk"]


def archive(api, flow_id):
    assert api.mutate("archive_flow", {"flow_id": flow_id}, "success")["success"]


# ------------------------------------------------------------------ tests/graphql/test_runs.py
class TestCreateFlowRunMutation:
    def test_create_flow_run(self, api, runs):
        dt = pendulum.now("utc").add(hours=1)
        run_id = create_flow_run(api, flow_id=runs.flow_id, parameters={"x": 1}, context={"a": 2},
                                 scheduled_start_time=dt.isoformat())
        row = flow_run(api, run_id)
        assert (row["flow_id"], row["labels"], row["parameters"], row["auto_scheduled"], row["context"]) == (
            runs.flow_id, [], {"x": 1}, False, {"a": 2})
        assert when(row["scheduled_start_time"]) == dt

    def test_create_flow_run_with_labels(self, api, runs):
        row = flow_run(api, create_flow_run(api, flow_id=runs.flow_id, labels=["a", "b", "c"]))
        assert (row["flow_id"], row["labels"]) == (runs.flow_id, ["a", "b", "c"])

    def test_create_flow_run_with_run_config(self, api, runs):
        run_config = {"type": "UniversalRun", "labels": []}
        row = flow_run(api, create_flow_run(api, flow_id=runs.flow_id, run_config=run_config))
        assert (row["flow_id"], row["run_config"]) == (runs.flow_id, run_config)

    def test_create_flow_run_with_version_group_id(self, api, runs):
        dt = pendulum.now("utc").add(hours=1)
        group = flow_of(api, runs.flow_id)["version_group_id"]
        row = flow_run(api, create_flow_run(api, flow_id=None, version_group_id=group, parameters={"x": 1},
                                            context={"a": 2}, scheduled_start_time=dt.isoformat()))
        assert (row["flow_id"], row["parameters"], row["auto_scheduled"], row["context"]) == (
            runs.flow_id, {"x": 1}, False, {"a": 2})
        assert when(row["scheduled_start_time"]) == dt

    def test_create_flow_run_with_run_name(self, api, runs):
        row = flow_run(api, create_flow_run(api, flow_id=runs.flow_id, parameters={"x": 1},
                                            flow_run_name="named flow run"))
        assert row["name"] == "named flow run"

    def test_create_flow_run_fails_for_archived_flow(self, api, runs):
        archive(api, runs.flow_id)
        assert "archived" in api.error(CREATE, {"input": {"flow_id": runs.flow_id, "parameters": {"x": 1}}})

    def test_create_flow_run_without_parameters_raises_error(self, api, project_id):
        flow = prefect.Flow(name=unique("test"), tasks=[prefect.Parameter("x")])
        flow_id = api.mutate("create_flow", {"project_id": project_id, "serialized_flow": flow.serialize(build=False)})
        answer = api.post(CREATE, {"input": {"flow_id": flow_id["id"]}})
        assert answer["data"]["create_flow_run"] is None
        assert "Required parameters" in answer["errors"][0]["message"]

    def test_create_idempotent_run(self, api, runs):
        dt = pendulum.now("utc").add(hours=1)
        first = create_flow_run(api, flow_id=runs.flow_id, parameters={"x": 1}, context={"a": 2},
                                scheduled_start_time=dt.isoformat(), idempotency_key="xyz")
        assert create_flow_run(api, flow_id=runs.flow_id, idempotency_key="xyz") == first


class TestGetRunsInQueueMutation:
    def test_get_runs_in_queue(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, yesterday())
        assert runs.flow_run_id in queue(api, runs.tenant_id)

    @pytest.mark.parametrize("labels,via_task_run", [(["foo", "bar"], False), (["foo", "bar", "extra"], False),
                                                     (["foo", "bar"], True)],
                             ids=["uses_labels", "uses_labels_and_filters_for_subset", "uses_labels_for_task_runs"])
    def test_get_runs_in_queue_labels(self, api, runs, labels, via_task_run):
        """Server's test_get_runs_in_queue_uses_labels, ..._and_filters_for_subset and ..._for_task_runs."""
        runs.flow_run_id
        if via_task_run:
            set_task_run_state(api, runs.labeled_task_run_id, yesterday())
        else:
            set_flow_run_state(api, runs.labeled_flow_run_id, yesterday())
        found = queue(api, runs.tenant_id, labels=labels)
        assert runs.labeled_flow_run_id in found and runs.flow_run_id not in found

    def test_get_runs_in_queue_before_certain_time(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, yesterday())
        before = pendulum.now("utc").subtract(days=2).isoformat()
        assert runs.flow_run_id not in queue(api, runs.tenant_id, before=before)

    def test_multiple_runs_in_queue_before_certain_time(self, api, runs):
        now = pendulum.now("utc")
        for i in range(10):
            create_flow_run(api, flow_id=runs.flow_id, scheduled_start_time=now.add(minutes=i).isoformat())
        for i in range(10):
            before = pendulum.now("utc").add(minutes=i).isoformat()
            assert len(queue(api, runs.tenant_id, before=before)) == i + 1


class TestFlowRunLabelsAndNameMutations:
    def test_set_flow_run_labels(self, api, runs):
        assert flow_run(api, runs.flow_run_id)["labels"] == []
        api.mutate("set_flow_run_labels", {"flow_run_id": runs.flow_run_id, "labels": ["big", "boo"]}, "success")
        assert flow_run(api, runs.flow_run_id)["labels"] == ["big", "boo"]

    def test_set_flow_run_labels_to_empty(self, api, runs):
        assert flow_run(api, runs.labeled_flow_run_id)["labels"]
        api.mutate("set_flow_run_labels", {"flow_run_id": runs.labeled_flow_run_id, "labels": []}, "success")
        assert flow_run(api, runs.labeled_flow_run_id)["labels"] == []

    def test_set_flow_run_name(self, api, runs):
        assert flow_run(api, runs.flow_run_id)["name"] != "hello"
        api.mutate("set_flow_run_name", {"flow_run_id": runs.flow_run_id, "name": "hello"}, "success")
        assert flow_run(api, runs.flow_run_id)["name"] == "hello"


class TestFlowRunHeartbeatAndDeleteMutations:
    def test_update_flow_run_heartbeat(self, api, runs):
        before = pendulum.now("utc")
        assert api.mutate("update_flow_run_heartbeat", {"flow_run_id": runs.flow_run_id}, "success")["success"]
        assert when(flow_run(api, runs.flow_run_id)["heartbeat"]) > before

    def test_update_flow_run_heartbeat_invalid_id_returns_success(self, api):
        answer = api.mutate("update_flow_run_heartbeat", {"flow_run_id": str(uuid.uuid4())}, "success")
        assert answer["success"] is True

    def test_delete_flow_run(self, api, runs):
        assert api.mutate("delete_flow_run", {"flow_run_id": runs.flow_run_id}, "success")["success"] is True
        assert flow_run(api, runs.flow_run_id) is None

    def test_delete_flow_run_bad_id(self, api):
        assert api.mutate("delete_flow_run", {"flow_run_id": str(uuid.uuid4())}, "success")["success"] is False


# ------------------------------------------------------------------ tests/api/test_runs.py
class TestCreateRun:
    def test_create_flow_run(self, api, project_id):
        assert flow_run(api, create_flow_run(api, flow_id=simple_flow_id(api, project_id)))

    def test_create_flow_run_accepts_labels(self, api, project_id):
        run_id = create_flow_run(api, flow_id=simple_flow_id(api, project_id), labels=["one", "two"])
        assert flow_run(api, run_id)["labels"] == ["one", "two"]

    def test_create_flow_run_respects_flow_group_labels(self, api, runs):
        group = flow_of(api, runs.labeled_flow_id)["flow_group_id"]
        api.mutate("set_flow_group_labels", {"flow_group_id": group, "labels": ["meep", "morp"]}, "success")
        assert flow_run(api, create_flow_run(api, flow_id=runs.labeled_flow_id))["labels"] == ["meep", "morp"]

    def test_create_flow_run_respects_flow_labels(self, api, runs):
        flow_labels = flow_of(api, runs.labeled_flow_id)["run_config"]["labels"]
        assert flow_run(api, create_flow_run(api, flow_id=runs.labeled_flow_id))["labels"] == sorted(flow_labels)

    def test_create_flow_run_respects_empty_flow_group_labels(self, api, runs):
        group = flow_of(api, runs.labeled_flow_id)["flow_group_id"]
        api.mutate("set_flow_group_labels", {"flow_group_id": group, "labels": []}, "success")
        assert flow_run(api, create_flow_run(api, flow_id=runs.labeled_flow_id))["labels"] == []

    @pytest.mark.parametrize("set_run_config", [False, True])
    @pytest.mark.parametrize("set_group_run_config", [False, True])
    @pytest.mark.parametrize("set_labels", [False, True])
    @pytest.mark.parametrize("set_group_labels", [False, True])
    def test_create_flow_run_run_config_and_labels(self, api, project_id, set_run_config, set_group_run_config,
                                                   set_labels, set_group_labels):
        """Precedence: run_config from the run, the group, the flow; labels from the run, the run's run_config,
        the group, the group's run_config, the flow's run_config."""
        labels = ["from-flow"]
        flow_id = simple_flow_id(api, project_id, run_config=UniversalRun(labels=labels))
        flow = flow_of(api, flow_id)
        run_config = flow["run_config"]
        run_input = {}
        if set_group_run_config:
            labels = ["from-group-run-config"]
            run_config = UniversalRun(labels=labels).serialize()
            api.mutate("set_flow_group_run_config", {"flow_group_id": flow["flow_group_id"],
                                                     "run_config": run_config}, "success")
        if set_group_labels:
            labels = ["from-group"]
            api.mutate("set_flow_group_labels", {"flow_group_id": flow["flow_group_id"], "labels": labels}, "success")
        if set_run_config:
            labels = ["from-run-config"]
            run_input["run_config"] = run_config = UniversalRun(labels=labels).serialize()
        if set_labels:
            run_input["labels"] = labels = ["from-run"]
        row = flow_run(api, create_flow_run(api, flow_id=flow_id, **run_input))
        assert (row["labels"], row["run_config"]) == (labels, run_config)

    def _versions(self, api, project_id, count):
        group = unique("test-group")
        flows = [create_flow(api, project_id, prefect.Flow(name="test"), version_group_id=group) for _ in range(count)]
        return group, flows

    def test_create_flow_run_with_version_group_id(self, api, project_id):
        """Server archives 14 of 15 versions by hand; over GraphQL, create_flow archives the older versions
        itself, so the one unarchived version is the newest."""
        group, flow_ids = self._versions(api, project_id, 15)
        live = api.data("query($ids: [uuid!]) { flow(where: {id: {_in: $ids}, archived: {_eq: false}}) { id } }",
                        {"ids": flow_ids})["flow"]
        assert live == [{"id": flow_ids[-1]}]
        assert flow_run(api, create_flow_run(api, version_group_id=group))["flow_id"] == flow_ids[-1]

    def test_create_flow_run_fails_if_neither_flow_nor_version_are_provided(self, api, project_id):
        archive(api, simple_flow_id(api, project_id))
        message = api.error(CREATE, {"input": {"flow_id": None}})
        assert "flow_id" in message or "flow id" in message
        assert "version_group_id" in message or "version group" in message

    def test_create_flow_run_fails_if_flow_is_archived(self, api, project_id):
        flow_id = simple_flow_id(api, project_id)
        archive(api, flow_id)
        assert "archived" in api.error(CREATE, {"input": {"flow_id": flow_id}})

    def test_create_flow_run_fails_if_all_versions_are_archived(self, api, project_id):
        group, (flow_id,) = self._versions(api, project_id, 1)
        archive(api, flow_id)
        assert "no unarchived flows" in api.error(CREATE, {"input": {"version_group_id": group}})

    def test_create_flow_run_creates_name(self, api, project_id):
        flow_id = simple_flow_id(api, project_id)
        names = [flow_run(api, create_flow_run(api, flow_id=flow_id))["name"] for _ in range(3)]
        assert all(isinstance(n, str) and len(n) > 3 for n in names)
        assert len(set(names)) == 3

    def test_create_flow_run_with_flow_run_name_creates_run_name(self, api, project_id):
        flow_id = simple_flow_id(api, project_id)
        names = {flow_run(api, create_flow_run(api, flow_id=flow_id, flow_run_name=f"named flow run {i}"))["name"]
                 for i in (1, 2, 3)}
        assert names == {"named flow run 1", "named flow run 2", "named flow run 3"}

    def test_create_run_with_missing_parameters_raises_error(self, api, project_id):
        flow_id = simple_flow_id(api, project_id, tasks=[prefect.Parameter("x")])
        assert "Required parameters were not supplied" in api.error(CREATE, {"input": {"flow_id": flow_id}})

    def test_create_run_with_parameters(self, api, runs):
        assert flow_run(api, create_flow_run(api, flow_id=runs.flow_id, parameters={"x": 1}))["parameters"] == {"x": 1}

    def test_create_run_uses_default_flow_group_parameters(self, api, project_id):
        flow_id = simple_flow_id(api, project_id, tasks=[prefect.Parameter("x", default=1)])
        api.mutate("set_flow_group_default_parameters", {"flow_group_id": flow_of(api, flow_id)["flow_group_id"],
                                                         "parameters": {"x": 2}}, "success")
        assert flow_run(api, create_flow_run(api, flow_id=flow_id))["parameters"] == {"x": 2}

    def test_create_run_uses_default_flow_parameters(self, api, project_id):
        flow_id = simple_flow_id(api, project_id, tasks=[prefect.Parameter("x", default=1)])
        assert flow_run(api, create_flow_run(api, flow_id=flow_id))["parameters"] == {"x": 1}

    def test_create_run_passes_start_time_to_flow_run_record(self, api, project_id):
        dt, run_id = dated_run(api, project_id)
        assert when(flow_run(api, run_id)["scheduled_start_time"]) == dt

    def test_create_run_defaults_auto_scheduled_to_false(self, api, project_id):
        dt, run_id = dated_run(api, project_id)
        row = flow_run(api, run_id)
        assert when(row["scheduled_start_time"]) == dt and not row["auto_scheduled"]

    def test_new_run_has_scheduled_state(self, api, project_id):
        before = pendulum.now("utc")
        row = flow_run(api, create_flow_run(api, flow_id=simple_flow_id(api, project_id)))
        assert (row["state"], row["state_message"]) == ("Scheduled", "Flow run scheduled.")
        assert when(row["state_start_time"]) > before

    def test_new_run_has_correct_state_start_time(self, api, project_id):
        dt, run_id = dated_run(api, project_id)
        assert when(flow_run(api, run_id)["state_start_time"]) == dt

    def test_new_run_state_is_in_history(self, api, project_id):
        dt, run_id = dated_run(api, project_id)
        states = api.data("query($id: uuid!) { flow_run_state(where: {flow_run_id: {_eq: $id}}, "
                          "order_by: {timestamp: asc}) { state start_time message } }", {"id": run_id})
        states = states["flow_run_state"]
        assert len(states) == 1
        assert (states[0]["state"], when(states[0]["start_time"]), states[0]["message"]) == (
            "Scheduled", dt, "Flow run scheduled.")

    def test_create_flow_run_also_creates_task_runs(self, api, project_id):
        flow_id = simple_flow_id(api, project_id, tasks=[prefect.Task(), prefect.Task(), prefect.Task()])
        assert len(task_runs_of(api, create_flow_run(api, flow_id=flow_id))) == 3

    def test_create_flow_run_also_creates_task_runs_with_cache_keys(self, api, project_id):
        tasks = [prefect.Task(cache_key="test-key"), prefect.Task(), prefect.Task(cache_key="wat")]
        flow_id = simple_flow_id(api, project_id, tasks=tasks)
        found = task_runs_of(api, create_flow_run(api, flow_id=flow_id), "cache_key")
        assert {t["cache_key"] for t in found} == {"test-key", "wat", None}

    def test_create_run_creates_context(self, api, project_id):
        assert flow_run(api, create_flow_run(api, flow_id=simple_flow_id(api, project_id)))["context"] == {}

    def test_create_run_with_context(self, api, project_id):
        run_id = create_flow_run(api, flow_id=simple_flow_id(api, project_id), context={"a": 1, "b": 2})
        assert flow_run(api, run_id)["context"] == {"a": 1, "b": 2}


class TestCreateRunIdempotencyKey:
    def test_create_idempotent_flow_run_with_key(self, api, project_id):
        flow_id = simple_flow_id(api, project_id)
        first, second, third = (create_flow_run(api, flow_id=flow_id, idempotency_key=k) for k in ("abc", "abc", "xyz"))
        assert first == second and first != third

    def test_idempotency_key_is_scoped_to_flow_id(self, api, project_id):
        one, other = simple_flow_id(api, project_id), simple_flow_id(api, project_id)
        assert create_flow_run(api, flow_id=one, idempotency_key="abc") != create_flow_run(
            api, flow_id=other, idempotency_key="abc")

    def test_idempotency_key_is_scoped_to_version_group_id(self, api, project_id):
        groups = [unique("test-group-1"), unique("test-group-2")]
        for group in groups:
            for _ in range(3):
                create_flow(api, project_id, prefect.Flow(name="test"), version_group_id=group)
        first, second, third = (create_flow_run(api, version_group_id=g, idempotency_key="abc")
                                for g in (groups[0], groups[0], groups[1]))
        assert first == second and first != third


class TestGetRunsInQueue:
    def test_get_flow_run_in_queue(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, yesterday())
        assert runs.flow_run_id in queue(api, runs.tenant_id)

    def test_get_flow_run_in_queue_uses_labels(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, yesterday())
        set_flow_run_state(api, runs.labeled_flow_run_id, yesterday())
        found = queue(api, runs.tenant_id, labels=["foo", "bar"])
        assert runs.labeled_flow_run_id in found and runs.flow_run_id not in found

    def test_get_flow_run_in_queue_uses_run_labels(self, api, runs):
        runs.labeled_flow_run_id
        run_id = create_flow_run(api, flow_id=runs.flow_id, labels=["dev", "staging"])
        found = queue(api, runs.tenant_id, labels=["dev", "staging"])
        assert run_id in found and runs.labeled_flow_run_id not in found

    @pytest.mark.parametrize("on_task_runs", [False, True], ids=["flow_runs", "task_runs"])
    def test_get_flow_run_in_queue_filters_labels_correctly(self, api, runs, on_task_runs):
        """Server's test_get_flow_run_in_queue_filters_labels_correctly and ..._on_task_runs_correctly."""
        if on_task_runs:
            set_task_run_state(api, runs.labeled_task_run_id, yesterday())
            set_task_run_state(api, runs.task_run_id, yesterday())
        else:
            set_flow_run_state(api, runs.flow_run_id, yesterday())
            set_flow_run_state(api, runs.labeled_flow_run_id, yesterday())
        labelled, plain = runs.labeled_flow_run_id, runs.flow_run_id
        superset = queue(api, runs.tenant_id, labels=["foo", "bar", "chris"])
        assert labelled in superset and plain not in superset
        for labels in (["dev"], ["foo", "staging"]):
            found = queue(api, runs.tenant_id, labels=labels)
            assert labelled not in found and plain not in found

    def test_get_flow_run_in_queue_uses_labels_on_task_runs(self, api, runs):
        set_task_run_state(api, runs.labeled_task_run_id, yesterday())
        set_task_run_state(api, runs.task_run_id, yesterday())
        found = queue(api, runs.tenant_id, labels=["foo", "bar"])
        assert runs.labeled_flow_run_id in found and runs.flow_run_id not in found

    def test_get_flow_run_in_queue_before_certain_time(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, yesterday())
        assert runs.flow_run_id in queue(api, runs.tenant_id)
        before = pendulum.now("utc").subtract(days=2).isoformat()
        assert runs.flow_run_id not in queue(api, runs.tenant_id, before=before)

    def test_get_multiple_flow_run_in_queue_before_certain_time(self, api, runs):
        now = pendulum.now("utc")
        for i in range(10):
            create_flow_run(api, flow_id=runs.flow_id, parameters={"x": 1},
                            scheduled_start_time=now.add(minutes=i).isoformat())
        assert len(queue(api, runs.tenant_id, before=now.add(minutes=4).isoformat())) == 5

    @pytest.mark.parametrize("case", ["matches_concurrency", "number_queued_runs_returned_is_capped_by_config_value"])
    def test_queue_is_capped(self, api, runs, case):
        """Server's test_get_flow_run_in_queue_matches_concurrency and
        test_number_queued_runs_returned_is_capped_by_config_value (the same check twice)."""
        for _ in range(QUEUE_LIMIT * 2):
            create_flow_run(api, flow_id=runs.flow_id, parameters={"x": 1})
        assert len(queue(api, runs.tenant_id)) == QUEUE_LIMIT

    def test_getting_a_flow_run_from_queue_doesnt_dequeue_it(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, yesterday())
        for _ in range(3):
            assert runs.flow_run_id in queue(api, runs.tenant_id)

    def test_future_flow_runs_are_not_retrieved(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Scheduled(start_time=pendulum.now("utc").add(days=1)))
        assert queue(api, runs.tenant_id) == []

    def test_flow_run_is_dequeued_when_state_changes(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Scheduled())
        assert runs.flow_run_id in queue(api, runs.tenant_id)
        set_flow_run_state(api, runs.flow_run_id, Finished())
        assert runs.flow_run_id not in queue(api, runs.tenant_id)

    def test_task_run_is_dequeued_when_state_changes(self, api, runs):
        task_run_id = runs.task_run_id
        runs.running_flow_run_id
        set_task_run_state(api, task_run_id, Scheduled())
        assert runs.flow_run_id in queue(api, runs.tenant_id)
        set_task_run_state(api, task_run_id, Finished())
        assert runs.flow_run_id not in queue(api, runs.tenant_id)

    def test_get_runs_in_queue_ignores_flow_runs_with_start_time_none(self, api, runs):
        set_flow_run_state(api, runs.flow_run_id, Paused())
        assert runs.flow_run_id not in queue(api, runs.tenant_id)

    def test_get_runs_in_queue_ignores_task_runs_with_start_time_none(self, api, runs):
        task_run_id = runs.task_run_id
        set_flow_run_state(api, runs.flow_run_id, Running())
        set_task_run_state(api, task_run_id, Paused())
        assert runs.flow_run_id not in queue(api, runs.tenant_id)


class TestSetFlowRunLabelsAndName:
    def test_set_flow_run_labels(self, api, runs):
        api.mutate("set_flow_run_labels", {"flow_run_id": runs.flow_run_id, "labels": ["a", "b"]}, "success")
        assert flow_run(api, runs.flow_run_id)["labels"] == ["a", "b"]

    def test_set_flow_run_labels_id_invalid(self, api):
        answer = api.mutate("set_flow_run_labels", {"flow_run_id": str(uuid.uuid4()), "labels": ["a"]}, "success")
        assert answer["success"] is False

    def test_set_flow_run_name(self, api, runs):
        assert rename(api, "flow", runs.flow_run_id, "hello")["data"]["set_flow_run_name"]["success"] is True
        assert flow_run(api, runs.flow_run_id)["name"] == "hello"

    def test_set_flow_run_name_must_have_value(self, api, runs):
        assert "Invalid name" in rename(api, "flow", runs.flow_run_id, "")["errors"][0]["message"]

    def test_set_flow_run_name_id_invalid(self, api):
        assert rename(api, "flow", str(uuid.uuid4()), "hello")["data"]["set_flow_run_name"]["success"] is False


class TestDeleteFlowRuns:
    def test_delete_flow_run(self, api, runs):
        task_run_ids = [t["id"] for t in task_runs_of(api, runs.flow_run_id)]
        assert api.mutate("delete_flow_run", {"flow_run_id": runs.flow_run_id}, "success")["success"] is True
        assert flow_run(api, runs.flow_run_id) is None
        left = api.data("query($ids: [uuid!]) { task_run(where: {id: {_in: $ids}}) { id } }", {"ids": task_run_ids})
        assert left["task_run"] == []

    def test_delete_flow_run_fails_with_invalid_id(self, api):
        assert api.mutate("delete_flow_run", {"flow_run_id": str(uuid.uuid4())}, "success")["success"] is False

