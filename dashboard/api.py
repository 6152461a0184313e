"""The dashboard's only way to its data: the Prefect Server GraphQL API (what agents and the CLI use).

Plain `requests` posts to the endpoint, so the same code runs in front of the emulator, a real Prefect
Server 1.4.1, or Prefect Cloud (with an API key). The key goes only into the Authorization header: it is
never put on a page, in a URL or in a log line (exceptions raised here never quote headers).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import requests

# Seconds one API call may take before the page says the API is down (a page makes a few calls).
REQUEST_TIMEOUT = 10.0


class ApiDown(Exception):
    """The API did not answer (refused, timed out, or not a GraphQL answer)."""


class ApiError(Exception):
    """The API answered with GraphQL errors; the message is the first one."""


class GraphQL:
    """A GraphQL endpoint with an optional bearer key, one pooled HTTP session per process."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._session = requests.Session()
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    def __call__(self, query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Runs one query or mutation and returns its `data`.

        Raises:
            ApiDown: no (GraphQL) answer.
            ApiError: the answer holds errors.
        """
        try:
            resp = self._session.post(self.url, json={"query": query, "variables": variables or {}},
                                      timeout=self.timeout)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise ApiDown(f"the API at {self.url} does not answer ({type(exc).__name__})") from None
        if not isinstance(body, dict):
            raise ApiDown(f"the API at {self.url} did not answer with GraphQL")
        if body.get("errors"):
            raise ApiError(str(body["errors"][0].get("message", body["errors"][0])))
        if resp.status_code >= 400 or body.get("data") is None:
            raise ApiDown(f"the API at {self.url} answered HTTP {resp.status_code}")
        return body["data"]

    def reachable(self) -> bool:
        """True when the endpoint answers a GraphQL request (what /health and the banner report)."""
        try:
            self("query Health { __typename }")
            return True
        except (ApiDown, ApiError):
            return False
