"""Safe by default: what comes from the API is escaped, changes need a POST with the session's CSRF token,
the optional login (cookie HttpOnly and SameSite, wrong passwords slowed), an API key that never reaches a
page or the log, pages for bad input, and the API-down banner that goes away when the API is back."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from dashboard.testing.browser import wait_for
from tests.dashboard.fixtures.probe_dag import HTML_LOG_LINE
from dashboard.testing.pages import click_link, log_messages, press, wait_for_log, wait_for_state
from dashboard.testing.processes import Dashboard, World
from tests.dashboard.world import register_flow
from prefect_emulator.testing import Emulator, prefect_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS_FLOW = "<script>alert(1)</script>"


def no_alert(browser) -> bool:
    try:
        browser.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def only_our_script(browser) -> bool:
    """The page runs no script but the dashboard's own live.js."""
    sources = [s.get_attribute("src") or "inline" for s in browser.find_elements(By.TAG_NAME, "script")]
    return len(sources) == 1 and sources[0].endswith("/static/live.js")


def test_a_flow_named_like_a_script_and_a_log_line_holding_html_render_as_text(browser, world: World) -> None:
    register_flow(world, XSS_FLOW, ["nobody-runs-this"])
    browser.get(world.dashboard.url + "/projects")
    click_link(browser, "My Tests")
    assert XSS_FLOW in browser.find_element(By.CSS_SELECTOR, "table.flows").text
    click_link(browser, XSS_FLOW)
    assert browser.find_element(By.TAG_NAME, "h1").text == XSS_FLOW
    assert no_alert(browser) and only_our_script(browser)
    # the probe DAG logs a line of HTML; the live log shows it as text
    browser.get(world.dashboard.url + "/projects")
    click_link(browser, "My Tests")
    click_link(browser, "dashboard-probe")
    press(browser, "Quick Run")
    wait_for_state(browser, ["Success"], timeout=90)
    wait_for_log(browser, HTML_LOG_LINE, timeout=30)
    assert HTML_LOG_LINE in log_messages(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#log-lines img, #log-lines b")
    assert no_alert(browser) and only_our_script(browser)


def test_a_change_without_the_csrf_token_is_refused(browser, world: World) -> None:
    name = f"csrf-{uuid.uuid4().hex[:6]}"
    browser.get(world.dashboard.url + "/projects")
    browser.find_element(By.ID, "project-name").send_keys(name)
    browser.execute_script("document.querySelector('form[action=\"/projects\"] input[name=csrf_token]').remove()")
    press(browser, "Create")
    assert browser.find_element(By.TAG_NAME, "h1").text == "400 Bad Request"
    assert "security token (CSRF) is missing or out of date" in browser.find_element(By.TAG_NAME, "main").text
    # another site's form cannot send it either: a POST from outside the session is refused the same way
    forged = requests.post(world.dashboard.url + "/projects", data={"name": name, "csrf_token": "guessed"}, timeout=10)
    assert forged.status_code == 400
    assert name not in {p["name"] for p in world.graphql("query { project { name } }")["project"]}
    # a GET never changes anything: the action URLs answer 405 to it
    assert requests.get(world.dashboard.url + "/agent/clean-up", timeout=10).status_code == 405


@pytest.mark.parametrize("path, title, text", [
    ("/flow-run/00000000-0000-0000-0000-000000000000", "Flow run not found",
     "There is no flow run with the id 00000000-0000-0000-0000-000000000000: it may have been deleted"),
    ("/flow/00000000-0000-0000-0000-000000000000", "Flow not found", "There is no flow with the id"),
    ("/flow-run/not-a-run-id", "404 Not Found", "Use the menu to find the page you want."),
])
def test_bad_input_gets_a_page_saying_what_happened(browser, world: World, path: str, title: str, text: str) -> None:
    browser.get(world.dashboard.url + path)
    assert browser.find_element(By.TAG_NAME, "h1").text == title
    assert text in browser.find_element(By.TAG_NAME, "main").text
    assert "Traceback" not in browser.page_source


@pytest.fixture(scope="module")
def lone_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator of this module's own (the banner test stops and restarts it), keeping its data in a file."""
    folder = tmp_path_factory.mktemp("lone-emulator")
    with Emulator(folder, db=folder / "api.sqlite") as emu:
        yield emu


def dashboard_env(emulator: Emulator, home: Path, **extra: str):
    home.mkdir(parents=True, exist_ok=True)
    return prefect_env(emulator.url, home, **extra)


def test_the_login_asks_for_the_password_first_and_slows_wrong_ones(browser, lone_emulator: Emulator,
                                                                    tmp_path: Path) -> None:
    env = dashboard_env(lone_emulator, tmp_path / "home", DAGS_UI_PASSWORD="correct horse")
    with Dashboard(lone_emulator.url, env, tmp_path / "dashboard.log") as dash:
        browser.delete_all_cookies()
        browser.get(dash.url + "/agent")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Log in"
        assert requests.get(dash.url + "/", allow_redirects=False, timeout=10).status_code == 302
        browser.find_element(By.ID, "password").send_keys("wrong")
        started = time.monotonic()
        press(browser, "Log in")
        assert time.monotonic() - started >= 1.0, "a wrong password is answered after the delay"
        assert "Wrong password." in browser.find_element(By.TAG_NAME, "main").text
        browser.find_element(By.ID, "password").send_keys("correct horse")
        press(browser, "Log in")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Agents", "back to the page first asked for"
        cookie = next(c for c in browser.get_cookies() if c["name"] == "dags_dashboard")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
        press(browser, "Log out")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Log in"
        assert "correct horse" not in dash.log()


def test_an_api_key_never_reaches_a_page_a_url_or_the_log(browser, tmp_path: Path) -> None:
    key = "key-" + uuid.uuid4().hex
    with Emulator(tmp_path, api_key=key) as emu:
        env = dashboard_env(emu, tmp_path / "home", PREFECT__CLOUD__API_KEY=key)
        with Dashboard(emu.url, env, tmp_path / "dashboard.log") as dash:
            browser.get(dash.url + "/projects")
            browser.find_element(By.ID, "project-name").send_keys("keyed-project")
            press(browser, "Create")
            assert "Project keyed-project created." in browser.find_element(By.TAG_NAME, "main").text
            for path in ("/", "/projects", "/agent", "/flow-run/00000000-0000-0000-0000-000000000000"):
                browser.get(dash.url + path)
                assert key not in browser.page_source and key not in browser.current_url
            assert key not in dash.log()
        # without the key the API refuses, and the page says so without quoting anything secret
        with Dashboard(emu.url, dashboard_env(emu, tmp_path / "home2"), tmp_path / "nokey.log") as dash:
            browser.get(dash.url + "/")
            assert browser.find_element(By.TAG_NAME, "h1").text == "The API refused the request"


def test_the_api_down_banner_shows_and_the_page_recovers_when_the_api_is_back(browser, lone_emulator: Emulator,
                                                                            tmp_path: Path) -> None:
    with Dashboard(lone_emulator.url, dashboard_env(lone_emulator, tmp_path / "home"),
                   tmp_path / "dashboard.log") as dash:
        browser.get(dash.url + "/")
        banner = browser.find_element(By.ID, "api-banner")
        assert not banner.is_displayed()
        lone_emulator.stop()
        try:
            wait_for(lambda: browser.find_element(By.ID, "api-banner").is_displayed(), 15, "the API-down banner")
            assert requests.get(dash.url + "/health", timeout=10).status_code == 503
            browser.get(dash.url + "/projects")  # a page opened while the API is down says what to do
            assert browser.find_element(By.TAG_NAME, "h1").text == "The API does not answer"
            assert browser.find_element(By.ID, "api-banner").is_displayed()
        finally:
            lone_emulator.start()  # the same port and database file
        wait_for(lambda: browser.find_element(By.TAG_NAME, "h1").text == "Projects", 20,
                 "the page reloading itself once the API answers")
        assert not browser.find_element(By.ID, "api-banner").is_displayed()
