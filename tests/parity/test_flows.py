"""Flows: Prefect Server's tests/graphql/test_flows.py and tests/api/test_flows.py, sent over HTTP.

Ported: all 32 cases of tests/graphql/test_flows.py, and 95 of the 115 cases (99 definitions) of
tests/api/test_flows.py (each api call becomes the GraphQL mutation that runs it; database setup becomes
mutations; Server's schedule_flow_runs after create_flow is the create_flow that schedules). Adapted:
- graphql-core words its "non-null variable" error differently between versions, so the None-id cases
  assert the part both share (the variable path and "non-nullable").
- the heartbeat and lazarus cases cannot empty a flow group's settings first (that is a database write),
  so they assert the whole settings object that results from a fresh flow group's settings.
- cases that first delete a flow's runs in the database start from the fixture flow, which has none
  (it registers with its schedule off).
Left out (20): create_flow_cleans_up_if_task_or_edge_creation_fails (2: needs the database insert to
fail); the six TestUnarchiveFlow cases (unarchive_flow is not in Server's GraphQL schema); the None-id
cases of archive_flow, delete_flow, update_flow_project (2), set_schedule_active, set_schedule_inactive and
schedule_flow_runs (GraphQL refuses a null UUID! before Server's code runs; the graphql cases cover that);
and the TestScheduleRuns cases that call the internal schedule_flow_runs on an inactive, archived or unknown
flow, twice, or with max_runs=50 (5: no GraphQL operation runs the scheduler on demand).
Added for issue 8: a new version's automatic archive cancels the old version's ad-hoc runs; a project of
another tenant is refused; task.retry_delay is answered as Hasura's interval text.
"""
from __future__ import annotations

import datetime
import uuid

import pendulum
import prefect
import pytest
from prefect.serialization.schedule import ScheduleSchema
from prefect.serialization.task import ParameterSchema
from prefect.utilities.graphql import compress

from tests.parity.api import unique
from tests.parity.flows_setup import (count, delete_tenant_removes, flow_group_id, flow_id,  # noqa: F401
                                      flow_run_id, new_tenant, project_id_2, register, row, rows, runs_of,
                                      success)

UPDATE_PROJECT = "mutation($input: update_flow_project_input!) { update_flow_project(input: $input) { id } }"
CREATE_FLOW = "mutation($input: create_flow_input!) { create_flow(input: $input) { id } }"
SET_ACTIVE = "mutation($input: set_schedule_active_input!) { set_schedule_active(input: $input) { success } }"
SET_STATES = """mutation($input: set_flow_run_states_input!) {
  set_flow_run_states(input: $input) { states { id status } } }"""


@pytest.fixture
def flow() -> prefect.Flow:
    """Server's `flow` fixture of tests/api/test_flows.py: six tasks, a cache key, mapped and keyed edges."""
    flow = prefect.Flow(name="my flow")
    flow.add_edge(prefect.Task("t1", tags={"red", "blue"}),
                  prefect.Task("t2", cache_key="test-key", tags={"red", "green"}))
    flow.add_task(prefect.Parameter("x", default=1))
    mapped = prefect.Task("t3", tags={"mapped"})
    flow.add_edge(prefect.Parameter("y"), mapped, key="y", mapped=True)
    flow.add_edge(prefect.Task("t4"), mapped, key="not_mapped")
    return flow


def custom_trigger(upstream_states):  # a trigger only referenced by name in the serialized flow
    return True


def cron_flow(name: str = "test") -> prefect.Flow:
    return prefect.Flow(name=name, schedule=prefect.schedules.CronSchedule("0 0 * * *"))


def minutely_flow(*tasks: prefect.Task, start: datetime.datetime = None) -> prefect.Flow:
    return prefect.Flow(name="test", tasks=list(tasks), schedule=prefect.schedules.IntervalSchedule(
        start_date=start or pendulum.now("EST"), interval=datetime.timedelta(minutes=1)))


def task_count(api, flow_ids) -> int:
    return count(api, "task", {"flow_id": {"_in": list(flow_ids)}})


def edge_count(api, flow_id: str) -> int:
    return row(api, "flow", flow_id, "edges_aggregate { aggregate { count } }")["edges_aggregate"]["aggregate"]["count"]


def set_state(api, flow_run_id: str, state: prefect.engine.state.State) -> None:
    api.data(SET_STATES, {"input": {"states": [{"flow_run_id": flow_run_id, "state": state.serialize()}]}})


def start_times(api, flow_id: str) -> set:
    return {r["scheduled_start_time"] for r in rows(api, "flow_run", {"flow_id": {"_eq": flow_id}},
                                                      "scheduled_start_time")}


