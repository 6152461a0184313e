"""The exactly-once protocol: a run is executed by one flow-run process, even when an agent was only cut off.

Prefect Server enforces no state version lock, and a cut-off agent or flow-run process may write late: a
network cut, prefect's client retrying for up to a minute, a paused process. So an agent and the flow-run
processes it starts agree through the run's own states, with these steps:

1. **Submission** (the agent, `submit`). An agent that picks a run, Scheduled or Running with a task run
   due again (a retry, such as the one Server's zombie killer sets when the run's process died mid-task),
   writes a Submitted state carrying a fresh submission id (`SUBMISSION_KEY` in the state's `context`;
   without the Running state inside, so that the new process moves the run to Running again). Then it reads
   the run back (`submission_problem`): the submission must be the run's newest state, right after the state
   the agent picked the run in. A Submitted write delayed past the run's re-queue may land on a run another
   agent took meanwhile (Server accepts it once its 30 s Submitted lock has expired): that run is not this
   agent's to start, and the state it overwrote is put back (`undo_submission`, `put_back`), lest the run
   stay Submitted by this agent and be re-queued and run again.
2. **Hand-over** (the agent, `child_env`). The agent starts `python -m agents.flowrun` with its agent id,
   the submission id and the run's lease in the environment: DAGS_AGENT_ID, DAGS_SUBMISSION_ID and
   DAGS_RUN_LEASE (half of DAGS_DEAD_RUN_AFTER). These three variables are the whole link between the two
   processes; the flow-run process reads them here (`Received.from_env`).
3. **Ownership** (the flow-run process, `OwnedFlowRunner`). Right before and right after it moves the run to
   Running, the process confirms that the run still belongs to its submission (`ownership_problem`):
   - before: the run is Submitted (or Running) by this agent, and the newest Submitted state is this
     submission's;
   - after: the newest Submitted state is still this submission's (another agent's submission, written while
     this process was paused between the two, would be newer).
   Otherwise the run was re-queued while this process or its agent was cut off, and perhaps taken by another
   agent: the process gives it up, writes a log line on the run saying so, and exits 0 without writing any
   (more) state; so does a process that cannot read the run to confirm (the run is then re-queued like any
   stranded one). A process whose Running write was delayed past a re-queue and a new submission leaves one
   extra Running state in the run's history, and no task run.
4. **Lease** (the flow-run process, agents.flowrun.lease). Once Running, the process sends the run's
   heartbeat and stops itself when none got through for its lease, so it is gone before another agent may
   judge it dead.
5. **Re-queueing** (any agent, agents.agent.recovery). A Submitted run whose agent has been silent for
   DAGS_STRANDED_AFTER goes back to Scheduled, read again right before; a Running run whose agent is silent
   and whose heartbeat is DAGS_DEAD_RUN_AFTER old is finished by Server's rules (agents.agent.deadruns). The
   agent that started a process that died reports its death only while the run is still under that
   process's submission (`is_current`). A late process of a re-queued run is then harmless: step 3 stops it.

A started process without DAGS_SUBMISSION_ID (a run started by prefect's own agent) is not checked.
"""
from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

import prefect
from prefect.engine.cloud import CloudFlowRunner
from prefect.engine.runner import ENDRUN
from prefect.engine.state import State

from agents.flowrun import lease

# Environment of the flow-run process, set by its agent (`child_env`).
AGENT_ID_ENV = "DAGS_AGENT_ID"
SUBMISSION_ENV = "DAGS_SUBMISSION_ID"
# Key of the submission id in the Submitted state's context.
SUBMISSION_KEY = "dags_submission"
# the name of the log lines written on a run given up or put back
LOG_NAME = "agents.flowrun"

OWNERSHIP_QUERY = """query($id: uuid!) {
  flow_run_by_pk(id: $id) { state agent_id }
  flow_run_state(where: {flow_run_id: {_eq: $id}, state: {_eq: "Submitted"}},
                 order_by: {timestamp: desc}, limit: 1) { serialized_state }
}"""
HISTORY_QUERY = """query($id: uuid!) {
  flow_run_state(where: {flow_run_id: {_eq: $id}}, order_by: {timestamp: desc}, limit: 2) {
    serialized_state version
  }
}"""


# ------------------------------------------------------------------------------------------- the agent's side

def submit(client: Any, flow_run: Any, agent_name: str, logger: Any) -> Optional[str]:
    """Writes Submitted with a fresh submission id on a run the agent picked, and reads it back (step 1).

    Args:
        client: the agent's prefect Client
        flow_run: the run as prefect's agent read it (id, version, serialized_state)
        agent_name: the agent's name, for the state's message
        logger: the agent's logger

    Returns:
        The submission id; None when the run is neither Scheduled nor Running (nothing is written: prefect's
        own submission applies).

    Raises:
        ValueError: "State update failed: ...": the submission does not make the run this agent's (the state
            it landed on was put back); prefect's agent treats it as "another agent has it" (no Failed state).
    """
    from prefect.engine.state import Submitted
    from prefect.serialization.state import StateSchema

    state = StateSchema().load(flow_run.serialized_state)
    running = state.is_running()
    if not (state.is_scheduled() or running):
        return None
    submission = uuid.uuid4().hex
    client.set_flow_run_state(
        flow_run_id=flow_run.id, version=flow_run.version,
        state=Submitted(message=f"Submitted for execution by {agent_name}", state=None if running else state,
                        context={SUBMISSION_KEY: submission}))
    problem = submission_problem(client, flow_run.id, submission,
                                 running_version=flow_run.version if running else None)
    if problem:
        put_back(client, flow_run.id, submission, agent_name, problem, logger)
        raise ValueError(f"State update failed: flow run {flow_run.id} not submitted by {agent_name}: {problem}")
    return submission


