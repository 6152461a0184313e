"""Tenants: Prefect Server's tests/api/test_tenants.py, sent as the GraphQL mutations that run it.

Server has no tests/graphql/test_tenants.py; its api cases go through the tenant mutations here
(create_tenant, update_tenant_name/slug/settings, delete_tenant). Ported: 13 of the 17 cases (16
definitions). Names and
slugs are made unique per test so the suite can share one real Server.
Left out (4): test_create_tenant_with_default_slug and _fails_with_duplicate_default_slug (the GraphQL
create_tenant_input requires a slug, so the default is unreachable), and test_delete_tenant_fails_if_none
(2: GraphQL refuses a null or empty UUID! before Server's code runs).
Added from Server's resolver (graphql/tenants.py): delete_tenant without confirm is refused.
"""
from __future__ import annotations

import uuid

import pytest

from tests.parity.api import unique
from tests.parity.flows_setup import row, success

DELETE = "mutation($input: delete_tenant_input!) { delete_tenant(input: $input) { success } }"


def tenant(api, tenant_id: str) -> dict:
    return row(api, "tenant", tenant_id, "id name slug settings")


class TestCreateTenant:
    def test_create_tenant_stores_attributes(self, api):
        # Server: test_create_tenant, test_create_tenant_stores_attributes
        name, slug = str(uuid.uuid4()), str(uuid.uuid4())
        tid = api.mutate("create_tenant", {"name": name, "slug": slug})["id"]
        assert tenant(api, tid) == {"id": tid, "name": name, "slug": slug, "settings": {}}

    def test_create_tenant_fails_with_duplicate_slug(self, api):
        slug = unique("slug")
        api.mutate("create_tenant", {"name": "hi", "slug": slug})
        message = api.error("mutation($input: create_tenant_input!) { create_tenant(input: $input) { id } }",
                            {"input": {"name": "hi again", "slug": slug}})
        assert "Uniqueness violation" in message

    @pytest.mark.parametrize("slug", ["hello there", "Hello", "hello_there"])
    def test_create_tenant_with_complex_slug_fails(self, api, slug):
        message = api.error("mutation($input: create_tenant_input!) { create_tenant(input: $input) { id } }",
                            {"input": {"name": unique("name"), "slug": slug}})
        assert 'Slug must be "slugified"' in message


class TestTenantSettings:
    def test_update_settings(self, api, tenant_id):
        assert tenant(api, tenant_id)["settings"] == {}
        assert api.mutate("update_tenant_settings", {"tenant_id": tenant_id, "settings": {"x": "y"}})["id"] == tenant_id
        assert tenant(api, tenant_id)["settings"] == {"x": "y"}

    def test_update_settings_without_overwriting(self, api, tenant_id):
        api.mutate("update_tenant_settings", {"tenant_id": tenant_id, "settings": {"x": "y"}})
        api.mutate("update_tenant_settings", {"tenant_id": tenant_id, "settings": {"a": "b"}})
        assert tenant(api, tenant_id)["settings"] == {"x": "y", "a": "b"}

    def test_update_settings_with_bad_tenant_id(self, api):
        message = api.error("mutation($input: update_tenant_settings_input!) { update_tenant_settings(input: $input) "
                            "{ id } }", {"input": {"tenant_id": str(uuid.uuid4()), "settings": {"a": "b"}}})
        assert "Invalid tenant id" in message


class TestUpdateTenantNameAndSlug:
    def test_tenant_name(self, api, tenant_id):
        assert api.mutate("update_tenant_name", {"tenant_id": tenant_id, "name": "new name"})["id"] == tenant_id
        assert tenant(api, tenant_id)["name"] == "new name"

    def test_tenant_slug(self, api, tenant_id):
        slug = unique("new-slug")
        assert api.mutate("update_tenant_slug", {"tenant_id": tenant_id, "slug": slug})["id"] == tenant_id
        assert tenant(api, tenant_id)["slug"] == slug

    def test_invalid_tenant_slug_fails(self, api, tenant_id):
        before = tenant(api, tenant_id)["slug"]
        message = api.error("mutation($input: update_tenant_slug_input!) { update_tenant_slug(input: $input) { id } }",
                            {"input": {"tenant_id": tenant_id, "slug": "new slug"}})
        assert 'Slug must be "slugified"' in message
        assert tenant(api, tenant_id)["slug"] == before

    def test_duplicate_slug_fails(self, api, tenant_id):
        before = tenant(api, tenant_id)["slug"]
        taken = unique("a-new-slug")
        api.mutate("create_tenant", {"name": "a new tenant", "slug": taken})
        message = api.error("mutation($input: update_tenant_slug_input!) { update_tenant_slug(input: $input) { id } }",
                            {"input": {"tenant_id": tenant_id, "slug": taken}})
        assert "Uniqueness violation" in message
        assert tenant(api, tenant_id)["slug"] == before


class TestDeleteTenant:
    def test_delete_tenant(self, api, tenant_id):
        assert success(api, "delete_tenant", {"tenant_id": tenant_id, "confirm": True}) is True
        assert row(api, "tenant", tenant_id, "id") is None

    def test_delete_tenant_fails_with_invalid_id(self, api):
        assert success(api, "delete_tenant", {"tenant_id": str(uuid.uuid4()), "confirm": True}) is False

    def test_delete_tenant_needs_confirm(self, api, tenant_id):
        message = api.error(DELETE, {"input": {"tenant_id": tenant_id, "confirm": False}})
        assert "Must pass `confirm=True` to proceed." in message
        assert row(api, "tenant", tenant_id, "id")
