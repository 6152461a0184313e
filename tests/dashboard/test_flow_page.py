"""The Flow page: the Run form for the ETL DAG with parameters (a run made with them, reaching Success), a bad
parameter or bad JSON shown on the form with no run made, and the runs table's state filter and pages."""
from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By

from dashboard.testing.pages import click_link, press, run_id_of, wait_for_state
from dashboard.testing.processes import World

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_COUNT = "query($name: String) { flow_run_aggregate(where: {flow: {name: {_eq: $name}}}) { aggregate { count } } }"


def open_flow(browser, world: World, name: str) -> None:
    browser.get(world.dashboard.url + "/projects")
    click_link(browser, "My Tests")
    click_link(browser, name)
    assert browser.find_element(By.TAG_NAME, "h1").text == name


def fill_run_form(browser, parameters: str, name: str = "") -> None:
    box = browser.find_element(By.ID, "run-parameters")
    box.clear()
    box.send_keys(parameters)
    if name:
        browser.find_element(By.ID, "run-name").send_keys(name)
    press(browser, "Run")


def runs_of(world: World, flow: str) -> int:
    return world.graphql(RUN_COUNT, {"name": flow})["flow_run_aggregate"]["aggregate"]["count"]


def test_the_run_form_starts_the_etl_dag_with_its_parameters(browser, world: World) -> None:
    open_flow(browser, world, "etl-seattle-weather")
    defaults = json.loads(browser.find_element(By.ID, "run-parameters").get_attribute("value"))
    assert defaults == {"input_path": "data/seattle-weather.csv", "output_dir": "data/output/etl-seattle-weather"}
    params = {"input_path": "data/seattle-weather.csv", "output_dir": "data/output/from-the-run-form"}
    fill_run_form(browser, json.dumps(params), name="etl-from-the-form")
    run_id = run_id_of(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Flow run etl-from-the-form"
    wait_for_state(browser, ["Success"], timeout=120)
    run = world.graphql("query($id: uuid!) { flow_run_by_pk(id: $id) { parameters labels name } }",
                        {"id": run_id})["flow_run_by_pk"]
    assert run == {"parameters": params, "labels": ["etl"], "name": "etl-from-the-form"}
    assert (world.workdir / "data" / "output" / "from-the-run-form" / "report.json").is_file()


@pytest.mark.parametrize("parameters, shown", [
    ('{"input_pth": "data/seattle-weather.csv"}', "Unknown parameter(s) input_pth: this flow takes input_path, output_dir."),
    ('{"input_path": ', "Parameters are not valid JSON"),
    ('["data/seattle-weather.csv"]', "Parameters must be a JSON object"),
])
def test_a_bad_parameter_is_shown_on_the_form_and_no_run_is_made(browser, world: World, parameters: str,
                                                                 shown: str) -> None:
    open_flow(browser, world, "etl-seattle-weather")
    before = runs_of(world, "etl-seattle-weather")
    fill_run_form(browser, parameters)
    assert shown in browser.find_element(By.ID, "run-errors").text
    # what the user typed is kept on the form, to be corrected
    assert browser.find_element(By.ID, "run-parameters").get_attribute("value") == parameters
    assert runs_of(world, "etl-seattle-weather") == before


def test_the_runs_table_filters_by_state_and_pages(browser, world: World) -> None:
    flow = world.graphql('query { flow(where: {name: {_eq: "dashboard-probe"}}) { id } }')["flow"][0]
    for i in range(23):  # scheduled far ahead: no agent takes them
        world.graphql("mutation($input: create_flow_run_input!) { create_flow_run(input: $input) { id } }",
                      {"input": {"flow_id": flow["id"], "flow_run_name": f"paged-{i:02d}",
                                 "scheduled_start_time": "2099-01-01T00:00:00+00:00"}})
    open_flow(browser, world, "dashboard-probe")
    browser.find_element(By.CSS_SELECTOR, "#state-filter option[value='Scheduled']").click()
    press(browser, "Filter")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "Runs in state Scheduled, newest first: page 1." in text
    click_link(browser, "Next page")
    assert "page 2 (the last)" in browser.find_element(By.TAG_NAME, "main").text
    assert not browser.find_elements(By.LINK_TEXT, "Next page")
    rows = browser.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=runs] tbody tr")
    assert len(rows) == 3 and all("Scheduled" in row.text for row in rows)
    browser.find_element(By.CSS_SELECTOR, "#state-filter option[value='Success']").click()
    press(browser, "Filter")
    assert "paged-" not in browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=runs]").text
