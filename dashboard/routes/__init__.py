"""One blueprint per area of the dashboard, named after Prefect UI 1.x's Server pages."""
from __future__ import annotations

from typing import Any, Dict, Optional

from flask import current_app


def gql(query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Runs a GraphQL operation against the dashboard's API (see dashboard.api)."""
    return current_app.extensions["graphql"](query, variables)
