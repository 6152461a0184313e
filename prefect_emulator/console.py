"""Lines the emulator writes to stderr (GRAPHQL request lines, start/stop, zombie and scheduler notes)."""
from __future__ import annotations

import sys
import threading

_LOCK = threading.Lock()


def log(line: str) -> None:
    """Writes one whole line to stderr; handler threads log concurrently and tests parse every line."""
    with _LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
