"""The emulator's scheduler: a flow registered with an active schedule gets its next 10 runs, once; a new
version replaces the old version's auto-scheduled runs; pausing the schedule deletes them; the background
service's round (run_once, driven here as of a later instant) tops them up from its `now`."""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
from typing import Iterator, List

import pytest
from prefect import Flow, Parameter
from prefect.schedules import IntervalSchedule, Schedule
from prefect.schedules.clocks import IntervalClock

from prefect_emulator.context import RequestContext
from prefect_emulator.services import wall_clock
from prefect_emulator.testing import REPO_ROOT, Emulator, prefect_env
from tests.prefect_emulator.in_process import InProcess

SCHEDULER_SCRIPT = r'''
import datetime, json, sys
from prefect import Client, Flow, task
from prefect.schedules import IntervalSchedule

client = Client()
client.create_tenant("sched", "sched")
client.create_project("sched")


@task
def noop():
    pass


with Flow("scheduled", schedule=IntervalSchedule(interval=datetime.timedelta(minutes=1))) as flow:
    noop()

QUERY = "{ flow_run(order_by: {scheduled_start_time: asc}) { flow { version } auto_scheduled state scheduled_start_time idempotency_key } }"
observed = {}
first = flow.register("sched", no_url=True)
observed["after_first"] = client.graphql(QUERY).data.flow_run.to_list()
client.graphql({"mutation($input: set_schedule_active_input!)": {"set_schedule_active(input: $input)": {"success"}}},
               variables={"input": {"flow_id": first}})
observed["after_reactivating"] = client.graphql(QUERY).data.flow_run.to_list()
second = flow.register("sched", no_url=True)
observed["after_second_version"] = client.graphql(QUERY).data.flow_run.to_list()
client.graphql({"mutation($input: set_schedule_inactive_input!)": {"set_schedule_inactive(input: $input)": {"success"}}},
               variables={"input": {"flow_id": second}})
observed["after_pause"] = client.graphql(QUERY).data.flow_run.to_list()

# the UI's schedule editor: a flow group schedule wins over the flow's own
group_id = client.graphql({"query": {"flow_by_pk(id: \"%s\")" % second: {"flow_group_id"}}}).data.flow_by_pk.flow_group_id
SET_GROUP = {"mutation($input: set_flow_group_schedule_input!)": {"set_flow_group_schedule(input: $input)": {"success"}}}
client.graphql(SET_GROUP, variables={"input": {"flow_group_id": group_id, "interval_clocks": [{"interval": 120}]}})
client.graphql({"mutation($input: set_schedule_active_input!)": {"set_schedule_active(input: $input)": {"success"}}},
               variables={"input": {"flow_id": second}})
observed["after_group_schedule"] = client.graphql(QUERY).data.flow_run.to_list()
bad = client.graphql(SET_GROUP, variables={"input": {"flow_group_id": group_id, "cron_clocks": [{"cron": "every day"}]}},
                     raise_on_error=False)
observed["bad_cron"] = bad["errors"][0]["message"]
print(json.dumps(observed))
'''


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Registers a flow with a one-minute schedule through the real client, in a subprocess, and returns the
    runs seen after each step (so the four tests below share one emulator and one registration)."""
    workdir = tmp_path_factory.mktemp("scheduler")
    with Emulator(workdir) as emulator:
        env = prefect_env(emulator.url, workdir)
        done = subprocess.run([sys.executable, "-c", SCHEDULER_SCRIPT], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        yield json.loads(done.stdout.strip().splitlines()[-1])


def _starts(runs: List[dict]) -> List[datetime.datetime]:
    return [datetime.datetime.fromisoformat(r["scheduled_start_time"]) for r in runs]


def test_active_schedule_gets_its_next_ten_runs_one_minute_apart(observed: dict) -> None:
    runs = observed["after_first"]
    assert len(runs) == 10
    assert all(r["auto_scheduled"] and r["state"] == "Scheduled" and r["flow"]["version"] == 1 for r in runs)
    starts = _starts(runs)
    assert all(b - a == datetime.timedelta(minutes=1) for a, b in zip(starts, starts[1:]))
    assert starts[0] > datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    assert len({r["idempotency_key"] for r in runs}) == 10


def test_scheduling_again_makes_no_duplicates(observed: dict) -> None:
    assert observed["after_reactivating"] == observed["after_first"]


def test_new_version_replaces_the_archived_versions_scheduled_runs(observed: dict) -> None:
    runs = observed["after_second_version"]
    assert len(runs) == 10 and {r["flow"]["version"] for r in runs} == {2}


def test_pausing_the_schedule_deletes_its_scheduled_runs(observed: dict) -> None:
    assert observed["after_pause"] == []


def test_flow_group_schedule_from_the_ui_wins_over_the_flows_own(observed: dict) -> None:
    runs = observed["after_group_schedule"]
    starts = _starts(runs)
    assert len(runs) == 10
    assert all(b - a == datetime.timedelta(minutes=2) for a, b in zip(starts, starts[1:]))


def test_bad_cron_string_is_refused_with_an_example(observed: dict) -> None:
    assert "Invalid cron string: every day" in observed["bad_cron"] and "'0 6 * * *'" in observed["bad_cron"]


def test_scheduler_round_tops_up_from_its_now_without_duplicates() -> None:
    # the background service's round, as of the instant it is given (Server's scheduler runs every 150 s)
    emu = InProcess()
    tenant = emu.mutate("create_tenant", {"name": "tops-up", "slug": "tops-up"})["id"]
    project = emu.mutate("create_project", {"tenant_id": tenant, "name": "p"})["id"]
    flow = Flow("every-minute", schedule=IntervalSchedule(interval=datetime.timedelta(minutes=1)))
    flow_id = emu.mutate("create_flow", {"project_id": project, "serialized_flow": flow.serialize()})["id"]
    query = ("query ($id: uuid!) { flow_run(where: {flow_id: {_eq: $id}}, order_by: {scheduled_start_time: asc}) "
             "{ scheduled_start_time idempotency_key auto_scheduled } }")

    def runs() -> List[dict]:
        return emu.data(query, {"id": flow_id})["flow_run"]

    assert len(runs()) == 10  # create_flow scheduled the next ten, as of the wall clock
    scheduler = emu.emulator.scheduler
    now = wall_clock()
    assert scheduler.run_once(now) == 0 and scheduler.report(0) == []  # up to date
    later = now + datetime.timedelta(minutes=30)
    assert scheduler.run_once(later) == 10
    assert scheduler.report(10) == ["SCHEDULER created 10 scheduled flow run(s)"]
    found = runs()
    assert len(found) == 20 and len({r["idempotency_key"] for r in found}) == 20 and all(
        r["auto_scheduled"] for r in found)
    assert all(start > later for start in _starts(found[10:]))
    assert scheduler.run_once(later) == 0  # the same round again makes no duplicates


def test_runs_of_clocks_with_parameters_are_made_once_and_then_the_round_is_idle() -> None:
    # events with parameters skip the "later than the latest run" rule and rely on their idempotency key alone
    emu = InProcess()
    tenant = emu.mutate("create_tenant", {"name": "with-params", "slug": "with-params"})["id"]
    project = emu.mutate("create_project", {"tenant_id": tenant, "name": "p"})["id"]
    with Flow("hourly-with-a-parameter", schedule=Schedule(clocks=[IntervalClock(
            datetime.timedelta(hours=1), parameter_defaults={"city": "Seattle"})])) as flow:
        Parameter("city", default="Recife")
    emu.mutate("create_flow", {"project_id": project, "serialized_flow": flow.serialize()})
    scheduler = emu.emulator.scheduler
    now = wall_clock()
    ctx = RequestContext(emu.emulator.store)
    assert not scheduler.pending(ctx, now) and scheduler.run_once(now) == 0  # create_flow made the ten
    later = now + datetime.timedelta(hours=3)
    assert scheduler.pending(ctx, later) and scheduler.run_once(later) == 3  # three more hours: three events
    assert not scheduler.pending(ctx, later) and scheduler.run_once(later) == 0
