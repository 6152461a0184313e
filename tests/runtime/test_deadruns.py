"""The parts of the dead-run report that need no API: the cause of an exit, retry delays as the API writes
them, the stderr tail, and the flow-run process's lease (real threads, real pipes)."""
from __future__ import annotations

import os
import threading
import time

import pytest

from agents.agent.deadruns import StderrTail, exit_cause, interval_seconds, stderr_details
from agents.flowrun.lease import EXIT_CODE, Lease


@pytest.mark.parametrize("code, text", [
    (-9, "was killed by signal 9 (SIGKILL: often the kernel's out-of-memory killer)"),
    (-11, "was killed by signal 11 (SIGSEGV: segmentation fault)"),
    (-6, "was killed by signal 6 (SIGABRT: aborted, often by a failed check in C code)"),
    (-99, "was killed by signal 99"),
    (3, "exited with code 3"),
    (EXIT_CODE, f"exited with code {EXIT_CODE} (its lease expired: it could not reach the API)"),
])
def test_the_cause_of_an_exit_names_the_signal_and_its_usual_meaning(code: int, text: str) -> None:
    assert exit_cause(code) == text


@pytest.mark.parametrize("value, seconds", [
    (None, 0.0), ("00:00:02", 2.0), ("00:01:00.5", 60.5), ("1 day 01:00:00", 90000.0), ("2 days 00:00:01", 172801.0),
    (7, 7.0), ("not a duration", 0.0),
])
def test_retry_delays_are_read_as_the_api_writes_intervals(value: object, seconds: float) -> None:
    assert interval_seconds(value) == seconds


def test_the_stderr_tail_keeps_the_last_lines_and_forwards_everything(tmp_path) -> None:
    read_end, write_end = os.pipe()
    with open(tmp_path / "forwarded", "wb") as out:
        tail = StderrTail(read_end, out)
        os.write(write_end, b"".join(b"line %d\n" % i for i in range(30)) + b"Segmentation fault")
        os.close(write_end)
        text = tail.text(settle=5)
    assert text.splitlines() == [f"line {i}" for i in range(21, 30)] + ["Segmentation fault"]
    assert (tmp_path / "forwarded").read_bytes().count(b"\n") == 30
    assert stderr_details("") == " It wrote nothing to stderr."
    assert stderr_details(text).startswith(" Last lines it wrote to stderr:\nline 21")


def test_a_lease_expires_once_no_beat_gets_through_and_holds_while_beats_do() -> None:
    expired = threading.Event()
    reasons = []

    def refused() -> None:
        raise ConnectionError("the API is away")

    started = time.monotonic()
    cut_off = Lease(refused, lease=1.0, interval=30, expire=lambda why: (reasons.append(why), expired.set())).start()
    assert expired.wait(5), "a lease with no beat getting through never expired"
    took = time.monotonic() - started
    cut_off.stop()
    assert "no heartbeat reached the API" in reasons[0] and "DAGS_RUN_LEASE=1s" in reasons[0], reasons
    print(f"\nLEASE 1 s: expired {took:.2f} s after the last beat got through")
    assert took >= 1.0

    beats = []
    connected = Lease(lambda: beats.append(time.monotonic()), lease=1.0, interval=30,
                      expire=lambda why: pytest.fail(f"a lease whose beats get through expired: {why}")).start()
    try:
        # the beats come every lease / 3: wait for several leases' worth of them
        deadline = time.monotonic() + 10
        while len(beats) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        connected.stop()
    assert len(beats) >= 10, beats
