"""What the browser tests do on the dashboard's pages: find by visible text, click, read."""
from __future__ import annotations

from typing import List

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from dashboard.testing.browser import wait_for


def link(browser, text: str):
    return browser.find_element(By.LINK_TEXT, text)


def click_and_wait(browser, element) -> None:
    """Clicks a link or a form's button and waits until the browser has left the page it was on."""
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def left() -> bool:
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return browser.execute_script("return document.readyState") == "complete"
    wait_for(left, 30, "the next page")


def click_link(browser, text: str) -> None:
    click_and_wait(browser, link(browser, text))


def press(browser, text: str, row_selector: str = "") -> None:
    """Clicks the button labelled `text` (in the row `row_selector` when given) and waits for the next page."""
    click_and_wait(browser, button_in_row(browser, row_selector, text) if row_selector else button(browser, text))


def button_in_row(browser, row_selector: str, text: str):
    row = browser.find_element(By.CSS_SELECTOR, row_selector)
    return next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == text)


def button(browser, text: str):
    return next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == text)


def run_id_of(browser) -> str:
    """The flow run id of the run page the browser shows (/flow-run/<id>)."""
    url = browser.current_url
    assert "/flow-run/" in url, url
    return url.rstrip("/").split("/flow-run/")[1].split("?")[0].split("/")[0]


def live_texts(browser, selector: str) -> List[str]:
    """The rendered text of every element matching `selector`, read in one script call.

    The run page's script replaces the inner HTML of its live parts on every poll, so an element found by
    one WebDriver call may be gone by the next (a stale element); one script call runs between two redraws.
    """
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText.trim());", selector)


def run_state(browser) -> str:
    states = live_texts(browser, "#run-state .state")
    assert len(states) == 1, f"the run page shows {len(states)} run states"
    return states[0]


def wait_for_state(browser, states: List[str], timeout: float) -> str:
    """Waits (without reloading: the page's script redraws it) until the run page shows one of `states`."""
    return wait_for(lambda: run_state(browser) in states and run_state(browser), timeout,
                    f"the run page showing {states}")


def log_messages(browser) -> List[str]:
    return live_texts(browser, "#log-lines td.message")


def wait_for_log(browser, text: str, timeout: float) -> None:
    wait_for(lambda: any(text in m for m in log_messages(browser)), timeout, f"the log line {text!r}")
