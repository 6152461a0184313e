"""Server's submitted lock (prefect_server ExpiringSet(duration_seconds=30)) as the emulator keeps it: the
expiry is checked with a clock the test moves, so no test waits 30 s; the HTTP side is in tests/parity."""
from __future__ import annotations

from typing import List

from prefect_emulator.states import SUBMITTED_LOCK_SECONDS, SubmittedLock


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lock_lasts_thirty_seconds_as_on_server() -> None:
    assert SUBMITTED_LOCK_SECONDS == 30


def test_a_run_id_is_refused_while_locked_and_accepted_once_the_lock_expires() -> None:
    clock = Clock()
    lock = SubmittedLock(clock=clock)
    assert lock.add("run-1") is True
    clock.now += 29.9
    assert lock.add("run-1") is False and lock.held("run-1")
    clock.now += 0.1
    assert not lock.held("run-1")
    assert lock.add("run-1") is True  # a new 30 s from now, as Server's timer re-adds it
    clock.now += 29.9
    assert lock.add("run-1") is False


def test_a_refused_add_does_not_extend_the_lock() -> None:
    clock = Clock()
    lock = SubmittedLock(clock=clock)
    lock.add("run-1")
    clock.now += 20
    assert lock.add("run-1") is False
    clock.now += 10
    assert lock.add("run-1") is True  # 30 s after the first add, not after the refused one


def test_runs_are_locked_independently() -> None:
    clock = Clock()
    lock = SubmittedLock(clock=clock)
    outcomes: List[bool] = [lock.add(run_id) for run_id in ("a", "b", "a", "b", "c")]
    assert outcomes == [True, True, False, False, True]