def submission_problem(client: Any, flow_run_id: str, submission: str,
                       running_version: Optional[int] = None) -> Optional[str]:
    """Why a Submitted state just written with `submission` does not make the run ours (None when it does):
    it must be the run's newest state, right after the state the agent picked the run in.

    Args:
        client: the agent's prefect Client
        flow_run_id: the run
        submission: the submission id just written
        running_version: for a Running run picked up because a task run of it is due again (a retry), the
            version it had: the state before the submission must be that very Running state; None for a
            Scheduled run (the state before must be Scheduled)
    """
    from prefect.serialization.state import StateSchema

    rows = client.graphql(HISTORY_QUERY, variables={"id": flow_run_id}).data.flow_run_state
    states = [row.serialized_state or {} for row in rows]
    if not states or (states[0].get("context") or {}).get(SUBMISSION_KEY) != submission:
        return "another state was written after this submission"
    before = states[1].get("type") if len(states) > 1 else "not"
    if running_version is not None:
        if before != "Running" or rows[1].version != running_version:
            return f"the run was {before} (version {rows[1].version if len(rows) > 1 else None}) when the " \
                   f"submission landed, not the Running state (version {running_version}) it was picked up in"
        return None
    if len(states) < 2 or not StateSchema().load(states[1]).is_scheduled():
        return f"the run was {before} Scheduled when the submission landed"
    return None


def undo_submission(client: Any, flow_run_id: str, submission: str, agent_name: str) -> Optional[str]:
    """Puts back the state that a refused submission (`submission_problem`) landed on; returns its name, or
    None when nothing was written.

    A Submitted write delayed by a network cut (prefect's client retries for up to a minute) lands whatever
    the run became meanwhile once Server's 30 s Submitted lock has expired: on a run another agent is running,
    or has finished. Left there, it makes the run Submitted by this agent, with no process: the other agent's
    process can no longer set its tasks Running (Server wants its flow run Running), and this agent's
    recovery sweep (agents.agent.recovery) re-queues the run, which then runs a second time.

    Nothing is written when the submission is no longer the run's newest state (someone wrote after it), or
    when it landed on another Submitted state: Server's lock, just taken by this submission, refuses a copy of
    it for 30 s; the other agent's process then gives the run up (the newest submission is not its own) and
    the run, Submitted by this agent with no process, is re-queued by the recovery sweep and runs once.
    A window remains: Prefect Server ignores `version`, so a state the other process writes between this
    read and the put-back (milliseconds) would be overwritten by the put-back; Prefect Cloud's version lock
    refuses the put-back instead.
    """
    from prefect.serialization.state import StateSchema

    rows = client.graphql(HISTORY_QUERY, variables={"id": flow_run_id}).data.flow_run_state
    if len(rows) < 2 or ((rows[0].serialized_state or {}).get("context") or {}).get(SUBMISSION_KEY) != submission:
        return None
    previous = StateSchema().load(rows[1].serialized_state)
    if previous.is_submitted():
        return None
    previous.message = (f"{previous.message or ''} (put back by agent {agent_name}: its Submitted state, "
                        "written late, had landed on it)").lstrip()
    client.set_flow_run_state(flow_run_id=flow_run_id, version=rows[0].version, state=previous)
    return type(previous).__name__


def put_back(client: Any, flow_run_id: str, submission: str, agent_name: str, problem: str, logger: Any) -> None:
    """Puts back the state a refused submission landed on (`undo_submission`), with a log line on the run;
    never raises: prefect's agent would mark the run Failed on any error but "State update failed"."""
    try:
        restored = undo_submission(client, flow_run_id, submission, agent_name)
        if restored is None:
            return
        message = (f"Agent {agent_name!r} put the run back to {restored}: its Submitted state was written "
                   f"late, on top of it ({problem}).")
        logger.warning("flow run %s: %s", flow_run_id, message)
        client.write_run_logs([dict(flow_run_id=flow_run_id, name=LOG_NAME, message=message, level="WARNING")])
    except Exception as exc:
        logger.warning("flow run %s: could not put back the state its late Submitted state landed on "
                       "(%s: %s)", flow_run_id, type(exc).__name__, exc)


def child_env(agent_id: Optional[str], submission: str, lease_seconds: float) -> Dict[str, str]:
    """What the agent passes to the flow-run process of a run it submitted (step 2)."""
    return {AGENT_ID_ENV: agent_id or "", SUBMISSION_ENV: submission, lease.LEASE_ENV: f"{lease_seconds:g}"}