# ------------------------------------------------------------------------------ tests/graphql/test_flows.py
class TestCreateFlowGraphQL:
    def test_create_flow(self, api, project_id):
        fid = register(api, project_id, prefect.Flow(name="test", tasks=[prefect.Task(), prefect.Task()]))
        assert row(api, "flow", fid, "project_id")["project_id"] == project_id

    def test_create_flow_and_register_tasks_separately(self, api, project_id):
        serialized = prefect.Flow(name="test", tasks=[prefect.Task(), prefect.Task()]).serialize()
        tasks = serialized.pop("tasks")
        fid = register(api, project_id, serialized)
        assert row(api, "flow", fid, "tasks { name }")["tasks"] == []
        assert success(api, "register_tasks", {"serialized_tasks": tasks, "flow_id": fid}) is True
        assert [t["name"] for t in row(api, "flow", fid, "tasks { name }")["tasks"]] == ["Task", "Task"]

    def test_create_flow_and_register_edges_separately(self, api, project_id):
        with prefect.Flow(name="test") as flow:
            prefect.Task().set_upstream(prefect.Task())
            prefect.Task().set_upstream(prefect.Task())
        serialized = flow.serialize()
        tasks, edges = serialized.pop("tasks"), serialized.pop("edges")
        fid = register(api, project_id, serialized)
        assert row(api, "flow", fid, "tasks { name }")["tasks"] == [] and edge_count(api, fid) == 0
        assert success(api, "register_tasks", {"serialized_tasks": tasks, "flow_id": fid})
        assert success(api, "register_edges", {"serialized_edges": edges, "flow_id": fid}) is True
        assert [t["name"] for t in row(api, "flow", fid, "tasks { name }")["tasks"]] == ["Task"] * 4
        assert edge_count(api, fid) == 2

    def test_register_edges_provides_helpful_error(self, api, project_id):
        with prefect.Flow(name="test") as flow:
            prefect.Task().set_upstream(prefect.Task())
        serialized = flow.serialize()
        serialized.pop("tasks")
        edges = serialized.pop("edges")
        fid = register(api, project_id, serialized)
        message = api.error("mutation($input: register_edges_input!) { register_edges(input: $input) { success } }",
                            {"input": {"serialized_edges": edges, "flow_id": fid}})
        assert "reference tasks that do not exist" in message

    def test_create_compressed_flow(self, api, project_id):
        payload = api.mutate("create_flow_from_compressed_string", {
            "serialized_flow": compress(prefect.Flow(name="test").serialize()), "project_id": project_id})
        assert row(api, "flow", payload["id"], "project_id name") == {"project_id": project_id, "name": "test"}

    def test_create_compressed_flow_with_invalid_string(self, api, project_id):
        message = api.error("mutation($input: create_flow_from_compressed_string_input!) { "
                            "create_flow_from_compressed_string(input: $input) { id } }",
                            {"input": {"serialized_flow": "42", "project_id": project_id}})
        assert "Unable to decompress" in message

    def test_create_flow_with_version_group(self, api, project_id):
        group = unique("hello")
        fid = register(api, project_id, prefect.Flow(name="test"), version_group_id=group)
        assert row(api, "flow", fid, "version_group_id")["version_group_id"] == group

    def test_create_flow_respects_core_version(self, api, project_id):
        serialized = prefect.Flow(name="test").serialize()
        serialized["__version__"] = "0.7.0+g5892"
        assert row(api, "flow", register(api, project_id, serialized), "core_version")["core_version"] == "0.7.0+g5892"

    def test_create_flow_with_description(self, api, project_id):
        fid = register(api, project_id, prefect.Flow(name="test"), description="test")
        assert row(api, "flow", fid, "description")["description"] == "test"

    def test_create_flow_with_idempotency_key(self, api, project_id):
        fid = register(api, project_id, prefect.Flow(name="test"), idempotency_key="test")
        assert row(api, "flow", fid, "flow_group { settings }")["flow_group"]["settings"]["idempotency_key"] == "test"

    def test_create_flow_autodetects_version_group(self, api, project_id, project_id_2):
        ids = [register(api, project_id, prefect.Flow(name="test")),
               register(api, project_id, prefect.Flow(name="test")),
               register(api, project_id, prefect.Flow(name="test-different")),
               register(api, project_id_2, prefect.Flow(name="test"))]
        groups = [row(api, "flow", i, "version_group_id")["version_group_id"] for i in ids]
        assert groups[0] == groups[1]
        assert groups[0] != groups[2]
        assert groups[0] != groups[3]

    def test_old_versions_are_automatically_archived(self, api, project_id, project_id_2):
        first = register(api, project_id, prefect.Flow(name="test"))
        second = register(api, project_id, prefect.Flow(name="test"))
        flow1 = row(api, "flow", first, "archived version_group_id")
        assert flow1["archived"] and not row(api, "flow", second, "archived")["archived"]
        third = register(api, project_id_2, prefect.Flow(name="test"), version_group_id=flow1["version_group_id"])
        assert [row(api, "flow", i, "archived")["archived"] for i in (first, second, third)] == [True, True, False]

    def test_schedule_is_activated(self, api, project_id):
        assert row(api, "flow", register(api, project_id, cron_flow()), "is_schedule_active")["is_schedule_active"]

    def test_schedule_is_not_activated_if_param_passed(self, api, project_id):
        fid = register(api, project_id, cron_flow(), set_schedule_active=False)
        assert not row(api, "flow", fid, "is_schedule_active")["is_schedule_active"]

    def test_create_flow_allows_setting_version_group_explicitly(self, api, project_id):
        group = str(uuid.uuid4())
        first = register(api, project_id, prefect.Flow(name="test"), version_group_id=group)
        second = register(api, project_id, prefect.Flow(name="test-different"), version_group_id=group)
        assert row(api, "flow", first, "version_group_id archived") == {"version_group_id": group, "archived": True}
        assert row(api, "flow", second, "version_group_id archived") == {"version_group_id": group, "archived": False}


