"""The tutorial's walk in the dashboard: Dashboard, the project "My Tests", flow-test-hello, Quick Run,
and the run page reaching Success with the log line "Test Hello, Cloud!", all without reloading."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from dashboard.testing.pages import click_link, log_messages, press, run_id_of, wait_for_log, wait_for_state
from dashboard.testing.processes import World

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def walk_the_tutorial(browser, base_url: str) -> str:
    """Dashboard -> Projects -> My Tests -> Quick Run on flow-test-hello -> Success and the greeting.

    Returns:
        The run's id.
    """
    browser.get(base_url + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Dashboard"
    click_link(browser, "Projects")
    click_link(browser, "My Tests")
    assert browser.find_element(By.TAG_NAME, "h1").text == "My Tests: Flows"
    press(browser, "Quick Run", 'tr[data-flow="flow-test-hello"]')
    run_id = run_id_of(browser)
    page = browser.execute_script("return window.performance.timeOrigin")
    wait_for_state(browser, ["Success"], timeout=90)
    wait_for_log(browser, "Test Hello, Cloud!", timeout=30)
    # the same document all along: the script updated it, nobody reloaded it
    assert browser.execute_script("return window.performance.timeOrigin") == page
    return run_id


def test_quick_run_of_flow_test_hello_reaches_success_with_its_greeting(browser, world: World) -> None:
    run_id = walk_the_tutorial(browser, world.dashboard.url)
    run = world.graphql("query($id: uuid!) { flow_run_by_pk(id: $id) { state flow { name } agent_id } }",
                        {"id": run_id})["flow_run_by_pk"]
    assert run["state"] == "Success" and run["flow"]["name"] == "flow-test-hello"
    assert run["agent_id"], "the run page's agent comes from the API's flow_run.agent_id"
    assert "flow-test-hello" in browser.find_element(By.ID, "run-summary").text
    assert any("Test Hello, Cloud!" in m for m in log_messages(browser))
