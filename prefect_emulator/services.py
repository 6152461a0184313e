"""Prefect Server's loop services as the emulator plays them: the zombie killer, Lazarus and the scheduler, each
an object whose `run_once(now)` does one round as of `now` and returns what it did, and the loop that runs each
one when it is due, on a clock it is given.

Server (`prefect_server/services/loop_service.py`) gives each service a LoopService subclass whose `run_once`
does one round and whose `run` repeats it every `loop_seconds`, the next round `loop_seconds` after the last one
started. Here too, one module holds the services and their loop: what a round decides (which runs are zombies,
which are stuck, which events to schedule) stays in zombies.py, lazarus.py and scheduler.py, as functions of the
store and of `now`, next to the mutations that share their rules; what every service does alike (a round in
one store transaction, taken only when a look under the read lock finds work, the cloud hooks it queued called
after the commit, one log line per run handled) and the cadence are written once, here, instead of three times
in those modules.

The clock is injected: the emulator's loop passes the wall clock (`wall_clock`), tests pass a frozen or
advanced one, or call `run_once(now)` themselves, so nothing has to wait for a heartbeat to go stale. What the
services write (state timestamps, logs) is still stamped by the store's own clock, as a request would be.
"""
from __future__ import annotations

import datetime
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import lazarus, retention, scheduler, zombies
from .console import log
from .context import RequestContext, run_after_commit
from .hook_sender import HookSender
from .store import Store

Clock = Callable[[], datetime.datetime]
SCHEDULE_SECONDS = 10.0  # Server's scheduler runs every 150 s; runs are made 10 ahead, so this only tops up
MIN_INTERVAL = 0.1  # seconds: no service runs more often, however short its timeout
# a round due at t may start this much before t on the wall clock: the loop's timer runs on monotonic time
_TIMER_SLACK = datetime.timedelta(milliseconds=10)


def wall_clock() -> datetime.datetime:
    """The current instant in UTC: the clock the emulator's own loop runs on."""
    return datetime.datetime.now(datetime.timezone.utc)


class LoopService:
    """One of Server's loop services on the emulator's store.

    Args:
        store: the tables
        hooks: where the cloud hooks of the state changes go (None: no hook is called)
        interval: seconds from the start of one round to the start of the next (Server's loop_seconds)
    """

    name = "service"

    def __init__(self, store: Store, hooks: Optional[HookSender], interval: float) -> None:
        self.store = store
        self.hooks = hooks
        self.interval = interval

    def run_once(self, now: datetime.datetime) -> Any:
        """One round as of `now`, in one store transaction; the hooks it queued are called once committed.

        Returns:
            what the round did (see each service); `report` words it
        """
        ctx = RequestContext(self.store, hooks=self.hooks)
        # a round with nothing to do takes no write lock: once a writer waits, new readers queue behind it, so
        # a service that wrote every second would stall every request behind any long query for its whole length
        with self.store.reading():
            if not self.pending(ctx, now):
                return self.idle()
        with self.store.transaction():  # the round chooses again: the store may have changed since
            done = self.round(ctx, now)
        run_after_commit(ctx)
        return done

    def pending(self, ctx: RequestContext, now: datetime.datetime) -> bool:
        """Whether a round as of `now` has anything to do (reads only; True unless a service knows better)."""
        return True

    def idle(self) -> Any:
        """What a round with nothing to do returns."""
        raise NotImplementedError

    def round(self, ctx: RequestContext, now: datetime.datetime) -> Any:
        raise NotImplementedError

    def report(self, done: Any) -> List[str]:
        """The log lines that say what a round did (none when it did nothing)."""
        raise NotImplementedError


class ZombieKiller(LoopService):
    """Server's zombie killer (zombies.py), every min(1 s, timeout/4).

    Args:
        timeout: seconds without a flow run heartbeat after which its Running task runs are retried or failed,
            and the run itself failed if Cancelling
    """

    name = "zombie killer"

    def __init__(self, store: Store, hooks: Optional[HookSender], timeout: float) -> None:
        super().__init__(store, hooks, max(MIN_INTERVAL, min(1.0, timeout / 4)))
        self.timeout = timeout

    def pending(self, ctx: RequestContext, now: datetime.datetime) -> bool:
        return zombies.any_zombies(ctx, now, self.timeout)

    def idle(self) -> Dict[str, list]:
        return {"task_runs": [], "flow_runs": []}

    def round(self, ctx: RequestContext, now: datetime.datetime) -> Dict[str, list]:
        """Returns {"task_runs": [(id, new state)], "flow_runs": [ids failed]}."""
        return zombies.kill_zombies(ctx, now, self.timeout)

    def report(self, done: Dict[str, list]) -> List[str]:
        return ([f"ZOMBIE task run {task_run_id} marked {state}: its flow run sent no heartbeat for "
                 f"{self.timeout:g} s" for task_run_id, state in done["task_runs"]]
                + [f"ZOMBIE flow run {run_id} marked Failed: Cancelling without a heartbeat for {self.timeout:g} s"
                   for run_id in done["flow_runs"]])