class TestFlowMutationsGraphQL:
    def test_delete_flow(self, api, flow_id):
        api.mutate("delete_flow", {"flow_id": flow_id}, "success")
        assert row(api, "flow", flow_id, "id") is None

    def test_archive_flow(self, api, flow_id):
        assert not row(api, "flow", flow_id, "archived")["archived"]
        assert success(api, "archive_flow", {"flow_id": flow_id}) is True
        assert row(api, "flow", flow_id, "archived")["archived"]

    def test_archive_nonexistent_flow(self, api):
        assert success(api, "archive_flow", {"flow_id": str(uuid.uuid4())}) is False

    @pytest.mark.parametrize("mutation", ["archive_flow", "enable_flow_heartbeat", "disable_flow_heartbeat",
                                          "enable_flow_lazarus_process", "disable_flow_lazarus_process"])
    def test_none_flow_id_is_refused_naming_the_field(self, api, mutation):
        # Server: test_archive_flow_with_none_flow_id, test_{enable,disable}_flow_{heartbeat,lazarus}_*_none
        message = api.error(f"mutation($input: {mutation}_input!) {{ {mutation}(input: $input) {{ success }} }}",
                            {"input": {"flow_id": None}})
        assert "input.flow_id" in message and "non-nullable" in message.replace("non-null ", "non-nullable ")

    def test_update_flow_project(self, api, tenant_id, flow_id):
        other = api.mutate("create_project", {"tenant_id": tenant_id, "name": "Astral Project-ion"})["id"]
        assert row(api, "flow", flow_id, "project_id")["project_id"] != other
        assert api.mutate("update_flow_project", {"flow_id": flow_id, "project_id": other})["id"] == flow_id
        assert row(api, "flow", flow_id, "project_id")["project_id"] == other

    def test_update_flow_project_fails_with_invalid_project_id(self, api, flow_id, project_id):
        message = api.error(UPDATE_PROJECT,
                            {"input": {"flow_id": flow_id, "project_id": str(uuid.uuid4())}})
        assert "Invalid flow or project ID" in message
        assert row(api, "flow", flow_id, "project_id")["project_id"] == project_id

    def test_update_flow_project_fails_with_none_project_id(self, api, flow_id, project_id):
        message = api.error(UPDATE_PROJECT,
                            {"input": {"flow_id": flow_id, "project_id": None}})
        assert "Variable '$input' got invalid value" in message
        assert row(api, "flow", flow_id, "project_id")["project_id"] == project_id

    @pytest.mark.parametrize("enable", [True, False])
    def test_flow_heartbeat_writes_both_settings(self, api, flow_id, flow_group_id, enable):
        before = row(api, "flow_group", flow_group_id, "settings")["settings"]
        name = "enable_flow_heartbeat" if enable else "disable_flow_heartbeat"
        assert success(api, name, {"flow_id": flow_id}) is True
        after = row(api, "flow_group", flow_group_id, "settings")["settings"]
        assert after == dict(before, heartbeat_enabled=enable, disable_heartbeat=not enable)

    @pytest.mark.parametrize("enable", [True, False])
    def test_flow_lazarus_process(self, api, flow_id, flow_group_id, enable):
        before = row(api, "flow_group", flow_group_id, "settings")["settings"]
        name = "enable_flow_lazarus_process" if enable else "disable_flow_lazarus_process"
        assert success(api, name, {"flow_id": flow_id}) is True
        assert row(api, "flow_group", flow_group_id, "settings")["settings"] == dict(before, lazarus_enabled=enable)

    def test_set_flow_schedule_active(self, api, flow_id):
        assert success(api, "set_schedule_inactive", {"flow_id": flow_id})
        assert success(api, "set_schedule_active", {"flow_id": flow_id}) is True
        assert row(api, "flow", flow_id, "is_schedule_active")["is_schedule_active"]

    def test_set_flow_schedule_inactive(self, api, flow_id):
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert success(api, "set_schedule_inactive", {"flow_id": flow_id}) is True
        assert not row(api, "flow", flow_id, "is_schedule_active")["is_schedule_active"]


# -------------------------------------------------------------------------------- tests/api/test_flows.py
class TestFlowModels:
    def test_delete_flow_group_cascades_to_flow(self, api, flow_id, flow_group_id):
        assert success(api, "delete_flow_group", {"flow_group_id": flow_group_id})
        assert row(api, "flow", flow_id, "id") is None

    def test_delete_flow_does_not_cascade_to_flow_group(self, api, flow_id, flow_group_id):
        assert success(api, "delete_flow", {"flow_id": flow_id})
        assert row(api, "flow_group", flow_group_id, "id") is not None


