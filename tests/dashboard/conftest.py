"""Fixtures of the dashboard's browser tests: one headless Chromium per session, one world (emulator,
agents, dashboard) per package, and a screenshot plus the page's HTML saved when a browser test fails."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.dashboard.browser import start_browser
from tests.dashboard.servers import World


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    driver = start_browser()
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The emulator, "My Tests" with flow-test-hello, etl-seattle-weather and dashboard-probe served by real
    agents, and the dashboard: shared by the package's tests, which keep apart by their own runs."""
    world = World(tmp_path_factory.mktemp("dashboard-world"),
                  ["flow-test-hello", "etl-seattle-weather", "dashboard-probe"])
    try:
        yield world.start()
    finally:
        world.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing browser test leaves a screenshot and the page's HTML in a temporary folder (named in the report)."""
    outcome = yield
    report = outcome.get_result()
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and driver is not None:
        folder = Path(tempfile.mkdtemp(prefix="dashboard-failure-"))
        try:
            driver.save_screenshot(str(folder / "page.png"))
            (folder / "page.html").write_text(driver.page_source)
            report.sections.append(("dashboard failure", f"screenshot and HTML of {driver.current_url} in {folder}"))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("dashboard failure", f"could not save the page: {exc!r}"))
    world = getattr(item, "funcargs", {}).get("world")
    if report.when == "call" and report.failed and world is not None and world.dashboard is not None:
        report.sections.append(("dashboard log (end)", "\n".join(world.dashboard.log().splitlines()[-40:])))