def latest_submission(client: Any, flow_run_id: str) -> dict:
    """The run's state, agent id and the submission id of its newest Submitted state (None if none)."""
    data = client.graphql(OWNERSHIP_QUERY, variables={"id": flow_run_id}).data
    run = data.flow_run_by_pk
    states = data.flow_run_state
    context = ((states[0].serialized_state or {}).get("context") or {}) if states else {}
    return {"state": run.state if run else None, "agent_id": run.agent_id if run else None,
            "submission": context.get(SUBMISSION_KEY)}


def is_current(client: Any, flow_run_id: str, submission: str) -> bool:
    """Whether the run is still Submitted or Running under `submission` (not finished, not re-queued and
    taken by another agent): an agent reports the death of its process only then (step 5)."""
    found = latest_submission(client, flow_run_id)
    return found["submission"] == submission and found["state"] in ("Submitted", "Running")


# ----------------------------------------------------------------------------------- the flow-run process's side

@dataclass(frozen=True)
class Received:
    """What a flow-run process received from its agent (step 2); empty when its agent is not ours.

    Attributes:
        agent_id: the agent that started it (DAGS_AGENT_ID)
        submission: the submission id it runs under (DAGS_SUBMISSION_ID)
        lease: seconds without a heartbeat through after which it stops (DAGS_RUN_LEASE); 0 for no lease
    """

    agent_id: str = ""
    submission: str = ""
    lease: float = 0.0

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Received":
        """Reads the process's environment (default os.environ); a lease that is unset, empty or not a
        positive number is 0 (no lease)."""
        env = os.environ if environ is None else environ
        try:
            seconds = max(0.0, float(env.get(lease.LEASE_ENV) or 0))
        except ValueError:
            seconds = 0.0
        return cls(agent_id=env.get(AGENT_ID_ENV, ""), submission=env.get(SUBMISSION_ENV, ""), lease=seconds)


def ownership_problem(found: dict, agent_id: str, submission: str, before_start: bool) -> Optional[str]:
    """Why this process does not own the run (None when it does).

    Args:
        found: what `latest_submission` read
        agent_id: the agent that started this process
        submission: the submission id it was given
        before_start: True before moving the run to Running (the run must still be Submitted by us)
    """
    if found["submission"] != submission:
        return (f"the run was re-queued and submitted again (now {found['state']}, agent {found['agent_id']}), "
                "so another flow-run process owns it")
    # Running too: a late process of another submission may have written Running, then given the run up
    if before_start and found["state"] not in ("Submitted", "Running"):
        return f"the run was re-queued (it is {found['state']}, no longer Submitted by this agent)"
    if before_start and found["agent_id"] and found["agent_id"] != agent_id:
        return f"the run is now held by agent {found['agent_id']}"
    return None


class OwnedFlowRunner(CloudFlowRunner):
    """prefect's CloudFlowRunner that starts a run only while its agent's submission still owns it (step 3),
    and holds the run's lease once it runs (step 4)."""

    def _check(self, state: State, before_start: bool) -> None:
        received = Received.from_env()
        if not received.submission:
            return  # started by an agent that is not ours (prefect's): nothing to check against
        flow_run_id = prefect.context.get("flow_run_id")
        try:
            problem = ownership_problem(latest_submission(self.client, flow_run_id), received.agent_id,
                                        received.submission, before_start)
        except Exception as exc:  # unconfirmed is not owned: a run left behind is re-queued, a double run is not undone
            problem = f"its ownership could not be confirmed ({type(exc).__name__}: {exc})"
        if problem is None:
            return
        message = (f"Flow-run process {os.getpid()} of agent {received.agent_id} gives this run up and does not "
                   f"{'start' if before_start else 'continue'} it: {problem}.")
        # not the runner's logger: prefect ships that one to the API too, and the run would show the line twice
        logging.getLogger(LOG_NAME).warning(message)
        try:
            self.client.write_run_logs([dict(flow_run_id=flow_run_id, name=LOG_NAME, message=message,
                                             level="WARNING")])
        except Exception:  # the API is away: the local log above has it
            pass
        # ENDRUN ends prefect's runner with no state written: the run stays as its owner left it
        raise ENDRUN(state=state)

    def set_flow_to_running(self, state: State) -> State:
        """Checks ownership, moves the run to Running (prefect), and checks again before any task runs."""
        self._check(state, before_start=True)
        state = super().set_flow_to_running(state)
        self._check(state, before_start=False)
        self._hold_lease()
        return state

    def _hold_lease(self) -> None:
        """Starts the run's lease (agents.flowrun.lease) when its agent handed one over: from here on, a process cut
        off from the API for that long stops."""
        received = Received.from_env()
        if not received.lease or not received.submission:
            return
        flow_run_id = prefect.context.get("flow_run_id")
        client = prefect.Client()  # its own: the runner's client is used from the runner's thread
        lease.Lease(lambda: client.update_flow_run_heartbeat(flow_run_id), received.lease,
                    float(prefect.config.cloud.heartbeat_interval)).start()
