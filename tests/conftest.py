"""Fixtures shared by every test: a running emulator, and an environment pointing prefect at it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, Iterator

import pytest

from dashboard.testing.browser import NO_BROWSER, browser_available, start_browser
from prefect_emulator.testing import NO_DOCKER, Emulator, docker_available, prefect_env


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Docker tests skip without a Docker engine, browser tests without Chromium and its chromedriver,
    except in CI, where either missing is a failure."""
    for marker, available, reason in (("docker", docker_available, NO_DOCKER),
                                      ("swarm", docker_available, NO_DOCKER),
                                      ("browser", browser_available, NO_BROWSER)):
        if marker not in item.keywords or available():
            continue
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """A fresh in-memory emulator on a free port, stopped after the test."""
    with Emulator(tmp_path) as emu:
        yield emu


@pytest.fixture
def penv(emulator: Emulator, tmp_path: Path) -> Dict[str, str]:
    """Environment for prefect subprocesses (CLI, agents) pointed at the `emulator` fixture."""
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    return prefect_env(emulator.url, home)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the whole session (dashboard/testing/browser.py)."""
    driver = start_browser()
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


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
            report.sections.append(("browser", f"screenshot and HTML of {driver.current_url} in {folder}"))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("browser", f"could not save the page: {exc!r}"))


# --- two lanes (pytest-xdist, `-n 2 --dist loadgroup`, what .ci/run runs) ----------------------------------
# The tests that run containers spend most of their time waiting on them (stacks coming up, fault bounds
# passing), about one core of the two; so they form one group, run one after the other on one worker (two
# stacks at once would double the load their timings were measured under). The swarm tests stay in it: run
# beside the other lane's busiest minutes, a paused node's runs were presumed dead and a node's engine timed
# out. The browser tests form the second group, sharing one Chromium; every other test goes to whichever
# worker is free (xdist hands the largest group to the first worker, the next largest to the second).
# Without xdist the marks change nothing.
LANES = (("containers", ("docker", "swarm")), ("browser", ("browser",)))
LANE_NAMES = frozenset(name for name, _ in LANES)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(items: list) -> None:
    """Puts each test in the xdist group of its first marker in LANES (a stack test may need the browser too)."""
    for item in items:
        group = next((name for name, markers in LANES if any(m in item.keywords for m in markers)), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


# --- tiers: each tier's time at the end of a run -----------------------------------------------------------
# A test's tier is its first marker among these (else "fast"): `-m "not docker and not slow"` is the fast tier.
TIERS = ("swarm", "docker", "browser", "slow")
_tier_seconds: Dict[str, float] = {}
_tier_counts: Dict[str, int] = {}
_worker_seconds: Dict[str, float] = {}  # under xdist: "gw0 containers", "gw1 ungrouped", ...


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Adds each test's time (setup, call, teardown) to its tier's and, under xdist, to its worker's."""
    name = next((t for t in TIERS if t in report.keywords), "fast")
    _tier_seconds[name] = _tier_seconds.get(name, 0.0) + report.duration
    worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)
    if worker is not None:
        # xdist ends a grouped test's id with "@<group>" (a parameter's id may hold an "@" of its own)
        suffix = report.nodeid.rsplit("@", 1)[-1]
        group = suffix if suffix in LANE_NAMES else "ungrouped"
        key = f"{worker} {group}"
        _worker_seconds[key] = _worker_seconds.get(key, 0.0) + report.duration
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _tier_counts[name] = _tier_counts.get(name, 0) + 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Prints the time of each tier, and under xdist of each worker's groups: the sums of their tests' times."""
    if not _tier_seconds:
        return
    terminalreporter.section("time per tier (sum of the tests' setup, call and teardown)")
    for name in ("fast",) + TIERS:
        if name in _tier_seconds:
            terminalreporter.write_line(f"{name:8} {_tier_counts.get(name, 0):5d} tests  "
                                        f"{_tier_seconds[name] / 60:6.1f} min")
    if _worker_seconds:
        terminalreporter.section("time per worker and group (the lanes)")
        for key in sorted(_worker_seconds):
            terminalreporter.write_line(f"{key:28} {_worker_seconds[key] / 60:6.1f} min")
