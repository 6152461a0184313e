"""The parity suite's own plumbing: the API answers and a tenant and project can be made."""
from __future__ import annotations


def test_a_project_created_in_a_new_tenant_is_found_by_id(api, tenant_id, project_id):
    data = api.data("query($id: uuid!) { project(where: {id: {_eq: $id}}) { id tenant_id } }", {"id": project_id})
    assert data["project"] == [{"id": project_id, "tenant_id": tenant_id}]


def test_an_unknown_field_is_a_graphql_error_naming_it(api):
    assert "no_such_field" in api.error("query { no_such_field }")
