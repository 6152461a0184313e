"""Agents: Prefect Server's tests/api/test_agents.py, sent as register_agent / delete_agent / get_runs_in_queue.

Server has no tests/graphql/test_agents.py. Ported: 8 of the 10 cases (9 definitions) of tests/api/test_agents.py.
register_agent_input requires `type` in GraphQL, so every registration names one (Server's api cases leave it
None); the reuse rule (same tenant, name, type, core version and sorted labels) is unchanged by that.
test_update_agent_last_queried goes through get_runs_in_queue with the agent's id, the GraphQL operation
that runs update_agent_last_queried.
Left out (2): test_update_agent_with_none_id_raises_error and test_delete_agent_with_none_id_raises_error
(GraphQL refuses a null UUID! before Server's code runs).
Added for issue 8: another core version (X-PREFECT-CORE-VERSION) registers another agent.
"""
from __future__ import annotations

import pendulum
import pytest

from tests.parity.api import Api
from tests.parity.flows_setup import row, rows, success


def register_agent(api: Api, tenant_id: str, labels=None, **extra) -> str:
    return api.mutate("register_agent", dict(tenant_id=tenant_id, labels=labels, type=extra.pop("type", "LocalAgent"),
                                             **extra))["id"]


@pytest.fixture
def agent_id(api: Api, tenant_id: str) -> str:
    """Server's `agent_id` fixture: an agent with labels foo and bar."""
    return register_agent(api, tenant_id, ["foo", "bar"])


class TestCreateAgent:
    def test_register_agent(self, api, tenant_id):
        aid = register_agent(api, tenant_id, ["foo", "bar"])
        agent = row(api, "agent", aid, "id tenant_id labels")
        assert (agent["id"], agent["tenant_id"], set(agent["labels"])) == (aid, tenant_id, {"bar", "foo"})

    @pytest.mark.parametrize("labels", [[], None])
    def test_register_agent_with_empty_labels(self, api, tenant_id, labels):
        aid = register_agent(api, tenant_id, labels)
        assert row(api, "agent", aid, "id tenant_id labels") == {"id": aid, "tenant_id": tenant_id, "labels": []}

    def test_register_agent_with_optional_arguments(self, api, tenant_id):
        aid = register_agent(api, tenant_id, ["foo", "bar"], name="MyNewAgent", type="NewAgent")
        agent = row(api, "agent", aid, "tenant_id labels name type")
        assert agent["name"] == "MyNewAgent" and agent["type"] == "NewAgent"
        assert set(agent["labels"]) == {"foo", "bar"} and agent["tenant_id"] == tenant_id

    def test_register_multiple_agents(self, api, tenant_id):
        first = register_agent(api, tenant_id, ["foo", "bar"])
        assert register_agent(api, tenant_id, ["foo", "bar"]) == first
        assert register_agent(api, tenant_id, ["foo2", "bar2"]) != first
        assert len(rows(api, "agent", {"tenant_id": {"_eq": tenant_id}}, "id")) == 2

    def test_register_multiple_agents_label_order(self, api, tenant_id):
        orders = [["foo", "bar", "chris"], ["chris", "bar", "foo"], ["bar", "chris", "foo"], ["foo", "chris", "bar"],
                  ["bar", "foo", "chris"], ["chris", "foo", "bar"]]
        assert len({register_agent(api, tenant_id, labels) for labels in orders}) == 1
        assert len(rows(api, "agent", {"tenant_id": {"_eq": tenant_id}}, "id")) == 1

    def test_another_core_version_is_another_agent(self, api, tenant_id):
        # issue 8: the reuse key includes the core version prefect's client sends as X-PREFECT-CORE-VERSION
        first = register_agent(api, tenant_id, ["a"])
        other = Api(api.url, dict(api.headers, **{"X-PREFECT-CORE-VERSION": "1.4.1"}))
        second = register_agent(other, tenant_id, ["a"])
        assert first != second
        assert row(api, "agent", second, "core_version")["core_version"] == "1.4.1"
        assert register_agent(other, tenant_id, ["a"]) == second


class TestUpdateAgentLastQueried:
    def test_update_agent_last_queried(self, api, tenant_id, agent_id):
        start = pendulum.now("utc")
        api.mutate("get_runs_in_queue", {"tenant_id": tenant_id, "labels": ["foo", "bar"], "agent_id": agent_id},
                   "flow_run_ids")
        last = pendulum.parse(row(api, "agent", agent_id, "last_queried")["last_queried"])
        assert start.subtract(seconds=1) <= last <= pendulum.now("utc")


class TestDeleteAgent:
    def test_delete_agent(self, api, agent_id):
        assert success(api, "delete_agent", {"agent_id": agent_id})
        assert row(api, "agent", agent_id, "id") is None
