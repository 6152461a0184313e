"""The API connection: waiting until the orchestrator answers, the tenant (server backend), the projects."""
from __future__ import annotations

import time
from typing import Callable, Iterable, List, Optional

import requests

from agents.errors import UserError

# Backoff between attempts: starts small so a local API is found fast, caps so the bound is respected.
FIRST_DELAY = 0.25
MAX_DELAY = 5.0


def wait_for_api(url: str, timeout: float, echo: Optional[Callable[[str], None]] = None) -> int:
    """Waits until the GraphQL API at `url` answers an HTTP request, with bounded retries and backoff.

    Any HTTP answer below 500 counts: the API process is up (authentication is checked later by
    the real calls), except 404: a wrong path, an error at once. Connection errors, timeouts and 5xx
    (e.g. Apollo up before Hasura) are retried.

    Args:
        url: the GraphQL endpoint
        timeout: the total time to keep trying, in seconds (at least one attempt is made)
        echo: called with a progress line after each failed attempt

    Returns:
        The number of attempts it took.

    Raises:
        UserError: no answer within `timeout`, or HTTP 404 (no API at that path); the message names the URL
            and what to check.
    """
    deadline = time.monotonic() + timeout
    delay = FIRST_DELAY
    attempt = 0
    while True:
        attempt += 1
        try:
            response = requests.post(url, json={"query": "query { hello }"}, timeout=5)
            if response.status_code == 404:
                # something answers, but not GraphQL at this path: waiting longer cannot help
                raise UserError(
                    f"the Prefect API URL {url} answers HTTP 404 (no GraphQL API at that path): fix the path in "
                    "PREFECT__SERVER__ENDPOINT (server backend, e.g. http://localhost:4200) or PREFECT__CLOUD__API "
                    "(e.g. https://api.prefect.io), in env/local.env or the environment"
                )
            if response.status_code < 500:
                return attempt
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UserError(
                f"the Prefect API at {url} did not answer after {attempt} attempts in {timeout:g}s "
                f"(last: {last}): start it (e.g. `docker compose up`) or point PREFECT__SERVER__ENDPOINT "
                "(server backend) / PREFECT__CLOUD__API at it in env/local.env"
            )
        if echo is not None:
            echo(f"waiting for the Prefect API at {url} (attempt {attempt}: {last}); retrying in {delay:g}s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)


def ensure_tenant(client: "object", backend: str) -> Optional[str]:
    """On the server backend, creates the tenant when the server has none (as `prefect server start` does).

    Args:
        client: a prefect Client
        backend: "server" or "cloud"

    Returns:
        The id of a tenant created now, or None when one existed (or on cloud, where tenants are accounts).
    """
    from prefect.exceptions import ClientError

    if backend != "server":
        return None
    if client.get_available_tenants():  # type: ignore[attr-defined]
        return None
    try:
        return client.create_tenant(name="default", slug="default")  # type: ignore[attr-defined]
    except ClientError:
        # Services started together race to create it: a lost race leaves a tenant, which is all we need.
        if client.get_available_tenants():  # type: ignore[attr-defined]
            return None
        raise


def existing_projects(client: "object", names: Iterable[str]) -> List[str]:
    """Returns which of `names` exist as projects (the same query `Client.register` makes)."""
    from prefect.utilities.graphql import with_args

    found = []
    for name in sorted(set(names)):
        query = {"query": {with_args("project", {"where": {"name": {"_eq": name}}}): {"id": True}}}
        if client.graphql(query).data.project:  # type: ignore[attr-defined]
            found.append(name)
    return found


def ensure_projects(client: "object", names: Iterable[str]) -> List[str]:
    """Creates the projects that do not exist yet.

    Args:
        client: a prefect Client
        names: project names

    Returns:
        The projects created now (prefect's `create_project` re-reads a project another process created
        meanwhile, so a lost race is not an error).
    """
    wanted = sorted(set(names))
    have = set(existing_projects(client, wanted))
    created = []
    for name in wanted:
        if name not in have:
            client.create_project(project_name=name)  # type: ignore[attr-defined]
            created.append(name)
    return created

