"""One blueprint per area of the dashboard, named after Prefect UI 1.x's Server pages."""
from __future__ import annotations

from typing import Any, Dict, Optional

from flask import current_app


def gql(query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Runs a GraphQL operation against the dashboard's API (see dashboard.api)."""
    return current_app.extensions["graphql"](query, variables)


def tenant_id() -> str:
    """The tenant new projects go to, found as prefect's Client finds it: the API key's tenant
    (`auth_info`), else Server's first tenant.

    Raises:
        ApiError: the API has no tenant yet (the message says how to make one).
    """
    from dashboard.api import ApiError

    if current_app.config["DASHBOARD"].api_key:
        found = (gql("query AuthInfo { auth_info { tenant_id } }").get("auth_info") or {}).get("tenant_id")
    else:
        tenants = gql("query Tenants { tenant { id } }")["tenant"]
        found = tenants[0]["id"] if tenants else None
    if not found:
        raise ApiError("the API has no tenant yet: run `python -m agents init` (or `prefect server create-tenant "
                       "--name default`) first")
    return found
