"""Flow groups: Prefect Server's tests/graphql/test_flow_groups.py and tests/api/test_flow_groups.py over HTTP.

Ported: all 17 cases (13 definitions) of tests/graphql/test_flow_groups.py, and 35 of the 46 cases
(38 definitions) of tests/api/test_flow_groups.py (its labels None/[], description and run_config
parametrizations assert what the graphql cases here assert, and its four heartbeat/lazarus cases are sent
through the flow-level mutations in test_flows.py's TestFlowMutationsGraphQL, the only GraphQL way).
The api cases pass Server's internal clock dicts to set_flow_group_schedule; here they send the GraphQL
cron_clocks / interval_clocks that Server's resolver turns into those dicts (interval seconds x 1,000,000
= Server's microseconds), and assert the stored clocks are Server's. Cases that first write a schedule or
labels through the database set them with the same mutation first.
Left out (11): the "for none flow group" / "with none id" cases (GraphQL refuses a null UUID! before
Server's code runs).
"""
from __future__ import annotations

import uuid

import pendulum
import prefect
import pytest
from prefect.serialization.schedule import ScheduleSchema

from tests.parity.flows_setup import (delete_tenant_removes, flow_group_id, flow_id, flow_run_id,  # noqa: F401
                                      register, row, rows, runs_of, success)

SCHEDULE = "mutation($input: set_flow_group_schedule_input!) { set_flow_group_schedule(input: $input) { success } }"


def schedule_of(api, group: str):
    return row(api, "flow_group", group, "schedule")["schedule"]


def set_schedule(api, group: str, **clocks) -> bool:
    return success(api, "set_flow_group_schedule", dict(flow_group_id=group, **clocks))


