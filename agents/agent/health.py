"""An agent's health: whether it has polled the API successfully lately, and the endpoint that says so.

prefect's own agent health endpoint (`/api/health`) answers 200 as long as the agent process lives, even
when every poll fails (a restarted API with a new tenant, a network cut). Ours answers 503 once the agent
has gone `timeout` seconds without a successful poll, so `docker compose ps` and `up --wait` show it.
The same server answers `/api/poke`, which wakes the agent's poll loop at once (agents.agent.waking).
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, List, Optional, Tuple
from urllib.parse import urlparse

from agents.errors import UserError


class PollHealth:
    """Tracks the outcome of an agent's polls (thread-safe; time from a monotonic clock).

    Args:
        timeout: seconds without a successful poll after which the agent is unhealthy
            (DAGS_AGENT_HEALTH_TIMEOUT)
        clock: the time source (monotonic seconds)
    """

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_success: Optional[float] = None
        self._connected_since: Optional[float] = None
        self.failures = 0

    def succeeded(self) -> None:
        """Records a successful poll."""
        with self._lock:
            now = self._clock()
            if self._connected_since is None:
                self._connected_since = now
            self._last_success = now
            self.failures = 0

    def failed(self) -> None:
        """Records a failed poll: the agent is no longer connected (see `connected_for`)."""
        with self._lock:
            self._connected_since = None
            self.failures += 1

    def connected_for(self) -> float:
        """Seconds since the first of the current run of successful polls; 0 when the last poll failed."""
        with self._lock:
            return 0.0 if self._connected_since is None else self._clock() - self._connected_since

    def status(self) -> Tuple[bool, dict]:
        """Whether the agent is healthy, and the figures that say why (for the endpoint's body)."""
        with self._lock:
            now = self._clock()
            since = now - (self._last_success if self._last_success is not None else self._started)
            healthy = since <= self.timeout
            return healthy, {
                "healthy": healthy,
                "seconds_since_successful_poll": None if self._last_success is None else round(since, 1),
                "failed_polls_in_a_row": self.failures,
                "timeout_seconds": self.timeout,
            }


def serve_health(address: str, health: PollHealth, poke: Callable[[Optional[List[str]]], bool]
                 ) -> Tuple[int, List]:
    """Serves `/api/health` (200 healthy, 503 not) and `/api/poke` (wakes the poll loop: GET as prefect's
    own agent serves it, POST too) on `address` (`http://HOST:PORT`; port 0 picks a free one) in a daemon
    thread.

    `/api/poke?labels=a,b` names the labels of the run the poker has just created: `poke` gets them (None
    without the parameter, as prefect's own pokes come) and returns whether it woke the loop, which the
    answer says as `{"woken": true|false}`. An agent that may not take the run then does not poll for
    nothing: `DAGS_POKE_ADDRESSES` reaches every agent of a stack at once.

    The port is bound here, before the thread starts: a port in use is an error now, not a silent thread.

    Returns:
        The port it listens on (the one picked when 0 was asked), and a one-item list that receives its
        IOLoop once it runs (to stop it).

    Raises:
        UserError: the address has no port, or that port cannot be bound.
    """
    from tornado import web
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.netutil import bind_sockets

    parsed = urlparse(address)
    if parsed.port is None:
        raise UserError(f"the agent address {address!r} has no port: write it as http://HOST:PORT")
    host = parsed.hostname or ""
    try:
        sockets = bind_sockets(parsed.port, address=host or None)
    except OSError as exc:
        raise UserError(f"the agent cannot serve its API at {address}: {exc.strerror or exc}; choose another "
                        "port (--agent-address or PREFECT__CLOUD__AGENT__AGENT_ADDRESS)") from None

    class Health(web.RequestHandler):
        def get(self) -> None:
            healthy, body = health.status()
            self.set_status(200 if healthy else 503)
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(body))

    class Poke(web.RequestHandler):
        def get(self) -> None:
            labels = self.get_query_argument("labels", None)
            woken = poke(None if labels is None else [label for label in labels.split(",") if label])
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps({"woken": woken}))

        post = get

    loops: List = []

    def run() -> None:
        import asyncio

        asyncio.set_event_loop(asyncio.new_event_loop())
        HTTPServer(web.Application([("/api/health", Health), ("/api/poke", Poke)])).add_sockets(sockets)
        loops.append(IOLoop.current())
        loops[0].start()

    threading.Thread(name="agent-api", target=run, daemon=True).start()
    return sockets[0].getsockname()[1], loops
