"""A GraphQL client for the parity suite: the same HTTP requests a Prefect client or the UI sends."""
from __future__ import annotations

import json
import uuid
from typing import Any, Dict, List, Optional

import requests


class GraphQLFailed(AssertionError):
    """The answer carried GraphQL errors where the test expected data."""


class Api:
    """One GraphQL endpoint (the emulator, or a real Prefect Server given by PARITY_API_URL).

    Args:
        url: the GraphQL endpoint, e.g. http://127.0.0.1:4200/graphql
        headers: headers sent with every request (an API key, a tenant id)
    """

    def __init__(self, url: str, headers: Optional[Dict[str, str]] = None) -> None:
        self.url = url
        self.headers = dict(headers or {})

    def post(self, query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Sends one operation and returns the whole decoded answer (`data` and/or `errors`)."""
        response = requests.post(self.url, json={"query": query, "variables": variables or {}},
                                 headers=self.headers, timeout=30)
        return response.json()

    def data(self, query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Sends one operation and returns its `data`; any GraphQL error fails the test with the message."""
        answer = self.post(query, variables)
        if answer.get("errors"):
            raise GraphQLFailed(json.dumps(answer["errors"], indent=1)[:2000])
        return answer["data"]

    def error(self, query: str, variables: Optional[Dict[str, Any]] = None) -> str:
        """Sends one operation that must fail and returns its first error message."""
        answer = self.post(query, variables)
        errors: List[dict] = answer.get("errors") or []
        if not errors:
            raise AssertionError(f"expected a GraphQL error, got data {answer.get('data')!r}")
        return str(errors[0].get("message", ""))

    def mutate(self, name: str, input: Dict[str, Any], fields: str = "id") -> Any:
        """Runs `mutation($input: <name>_input!) { name(input: $input) { fields } }` (Server's own
        mutations all take one `input` argument of type `<name>_input`) and returns its payload."""
        query = f"mutation($input: {name}_input!) {{ {name}(input: $input) {{ {fields} }} }}"
        return self.data(query, {"input": input})[name]


def unique(prefix: str) -> str:
    """A name no other test uses (tests share one API when PARITY_API_URL points at a real server)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