# ------------------------------------------------------------------------ tests/graphql/test_flow_groups.py
class TestFlowGroupMutationsGraphQL:
    def test_delete_flow_group(self, api, flow_group_id):
        assert success(api, "delete_flow_group", {"flow_group_id": flow_group_id})
        assert row(api, "flow_group", flow_group_id, "id") is None

    def test_set_flow_group_labels(self, api, flow_group_id):
        assert success(api, "set_flow_group_labels", {"flow_group_id": flow_group_id, "labels": ["meep", "morp"]})
        assert set(row(api, "flow_group", flow_group_id, "labels")["labels"]) == {"meep", "morp"}

    @pytest.mark.parametrize("labels", [None, []])
    def test_set_flow_group_labels_preserves_type(self, api, flow_group_id, labels):
        assert success(api, "set_flow_group_labels", {"flow_group_id": flow_group_id, "labels": labels}) is True
        assert row(api, "flow_group", flow_group_id, "labels")["labels"] == labels

    def test_clear_flow_group_labels(self, api, flow_group_id):
        assert success(api, "set_flow_group_labels", {"flow_group_id": flow_group_id, "labels": ["zaphod"]})
        assert row(api, "flow_group", flow_group_id, "labels")["labels"] == ["zaphod"]
        assert success(api, "set_flow_group_labels", {"flow_group_id": flow_group_id, "labels": None})
        assert row(api, "flow_group", flow_group_id, "labels")["labels"] is None

    @pytest.mark.parametrize("run_config", [None, {"type": "UniversalRun", "labels": ["a"]}])
    def test_set_flow_group_run_config(self, api, flow_group_id, run_config):
        assert row(api, "flow_group", flow_group_id, "run_config")["run_config"] is None
        assert success(api, "set_flow_group_run_config", {"flow_group_id": flow_group_id, "run_config": run_config})
        assert row(api, "flow_group", flow_group_id, "run_config")["run_config"] == run_config

    @pytest.mark.parametrize("description", [None, "it does a thing.", "# TITLE\n it does *MANY* things"])
    def test_set_flow_group_description(self, api, flow_group_id, description):
        assert row(api, "flow_group", flow_group_id, "description")["description"] is None
        assert success(api, "set_flow_group_description",
                       {"flow_group_id": flow_group_id, "description": description}) is True
        assert row(api, "flow_group", flow_group_id, "description")["description"] == description

    def test_set_cron_clocks_for_flow_group_schedule(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, cron_clocks=[
            {"cron": "42 0 0 * * *", "parameter_defaults": {"meep": "morp"}}, {"cron": "43 0 0 * * *"}]) is True
        assert schedule_of(api, flow_group_id) == {"type": "Schedule", "clocks": [
            {"type": "CronClock", "cron": "42 0 0 * * *", "parameter_defaults": {"meep": "morp"}, "start_date": None},
            {"type": "CronClock", "cron": "43 0 0 * * *", "start_date": None}]}

    def test_add_interval_clocks_to_flow_group_schedule(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, interval_clocks=[
            {"interval": 4200, "parameter_defaults": {"meep": "morp"}}, {"interval": 4300}]) is True
        assert schedule_of(api, flow_group_id) == {"type": "Schedule", "clocks": [
            {"type": "IntervalClock", "interval": 4200000000, "parameter_defaults": {"meep": "morp"},
             "start_date": None},
            {"type": "IntervalClock", "interval": 4300000000, "start_date": None}]}

    def test_add_cron_and_interval_clocks_to_flow_group_schedule(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "42 0 0 * * *"}],
                            interval_clocks=[{"interval": 4200}]) is True
        assert schedule_of(api, flow_group_id) == {"type": "Schedule", "clocks": [
            {"type": "CronClock", "cron": "42 0 0 * * *", "start_date": None},
            {"type": "IntervalClock", "interval": 4200000000, "start_date": None}]}

    def test_add_cron_and_interval_clocks_to_flow_group_schedule_with_timezone(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "42 0 0 * * *"}],
                            interval_clocks=[{"interval": 4200}], timezone="US/Pacific") is True
        schedule = ScheduleSchema().load(schedule_of(api, flow_group_id))
        assert len(schedule.clocks) == 2
        assert all(c.start_date <= pendulum.now("utc") for c in schedule.clocks)
        assert all(c.start_date.timezone_name == "US/Pacific" for c in schedule.clocks)

    def test_add_clocks_to_flow_group_schedule_with_timezone_raises_informative_error(self, api, flow_group_id):
        message = api.error(SCHEDULE, {"input": {"flow_group_id": flow_group_id,
                                                 "cron_clocks": [{"cron": "42 0 0 * * *"}], "timezone": "US/Ocean"}})
        assert "Invalid timezone" in message

    def test_interval_clock_units(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, interval_clocks=[{"interval": 60}])
        first, second = ScheduleSchema().load(schedule_of(api, flow_group_id)).next(n=2)
        assert first.add(minutes=1) == second

    def test_delete_flow_group_schedule(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "0 0 * * *"}])
        assert schedule_of(api, flow_group_id) is not None
        assert success(api, "delete_flow_group_schedule", {"flow_group_id": flow_group_id}) is True
        assert schedule_of(api, flow_group_id) is None


# ---------------------------------------------------------------------------- tests/api/test_flow_groups.py
class TestDeleteFlowGroup:
    def test_delete_tenant_deletes_flow_group(self, api, tenant_id, flow_group_id):
        delete_tenant_removes(api, tenant_id, "flow_group", flow_group_id)

    def test_delete_flow_group_deletes_flows_and_runs(self, api, flow_group_id, flow_id, flow_run_id):
        assert row(api, "flow", flow_id, "id") and row(api, "flow_run", flow_run_id, "id")
        assert success(api, "delete_flow_group", {"flow_group_id": flow_group_id})
        assert row(api, "flow", flow_id, "id") is None
        assert row(api, "flow_run", flow_run_id, "id") is None


class TestSetFlowGroupDefaultParameter:
    def test_set_flow_group_default_parameter(self, api, flow_group_id):
        assert row(api, "flow_group", flow_group_id, "default_parameters")["default_parameters"] == {}
        assert success(api, "set_flow_group_default_parameters",
                       {"flow_group_id": flow_group_id, "parameters": {"meep": "morp", "bleep": "blorp"}}) is True
        assert row(api, "flow_group", flow_group_id, "default_parameters")["default_parameters"] == {
            "meep": "morp", "bleep": "blorp"}

    def test_set_flow_group_default_parameter_overwrites_existing(self, api, flow_group_id):
        assert success(api, "set_flow_group_default_parameters",
                       {"flow_group_id": flow_group_id, "parameters": {"x": 1}})
        assert row(api, "flow_group", flow_group_id, "default_parameters")["default_parameters"] == {"x": 1}
        assert success(api, "set_flow_group_default_parameters", {"flow_group_id": flow_group_id, "parameters": {}})
        assert row(api, "flow_group", flow_group_id, "default_parameters")["default_parameters"] == {}


