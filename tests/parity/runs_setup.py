"""Setup shared by the run, state and log parity tests: what Prefect Server's database fixtures
(tests/fixtures/database_fixtures.py) build through its Python API, built here through the public GraphQL API.

Imported explicitly by the test modules (no pytest plugin), so it stays apart from conftest.py.
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

import pendulum
import prefect
import pytest
from prefect.engine.state import Running, State, Success

from tests.parity.api import Api

SET_FLOW_RUN_STATES = """
    mutation($input: set_flow_run_states_input!) {
        set_flow_run_states(input: $input) { states { id status message } }
    }"""
SET_TASK_RUN_STATES = """
    mutation($input: set_task_run_states_input!) {
        set_task_run_states(input: $input) { states { id status message } }
    }"""

FLOW_RUN_FIELDS = ("id flow_id name labels parameters context run_config scheduled_start_time auto_scheduled "
                   "state version serialized_state state_start_time state_message start_time end_time "
                   "heartbeat agent_id")
TASK_RUN_FIELDS = ("id flow_run_id task_id map_index name cache_key state version serialized_state "
                   "start_time end_time heartbeat")


def server_test_flow(name: str = "Test Flow", **flow_kwargs: Any) -> prefect.Flow:
    """Server's `flow_id` fixture flow: an interval schedule, an edge t1 -> t2 and a Parameter x (default 1)."""
    flow = prefect.Flow(
        name=name,
        schedule=prefect.schedules.IntervalSchedule(start_date=pendulum.datetime(2018, 1, 1),
                                                    interval=datetime.timedelta(days=1)),
        **flow_kwargs,
    )
    flow.add_edge(prefect.Task("t1", tags={"red", "blue"}), prefect.Task("t2", tags={"red", "green"}))
    flow.add_task(prefect.Parameter("x", default=1))
    return flow


def create_flow(api: Api, project_id: str, flow: prefect.Flow, **input: Any) -> str:
    """Registers `flow` with the create_flow mutation (Server: api.flows.create_flow); returns its id."""
    return api.mutate("create_flow", dict(input, project_id=project_id, serialized_flow=flow.serialize()))["id"]


def create_flow_run(api: Api, **input: Any) -> str:
    """The create_flow_run mutation (Server: api.runs.create_flow_run); returns the new run's id."""
    return api.mutate("create_flow_run", input)["id"]


def set_flow_run_state(api: Api, flow_run_id: str, state: State) -> None:
    """One state through set_flow_run_states (Server: api.states.set_flow_run_state)."""
    api.data(SET_FLOW_RUN_STATES, {"input": {"states": [{"flow_run_id": flow_run_id, "state": state.serialize()}]}})


def set_task_run_state(api: Api, task_run_id: str, state: State) -> None:
    """One state through set_task_run_states (Server: api.states.set_task_run_state)."""
    api.data(SET_TASK_RUN_STATES, {"input": {"states": [{"task_run_id": task_run_id, "state": state.serialize()}]}})


def get_or_create_task_run(api: Api, flow_run_id: str, task_id: str, map_index: Optional[int] = None) -> str:
    """The get_or_create_task_run mutation (Server: api.runs.get_or_create_task_run); returns the id."""
    return api.mutate("get_or_create_task_run", {"flow_run_id": flow_run_id, "task_id": task_id,
                                                 "map_index": map_index})["id"]


def rename(api: Api, kind: str, run_id: str, name: str) -> Dict[str, Any]:
    """set_flow_run_name (kind "flow") or set_task_run_name (kind "task"); returns the whole answer
    (`data` and/or `errors`), since the cases check both refusals and `success`."""
    field = f"set_{kind}_run_name"
    return api.post(f"mutation($input: {field}_input!) {{ {field}(input: $input) {{ success }} }}",
                    {"input": {f"{kind}_run_id": run_id, "name": name}})


def flow_run(api: Api, flow_run_id: str, fields: str = FLOW_RUN_FIELDS) -> Optional[Dict[str, Any]]:
    """The flow_run row as Hasura answers it (Server's tests read models.FlowRun), or None."""
    return api.data(f"query($id: uuid!) {{ flow_run_by_pk(id: $id) {{ {fields} }} }}",
                    {"id": flow_run_id})["flow_run_by_pk"]


def task_run(api: Api, task_run_id: str, fields: str = TASK_RUN_FIELDS) -> Optional[Dict[str, Any]]:
    """The task_run row as Hasura answers it (Server's tests read models.TaskRun), or None."""
    return api.data(f"query($id: uuid!) {{ task_run_by_pk(id: $id) {{ {fields} }} }}",
                    {"id": task_run_id})["task_run_by_pk"]


def task_runs_of(api: Api, flow_run_id: str, fields: str = "id task_id map_index state") -> List[Dict[str, Any]]:
    """Every task run of a flow run."""
    return api.data(f"query($id: uuid!) {{ task_run(where: {{flow_run_id: {{_eq: $id}}}}) {{ {fields} }} }}",
                    {"id": flow_run_id})["task_run"]


def task_ids(api: Api, flow_id: str) -> Dict[str, str]:
    """{task name: task id} of a registered flow."""
    rows = api.data("query($id: uuid!) { task(where: {flow_id: {_eq: $id}}) { id name } }", {"id": flow_id})["task"]
    return {row["name"]: row["id"] for row in rows}


def when(value: Optional[str]) -> Optional[pendulum.DateTime]:
    """A timestamp of an answer as a datetime (None stays None), to compare instants, not spellings."""
    return pendulum.parse(value) if value else None