class TestCreateFlow:
    def test_create_flow(self, api, project_id, flow):
        assert row(api, "flow", register(api, project_id, flow), "id")

    def test_create_flow_with_no_schedule_sets_schedule_inactive(self, api, project_id, flow):
        assert row(api, "flow", register(api, project_id, flow), "is_schedule_active")["is_schedule_active"] is False

    def test_create_flow_with_only_flow_group_schedule_keeps_schedule_active(self, api, project_id, flow_group_id):
        assert success(api, "set_flow_group_schedule",
                       {"flow_group_id": flow_group_id, "cron_clocks": [{"cron": "42 0 0 * * *"}]}) is True
        group = row(api, "flow_group", flow_group_id, "schedule name")
        assert group["schedule"] is not None
        fid = register(api, project_id, prefect.Flow("empty Flow"), version_group_id=group["name"])
        assert row(api, "flow", fid, "is_schedule_active")["is_schedule_active"] is True

    def test_create_old_and_valid_flow(self, api, project_id, flow):
        serialized = flow.serialize()
        serialized["__version__"] = "0.0.42"
        message = api.error(CREATE_FLOW,
                            {"input": {"serialized_flow": serialized, "project_id": project_id}})
        assert "require new flows to be built with" in message

    def test_create_invalid_flow_raises_error(self, api, project_id, flow):
        serialized = flow.serialize()
        for task in serialized["tasks"]:
            if task["name"] == "t4":
                task["retry_delay"] = "hello there"
        message = api.error(CREATE_FLOW,
                            {"input": {"serialized_flow": serialized, "project_id": project_id}})
        assert "retry_delay" in message

    def test_create_flow_with_extra_fields_is_ok(self, api, project_id, flow):
        serialized = flow.serialize()
        serialized["an_extra_field"] = 1
        serialized["an_extra_parent_field"] = {"child_field": 2}
        stored = row(api, "flow", register(api, project_id, serialized), "serialized_flow")["serialized_flow"]
        assert stored["an_extra_field"] == 1 and stored["an_extra_parent_field"]["child_field"] == 2

    def test_create_flow_is_not_archived(self, api, project_id, flow):
        assert not row(api, "flow", register(api, project_id, flow), "archived")["archived"]

    def test_create_empty_flow(self, api, project_id):
        assert row(api, "flow", register(api, project_id, prefect.Flow(name="test")), "id")

    def test_create_flow_without_edges(self, api, project_id):
        flow = prefect.Flow(name="test")
        flow.add_task(prefect.Task())
        flow.add_task(prefect.Task())
        assert row(api, "flow", register(api, project_id, flow), "id")

    def test_create_flow_also_creates_tasks(self, api, project_id, flow):
        assert task_count(api, [register(api, project_id, flow)]) == len(flow.tasks)

    @pytest.mark.parametrize("times", [1, 3])  # Server: test_register_tasks_registers_tasks, _is_idempotent
    def test_register_tasks(self, api, project_id, flow, times):
        serialized = flow.serialize()
        tasks = serialized.pop("tasks")
        serialized.pop("edges")
        fid = register(api, project_id, serialized)
        assert task_count(api, [fid]) == 0
        for _ in range(times):
            assert success(api, "register_tasks", {"flow_id": fid, "serialized_tasks": tasks})
        assert task_count(api, [fid]) == len(flow.tasks)

    @pytest.mark.parametrize("times", [1, 3])  # Server: test_register_edges_registers_edges, _is_idempotent
    def test_register_edges(self, api, project_id, flow, times):
        serialized = flow.serialize()
        tasks, edges = serialized.pop("tasks"), serialized.pop("edges")
        fid = register(api, project_id, serialized)
        assert edge_count(api, fid) == 0
        for _ in range(times):
            assert success(api, "register_tasks", {"flow_id": fid, "serialized_tasks": tasks})
            assert success(api, "register_edges", {"flow_id": fid, "serialized_edges": edges})
        assert edge_count(api, fid) == len(flow.edges)

    def test_create_flow_saves_task_triggers(self, api, project_id, flow):
        tasks = row(api, "flow", register(api, project_id, flow), "tasks { trigger }")["tasks"]
        assert "prefect.triggers.all_successful" in {t["trigger"] for t in tasks}

    def test_create_flow_saves_custom_task_triggers(self, api, project_id, flow):
        list(flow.tasks)[0].trigger = custom_trigger
        tasks = row(api, "flow", register(api, project_id, flow), "tasks { trigger }")["tasks"]
        assert f"{__name__}.custom_trigger" in {t["trigger"] for t in tasks}

    def test_create_flow_also_creates_tasks_with_cache_keys(self, api, project_id, flow):
        tasks = row(api, "flow", register(api, project_id, flow), "tasks { cache_key }")["tasks"]
        assert "test-key" in {t["cache_key"] for t in tasks}

    def test_flows_can_be_safely_created_twice(self, api, project_id, flow):
        ids = [register(api, project_id, flow), register(api, project_id, flow)]
        assert ids[0] != ids[1]
        assert count(api, "flow", {"id": {"_in": ids}}) == 2
        assert task_count(api, ids) == len(flow.tasks) * 2

    def test_flows_not_added_with_same_idempotency_key(self, api, project_id, flow):
        first = register(api, project_id, flow, idempotency_key="foo")
        model = row(api, "flow", first, "version version_group_id")
        second = register(api, project_id, flow, version_group_id=model["version_group_id"], idempotency_key="foo")
        assert first == second
        assert row(api, "flow", second, "version")["version"] == model["version"]
        assert task_count(api, [first]) == len(flow.tasks)

    @pytest.mark.parametrize("keys", [("foo", "bar"), (None, None), ("foo", None, "foo"), ("foo", "bar", "foo")],
                             ids=["simple different keys", "sequential empty keys", "same key with empty between",
                                  "same key with different between"])
    def test_flows_added_with_different_idempotency_keys(self, api, project_id, flow, keys):
        ids, models = [], []
        for key in keys:
            extra = {"version_group_id": models[0]["version_group_id"]} if models else {}
            ids.append(register(api, project_id, flow, idempotency_key=key, **extra))
            models.append(row(api, "flow", ids[-1], "version version_group_id"))
        assert len(set(ids)) == len(keys)
        assert [m["version"] for m in models] == list(range(models[0]["version"], models[0]["version"] + len(keys)))
        assert count(api, "flow", {"id": {"_in": ids}}) == len(ids)
        assert task_count(api, ids) == len(flow.tasks) * len(ids)

    @pytest.mark.parametrize("no_flow_case", ["archived", "deleted"])
    def test_flows_added_with_same_idempotency_key_but_no_valid_flows(self, api, project_id, flow, no_flow_case):
        first = register(api, project_id, flow, idempotency_key="foo")
        model = row(api, "flow", first, "version version_group_id")
        assert success(api, "archive_flow" if no_flow_case == "archived" else "delete_flow", {"flow_id": first})
        second = register(api, project_id, flow, version_group_id=model["version_group_id"], idempotency_key="foo")
        assert first != second
        if no_flow_case == "archived":
            assert row(api, "flow", second, "version")["version"] == model["version"] + 1
        assert count(api, "flow", {"id": {"_in": [first, second]}}) == (2 if no_flow_case == "archived" else 1)

    def test_create_flow_with_schedule(self, api, project_id):
        stored = row(api, "flow", register(api, project_id, cron_flow()), "schedule")["schedule"]
        schedule = ScheduleSchema().load(stored)
        assert len(schedule.clocks) == 1
        assert isinstance(schedule.clocks[0], prefect.schedules.clocks.CronClock)

    def test_create_flow_with_schedule_is_active(self, api, project_id):
        assert row(api, "flow", register(api, project_id, cron_flow()), "is_schedule_active")["is_schedule_active"]

    def test_create_flow_with_inactive_schedule(self, api, project_id):
        fid = register(api, project_id, cron_flow(), set_schedule_active=False)
        assert not row(api, "flow", fid, "is_schedule_active")["is_schedule_active"]

    def test_create_flow_with_fake_project(self, api):
        message = api.error(CREATE_FLOW,
                            {"input": {"serialized_flow": prefect.Flow(name="test").serialize(),
                                       "project_id": str(uuid.uuid4())}})
        assert "Invalid project" in message

    def test_parameter_handling(self, api, project_id, flow):
        stored = row(api, "flow", register(api, project_id, flow), "parameters")["parameters"]
        parameters = ParameterSchema().load(stored, many=True)
        assert all(isinstance(p, prefect.Parameter) for p in parameters)
        assert len(parameters) == len(flow.parameters())
        assert {p.name for p in parameters} == {"x", "y"}
        assert {p.default for p in parameters} == {None, 1}
        assert {p.required for p in parameters} == {True, False}

    def test_create_flow_intelligently_handles_scheduled_param_defaults(self, api, project_id):
        clock = prefect.schedules.clocks.CronClock(cron="* * * * *", parameter_defaults={"a": 1, "b": 2})
        flow = prefect.Flow("test-params", tasks=[prefect.Parameter("a"), prefect.Parameter("b", default=1)],
                            schedule=prefect.schedules.Schedule(clocks=[clock]))
        assert register(api, project_id, flow)

    def test_create_flow_registers_flow_even_when_required_params(self, api, project_id):
        clock = prefect.schedules.clocks.CronClock(cron="* * * * *")
        flow = prefect.Flow("test-params", tasks=[prefect.Parameter("a"), prefect.Parameter("b", default=1)],
                            schedule=prefect.schedules.Schedule(clocks=[clock]))
        fid = register(api, project_id, flow)
        assert row(api, "flow", fid, "is_schedule_active")["is_schedule_active"] is False

    def test_create_flow_assigns_description(self, api, project_id, flow):
        fid = register(api, project_id, flow, description="test")
        assert row(api, "flow", fid, "description")["description"] == "test"

    def test_create_flow_persists_serialized_flow(self, api, project_id, flow):
        persisted = row(api, "flow", register(api, project_id, flow), "serialized_flow")["serialized_flow"]
        serialized = flow.serialize()
        persisted_edges, real_edges = persisted.pop("edges"), serialized.pop("edges")
        assert persisted == serialized
        assert {e["key"] for e in persisted_edges} == {e["key"] for e in real_edges}


