"""Fixtures of the parity suite: the API under test and a tenant of the test's own.

PARITY_API_URL=http://host:4200/graphql runs every case against that endpoint (a real Prefect Server
1.4.1 from `docker compose up` with the server profile) instead of a fresh emulator, so the emulator's
picture of Server can be checked against the real thing. Tests make their own tenant (and names made
with `unique`), so they can share one server.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.parity.api import Api, unique
from prefect_emulator.testing import Emulator


@pytest.fixture(scope="session")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint under test: PARITY_API_URL, else one emulator for the whole session."""
    url = os.environ.get("PARITY_API_URL")
    if url:
        yield url
        return
    workdir: Path = tmp_path_factory.mktemp("parity-emulator")
    with Emulator(workdir, heartbeat_timeout=3600) as emulator:
        yield emulator.url + "/graphql"


@pytest.fixture
def api(api_url: str) -> Api:
    """A client of the API under test, with no tenant header (Server's own tests run as admin)."""
    return Api(api_url)


@pytest.fixture
def tenant_id(api: Api) -> str:
    """A new tenant for this test (Server's `tenant_id` fixture)."""
    name = unique("parity")
    return api.mutate("create_tenant", {"name": name, "slug": name})["id"]


@pytest.fixture
def project_id(api: Api, tenant_id: str) -> str:
    """A project in the test's tenant (Server's `project_id` fixture)."""
    return api.mutate("create_project", {"tenant_id": tenant_id, "name": unique("project")})["id"]