class RunsWorld:
    """Server's database fixtures for one test, made lazily through the API: `flow_id`, `labeled_flow_id`,
    `flow_run_id` (Scheduled), `flow_run_id_2` (Running), `flow_run_id_3` (Success), `running_flow_run_id`,
    `task_id` and the task runs `task_run_id` (Pending), `task_run_id_2` (Running), `task_run_id_3` (Success).

    Args:
        api: the API under test
        tenant_id: the test's tenant
        project_id: a project of that tenant
    """

    def __init__(self, api: Api, tenant_id: str, project_id: str) -> None:
        self.api = api
        self.tenant_id = tenant_id
        self.project_id = project_id
        self._cache: Dict[str, Any] = {}

    def _once(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def flow_id(self) -> str:
        """Server's `flow_id`: the test flow, its schedule left inactive."""
        return self._once("flow_id", lambda: create_flow(self.api, self.project_id, server_test_flow(),
                                                         set_schedule_active=False))

    @property
    def labeled_flow_id(self) -> str:
        """Server's `labeled_flow_id`: the test flow with a UniversalRun labelled foo, bar."""
        flow = server_test_flow("Labeled Flow", run_config=prefect.run_configs.UniversalRun(labels=["foo", "bar"]))
        return self._once("labeled_flow_id", lambda: create_flow(self.api, self.project_id, flow))

    @property
    def task_id(self) -> str:
        """Server's `task_id`: a task of `flow_id` (t1)."""
        return self._once("task_id", lambda: task_ids(self.api, self.flow_id)["t1"])

    @property
    def labeled_task_id(self) -> str:
        """Server's `labeled_task_id`: a task of `labeled_flow_id` (t1)."""
        return self._once("labeled_task_id", lambda: task_ids(self.api, self.labeled_flow_id)["t1"])

    def new_flow_run(self, state: Optional[State] = None, **input: Any) -> str:
        """A new run of `flow_id` with x=1, moved through Running to `state` when one is given."""
        run_id = create_flow_run(self.api, flow_id=self.flow_id, parameters={"x": 1}, **input)
        if state is not None:
            set_flow_run_state(self.api, run_id, Running())
            if not isinstance(state, Running):
                set_flow_run_state(self.api, run_id, state)
        return run_id

    @property
    def flow_run_id(self) -> str:
        """Server's `flow_run_id`: a Scheduled run of `flow_id` (version 1)."""
        return self._once("flow_run_id", self.new_flow_run)

    @property
    def running_flow_run_id(self) -> str:
        """Server's `running_flow_run_id`: `flow_run_id` set Running."""
        def make() -> str:
            set_flow_run_state(self.api, self.flow_run_id, Running())
            return self.flow_run_id
        return self._once("running_flow_run_id", make)

    @property
    def flow_run_id_2(self) -> str:
        """Server's `flow_run_id_2`: a Running run (version 2)."""
        return self._once("flow_run_id_2", lambda: self.new_flow_run(Running()))

    @property
    def flow_run_id_3(self) -> str:
        """Server's `flow_run_id_3`: a Success run (version 3)."""
        return self._once("flow_run_id_3", lambda: self.new_flow_run(Success()))

    @property
    def labeled_flow_run_id(self) -> str:
        """Server's `labeled_flow_run_id`: a run of `labeled_flow_id`."""
        return self._once("labeled_flow_run_id", lambda: create_flow_run(
            self.api, flow_id=self.labeled_flow_id, parameters={"x": 1}))

    @property
    def task_run_id(self) -> str:
        """Server's `task_run_id`: the task run of `task_id` in `flow_run_id` (Pending, version 1)."""
        return self._once("task_run_id", lambda: get_or_create_task_run(self.api, self.flow_run_id, self.task_id))

    @property
    def labeled_task_run_id(self) -> str:
        """Server's `labeled_task_run_id`: the task run of `labeled_task_id` in `labeled_flow_run_id`."""
        return self._once("labeled_task_run_id", lambda: get_or_create_task_run(
            self.api, self.labeled_flow_run_id, self.labeled_task_id))

    def _task_run_in(self, flow_run_id: str, state: State) -> str:
        run_id = get_or_create_task_run(self.api, flow_run_id, self.task_id)
        set_task_run_state(self.api, run_id, state)
        return run_id

    @property
    def task_run_id_2(self) -> str:
        """Server's `task_run_id_2`: a Running task run of `flow_run_id_2` (version 2)."""
        return self._once("task_run_id_2", lambda: self._task_run_in(self.flow_run_id_2, Running()))

    @property
    def task_run_id_3(self) -> str:
        """Server's `task_run_id_3`: a Success task run of `flow_run_id_3` (version 2)."""
        return self._once("task_run_id_3", lambda: self._task_run_in(self.flow_run_id_3, Success()))


@pytest.fixture
def runs(api: Api, tenant_id: str, project_id: str) -> RunsWorld:
    """Server's run fixtures for one test (import this name into a test module to use it)."""
    return RunsWorld(api, tenant_id, project_id)


__all__ = ["RunsWorld", "runs", "create_flow", "create_flow_run", "set_flow_run_state",
           "set_task_run_state", "get_or_create_task_run", "rename", "flow_run", "task_run", "task_runs_of", "task_ids",
           "when", "server_test_flow", "SET_FLOW_RUN_STATES", "SET_TASK_RUN_STATES"]