class TestCreateFlowVersions:
    def test_create_flow_assigns_random_version_group_id(self, api, project_id, flow):
        model = row(api, "flow", register(api, project_id, flow), "version_group_id version")
        assert model["version_group_id"] and model["version"] == 1

    def test_create_flow_creates_flow_group(self, api, project_id, flow):
        model = row(api, "flow", register(api, project_id, flow), "version_group_id flow_group { name settings }")
        assert model["flow_group"]["name"] == model["version_group_id"]
        assert model["flow_group"]["settings"]["version_locking_enabled"] is False

    def test_create_flow_creates_flow_group_if_version_group_provided(self, api, project_id, tenant_id, flow):
        register(api, project_id, flow, version_group_id="testing")
        groups = rows(api, "flow_group", {"name": {"_eq": "testing"}, "tenant_id": {"_eq": tenant_id}}, "name")
        assert groups == [{"name": "testing"}]

    def test_create_flow_cannot_duplicate_flow_groups(self, api, project_id, tenant_id, flow):
        register(api, project_id, flow, version_group_id="testing")
        register(api, project_id, flow, version_group_id="testing")
        assert count(api, "flow_group", {"name": {"_eq": "testing"}, "tenant_id": {"_eq": tenant_id}}) == 1

    @pytest.mark.parametrize("other_project", [False, True])  # Server: ..._same_version_group(_across_project)
    def test_version_auto_increments_for_same_version_group(self, api, project_id, project_id_2, other_project):
        first = row(api, "flow", register(api, project_id, prefect.Flow(name="test")), "version_group_id version")
        second = row(api, "flow", register(api, project_id_2 if other_project else project_id,
                                           prefect.Flow(name="a different test"),
                                           version_group_id=first["version_group_id"]), "version_group_id version")
        assert first["version_group_id"] == second["version_group_id"]
        assert (first["version"], second["version"]) == (1, 2)

    def test_custom_version_group_id(self, api, project_id):
        group = unique("hello")
        ids = [register(api, project_id, prefect.Flow(name=n), version_group_id=group) for n in ("test", "other")]
        assert [row(api, "flow", i, "version_group_id version") for i in ids] == [
            {"version_group_id": group, "version": 1}, {"version_group_id": group, "version": 2}]

    def test_different_tenants_can_create_flow_group_of_the_same_name(self, api, tenant_id, flow):
        tenant_2 = new_tenant(api)
        group = unique("testing")
        for tenant in (tenant_id, tenant_2):
            project = api.mutate("create_project", {"tenant_id": tenant, "name": "project"})["id"]
            register(api, project, flow, version_group_id=group)
        groups = rows(api, "flow_group", {"name": {"_eq": group}}, "tenant_id")
        assert sorted(g["tenant_id"] for g in groups) == sorted([tenant_id, tenant_2])

    def test_custom_version_group_id_is_respected_only_with_tenant(self, api, project_id):
        project_2 = api.mutate("create_project", {"tenant_id": new_tenant(api), "name": "test 2"})["id"]
        group = unique("hello")
        first = register(api, project_id, prefect.Flow(name="test"), version_group_id=group)
        second = register(api, project_2, prefect.Flow(name="a different test"), version_group_id=group)
        assert row(api, "flow", first, "version_group_id version") == {"version_group_id": group, "version": 1}
        assert row(api, "flow", second, "version_group_id version") == {"version_group_id": group, "version": 1}

    def test_create_flow_with_tags(self, api, project_id, flow):
        tasks = row(api, "flow", register(api, project_id, flow), "tasks { name tags }")["tasks"]
        expected = {"t1": {"red", "blue"}, "t2": {"red", "green"}, "t3": {"mapped"}}
        for task in tasks:
            assert isinstance(task["tags"], list)
            assert set(task["tags"]) == expected.get(task["name"], set())


