"""The Dashboard page: runs by state, an upcoming run whose labels no live agent covers flagged with the
missing labels and the command that starts such an agent, and the agents with their last poll."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from dashboard.testing.processes import World
from tests.dashboard.world import register_flow

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_upcoming_run_no_live_agent_covers_is_flagged_with_the_fix(browser, world: World) -> None:
    flow_id = register_flow(world, "unserved-probe", ["unserved-label"])
    world.graphql("mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }",
                  {"input": {"flow_id": flow_id, "flow_run_name": "waits-for-an-agent", "labels": ["unserved-label"],
                             "scheduled_start_time": "2000-01-01T00:00:00+00:00"}})
    browser.get(world.dashboard.url + "/")
    upcoming = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=upcoming]")
    row = next(r for r in upcoming.find_elements(By.TAG_NAME, "tr") if "waits-for-an-agent" in r.text)
    assert "Late" in row.text  # scheduled in the past and still Scheduled
    warning = row.find_element(By.CSS_SELECTOR, ".agent-mismatch").text
    assert "No live agent covers this run's labels: missing unserved-label." in warning
    assert "python -m agents start --label unserved-label" in warning
    summary = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=summary]").text
    assert "Scheduled" in summary and "Success" in summary
    agents = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=agents]").text
    assert "flow-test-hello-agent" in agents and " s ago" in agents