class TestSetFlowGroupLabels:
    @pytest.mark.parametrize("labels", [["meep", "morp"], ["meep", "morp", "morp"]])  # Server: _labels, _dedupes
    def test_set_flow_group_labels(self, api, flow_group_id, labels):
        assert row(api, "flow_group", flow_group_id, "labels")["labels"] is None
        assert success(api, "set_flow_group_labels", {"flow_group_id": flow_group_id, "labels": labels}) is True
        stored = row(api, "flow_group", flow_group_id, "labels")["labels"]
        assert len(stored) == 2 and set(stored) == {"meep", "morp"}

    def test_set_flow_group_labels_overwrites_existing(self, api, flow_group_id):
        assert success(api, "set_flow_group_labels",
                       {"flow_group_id": flow_group_id, "labels": ["zaphod", "beeblebrox"]})
        assert set(row(api, "flow_group", flow_group_id, "labels")["labels"]) == {"zaphod", "beeblebrox"}
        assert success(api, "set_flow_group_labels", {"flow_group_id": flow_group_id, "labels": ["meep", "morp"]})
        assert set(row(api, "flow_group", flow_group_id, "labels")["labels"]) == {"meep", "morp"}

    @pytest.mark.parametrize("mutation, input", [
        ("set_flow_group_labels", {"labels": ["meep", "morp"]}),
        ("set_flow_group_description", {"description": "x"}),
        ("set_flow_group_run_config", {"run_config": None}),
        ("delete_flow_group_schedule", {}),
    ])
    def test_for_invalid_flow_group(self, api, mutation, input):
        # Server: test_set_flow_group_{labels,description,run_config}_for_invalid_flow_group,
        # test_delete_flow_group_schedule_for_invalid_flow_group
        assert success(api, mutation, dict(input, flow_group_id=str(uuid.uuid4()))) is False


