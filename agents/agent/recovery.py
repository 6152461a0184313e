"""Stranded runs: Submitted runs whose agent stopped polling go back to the queue (Scheduled), exactly once;
Running runs whose agent died with them are finished.

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

Dead runs: the same sweep finishes the Running runs whose agent died with them. A Running run it could run
itself, whose last heartbeat is `dead_after` seconds old (DAGS_DEAD_RUN_AFTER) and whose agent has been silent
for `stranded_after` seconds, lost its process: it is finished by Server's zombie killer and Lazarus rules
(agents.agent.deadruns: the running task Retrying or Failed, the run Failed or rescheduled) with a message
naming the dead agent, re-read right before (nothing is written once it beat again or changed). Its own
Running runs with no live process and a heartbeat that old count too (their death report failed: the API was
away). A flow-run process cut off from the API stops itself before that (agents.flowrun.lease). Runs found
Running keep the sweep at its busy cadence.

A run submitted by this very agent is stranded when the flow-run process it started is gone and the run is
still Submitted (the process died before starting it; or Server gave this agent the id of an earlier one with
the same name, whose runs then look fresh).

Clocks: staleness is measured on the API's clock, against this agent's own `last_queried` (at most one poll
interval old), never against the local clock. After a failed poll (an API outage), the sweep waits until this
agent has polled successfully for `stranded_after` seconds again, so agents that were only waiting for the API
are not judged dead.

A re-queued run whose old flow-run process turns up late is guarded by the ownership check of its submission
(agents.submission).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Collection, List, Optional

import pendulum

from agents.agent import deadruns
from agents.labels import covers
from agents.settings import DEAD_RUN_AFTER, STRANDED_AFTER

LOG_NAME = "agents.recovery"
# Longest pause between two sweeps of an idle agent, in seconds.
IDLE_SWEEP_MAX = 30.0

# The Submitted runs, and whether the API still knows this agent: one request per sweep.
SUBMITTED_QUERY = """query($tenant: uuid!, $me: uuid!) {
  flow_run(where: {tenant_id: {_eq: $tenant}, state: {_in: ["Submitted", "Running"]}}) {
    id labels version agent_id state state_timestamp heartbeat
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
        dead_after: seconds since a Running run's last heartbeat after which, its agent silent, it is finished
    """

    def __init__(self, client: Any, agent_id: Callable[[], Optional[str]], agent_name: str,
                 labels: Collection[str], stranded_after: float, held: Callable[[], Collection[str]],
                 connected_for: Callable[[], float], logger: logging.Logger,
                 lost: Callable[[], None] = lambda: None, dead_after: float = DEAD_RUN_AFTER.default) -> None:
        self.client = client
        self.agent_id = agent_id
        self.agent_name = agent_name
        self.labels = list(labels)
        self.stranded_after = stranded_after
        self.dead_after = dead_after
        self.held = held
        self.connected_for = connected_for
        self.logger = logger
        self.lost = lost
        self.idle = False  # the last sweep found no Submitted or Running run this agent could act on
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- finding -------------------------------------------------------------------------------------
    def stranded(self) -> List[dict]:
        """The Submitted runs to re-queue and the Running runs to finish now, each with the `reason`."""
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
            if run.id in held:
                continue  # this agent's own flow-run process holds it (whatever id it had then)
            # a Submitted run is judged by its submission's age, a Running one by its last heartbeat's
            dead = run.state == "Running"
            since = run.heartbeat if dead and run.heartbeat else run.state_timestamp
            age = (now - pendulum.parse(since)).total_seconds()
            if age <= (self.dead_after if dead else self.stranded_after):
                continue
            beat = f"its last heartbeat is {age:.0f}s old and " if dead else ""
            if run.agent_id == me:
                did = "" if dead else f" submitted it {age:.0f}s ago and"
                reason = f"{beat}this agent ({self.agent_name}){did} holds no live flow-run process for it"
            else:
                owner = agents.get(run.agent_id)
                silent = None if owner is None or not owner.last_queried else \
                    (now - pendulum.parse(owner.last_queried)).total_seconds()
                if silent is not None and silent <= self.stranded_after:
                    continue
                who = f"agent {owner.name!r}" if owner is not None else "its agent"
                did = "that ran it" if dead else f"that submitted it {age:.0f}s ago"
                reason = (f"{beat}{who} ({run.agent_id}) {did} has not polled the API "
                          + (f"for {silent:.0f}s" if silent is not None else "since (it is gone)"))
            found.append({"id": run.id, "version": run.version, "agent_id": run.agent_id, "reason": reason,
                          "state": run.state, "heartbeat": run.heartbeat})
        return found

    # --- finishing dead runs -------------------------------------------------------------------------
    def finish(self, run: dict) -> bool:
        """Finishes one Running run whose process is presumed dead, by Server's rules (agents.agent.deadruns), if it
        is still as it was found. Returns True when a state was written."""
        cause = f"its flow-run process is presumed dead: {run['reason']}"
        expect = {key: run[key] for key in ("version", "agent_id", "heartbeat")}
        done = deadruns.finish_dead_run(self.client, run["id"], cause, f"agent {self.agent_name!r}", self.logger,
                                        expect=expect)
        return done is not None

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
        message = (f"Re-queued by agent {self.agent_name!r} (stranded-run recovery, {STRANDED_AFTER.name}="
                   f"{self.stranded_after:g}s): {run['reason']}.")
        self.client.set_flow_run_state(flow_run_id=run["id"], version=run["version"],
                                       state=Scheduled(message=message, start_time=pendulum.now("UTC")))
        self.client.write_run_logs([dict(flow_run_id=run["id"], name=LOG_NAME, message=message, level="WARNING")])
        self.logger.warning("flow run %s: %s", run["id"], message)
        return True

    def sweep(self) -> int:
        """One sweep: re-queues stranded Submitted runs and finishes dead Running ones. Returns how many."""
        done = 0
        for run in self.stranded():
            try:
                done += self.finish(run) if run["state"] == "Running" else self.requeue(run)
            except Exception as exc:  # another agent may have won the race for it: the next sweep sees
                self.logger.warning("could not %s flow run %s: %s",
                                    "finish" if run["state"] == "Running" else "re-queue", run["id"], exc)
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
