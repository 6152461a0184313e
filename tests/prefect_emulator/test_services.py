"""The emulator's background loop (prefect_emulator/services.py) runs each service at its cadence, on the clock
it is given: driven here with a clock the test moves, without sleeping. A round with nothing to do takes no write
lock, so it never holds up the queries behind a long one."""
from __future__ import annotations

import datetime
import threading
from typing import Any, Dict, List

import pytest

from prefect_emulator.services import LoopService, ServiceLoop, wall_clock
from tests.prefect_emulator.in_process import _SCHEMA
from prefect_emulator.server import Emulator
from prefect_emulator.store import Store

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class Counting(LoopService):
    """A service that records the instant of each round and says one line."""

    def __init__(self, name: str, interval: float, fails: bool = False) -> None:
        super().__init__(Store(), None, interval)
        self.name = name
        self.rounds: List[datetime.datetime] = []
        self.fails = fails

    def run_once(self, now: datetime.datetime) -> Any:
        self.rounds.append(now)
        if self.fails:
            raise RuntimeError("boom")
        return len(self.rounds)

    def report(self, done: Any) -> List[str]:
        return [f"{self.name} round {done}"]


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_each_service_runs_at_the_first_tick_then_every_interval_after_its_last_round() -> None:
    zombie, lazarus, scheduler = Counting("zombie", 1.0), Counting("lazarus", 600.0), Counting("scheduler", 10.0)
    said: List[str] = []
    loop = ServiceLoop([zombie, lazarus, scheduler], say=said.append)
    assert loop.tick_seconds == 1.0
    for tick in range(0, 1201):  # 20 minutes of ticks, one a second
        loop.tick(at(tick))
    assert zombie.rounds == [at(t) for t in range(0, 1201)]
    assert lazarus.rounds == [at(0), at(600), at(1200)]  # a first round at start, as Server's services do
    assert scheduler.rounds == [at(t) for t in range(0, 1201, 10)]
    assert said[:3] == ["zombie round 1", "lazarus round 1", "scheduler round 1"]


def test_the_loop_waits_until_the_next_service_is_due_and_a_clock_set_back_runs_them_all() -> None:
    zombie, lazarus = Counting("zombie", 0.25), Counting("lazarus", 0.2)
    loop = ServiceLoop([zombie, lazarus], say=lambda line: None)
    assert loop.tick_seconds == 0.2
    assert loop.tick(at(0)) == [zombie, lazarus]
    assert abs(loop.seconds_to_next(at(0)) - 0.2) < 1e-9
    assert loop.tick(at(0.2)) == [lazarus]
    assert abs(loop.seconds_to_next(at(0.2)) - 0.05) < 1e-9
    assert loop.tick(at(0.25)) == [zombie]
    assert loop.tick(at(-5)) == [zombie, lazarus]


def test_a_failed_round_is_logged_and_the_other_services_still_run() -> None:
    broken, fine = Counting("broken", 1.0, fails=True), Counting("fine", 1.0)
    said: List[str] = []
    loop = ServiceLoop([broken, fine], say=said.append)
    loop.tick(at(0))
    loop.tick(at(1))
    assert said == ["BACKGROUND round failed: RuntimeError('boom')", "fine round 1",
                    "BACKGROUND round failed: RuntimeError('boom')", "fine round 2"]
    assert broken.rounds == [at(0), at(1)]


class FakeStop:
    """A stop event whose wait returns at once (recording how long the loop asked to wait) until `ticks` waits."""

    def __init__(self, ticks: int) -> None:
        self.waits: List[float] = []
        self.ticks = ticks

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return len(self.waits) > self.ticks


def test_the_running_loop_ticks_on_its_injected_clock_without_sleeping() -> None:
    zombie, scheduler = Counting("zombie", 1.0), Counting("scheduler", 10.0)
    # each tick reads the clock twice: for the round, then for the wait until the next one is due
    instants = iter(at(t) for t in [0, 0, 1, 1, 2, 9.5, 10, 10])

    loop = ServiceLoop([zombie, scheduler], clock=lambda: next(instants), say=lambda line: None)
    stop = FakeStop(ticks=4)
    loop.run(stop)  # type: ignore[arg-type]
    assert zombie.rounds == [at(0), at(1), at(2), at(10)]
    assert scheduler.rounds == [at(0), at(10)]
    assert stop.waits == [1.0, 1.0, 1.0, 0.0, 1.0]  # the first after tick_seconds, then until the next is due


def test_the_emulator_builds_its_services_at_servers_cadences_on_its_clock() -> None:
    frozen = at(0)
    emulator = Emulator(_SCHEMA, Store(), heartbeat_timeout=2.0, lazarus_interval=30.0, clock=lambda: frozen)
    loop = emulator.services
    assert loop.services == [emulator.zombie_killer, emulator.lazarus, emulator.scheduler]
    assert [s.interval for s in loop.services] == [0.5, 30.0, 10.0]  # min(1 s, timeout/4), Lazarus's, 10 s
    assert loop.clock() == frozen
    assert Emulator(_SCHEMA, Store(), heartbeat_timeout=60.0).zombie_killer.interval == 1.0


@pytest.mark.parametrize("service", ["zombie_killer", "lazarus", "scheduler"])
def test_a_round_with_nothing_to_do_goes_by_a_query_that_holds_the_store(service: str) -> None:
    # a round waiting for the write lock would make every new query queue behind it until the long one ended
    emulator = Emulator(_SCHEMA, Store())
    looped: LoopService = getattr(emulator, service)
    holding, release = threading.Event(), threading.Event()

    def long_query() -> None:
        with emulator.store.reading():
            holding.set()
            release.wait(60)

    done: Dict[str, Any] = {}
    reader = threading.Thread(target=long_query)
    rounder = threading.Thread(target=lambda: done.setdefault("round", looped.run_once(wall_clock())))
    reader.start()
    try:
        assert holding.wait(10)
        rounder.start()
        rounder.join(timeout=10)
        assert done == {"round": looped.idle()}, f"the {looped.name}'s idle round waited for the query to end"
    finally:
        release.set()
        reader.join()
        rounder.join()