class TestArchive:
    @pytest.mark.parametrize("times", [1, 2])  # Server: test_archive_flow, test_archive_flow_twice
    def test_archive_flow(self, api, flow_id, times):
        assert not row(api, "flow", flow_id, "archived")["archived"]
        for _ in range(times):
            assert success(api, "archive_flow", {"flow_id": flow_id})
        assert row(api, "flow", flow_id, "archived")["archived"]

    def test_archive_flow_deletes_auto_scheduled_runs(self, api, flow_id):
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        scheduled = rows(api, "flow_run", {"flow_id": {"_eq": flow_id}, "state": {"_eq": "Scheduled"}}, "id")
        assert scheduled
        assert success(api, "archive_flow", {"flow_id": flow_id})
        assert count(api, "flow_run", {"id": {"_in": [r["id"] for r in scheduled]}}) == 0

    def test_archive_flow_cancels_ad_hoc_runs(self, api, flow_id):
        ad_hoc = api.mutate("create_flow_run", {"flow_id": flow_id})["id"]
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        auto = rows(api, "flow_run", {"flow_id": {"_eq": flow_id}, "auto_scheduled": {"_eq": True}}, "id")
        assert auto
        assert success(api, "archive_flow", {"flow_id": flow_id})
        assert count(api, "flow_run", {"id": {"_in": [r["id"] for r in auto]}}) == 0
        run = row(api, "flow_run", ad_hoc, "state state_message")
        assert run["state"] == "Cancelled" and "archived" in run["state_message"]

    def test_new_version_cancels_the_old_versions_ad_hoc_runs(self, api, project_id, flow_id):
        # issue 8: the automatic archive of a new registration does what archive_flow does
        ad_hoc = api.mutate("create_flow_run", {"flow_id": flow_id})["id"]
        register(api, project_id, prefect.Flow(name="Test Flow"))
        run = row(api, "flow_run", ad_hoc, "state state_message")
        assert run == {"state": "Cancelled", "state_message": f"Flow {flow_id} was archived."}

    def test_archive_flow_with_bad_id(self, api):
        assert success(api, "archive_flow", {"flow_id": str(uuid.uuid4())}) is False


class TestDeleteFlow:
    def test_delete_tenant_deletes_flow(self, api, tenant_id, flow_id):
        delete_tenant_removes(api, tenant_id, "flow", flow_id)

    def test_delete_flow_does_not_delete_tenant(self, api, tenant_id, flow_id):
        assert success(api, "delete_flow", {"flow_id": flow_id})
        assert row(api, "tenant", tenant_id, "id")

    def test_delete_flow_deletes_flow_runs(self, api, flow_id, flow_run_id):
        set_state(api, flow_run_id, prefect.engine.state.Scheduled())
        assert row(api, "flow_run", flow_run_id, "id")
        assert success(api, "delete_flow", {"flow_id": flow_id})
        assert row(api, "flow_run", flow_run_id, "id") is None


class TestUpdateFlowProject:
    @pytest.mark.parametrize("bad", ["flow", "project"])
    def test_update_flow_project_fails_with_bad_id(self, api, flow_id, project_id, bad):
        ids = {"flow_id": flow_id, "project_id": project_id, f"{bad}_id": str(uuid.uuid4())}
        message = api.error(UPDATE_PROJECT,
                            {"input": ids})
        assert "Invalid flow or project ID" in message
        assert row(api, "flow", flow_id, "project_id")["project_id"] == project_id

    def test_update_flow_project_to_another_tenants_project_fails(self, api, flow_id, project_id):
        elsewhere = api.mutate("create_project", {"tenant_id": new_tenant(api), "name": "p"})["id"]
        message = api.error(UPDATE_PROJECT,
                            {"input": {"flow_id": flow_id, "project_id": elsewhere}})
        assert "Invalid flow or project ID" in message


