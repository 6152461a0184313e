"""Fixtures of the dashboard's browser tests: one world (emulator, agents, dashboard) per package, and the
dashboard's log in the report of a failing test (the browser and its screenshots: tests/conftest.py)."""
from __future__ import annotations

from typing import Iterator

import pytest

from dashboard.testing.processes import World
from tests.dashboard.world import browser_world


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The emulator, "My Tests" with flow-test-hello, etl-seattle-weather and dashboard-probe served by real
    agents, and the dashboard: shared by the package's tests, which keep apart by their own runs."""
    world = browser_world(tmp_path_factory.mktemp("dashboard-world"))
    try:
        yield world.start()
    finally:
        world.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing test's report gets the end of the world's dashboard log."""
    outcome = yield
    report = outcome.get_result()
    world = getattr(item, "funcargs", {}).get("world")
    if report.when == "call" and report.failed and world is not None and world.dashboard is not None:
        report.sections.append(("dashboard log (end)", "\n".join(world.dashboard.log().splitlines()[-40:])))
