"""Projects (create, delete with a confirmation) and the schedule toggle with its time zone."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pendulum
import pytest
from selenium.webdriver.common.by import By

from dashboard.testing.pages import click_link, press
from dashboard.testing.processes import World
from tests.dashboard.world import register_flow

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_create_and_delete_a_project(browser, world: World) -> None:
    name = f"project-{uuid.uuid4().hex[:6]}"
    browser.get(world.dashboard.url + "/projects")
    browser.find_element(By.ID, "project-name").send_keys(name)
    press(browser, "Create")
    assert f"Project {name} created." in browser.find_element(By.TAG_NAME, "main").text
    projects = lambda: {p["name"] for p in world.graphql("query { project { name } }")["project"]}  # noqa: E731
    assert name in projects()
    click_link(browser, f"Delete {name}")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Delete project {name}?"
    browser.find_element(By.ID, "confirm").send_keys("not its name")
    press(browser, "Delete")
    assert "Type the project's name to confirm" in browser.find_element(By.TAG_NAME, "main").text
    assert name in projects()
    browser.find_element(By.ID, "confirm").send_keys(name)
    press(browser, "Delete")
    assert f"Project {name} deleted." in browser.find_element(By.TAG_NAME, "main").text
    assert name not in projects()


def test_the_schedule_toggle_shows_the_time_zone_and_turns_the_schedule_off_and_on(browser, world: World) -> None:
    from prefect.schedules import IntervalSchedule

    schedule = IntervalSchedule(start_date=pendulum.datetime(2030, 1, 1, 6, tz="Europe/Lisbon"),
                                interval=timedelta(hours=6))
    flow_id = register_flow(world, "scheduled-probe", ["nobody-runs-this"], schedule=schedule)
    active = lambda: world.graphql("query($id: uuid!) { flow_by_pk(id: $id) { is_schedule_active } }",  # noqa: E731
                                   {"id": flow_id})["flow_by_pk"]["is_schedule_active"]
    assert active()
    browser.get(world.dashboard.url + "/projects")
    click_link(browser, "My Tests")
    row = 'tr[data-flow="scheduled-probe"]'
    assert "every 6h (Europe/Lisbon)" in browser.find_element(By.CSS_SELECTOR, row).text
    press(browser, "Schedule on", row)
    assert "Schedule turned off." in browser.find_element(By.TAG_NAME, "main").text
    assert not active()
    press(browser, "Schedule off", row)
    assert "Schedule turned on." in browser.find_element(By.TAG_NAME, "main").text
    assert active()
