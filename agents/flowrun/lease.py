"""The flow-run process's lease: a run that cannot reach the API for `lease` seconds stops, so it never runs
twice.

Once its agent is silent too, another agent finishes a Running run whose last heartbeat is DAGS_DEAD_RUN_AFTER
seconds old (agents.agent.recovery): retries its task, or reschedules it. A flow-run process that is only cut off
from the API (a network partition, the API paused) would go on running the same tasks meanwhile. So the
process holds a lease: a thread sends the run's heartbeat every `lease / 3` seconds (at most prefect's
heartbeat interval), and a watchdog ends the process (exit code `EXIT_CODE`) once no heartbeat got through for
`lease` seconds, logging why to stderr (its agent puts the last lines in the run's state, when it can reach the
API). The agent hands the lease over in DAGS_RUN_LEASE: half of DAGS_DEAD_RUN_AFTER, so the process is gone
well before anyone may judge it dead. 0 or unset: no lease (a run started by prefect's own agent).

A process held up as a whole (a task holding the GIL in a long C call, which starves these threads too) gets
one more beat interval when it resumes before it is judged cut off. The end is abrupt (os._exit): the tasks' threads stop where they are, as when the process is killed; their
own subprocesses, if any, are not stopped.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Optional

# the variable in which an agent hands the lease over (agents.submission reads it)
LEASE_ENV = "DAGS_RUN_LEASE"
# exit code of a process whose lease expired (EX_TEMPFAIL: the API may be back later)
EXIT_CODE = 75
LOG_NAME = "agents.lease"


class Lease:
    """Beats for a flow run and ends this process when no beat got through for `lease` seconds.

    Args:
        beat: sends one heartbeat (raises when it does not get through)
        lease: seconds
        interval: the longest pause between two beats (prefect's heartbeat interval)
        expire: called on expiry with the reason; by default logs it and ends the process
    """

    def __init__(self, beat: Callable[[], Any], lease: float, interval: float,
                 expire: Optional[Callable[[str], None]] = None) -> None:
        self.beat = beat
        self.lease = lease
        self.interval = max(0.1, min(interval, lease / 3))
        self.expire = expire or _exit
        self.last_ok = time.monotonic()
        self._stop = threading.Event()

    def start(self) -> "Lease":
        threading.Thread(target=self._beat, name="lease-beat", daemon=True).start()
        threading.Thread(target=self._watch, name="lease-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.beat()
                self.last_ok = started  # the beat was sent at `started` at the latest
            except Exception:  # counted by the watchdog; prefect's own heartbeat logs its failures
                pass
            self._stop.wait(self.interval)

    def _watch(self) -> None:
        # a beat may hang (the API paused): the watchdog looks on its own, every second or sooner
        period = min(1.0, self.interval)
        woke = time.monotonic()
        grace_until = 0.0
        while not self._stop.wait(period):
            now = time.monotonic()
            if now - woke > 2 * period + 1:
                # this thread itself was held up (a task holding the GIL in a long C call, the process
                # stopped): the beats were too, not refused; one more beat may still get through
                grace_until = now + self.interval + 1
            woke = now
            silent = now - self.last_ok
            if silent > self.lease and now > grace_until:
                self.expire(f"no heartbeat reached the API for {silent:.0f}s (lease {LEASE_ENV}={self.lease:g}s): "
                            "another agent may finish or retry this run now, so this process stops its tasks "
                            "and exits")
                return


def _exit(reason: str) -> None:
    logging.getLogger(LOG_NAME).error("flow-run process %s: %s", os.getpid(), reason)
    print(f"flow-run process {os.getpid()}: {reason}", file=sys.stderr, flush=True)
    os._exit(EXIT_CODE)
