"""Projects: Prefect Server's tests/graphql/test_projects.py and tests/api/test_projects.py, over HTTP.

Ported: all 10 cases of tests/graphql/test_projects.py and 13 of the 19 cases (16 definitions) of
tests/api/test_projects.py.
The api cases where Server's Python function answers False for an unknown id are sent as the mutation, whose
resolver turns False into "Update failed" (set_project_name/description) or success: false (delete_project).
Project deletes Server's api tests do in the database are sent as delete_project / delete_tenant.
Left out (6): the three "fails if none" cases, each for None and "": GraphQL refuses a null or empty
UUID! before Server's code runs.
"""
from __future__ import annotations

import uuid

import pytest

from tests.parity.flows_setup import delete_tenant_removes, flow_id, new_tenant, row, success  # noqa: F401

CREATE = "mutation($input: create_project_input!) { create_project(input: $input) { id } }"


class TestCreateProject:
    def test_create_project(self, api, tenant_id):
        pid = api.mutate("create_project", {"tenant_id": tenant_id, "name": "test-gql"})["id"]
        assert row(api, "project", pid, "name")["name"] == "test-gql"

    def test_create_project_with_description(self, api, tenant_id):
        pid = api.mutate("create_project", {"tenant_id": tenant_id, "name": "test-gql",
                                            "description": "test-description"})["id"]
        assert row(api, "project", pid, "name description") == {"name": "test-gql", "description": "test-description"}

    def test_create_project_with_duplicate_name(self, api, tenant_id):
        api.mutate("create_project", {"tenant_id": tenant_id, "name": "test-gql"})
        answer = api.post(CREATE, {"input": {"tenant_id": tenant_id, "name": "test-gql"}})
        assert answer["data"]["create_project"] is None
        assert "Uniqueness violation" in answer["errors"][0]["message"]

    def test_same_project_name_in_multiple_tenants(self, api, tenant_id):
        tenants = (tenant_id, new_tenant(api))
        ids = [api.mutate("create_project", {"tenant_id": t, "name": "test"})["id"] for t in tenants]
        assert all(row(api, "project", i, "id") for i in ids)


class TestDeleteProject:
    def test_delete_project(self, api, project_id):
        assert success(api, "delete_project", {"project_id": project_id})
        assert row(api, "project", project_id, "id") is None

    def test_delete_project_bad_id(self, api, project_id):
        assert success(api, "delete_project", {"project_id": str(uuid.uuid4())}) is False
        assert row(api, "project", project_id, "id")

    def test_delete_tenant_deletes_project(self, api, tenant_id, project_id):
        delete_tenant_removes(api, tenant_id, "project", project_id)

    def test_delete_project_does_not_delete_tenant(self, api, tenant_id, project_id):
        assert success(api, "delete_project", {"project_id": project_id})
        assert row(api, "tenant", tenant_id, "id")

    def test_delete_project_deletes_flow(self, api, project_id, flow_id):
        assert success(api, "delete_project", {"project_id": project_id})
        assert row(api, "flow", flow_id, "id") is None


class TestSetProjectNameAndDescription:
    def test_set_project_name(self, api, project_id):
        assert api.mutate("set_project_name", {"project_id": project_id, "name": "foo-bar"})["id"] == project_id
        assert row(api, "project", project_id, "name")["name"] == "foo-bar"

    def test_set_project_description(self, api, project_id):
        payload = api.mutate("set_project_description", {"project_id": project_id, "description": "foo-bar"})
        assert payload["id"] == project_id
        assert row(api, "project", project_id, "description")["description"] == "foo-bar"

    @pytest.mark.parametrize("mutation, value", [("set_project_name", {"name": "foo-bar"}),
                                                 ("set_project_description", {"description": "foo-bar"})])
    def test_with_bad_project_id(self, api, mutation, value):
        # Server: test_set_project_{name,description}_with_bad_project_id (graphql) and
        # test_set_project_{name,description}_fails_with_invalid_id (api)
        message = api.error(f"mutation($input: {mutation}_input!) {{ {mutation}(input: $input) {{ id }} }}",
                            {"input": dict(value, project_id=str(uuid.uuid4()))})
        assert "Update failed" in message

    def test_update_project_to_already_used_name_fails(self, api, project_id, tenant_id):
        api.mutate("create_project", {"tenant_id": tenant_id, "name": "test-gql"})
        answer = api.post("mutation($input: set_project_name_input!) { set_project_name(input: $input) { id } }",
                          {"input": {"project_id": project_id, "name": "test-gql"}})
        assert not (answer.get("data") or {}).get("set_project_name")
        assert "Uniqueness violation" in answer["errors"][0]["message"]
