"""The dashboard's figures (issue 17): per page, the p50 of the server's answer time at 20,000 stored runs;
the requests per second an open flow run page costs (unfinished and finished runs); and (called by the
stack section, where Docker answers) Quick Run's click to Running in the stack.

Page times are measured from this machine's HTTP client to the dashboard on loopback: the dashboard's own
work plus its GraphQL calls to the emulator, no browser rendering. The request rate is counted from the
dashboard's request log while headless Chromium holds the page open (skipped without Chromium).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import requests

from .emulator_scale import store_runs, timed
from .orchestra import Orchestra, parse_time
from .report import Row, p50_p90, percentile, progress
from dashboard.testing.browser import browser_available, start_browser
from dashboard.testing.processes import Dashboard

RUNS = 20_000
OPEN_SECONDS = 10.0


def pages(orch: Orchestra, run_ids: List[str]) -> Dict[str, str]:
    """Every page of the dashboard (paths) at this emulator's data."""
    data = orch.query('{ flow_by_pk(id: "%s") { flow_group_id project { id } } }' % orch.flow_id)["flow_by_pk"]
    group, project = data["flow_group_id"], data["project"]["id"]
    last_page = -(-len(run_ids) * 9 // 10 // 20)  # 9 runs in 10 are Success (store_runs), 20 a page
    return {
        "Dashboard /": "/",
        "Projects /projects": "/projects",
        "Flows of a project /project/<id>": f"/project/{project}",
        "Flow page /flow/<id> (runs table page 1)": f"/flow/{group}",
        f"Flow page, Success filter, last page ({last_page})": f"/flow/{group}?state=Success&page={last_page}",
        "Flow run page /flow-run/<id>": f"/flow-run/{run_ids[-1]}",
        "Flow run live part /flow-run/<id>/live (1/s)": f"/flow-run/{run_ids[-1]}/live",
        "Agents /agent": "/agent",
    }


def open_page_rate(dash: Dashboard, path: str, seconds: float) -> float:
    """Requests per second the dashboard logs while headless Chromium holds `path` open for `seconds`."""
    browser = start_browser()
    try:
        browser.get(dash.url + path)
        time.sleep(1.0)  # the first fetch (the logs so far) is done: count the steady state
        before = dash.log().count('DASHBOARD "GET ')
        time.sleep(seconds)
        return (dash.log().count('DASHBOARD "GET ') - before) / seconds
    finally:
        browser.quit()


def measure(quick: bool) -> List[Row]:
    """Page p50s at RUNS stored runs (1,000 when quick) and an open run page's request rate."""
    count = 1000 if quick else RUNS
    repetitions = 10 if quick else 30
    rows: List[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, Orchestra(Path(tmp), "dash") as orch:
        progress(f"dashboard: storing {count} runs")
        run_ids = store_runs(orch, count)
        with Dashboard(orch.emulator.url, orch.env(DAGS_UI_SECRET_FILE=str(Path(tmp) / "secret")),
                       Path(tmp) / "dashboard.log") as dash:
            session = requests.Session()
            for name, path in pages(orch, run_ids).items():
                get: Callable[[], None] = lambda: session.get(dash.url + path, timeout=60).raise_for_status()  # noqa: E731
                get()  # warm: the emulator builds an index the first time a query orders by a column
                samples = timed(get, repetitions)
                rows.append(Row("17", f"dashboard at {count:,} runs: {name}, p50 / p90",
                                f"{percentile(samples, 50):.0f} / {percentile(samples, 90):.0f} ms (n={len(samples)})",
                                target="p50 <= 150 ms"))
            if browser_available():
                progress("dashboard: request rate of an open run page")
                unfinished = open_page_rate(dash, f"/flow-run/{run_ids[0]}", OPEN_SECONDS)  # Scheduled: no agent
                finished = open_page_rate(dash, f"/flow-run/{run_ids[1]}", OPEN_SECONDS)  # Success
                rows.append(Row("17", "dashboard: requests/s of an open flow run page, unfinished / finished run",
                                f"{unfinished:.2f} / {finished:.2f} req/s"))
            else:
                rows.append(Row("17", "dashboard: requests/s of an open flow run page", "skipped: no Chromium"))
    return rows


# the parts of Quick Run's click to Running, as the API's clock dates them
PARTS = ("click to created", "created to Submitted (agent woken and polled)",
         "Submitted to Running (flow-run process started)")


# Dates the click as the page sees it (the event's time, in ms since the epoch, the clock the API dates
# runs with: one kernel's), kept across the navigation that follows in the tab's sessionStorage. Selenium's
# own click command reaches the browser 30 to 60 ms after it is sent: the harness's time, not the user's.
CLICK_CLOCK = """document.addEventListener("click", function (event) {
  sessionStorage.setItem("clickedAt", String(performance.timeOrigin + event.timeStamp)); }, true);"""


def quick_run_latency(ui_url: str, api_url: str, dag: str, samples: int) -> Dict[str, List[float]]:
    """Seconds from the click on Quick Run (the dashboard's Flows page of "My Tests", row `dag`; the click
    event's time in the page, CLICK_CLOCK) to the run's start_time (Running), each after an idle gap past
    the agents' poll backoff, in headless Chromium; under "total", and split into PARTS by the run's
    created time and its Submitted state's timestamp."""
    import random

    from selenium.webdriver.common.by import By

    def run_row(run_id: str) -> dict:
        query = '{ flow_run_by_pk(id: "%s") { created start_time states { state timestamp } } }' % run_id
        return requests.post(api_url, json={"query": query}, timeout=30).json()["data"]["flow_run_by_pk"]

    browser = start_browser()
    latencies: Dict[str, List[float]] = {"total": [], **{part: [] for part in PARTS}}
    try:
        browser.get(ui_url + "/projects")
        browser.find_element(By.LINK_TEXT, "My Tests").click()
        flows_page = browser.current_url
        rng = random.Random()
        for i in range(samples):
            browser.get(flows_page)
            time.sleep(rng.uniform(3.0, 8.0))  # agents idle at their longest poll sleep, random phase
            row = browser.find_element(By.CSS_SELECTOR, f'tr[data-flow="{dag}"]')
            button = next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == "Quick Run")
            browser.execute_script(CLICK_CLOCK)
            button.click()
            deadline = time.monotonic() + 120
            while "/flow-run/" not in browser.current_url and time.monotonic() < deadline:
                time.sleep(0.02)
            run_id = browser.current_url.rstrip("/").rsplit("/", 1)[1]
            clicked = float(browser.execute_script("return sessionStorage.getItem('clickedAt')")) / 1000
            run: dict = {}
            while not run.get("start_time") and time.monotonic() < deadline:
                run = run_row(run_id)
                time.sleep(0.05)
            if not run.get("start_time"):
                raise RuntimeError(f"Quick Run's run {run_id} did not start within 120 s")
            created = parse_time(run["created"]).timestamp()
            submitted = min(parse_time(s["timestamp"]).timestamp() for s in run["states"] if s["state"] == "Submitted")
            started = parse_time(run["start_time"]).timestamp()
            for part, seconds in zip(PARTS, (created - clicked, submitted - created, started - submitted)):
                latencies[part].append(seconds)
            latencies["total"].append(started - clicked)
            progress(f"stack: Quick Run sample {i + 1}/{samples}: {latencies['total'][-1]:.2f} s ("
                     + ", ".join(f"{latencies[part][-1]:.2f}" for part in PARTS) + ")")
    finally:
        browser.quit()
    return latencies


def quick_run_rows(ui_url: str, api_url: str, dag: str, samples: int) -> List[Row]:
    """The stack's Quick Run figure and its parts as rows (or why they are missing)."""
    if not browser_available():
        return [Row("17", "stack: dashboard Quick Run click to Running", "skipped: no Chromium")]
    latencies = quick_run_latency(ui_url, api_url, dag, samples)
    return [Row("17", "stack: dashboard Quick Run click to Running, p50 / p90", p50_p90(latencies["total"]),
                target="p50 <= 0.3 s")] + [
        Row("17", f"stack: Quick Run, {part}, p50 / p90", p50_p90(latencies[part])) for part in PARTS]
