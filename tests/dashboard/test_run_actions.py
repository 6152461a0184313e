"""The Flow run page's actions: Cancel of a long run, Restart of a failed run to Success (from its failed
task runs), Mark as, and rename; and its live parts: task runs with mapped children, logs that grow within
2 s, the level filter, the search and the download."""
from __future__ import annotations

import json
import time

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from dashboard.testing.browser import wait_for
from dashboard.testing.pages import click_link, log_messages, press, run_state, wait_for_log, wait_for_state
from dashboard.testing.processes import World

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def probe_run(world: World, browser, **parameters) -> str:
    """Runs dashboard-probe with `parameters` from its Run form; returns the run id (the browser is on its page)."""
    browser.get(world.dashboard.url + "/projects")
    click_link(browser, "My Tests")
    click_link(browser, "dashboard-probe")
    box = browser.find_element(By.ID, "run-parameters")
    box.clear()
    box.send_keys(json.dumps(parameters))
    press(browser, "Run")
    return browser.current_url.rsplit("/", 1)[1]


def test_cancel_stops_a_long_run(browser, world: World) -> None:
    probe_run(world, browser, seconds=120)
    wait_for_state(browser, ["Running"], timeout=60)
    # new log lines reach the open page without a reload (the run logs one a second). How soon is a figure of
    # the dashboard benchmark (its page polls once a second), not a timed assertion: a loaded machine delays it
    wait_for_log(browser, "working, second 1", timeout=30)
    seen = len(log_messages(browser))
    wait_for(lambda: len(log_messages(browser)) > seen, 30, "a new log line on the open page")
    press(browser, "Cancel")
    assert "Cancel requested." in browser.find_element(By.TAG_NAME, "main").text
    wait_for_state(browser, ["Cancelled"], timeout=60)


def test_restart_takes_a_failed_run_to_success(browser, world: World) -> None:
    marker = world.workdir / f"fail-once-{time.monotonic_ns()}"
    run_id = probe_run(world, browser, fail_once=str(marker))
    wait_for_state(browser, ["Failed"], timeout=90)
    tasks = browser.find_element(By.ID, "run-tasks").text
    assert "square" in tasks and "3 (3 Success)" in tasks, tasks  # mapped children counted
    press(browser, "Restart")
    assert "Flow run restarted." in browser.find_element(By.TAG_NAME, "main").text
    wait_for_state(browser, ["Success"], timeout=90)
    states = world.graphql("query($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}}) { task { name } map_index "
                           "states(order_by: {timestamp: asc}) { state } } }", {"id": run_id})["task_run"]
    by_task = {(t["task"]["name"], t["map_index"]): [s["state"] for s in t["states"]] for t in states}
    assert "Pending" in by_task[("work", -1)], by_task  # the failed task was restarted...
    assert by_task[("square", 0)].count("Success") == 1, by_task  # ...a successful mapped child was not


def test_mark_as_and_rename(browser, world: World) -> None:
    run_id = probe_run(world, browser)
    wait_for_state(browser, ["Success"], timeout=90)
    Select(browser.find_element(By.ID, "mark-as")).select_by_visible_text("Failed")
    press(browser, "Mark as")
    assert run_state(browser) == "Failed"
    name = browser.find_element(By.ID, "rename")
    name.clear()
    name.send_keys("renamed-by-the-dashboard")
    press(browser, "Rename")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Flow run renamed-by-the-dashboard"
    run = world.graphql("query($id: uuid!) { flow_run_by_pk(id: $id) { name state states { state message } } }",
                        {"id": run_id})["flow_run_by_pk"]
    assert run["name"] == "renamed-by-the-dashboard" and run["state"] == "Failed"
    assert {"state": "Failed", "message": "marked Failed from the dashboard"} in run["states"]


def test_log_filter_search_and_download(browser, world: World) -> None:
    run_id = probe_run(world, browser, seconds=2)
    wait_for_state(browser, ["Success"], timeout=90)
    wait_for_log(browser, "work done", timeout=30)
    Select(browser.find_element(By.ID, "log-level")).select_by_value("WARNING")
    wait_for(lambda: not any("work done" in m for m in log_messages(browser)), 5, "INFO lines filtered out")
    Select(browser.find_element(By.ID, "log-level")).select_by_value("")
    browser.find_element(By.ID, "log-search").send_keys("second 1")
    wait_for(lambda: log_messages(browser) == ["working, second 1"], 5, "only the line searched for")
    download = requests.get(f"{world.dashboard.url}/flow-run/{run_id}/logs.txt", params={"q": "working"},
                            cookies={c["name"]: c["value"] for c in browser.get_cookies()}, timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    lines = download.text.splitlines()
    assert len(lines) == 2 and lines[0].endswith("| working, second 0") and "INFO" in lines[0], lines
