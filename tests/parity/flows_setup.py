"""Setup shared by the flow, flow group, project, tenant and agent parity tests.

Server's own tests build these rows through its Python API or the database; here they are built with the
public mutations only (serialized flows come from the real prefect package), so the same setup runs
against the emulator and against a real Server. Fixtures are imported by the test modules that use them.
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

import pendulum
import prefect
import pytest

from tests.parity.api import Api, unique


def server_test_flow() -> prefect.Flow:
    """Server's `flow_id` fixture flow: a daily interval schedule from 2018, t1 -> t2 with tags, a parameter x."""
    flow = prefect.Flow(name="Test Flow", schedule=prefect.schedules.IntervalSchedule(
        start_date=pendulum.datetime(2018, 1, 1), interval=datetime.timedelta(days=1)))
    flow.add_edge(prefect.Task("t1", tags={"red", "blue"}), prefect.Task("t2", tags={"red", "green"}))
    flow.add_task(prefect.Parameter("x", default=1))
    return flow


def register(api: Api, project_id: str, flow: Any, **extra: Any) -> str:
    """create_flow with a serialized flow (a prefect.Flow is serialized here); returns the new flow's id.

    Args:
        api: the API under test
        project_id: the project to register into
        flow: a prefect.Flow or an already serialized flow dict
        extra: more create_flow_input fields (version_group_id, set_schedule_active, idempotency_key, ...)
    """
    serialized = flow.serialize() if isinstance(flow, prefect.Flow) else flow
    return api.mutate("create_flow", dict(serialized_flow=serialized, project_id=project_id, **extra))["id"]


def row(api: Api, table: str, row_id: str, fields: str) -> Optional[Dict[str, Any]]:
    """One row by primary key through Hasura (`<table>_by_pk`), None when it does not exist."""
    query = f"query($id: uuid!) {{ {table}_by_pk(id: $id) {{ {fields} }} }}"
    return api.data(query, {"id": row_id})[f"{table}_by_pk"]


def rows(api: Api, table: str, where: Dict[str, Any], fields: str, order_by: Any = None) -> List[Dict[str, Any]]:
    """Rows of a table matching a Hasura `where`, optionally ordered."""
    query = (f"query($where: {table}_bool_exp, $order: [{table}_order_by!]) "
             f"{{ {table}(where: $where, order_by: $order) {{ {fields} }} }}")
    return api.data(query, {"where": where, "order": order_by or []})[table]


def count(api: Api, table: str, where: Dict[str, Any]) -> int:
    """How many rows of a table match a Hasura `where` (`<table>_aggregate`)."""
    query = f"query($where: {table}_bool_exp) {{ {table}_aggregate(where: $where) {{ aggregate {{ count }} }} }}"
    return api.data(query, {"where": where})[f"{table}_aggregate"]["aggregate"]["count"]


def runs_of(api: Api, flow_id: str) -> int:
    """How many flow runs a flow has."""
    return count(api, "flow_run", {"flow_id": {"_eq": flow_id}})


def new_tenant(api: Api) -> str:
    """A second tenant with a unique name and slug; returns its id."""
    name = unique("tenant")
    return api.mutate("create_tenant", {"name": name, "slug": name})["id"]


def delete_tenant_removes(api: Api, tenant_id: str, table: str, row_id: str) -> None:
    """Deletes the tenant (as the UI's Team settings does) and checks the row went with it (Postgres cascade)."""
    assert success(api, "delete_tenant", {"tenant_id": tenant_id, "confirm": True})
    assert row(api, table, row_id, "id") is None


def success(api: Api, name: str, input: Dict[str, Any]) -> bool:
    """Runs a mutation answering success_payload and returns its `success`."""
    return api.mutate(name, input, "success")["success"]


@pytest.fixture
def flow_id(api: Api, project_id: str) -> str:
    """Server's `flow_id` fixture: the test flow registered with its schedule off."""
    return register(api, project_id, server_test_flow(), set_schedule_active=False)


@pytest.fixture
def flow_group_id(api: Api, flow_id: str) -> str:
    """Server's `flow_group_id` fixture: the flow group of `flow_id`."""
    return row(api, "flow", flow_id, "flow_group_id")["flow_group_id"]


@pytest.fixture
def project_id_2(api: Api, tenant_id: str) -> str:
    """Server's `project_id_2` fixture: a second project in the test's tenant."""
    return api.mutate("create_project", {"tenant_id": tenant_id, "name": unique("project-2")})["id"]


@pytest.fixture
def flow_run_id(api: Api, flow_id: str) -> str:
    """Server's `flow_run_id` fixture: an ad-hoc run of `flow_id` with x=1."""
    return api.mutate("create_flow_run", {"flow_id": flow_id, "parameters": {"x": 1}})["id"]
