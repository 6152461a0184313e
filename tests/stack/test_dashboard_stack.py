"""The dashboard in the offline stack: `docker compose up -d --wait` (under this module's own project), then
the browser at the published 127.0.0.1 port walks the tutorial: "My Tests", flow-test-hello, Quick Run,
and the run page reaching Success with "Test Hello, Cloud!" without a reload."""
from __future__ import annotations

import pytest
import requests

from tests.dashboard.test_tutorial import walk_the_tutorial
from tests.stack.stack import Stack

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]


def test_the_stacks_dashboard_walks_the_tutorial(browser, stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.env['UI_HOST_PORT']}"
    assert requests.get(url + "/health", timeout=10).json() == {"api": "ok"}
    walk_the_tutorial(browser, url)
    # the dashboard runs as the image's user, not root
    assert stack.exec("dashboard", "id", "-u").stdout.strip() == "5678"
