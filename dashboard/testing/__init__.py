"""The dashboard driven for real, for its browser tests and for the tools that measure and picture it
(scripts/benchmarks/dashboard.py, scripts/dashboard_screenshot.py), which is why it is part of the package:
`browser` (headless Chromium through the system chromedriver, bounded waits), `pages` (what a user does on
the pages: find by visible text, click, read), `processes` (the dashboard as a subprocess, and a world of an
emulator, real agents and the dashboard)."""
