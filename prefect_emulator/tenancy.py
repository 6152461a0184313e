"""Tenants, projects, and the small informational queries (`hello`, `api`, `reference_data`, `auth_info`).

Every resolver takes (ctx, **GraphQL arguments) and returns its payload as a dict; schema.py runs each
mutation in one store transaction, so a refusal (ApiError) leaves nothing half-written.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import prefect
import slugify

from .context import RequestContext, default_tenant_id, require
from .errors import ApiError
from .states import state_hierarchy


def _check_slug(ctx: RequestContext, slug: str, tenant_id: Any = None) -> None:
    """Server's slug rules: it must equal its slugified form, and no other tenant may have it."""
    if not slug or slug != slugify.slugify(slug):
        raise ApiError(f'Slug must be "slugified" (lowercase; no spaces): {slug!r} could be '
                       f'{slugify.slugify(slug)!r}.')
    if any(t["slug"] == slug and t["id"] != tenant_id for t in ctx.store.all("tenant")):
        raise ApiError("Uniqueness violation.")


def create_tenant(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_tenant: a tenant with a unique, slugified slug; returns {id}."""
    name, slug = input["name"].strip(), input["slug"]
    if not name:
        raise ApiError("A tenant needs a non-empty name.")
    _check_slug(ctx, slug)
    row = ctx.store.insert("tenant", {"name": name, "slug": slug, "info": {}, "settings": {}})
    return {"id": row["id"]}


def update_tenant_name(ctx: RequestContext, input: dict) -> dict:
    """Mutation update_tenant_name: "Update failed." for an unknown tenant, as on Server."""
    if ctx.store.get("tenant", input["tenant_id"]) is None:
        raise ApiError("Update failed.")
    ctx.store.update("tenant", input["tenant_id"], name=input["name"])
    return {"id": input["tenant_id"]}


def update_tenant_slug(ctx: RequestContext, input: dict) -> dict:
    """Mutation update_tenant_slug: a slugified slug no other tenant has."""
    _check_slug(ctx, input["slug"], input["tenant_id"])
    if ctx.store.get("tenant", input["tenant_id"]) is None:
        raise ApiError("Update failed.")
    ctx.store.update("tenant", input["tenant_id"], slug=input["slug"])
    return {"id": input["tenant_id"]}


def update_tenant_settings(ctx: RequestContext, input: dict) -> dict:
    """Mutation update_tenant_settings: merges the given keys into the tenant's settings (Server's update)."""
    tenant = ctx.store.get("tenant", input["tenant_id"])
    if tenant is None:
        raise ApiError(f"Invalid tenant id. Tenant {input['tenant_id']} does not exist.")
    ctx.store.update("tenant", tenant["id"], settings=dict(tenant["settings"] or {}, **(input.get("settings") or {})))
    return {"id": tenant["id"]}


def delete_tenant(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_tenant (the UI's Team settings): needs confirm; deletes the tenant and every row of it,
    as Postgres cascades do on Server; success false for an unknown tenant."""
    if not input.get("confirm"):
        raise ApiError("Must pass `confirm=True` to proceed.")
    if ctx.store.get("tenant", input["tenant_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.delete("tenant", input["tenant_id"])
    return {"success": True, "error": None}


def create_project(ctx: RequestContext, input: dict) -> dict:
    """Mutation create_project: a project with a name unique in its tenant; returns {id}."""
    require(ctx, "tenant", input["tenant_id"], "tenant")
    name = input["name"].strip()
    if not name:
        raise ApiError("A project needs a non-empty name.")
    if any(p["tenant_id"] == input["tenant_id"] and p["name"] == name for p in ctx.store.all("project")):
        # prefect's Client.create_project looks for exactly this text to treat the project as existing
        raise ApiError("Uniqueness violation.")
    row = ctx.store.insert("project", {"tenant_id": input["tenant_id"], "name": name,
                                       "description": input.get("description")})
    return {"id": row["id"]}


def delete_project(ctx: RequestContext, input: dict) -> dict:
    """Mutation delete_project: deletes a project with its flows and their runs (success false if unknown)."""
    if ctx.store.get("project", input["project_id"]) is None:
        return {"success": False, "error": None}
    ctx.store.delete("project", input["project_id"])
    return {"success": True, "error": None}


def _update_project(column: str) -> Callable:
    def resolve(ctx: RequestContext, input: dict) -> dict:
        project = ctx.store.get("project", input["project_id"])
        if project is None:
            raise ApiError("Update failed")  # Server's text for an unknown project
        if column == "name" and any(p["tenant_id"] == project["tenant_id"] and p["name"] == input["name"]
                                    and p["id"] != project["id"] for p in ctx.store.all("project")):
            raise ApiError("Uniqueness violation.")
        ctx.store.update("project", project["id"], **{column: input.get(column)})
        return {"id": project["id"]}
    return resolve


def hello(ctx: RequestContext) -> str:
    """Query hello: the liveness probe prefect's agents send."""
    return "👋"


def api(ctx: RequestContext) -> dict:
    """Query api: backend and version information."""
    return {"backend": "SERVER", "mode": "normal", "version": "core-1.4.1-emulator",
            "core_version": prefect.__version__, "release_timestamp": None}


def reference_data(ctx: RequestContext) -> dict:
    """Query reference_data: prefect's state classes as Server answers it (the UI reads it): state_hierarchy maps
    each state to itself and every state class derived from it (Success -> Success, Skipped, Mapped, Cached),
    state_info gives each state's color."""
    from prefect.engine import state as states
    classes = [v for v in vars(states).values() if isinstance(v, type) and issubclass(v, states.State)]
    info = {cls.__name__: {"color": cls.color} for cls in classes}
    return {"state_hierarchy": state_hierarchy(), "state_info": info}


def auth_info(ctx: RequestContext) -> dict:
    """Query auth_info: the tenant of the API key (Prefect Cloud clients ask it at login)."""
    # reached only by authenticated requests (server.py refuses the others before execution). A Prefect
    # Cloud key always belongs to a tenant, and `prefect server create-tenant` refuses to run against the
    # cloud backend, so the first key login gets a tenant made for it.
    if not ctx.store.all("tenant"):
        ctx.store.insert("tenant", {"name": "default", "slug": "default", "info": {}, "settings": {}})
    return {"tenant_id": default_tenant_id(ctx), "user_id": None, "api_token_scope": None}


RESOLVERS: Dict[str, Callable] = {
    "create_tenant": create_tenant,
    "update_tenant_name": update_tenant_name,
    "update_tenant_slug": update_tenant_slug,
    "update_tenant_settings": update_tenant_settings,
    "delete_tenant": delete_tenant,
    "create_project": create_project,
    "delete_project": delete_project,
    "set_project_name": _update_project("name"),
    "set_project_description": _update_project("description"),
    "hello": hello,
    "api": api,
    "reference_data": reference_data,
    "auth_info": auth_info,
}
