"""Informational queries: Prefect Server's tests/graphql/queries/test_reference.py and test_api.py, over HTTP.

Ported: all 3 cases of test_reference.py (state_hierarchy maps a state to every state class derived from it;
state_info gives prefect's colors), and 3 of the 8 cases of test_api.py (backend, mode, and core_version
being prefect's own version when PREFECT_CORE_VERSION is unset).
Left out (5 of test_api.py): the cases that set PREFECT_CORE_VERSION, PREFECT_SERVER_VERSION or
RELEASE_TIMESTAMP in the server process, and the one comparing `version` with prefect_server.__version__
(a package this project does not have).
"""
from __future__ import annotations

import prefect
import pytest


@pytest.mark.parametrize("case", ["test_unauthenticated", "test_state_hierarchy"])
def test_state_hierarchy(api, case):
    hierarchy = api.data("query { reference_data { state_hierarchy } }")["reference_data"]["state_hierarchy"]
    for name in hierarchy:
        assert issubclass(getattr(prefect.engine.state, name), prefect.engine.state.State)
    assert set(hierarchy["Success"]) == {"Success", "Skipped", "Mapped", "Cached"}


def test_state_info(api):
    info = api.data("query { reference_data { state_info } }")["reference_data"]["state_info"]
    assert info
    for name, entry in info.items():
        assert getattr(prefect.engine.state, name).color == entry["color"]


def test_api_backend_mode_and_core_version(api):
    # Server: test_backend, test_mode, test_core_version_uses_dunder_if_no_env_var
    answer = api.data("query { api { backend mode version core_version release_timestamp } }")["api"]
    assert (answer["backend"], answer["mode"], answer["core_version"]) == ("SERVER", "normal", prefect.__version__)