class Lazarus(LoopService):
    """Server's Lazarus (lazarus.py), every `interval` seconds.

    Args:
        stale_after: seconds since a run's last heartbeat after which it counts as stuck
        attempt_limit: how many times a run is rescheduled before it is failed instead
    """

    name = "Lazarus"

    def __init__(self, store: Store, hooks: Optional[HookSender], interval: float = lazarus.INTERVAL_SECONDS,
                 stale_after: float = lazarus.STALE_AFTER_SECONDS, attempt_limit: int = lazarus.ATTEMPT_LIMIT) -> None:
        super().__init__(store, hooks, interval)
        self.stale_after = stale_after
        self.attempt_limit = attempt_limit

    def pending(self, ctx: RequestContext, now: datetime.datetime) -> bool:
        return lazarus.any_stuck(ctx, now, self.stale_after)

    def idle(self) -> Any:
        return [], []

    def round(self, ctx: RequestContext, now: datetime.datetime) -> Any:
        """Returns ([(run id, attempt number) rescheduled], [run ids failed])."""
        return lazarus.resurrect(ctx, now, self.stale_after, self.attempt_limit)

    def report(self, done: Any) -> List[str]:
        rescheduled, failed = done
        return ([f"LAZARUS flow run {run_id} rescheduled: no heartbeat for {self.stale_after:g} s and no task run "
                 f"in progress (attempt {attempt} of {self.attempt_limit})" for run_id, attempt in rescheduled]
                + [f"LAZARUS flow run {run_id} marked Failed: rescheduled {self.attempt_limit} times already"
                   for run_id in failed])


class Scheduler(LoopService):
    """Server's scheduler (scheduler.py): tops up the runs of flows with an active schedule."""

    name = "scheduler"

    def __init__(self, store: Store, hooks: Optional[HookSender], interval: float = SCHEDULE_SECONDS) -> None:
        super().__init__(store, hooks, interval)

    def pending(self, ctx: RequestContext, now: datetime.datetime) -> bool:
        return scheduler.any_planned(ctx.store, now)

    def idle(self) -> int:
        return 0

    def round(self, ctx: RequestContext, now: datetime.datetime) -> int:
        """Returns how many runs were created."""
        return scheduler.schedule_all(ctx, now)

    def report(self, done: int) -> List[str]:
        return [f"SCHEDULER created {done} scheduled flow run(s)"] if done else []


class Retention(LoopService):
    """Removes finished runs and log lines past their retention period (retention.py), every `interval`.
    Unlike the other services, a round is many small transactions, so that polls go on while it works.

    Args:
        retain_days: days a finished run is kept after it ended (None: for ever)
        retain_log_days: days a log line is kept (None: for ever)
    """

    name = "retention"

    def __init__(self, store: Store, retain_days: Optional[float], retain_log_days: Optional[float],
                 interval: float = retention.INTERVAL_SECONDS) -> None:
        super().__init__(store, None, interval)
        self.retain_days = retain_days
        self.retain_log_days = retain_log_days

    def run_once(self, now: datetime.datetime) -> Dict[str, int]:
        """One purge as of `now`; returns how many rows went per table (see retention.purge)."""
        return retention.purge(self.store, now, self.retain_days, self.retain_log_days)

    def report(self, done: Dict[str, int]) -> List[str]:
        return [retention.describe(done, self.retain_days, self.retain_log_days)] if done else []


class ServiceLoop:
    """Runs each service when it is due: the first time at the first tick (Server's services start with a
    round), then `interval` seconds after its last round started, as `clock` tells.

    Args:
        services: what to run
        clock: what `now` is at each tick (the wall clock; tests pass their own)
        say: where the lines of each round go (the console log)
    """

    def __init__(self, services: Sequence[LoopService], clock: Clock = wall_clock,
                 say: Callable[[str], None] = log) -> None:
        self.services = list(services)
        self.clock = clock
        self.say = say
        # the first wait: as long as the most frequent service's interval
        self.tick_seconds = max(MIN_INTERVAL, min(s.interval for s in self.services))
        self._last: Dict[int, datetime.datetime] = {}

    def due(self, service: LoopService, now: datetime.datetime) -> bool:
        last = self._last.get(id(service))
        # a clock set back makes every service due rather than none for as long
        return (last is None or now < last
                or now - last >= datetime.timedelta(seconds=service.interval) - _TIMER_SLACK)

    def seconds_to_next(self, now: datetime.datetime) -> float:
        """Seconds from `now` until the next service is due (0 if one is due already)."""
        waits = [0.0 if self.due(s, now) else s.interval - (now - self._last[id(s)]).total_seconds()
                 for s in self.services]
        return max(0.0, min(waits))

    def tick(self, now: datetime.datetime) -> List[LoopService]:
        """Runs every service due at `now`, logging what each did; a failed round is logged and retried at
        the service's next turn. Returns the services that ran."""
        ran = []
        for service in self.services:
            if not self.due(service, now):
                continue
            self._last[id(service)] = now
            ran.append(service)
            try:
                for line in service.report(service.run_once(now)):
                    self.say(line)
            except Exception as exc:  # keep going
                self.say(f"BACKGROUND round failed: {exc!r}")
        return ran

    def run(self, stop: threading.Event) -> None:
        """Ticks whenever a service is due until `stop` is set (the first tick after `tick_seconds`)."""
        wait = self.tick_seconds
        while not stop.wait(wait):
            self.tick(self.clock())
            wait = self.seconds_to_next(self.clock())

    def start(self, stop: threading.Event) -> threading.Thread:
        """Runs the loop in a daemon thread named background-services."""
        thread = threading.Thread(target=self.run, args=(stop,), name="background-services", daemon=True)
        thread.start()
        return thread