class TestSetScheduleActive:
    @pytest.mark.parametrize("times", [1, 2])  # Server: test_set_schedule_active, _twice
    def test_set_schedule_active(self, api, flow_id, times):
        assert row(api, "flow", flow_id, "is_schedule_active")["is_schedule_active"] is False
        for _ in range(times):
            assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert row(api, "flow", flow_id, "is_schedule_active")["is_schedule_active"] is True

    def test_set_schedule_active_with_required_parameters(self, api, project_id):
        fid = register(api, project_id, minutely_flow(prefect.Parameter("p", required=True)), set_schedule_active=False)
        message = api.error(SET_ACTIVE, {"input": {"flow_id": fid}})
        assert "required parameters" in message

    def test_set_schedule_active_handles_scheduled_param_defaults(self, api, project_id):
        clock = prefect.schedules.clocks.CronClock(cron="* * * * *", parameter_defaults={"a": 1, "b": 2})
        flow = prefect.Flow("test-params", tasks=[prefect.Parameter("a"), prefect.Parameter("b", default=1)],
                            schedule=prefect.schedules.Schedule(clocks=[clock]))
        fid = register(api, project_id, flow, set_schedule_active=False)
        assert success(api, "set_schedule_active", {"flow_id": fid})

    def test_set_schedule_active_handles_flow_group_defaults(self, api, project_id):
        fid = register(api, project_id, minutely_flow(prefect.Parameter("p", required=True)), set_schedule_active=False)
        group = row(api, "flow", fid, "flow_group_id")["flow_group_id"]
        assert success(api, "set_flow_group_default_parameters", {"flow_group_id": group, "parameters": {"p": 1}})
        assert success(api, "set_schedule_active", {"flow_id": fid}) is True

    def test_set_schedule_active_handles_flow_group_defaults_and_schedule_defaults(self, api, project_id):
        clock = prefect.schedules.clocks.CronClock(cron="* * * * *", parameter_defaults={"b": 2})
        required = [prefect.Parameter("p", required=True), prefect.Parameter("b", required=True)]
        flow = prefect.Flow("test", tasks=required, schedule=prefect.schedules.Schedule(clocks=[clock]))
        fid = register(api, project_id, flow, set_schedule_active=False)
        assert "required parameters" in api.error(SET_ACTIVE, {"input": {"flow_id": fid}})
        group = row(api, "flow", fid, "flow_group_id")["flow_group_id"]
        assert success(api, "set_flow_group_default_parameters", {"flow_group_id": group, "parameters": {"p": 3}})
        assert success(api, "set_schedule_active", {"flow_id": fid}) is True

    @pytest.mark.parametrize("mutation", ["set_schedule_active", "set_schedule_inactive"])
    def test_set_schedule_with_bad_id(self, api, mutation):
        assert success(api, mutation, {"flow_id": str(uuid.uuid4())}) is False

    @pytest.mark.parametrize("times", [1, 2])  # Server: _schedules_new_runs, _doesnt_duplicate_runs
    def test_set_schedule_active_schedules_new_runs(self, api, flow_id, times):
        assert runs_of(api, flow_id) == 0
        for _ in range(times):
            assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 10

    def test_set_schedule_active_with_no_schedule_on_flow_or_flow_group(self, api, project_id):
        fid = register(api, project_id, prefect.Flow(name="no schedule"))
        assert success(api, "set_schedule_active", {"flow_id": fid}) is False
        assert row(api, "flow", fid, "is_schedule_active")["is_schedule_active"] is False

    def test_set_schedule_active_with_no_schedule_on_flow(self, api, project_id):
        fid = register(api, project_id, prefect.Flow(name="no schedule"))
        group = row(api, "flow", fid, "flow_group_id")["flow_group_id"]
        assert success(api, "set_flow_group_schedule", {"flow_group_id": group, "interval_clocks": [{"interval": 420}]})
        assert success(api, "set_schedule_active", {"flow_id": fid}) is True
        assert row(api, "flow", fid, "is_schedule_active")["is_schedule_active"] is True


