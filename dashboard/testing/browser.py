"""Headless Debian Chromium driven by Selenium through the system chromedriver (nothing downloaded at run
time), and bounded waits on what the page shows."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

CHROMEDRIVER = os.environ.get("DAGS_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("DAGS_CHROMIUM", "/usr/bin/chromium")
NO_BROWSER = ("no headless Chromium with its chromedriver: install Debian's packages "
              "(apt-get install -y chromium chromium-driver) or set DAGS_CHROMIUM / DAGS_CHROMEDRIVER")
T = TypeVar("T")


def browser_available() -> bool:
    return all(Path(p).is_file() and os.access(p, os.X_OK) for p in (CHROMEDRIVER, CHROMIUM))


def start_browser():
    """A headless Chromium session (Selenium 4, the system chromedriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--user-data-dir=" + str(Path(shutil.os.environ.get("TMPDIR", "/tmp"))
                                                      / f"dash-chromium-{os.getpid()}"))
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_for(condition: Callable[[], Optional[T]], timeout: float, what: str, poll: float = 0.1) -> T:
    """Polls `condition` until it returns something truthy (exceptions count as not yet), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the element is not there yet, or is being redrawn
            last = exc
        time.sleep(poll)
    raise AssertionError(f"{what} not within {timeout}s" + (f" (last error: {last!r})" if last else ""))
