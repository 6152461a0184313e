"""Stranded runs: Submitted runs whose agent stopped polling go back to the queue (Scheduled), exactly once.

Prefect Server's Lazarus reschedules such runs only after 10 to 20 minutes, and an emulator without it never
does. Each of our agents sweeps, every few seconds, for Submitted runs it could run itself (its labels cover
theirs) and re-queues those whose agent has been silent for `stranded_after` seconds, using only what Server
and Cloud both offer: the agent's `last_queried` (updated by every `get_runs_in_queue` poll), the run's
`agent_id` (recorded with its Submitted state) and `set_flow_run_states`; it writes a log line on the run
saying why.

Cadence: every `sweep_interval` seconds (10 s by default) while some Submitted run could become stranded;
after a sweep that found no Submitted run it could act on, the next comes `idle_sweep_interval` seconds later
(30 s by default): none submitted since can be stranded before `stranded_after` has passed, so the bound on
re-queueing is the same, and an idle agent makes fewer requests. The same request also tells whether the API
still knows this agent (`lost` is called when not: an in-memory API restarted between two polls).

A run submitted by this very agent is stranded when the flow-run process it started is gone and the run is
still Submitted (the process died before starting it; or Server gave this agent the id of an earlier one with
the same name, whose runs then look fresh).

Clocks: staleness is measured on the API's clock, against this agent's own `last_queried` (at most one poll
interval old), never against the local clock. After a failed poll (an API outage), the sweep waits until this
agent has polled successfully for `stranded_after` seconds again, so agents that were only waiting for the API
are not judged dead.

A re-queued run whose old flow-run process turns up late is guarded by agents.flowrun's ownership check.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Collection, List, Optional

import pendulum

from agents.labels import covers

# Seconds without a poll after which an agent's Submitted runs are re-queued (DAGS_STRANDED_AFTER).
STRANDED_ENV = "DAGS_STRANDED_AFTER"
DEFAULT_STRANDED_AFTER = 30.0
LOG_NAME = "agents.recovery"
# Longest pause between two sweeps of an idle agent, in seconds.
IDLE_SWEEP_MAX = 30.0

# The Submitted runs, and whether the API still knows this agent: one request per sweep.
SUBMITTED_QUERY = """query($tenant: uuid!, $me: uuid!) {
  flow_run(where: {tenant_id: {_eq: $tenant}, state: {_eq: "Submitted"}}) {
    id labels version agent_id state_timestamp
  }
  agent(where: {id: {_eq: $me}}) { id name last_queried }
}"""
AGENTS_QUERY = """query($ids: [uuid!]) { agent(where: {id: {_in: $ids}}) { id name last_queried } }"""
RUN_QUERY = """query($id: uuid!) { flow_run_by_pk(id: $id) { state version agent_id } }"""


def sweep_interval(stranded_after: float) -> float:
    """Seconds between two sweeps: a third of the bound, between 1 and 10."""
    return max(1.0, min(10.0, stranded_after / 3))


def idle_sweep_interval(stranded_after: float) -> float:
    """Seconds after a sweep that found no Submitted run: the bound itself (no run submitted since can be
    stranded sooner), at most `IDLE_SWEEP_MAX` (this sweep is also how a lost registration is noticed), and
    never less than `sweep_interval`."""
    return max(sweep_interval(stranded_after), min(stranded_after, IDLE_SWEEP_MAX))


class StrandedRuns:
    """Finds and re-queues the Submitted runs stranded by a silent agent (see the module doc).

    Args:
        client: the agent's prefect Client
        agent_id: a callable returning this agent's current id (it changes when the agent re-registers)
        agent_name: this agent's name, for log lines
        labels: this agent's labels
        stranded_after: seconds of silence after which an agent's Submitted runs are re-queued
        held: a callable returning the ids of the runs this agent's live flow-run processes hold
        connected_for: a callable returning for how long this agent has been polling successfully
        logger: where to report
        lost: called when the API no longer knows this agent (it should register again)
    """

    def __init__(self, client: Any, agent_id: Callable[[], Optional[str]], agent_name: str,
                 labels: Collection[str], stranded_after: float, held: Callable[[], Collection[str]],
                 connected_for: Callable[[], float], logger: logging.Logger,
                 lost: Callable[[], None] = lambda: None) -> None:
        self.client = client
        self.agent_id = agent_id
        self.agent_name = agent_name
        self.labels = list(labels)
        self.stranded_after = stranded_after
        self.held = held
        self.connected_for = connected_for
        self.logger = logger
        self.lost = lost
        self.idle = False  # the last sweep found no Submitted run this agent could act on
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- finding -------------------------------------------------------------------------------------
    def stranded(self) -> List[dict]:
        """The Submitted runs to re-queue now, each with the `reason` it is stranded."""
        me = self.agent_id()
        if not me:
            return []
        data = self.client.graphql(SUBMITTED_QUERY, variables={"tenant": self.client.tenant_id, "me": me}).data
        if not data.agent:
            self.lost()
            return []
        runs = [r for r in data.flow_run if r.agent_id and covers(self.labels, r.labels or [])]
        self.idle = not runs
        if not runs or self.connected_for() < self.stranded_after:
            return []
        agents = {me: data.agent[0]}
        others = sorted({r.agent_id for r in runs} - {me})
        if others:
            agents.update({a.id: a for a in self.client.graphql(AGENTS_QUERY, variables={"ids": others}).data.agent})
        if not agents[me].last_queried:
            return []
        # the API's clock: when this agent last polled it
        now = pendulum.parse(agents[me].last_queried)
        held = set(self.held())
        found = []
        for run in runs:
            age = (now - pendulum.parse(run.state_timestamp)).total_seconds()
            if age <= self.stranded_after or run.id in held:
                continue  # recent, or this agent's own flow-run process holds it (whatever id it had then)
            if run.agent_id == me:
                reason = (f"this agent ({self.agent_name}) submitted it {age:.0f}s ago and holds no live "
                          "flow-run process for it")
            else:
                owner = agents.get(run.agent_id)
                silent = None if owner is None or not owner.last_queried else \
                    (now - pendulum.parse(owner.last_queried)).total_seconds()
                if silent is not None and silent <= self.stranded_after:
                    continue
                who = f"agent {owner.name!r}" if owner is not None else "its agent"
                reason = (f"{who} ({run.agent_id}) that submitted it {age:.0f}s ago has not polled the API "
                          + (f"for {silent:.0f}s" if silent is not None else "since (it is gone)"))
            found.append({"id": run.id, "version": run.version, "agent_id": run.agent_id, "reason": reason})
        return found

    # --- re-queueing ---------------------------------------------------------------------------------
    def requeue(self, run: dict) -> bool:
        """Moves one stranded run back to Scheduled, if it is still as it was found; logs why on the run.

        Returns:
            True when re-queued, False when the run changed meanwhile (its agent woke up, or another agent
            re-queued it first).
        """
        from prefect.engine.state import Scheduled

        # read again right before writing: the smallest window for the owner to move it meanwhile
        now = self.client.graphql(RUN_QUERY, variables={"id": run["id"]}).data.flow_run_by_pk
        if now is None or (now.state, now.version, now.agent_id) != ("Submitted", run["version"], run["agent_id"]):
            return False
        message = (f"Re-queued by agent {self.agent_name!r} (stranded-run recovery, {STRANDED_ENV}="
                   f"{self.stranded_after:g}s): {run['reason']}.")
        self.client.set_flow_run_state(flow_run_id=run["id"], version=run["version"],
                                       state=Scheduled(message=message, start_time=pendulum.now("UTC")))
        self.client.write_run_logs([dict(flow_run_id=run["id"], name=LOG_NAME, message=message, level="WARNING")])
        self.logger.warning("flow run %s: %s", run["id"], message)
        return True

    def sweep(self) -> int:
        """One sweep: finds and re-queues stranded runs. Returns how many were re-queued."""
        done = 0
        for run in self.stranded():
            try:
                done += self.requeue(run)
            except Exception as exc:  # another agent may have won the race for it: the next sweep sees
                self.logger.warning("could not re-queue flow run %s: %s", run["id"], exc)
        return done

    # --- the background thread -----------------------------------------------------------------------
    def start(self) -> None:
        """Sweeps in a daemon thread until `stop()`, every `sweep_interval(stranded_after)` seconds, or
        `idle_sweep_interval` after a sweep that found no Submitted run (module doc)."""
        def loop() -> None:
            while not self._stop.wait((idle_sweep_interval if self.idle else sweep_interval)(self.stranded_after)):
                self.idle = False
                try:
                    self.sweep()
                except Exception as exc:  # the API is away: polling reports it; try again next time
                    self.logger.debug("stranded-run sweep failed: %s", exc)

        self._thread = threading.Thread(name="stranded-runs", target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
