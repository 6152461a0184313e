#!/usr/bin/env python3
"""Makes the README's screenshot of the dashboard's flow run page, docs/dashboard-flow-run.png, with the
browser tests' tooling: an emulator, an agent serving the tutorial's flow-test-hello, the dashboard, headless Chromium
(Debian's chromium and chromium-driver), a Quick Run, and the run page once the run is Success.

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard-flow-run.png]

Everything it starts runs in a temporary folder and is stopped at the end.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dashboard.testing.browser import NO_BROWSER, browser_available, start_browser
from dashboard.testing.pages import click_link, press, wait_for_log, wait_for_state
from dashboard.testing.processes import World
from prefect_emulator.testing import REPO_ROOT

DAG = "flow-test-hello"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "dashboard-flow-run.png")
    args = parser.parse_args()
    if not browser_available():
        print(f"dashboard_screenshot: error: {NO_BROWSER}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dashboard-screenshot-") as tmp:
        world = World(Path(tmp), [DAG])
        browser = None
        try:
            world.start()
            browser = start_browser()
            browser.get(world.dashboard.url + "/projects")
            click_link(browser, "My Tests")
            press(browser, "Quick Run", f'tr[data-flow="{DAG}"]')
            wait_for_state(browser, ["Success"], timeout=120)
            wait_for_log(browser, "Flow run SUCCESS", timeout=30)
            for _ in range(2):  # the window's frame takes some of its height: measure again once resized
                height = browser.execute_script("return document.documentElement.scrollHeight")
                browser.set_window_size(1280, min(int(height) + 140, 2400))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(args.out))
        finally:
            if browser is not None:
                browser.quit()
            world.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
