"""The Agents page: live agents healthy with their labels, an agent killed without clean-up shown stale by
the rule `python -m agents trigger --wait` warns with (no poll in 60 s), then removed.

The world kills its doomed agent when it starts, so that by the time this module runs (after the others,
by name) most of the 60 s have passed; run alone, it waits for them."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from dashboard.testing.browser import wait_for
from dashboard.testing.pages import press
from dashboard.testing.processes import DOOMED_AGENT, World

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_live_agents_are_healthy_with_their_labels(browser, world: World) -> None:
    browser.get(world.dashboard.url + "/agent")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-agent^="flow-test-hello"]').text
    assert "healthy" in row and "hello" in row


def test_a_killed_agent_is_shown_stale_and_can_be_removed(browser, world: World) -> None:
    row = f'tr[data-agent="{DOOMED_AGENT}"]'

    def shown_stale() -> bool:
        browser.get(world.dashboard.url + "/agent")
        return "stale" in browser.find_element(By.CSS_SELECTOR, row).text
    wait_for(shown_stale, timeout=90, what=f"agent {DOOMED_AGENT} shown stale", poll=2)
    press(browser, f"Remove {DOOMED_AGENT}", row)
    assert f"Agent {DOOMED_AGENT} removed." in browser.find_element(By.TAG_NAME, "main").text
    assert DOOMED_AGENT not in {a["name"] for a in world.graphql("query { agent { name } }")["agent"]}
