"""Where cloud hook calls go: worker threads that make them off the request path (cloud_hooks.py builds them).

The sender is injectable: the emulator's is `http_sender`; tests pass one that records each HookRequest, so
the hook types that call fixed internet services (Slack, Twilio, PagerDuty) are checked without calling them.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import requests

from .console import log
from .errors import ApiError

WORKERS = 4  # hook calls in flight at once
QUEUE_LIMIT = 1000  # calls waiting; beyond it new ones are dropped (and logged) rather than piling up


class HookRequest(NamedTuple):
    """One HTTP call a hook makes (what an injected sender receives)."""

    hook_type: str
    url: str
    json: Optional[dict] = None
    form: Optional[Dict[str, str]] = None
    headers: Dict[str, str] = {}
    timeout: float = 2.0


Sender = Callable[[HookRequest], None]


def http_sender(request: HookRequest) -> None:
    """Makes the call with `requests`; raises on a connection error, a timeout or an HTTP error status.

    Redirects are not followed (as httpx's client on Server): a hook calls the address it was given only.
    """
    answer = requests.post(request.url, json=request.json, data=request.form, headers=request.headers,
                           timeout=request.timeout, allow_redirects=False)
    answer.raise_for_status()


class HookSender:
    """Worker threads that make hook calls off the request path.

    Args:
        send: the function making one call (http_sender; tests inject one that records)
        enabled: False: nothing is ever called (--no-cloud-hooks)
    """

    def __init__(self, send: Sender = http_sender, enabled: bool = True) -> None:
        self.send = send
        self.enabled = enabled
        self._queue: "queue.Queue[Optional[Tuple[str, HookRequest]]]" = queue.Queue(QUEUE_LIMIT)
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, hook_id: str, request: HookRequest) -> None:
        """Queues one call (never blocks: a full queue drops the call and logs it)."""
        if not self.enabled:
            return
        self._start()
        try:
            self._queue.put_nowait((hook_id, request))
        except queue.Full:
            log(f"CLOUD-HOOK {request.hook_type} {hook_id} dropped: {QUEUE_LIMIT} calls are already waiting")

    def call_now(self, hook_id: str, request: HookRequest) -> None:
        """Makes one call on the caller's thread (test_cloud_hook), raising what the sender raises."""
        if not self.enabled:
            raise ApiError("Cloud hooks are turned off on this emulator (--no-cloud-hooks).")
        try:
            self.send(request)
        except requests.RequestException as exc:
            raise ApiError(f"The hook's call failed: {reason(exc, request)}.")

    def join(self) -> None:
        """Waits until every queued call is done (tests)."""
        self._queue.join()

    def _start(self) -> None:
        with self._lock:
            if self._threads:
                return
            for index in range(WORKERS):
                thread = threading.Thread(target=self._work, name=f"cloud-hooks-{index}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                hook_id, request = item
                try:
                    self.send(request)
                except Exception as exc:  # each failure is logged; the other hooks go on
                    log(f"CLOUD-HOOK {request.hook_type} {hook_id} to {_where(request)} failed: {reason(exc, request)}")
            finally:
                self._queue.task_done()


def reason(exc: Exception, request: HookRequest) -> str:
    """Why a call failed, without the address (its path or query may hold the hook's secret)."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {request.timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def _where(request: HookRequest) -> str:
    # the address without its query string: Slack's and others' urls carry their secret in the path or query
    return request.url.split("?", 1)[0] if request.hook_type == "WEBHOOK" else request.hook_type