class TestSetScheduleInactive:
    @pytest.mark.parametrize("times", [1, 2])  # Server: test_set_schedule_inactive, _twice
    def test_set_schedule_inactive(self, api, flow_id, times):
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        for _ in range(times):
            assert success(api, "set_schedule_inactive", {"flow_id": flow_id})
        assert row(api, "flow", flow_id, "is_schedule_active")["is_schedule_active"] is False

    def test_set_schedule_inactive_deletes_only_auto_scheduled_runs(self, api, flow_id):
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 10
        api.mutate("create_flow_run", {"flow_id": flow_id})
        auto = rows(api, "flow_run", {"flow_id": {"_eq": flow_id}, "auto_scheduled": {"_eq": True}}, "id")
        set_state(api, auto[0]["id"], prefect.engine.state.Running())
        assert success(api, "set_schedule_inactive", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 2

    @pytest.mark.parametrize("timezone", [None, "EST"])  # Server: _deletes_runs, _deletes_runs_in_utc
    def test_set_schedule_inactive_deletes_runs(self, api, project_id, flow_id, timezone):
        fid = register(api, project_id, minutely_flow(), set_schedule_active=False) if timezone else flow_id
        assert success(api, "set_schedule_active", {"flow_id": fid})
        first = start_times(api, fid)
        assert len(first) == 10
        assert success(api, "set_schedule_inactive", {"flow_id": fid})
        assert runs_of(api, fid) == 0
        assert success(api, "set_schedule_active", {"flow_id": fid})
        assert start_times(api, fid) == first


def two_clock_flow(first: dict, second: dict, same_start: bool = True, **flow_kwargs) -> prefect.Flow:
    """Server's scheduled-run flows: two 2-minute interval clocks (the first starting a minute later unless
    same_start), a parameter x."""
    now = pendulum.now("UTC")
    clocks = [prefect.schedules.clocks.IntervalClock(start_date=now.add(minutes=1), interval=datetime.timedelta(
        minutes=2), **first), prefect.schedules.clocks.IntervalClock(
        start_date=now.add(minutes=1) if same_start else now, interval=datetime.timedelta(minutes=2), **second)]
    flow = prefect.Flow(name="Test Scheduled Flow", schedule=prefect.schedules.Schedule(clocks=clocks), **flow_kwargs)
    flow.add_task(prefect.Parameter("x", default=1))
    return flow


def scheduled_runs(api, fid: str, fields: str) -> list:
    return rows(api, "flow_run", {"flow_id": {"_eq": fid}}, fields, [{"scheduled_start_time": "asc"}])


EVENT_ATTRS = [
    [dict(parameter_defaults=dict(x="a")), dict(parameter_defaults=dict(x="b"))],
    [dict(parameter_defaults=dict(x="a")), dict(parameter_defaults=None)],
    [dict(parameter_defaults=dict(x="a")), dict(labels=["b"])],
    [dict(labels=["c", "d"]), dict(labels=["c"])],
    [dict(labels=None), dict(labels=["ef"])],
    [dict(labels=None), dict(labels=[])],
]


class TestScheduledRunAttributes:
    """Server calls schedule_flow_runs after create_flow; create_flow (schedule active) schedules the same runs."""

    def test_schedule_creates_parametrized_flow_runs(self, api, project_id):
        flow = two_clock_flow(dict(parameter_defaults=dict(x="a")), dict(parameter_defaults=dict(x="b")), False)
        runs = scheduled_runs(api, register(api, project_id, flow), "parameters")
        assert len(runs) == 10
        assert all(r["parameters"] == {"x": "a"} for r in runs[::2])
        assert all(r["parameters"] == {"x": "b"} for r in runs[1::2])

    def test_schedule_adds_labels_to_flow_runs(self, api, project_id):
        flow = two_clock_flow(dict(labels=["a", "b"]), dict(labels=["c", "d"]), False)
        runs = scheduled_runs(api, register(api, project_id, flow), "labels")
        assert len(runs) == 10
        assert all(r["labels"] == ["a", "b"] for r in runs[::2])
        assert all(r["labels"] == ["c", "d"] for r in runs[1::2])

    @pytest.mark.parametrize("labels", [[], ["a", "b"]])
    def test_schedule_does_not_overwrite_flow_labels(self, api, project_id, labels):
        flow = two_clock_flow(dict(labels=labels), {}, False,
                              run_config=prefect.run_configs.UniversalRun(labels=["foo", "bar"]))
        runs = scheduled_runs(api, register(api, project_id, flow), "labels")
        assert all(r["labels"] == labels for r in runs[::2])
        assert all(r["labels"] == ["bar", "foo"] for r in runs[1::2])

    def test_doesnt_schedule_same_time_twice(self, api, project_id):
        runs = scheduled_runs(api, register(api, project_id, two_clock_flow({}, {})), "scheduled_start_time")
        assert len({r["scheduled_start_time"] for r in runs}) == len(runs) == 10

    @pytest.mark.parametrize("attrs", EVENT_ATTRS)
    def test_allows_for_same_time_if_event_attrs_are_different(self, api, project_id, attrs):
        runs = scheduled_runs(api, register(api, project_id, two_clock_flow(*attrs)), "scheduled_start_time")
        assert len(runs) == 10
        assert len({r["scheduled_start_time"] for r in runs}) == 5

    @pytest.mark.parametrize("attrs", EVENT_ATTRS)
    def test_same_time_different_parameters_does_not_schedule_duplicates(self, api, project_id, attrs):
        fid = register(api, project_id, two_clock_flow(*attrs))
        first = {r["id"] for r in scheduled_runs(api, fid, "id")}
        assert len(first) == 10
        assert success(api, "set_schedule_active", {"flow_id": fid})
        assert {r["id"] for r in scheduled_runs(api, fid, "id")} == first


class TestScheduleRuns:
    def test_schedule_runs(self, api, flow_id):
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 10

    def test_schedule_runs_on_create_flow(self, api, project_id):
        flow = prefect.Flow(name="test", schedule=prefect.schedules.IntervalSchedule(
            start_date=pendulum.datetime(2020, 1, 1), interval=datetime.timedelta(days=1)))
        assert runs_of(api, register(api, project_id, flow)) == 10

    def test_schedule_runs_with_flow_group_schedule(self, api, flow_id, flow_group_id):
        assert success(api, "set_flow_group_schedule", {"flow_group_id": flow_group_id,
                                                        "cron_clocks": [{"cron": "0 * * * *"}]})
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 10

    def test_schedule_runs_gives_preference_to_flow_group_schedule(self, api, project_id):
        flow = prefect.Flow(name="every minute", schedule=prefect.schedules.CronSchedule("* * * * *"))
        fid = register(api, project_id, flow, set_schedule_active=False)
        group = row(api, "flow", fid, "flow_group_id")["flow_group_id"]
        assert success(api, "set_flow_group_schedule", {"flow_group_id": group, "cron_clocks": [{"cron": "0 0 1 * *"}]})
        assert success(api, "set_schedule_active", {"flow_id": fid})
        runs = scheduled_runs(api, fid, "scheduled_start_time")
        assert len(runs) == 10
        assert pendulum.parse(runs[-1]["scheduled_start_time"]) > pendulum.now("utc").add(minutes=15)


class TestHasuraIntervalColumns:
    """Issue 8: Hasura answers Postgres interval columns (task.retry_delay) in Postgres's text form."""

    @pytest.mark.parametrize("delay, text", [(datetime.timedelta(seconds=10), "00:00:10"),
                                             (datetime.timedelta(minutes=5), "00:05:00"),
                                             (datetime.timedelta(days=1, hours=1), "1 day 01:00:00"),
                                             (None, None)])
    def test_retry_delay_is_answered_as_interval_text(self, api, project_id, delay, text):
        task = prefect.Task("retrying", max_retries=1 if delay else 0, retry_delay=delay)
        fid = register(api, project_id, prefect.Flow("interval", tasks=[task]))
        tasks = row(api, "flow", fid, "tasks { max_retries retry_delay }")["tasks"]
        assert tasks == [{"max_retries": 1 if delay else 0, "retry_delay": text}]