class TestSetFlowGroupSchedule:
    @pytest.mark.parametrize("clocks, stored", [
        ({"cron_clocks": [{"cron": "42 0 0 * * *"}]}, {"type": "CronClock", "cron": "42 0 0 * * *"}),
        ({"interval_clocks": [{"interval": 420}]}, {"type": "IntervalClock", "interval": 420000000}),
    ])
    def test_set_flow_group_schedule(self, api, flow_group_id, clocks, stored):
        assert schedule_of(api, flow_group_id) is None
        assert set_schedule(api, flow_group_id, **clocks) is True
        schedule = schedule_of(api, flow_group_id)
        assert schedule["clocks"][0] == dict(stored, start_date=None)
        assert ScheduleSchema().load(schedule).clocks[0].start_date is None

    @pytest.mark.parametrize("clocks", [{"cron_clocks": [{"cron": "42 0 0 * * *"}]},
                                        {"interval_clocks": [{"interval": 420}]}])
    def test_set_flow_group_schedule_raises_for_invalid_timezones(self, api, flow_group_id, clocks):
        message = api.error(SCHEDULE, {"input": dict(flow_group_id=flow_group_id, timezone="Kalamazoo", **clocks)})
        assert "timezone" in message

    @pytest.mark.parametrize("clocks", [{"cron_clocks": [{"cron": "42 0 0 * * *"}]},
                                        {"interval_clocks": [{"interval": 420}]}])
    def test_set_flow_group_schedule_respects_passed_timezones(self, api, flow_group_id, clocks):
        assert set_schedule(api, flow_group_id, timezone="US/Pacific", **clocks) is True
        clock = ScheduleSchema().load(schedule_of(api, flow_group_id)).clocks[0]
        assert clock.start_date <= pendulum.now("utc")
        assert clock.start_date.timezone_name == "US/Pacific"

    def test_setting_schedule_deletes_runs(self, api, flow_id, flow_group_id):
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 10
        api.mutate("create_flow_run", {"flow_id": flow_id})
        before = {r["scheduled_start_time"] for r in rows(api, "flow_run", {"flow_id": {"_eq": flow_id}},
                                                           "scheduled_start_time")}
        assert len(before) == 11
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "42 0 0 * * *"}]) is True
        assert schedule_of(api, flow_group_id)["clocks"][0] == {"type": "CronClock", "cron": "42 0 0 * * *",
                                                                "start_date": None}
        after = {r["scheduled_start_time"] for r in rows(api, "flow_run", {"flow_id": {"_eq": flow_id}},
                                                          "scheduled_start_time")}
        assert len(after & before) == 1

    def test_set_schedule_with_two_clocks(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "42 0 0 * * *"}, {"cron": "43 0 0 * * *"}])
        assert schedule_of(api, flow_group_id)["clocks"] == [
            {"type": "CronClock", "cron": "42 0 0 * * *", "start_date": None},
            {"type": "CronClock", "cron": "43 0 0 * * *", "start_date": None}]

    @pytest.mark.parametrize("clocks, stored", [
        ({"cron_clocks": [{"cron": "42 0 0 * * *", "parameter_defaults": {"foo": "bar"}}]},
         {"type": "CronClock", "cron": "42 0 0 * * *", "parameter_defaults": {"foo": "bar"}}),
        ({"interval_clocks": [{"interval": 420, "parameter_defaults": {"foo": "bar"}}]},
         {"type": "IntervalClock", "interval": 420000000, "parameter_defaults": {"foo": "bar"}}),
    ])
    def test_set_schedule_with_default_parameters(self, api, flow_group_id, clocks, stored):
        assert set_schedule(api, flow_group_id, **clocks) is True
        assert schedule_of(api, flow_group_id)["clocks"][0] == dict(stored, start_date=None)

    def test_set_schedule_overwrites_existing(self, api, flow_group_id):
        assert set_schedule(api, flow_group_id, interval_clocks=[{"interval": 600}])
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "42 0 0 * * *"}])
        assert schedule_of(api, flow_group_id)["clocks"] == [
            {"type": "CronClock", "cron": "42 0 0 * * *", "start_date": None}]

    def test_set_schedule_raises_for_invalid_clock(self, api, flow_group_id):
        message = api.error(SCHEDULE, {"input": {"flow_group_id": flow_group_id, "cron_clocks": [{"cron": "xyz"}]}})
        assert "Invalid clock provided for schedule" in message
        assert schedule_of(api, flow_group_id) is None


class TestDeleteFlowGroupSchedule:
    def test_delete_flow_group_schedule(self, api, flow_id, flow_group_id):
        assert set_schedule(api, flow_group_id, cron_clocks=[{"cron": "42 0 0 * * *"}]) is True
        assert success(api, "set_schedule_active", {"flow_id": flow_id})
        assert runs_of(api, flow_id) == 10
        assert success(api, "delete_flow_group_schedule", {"flow_group_id": flow_group_id}) is True
        assert schedule_of(api, flow_group_id) is None
        assert runs_of(api, flow_id) == 0


def test_a_flow_group_schedule_runs_the_flow(api, project_id):
    """Issue 8: a flow group schedule set the UI's way drives scheduling (the scheduler reads Server's form)."""
    fid = register(api, project_id, prefect.Flow(name="grouped"))
    group = row(api, "flow", fid, "flow_group_id")["flow_group_id"]
    assert set_schedule(api, group, interval_clocks=[{"interval": 3600}])
    assert success(api, "set_schedule_active", {"flow_id": fid}) is True
    times = sorted(pendulum.parse(r["scheduled_start_time"]) for r in rows(
        api, "flow_run", {"flow_id": {"_eq": fid}}, "scheduled_start_time"))
    assert len(times) == 10
    assert all((b - a).total_seconds() == 3600 for a, b in zip(times, times[1:]))
