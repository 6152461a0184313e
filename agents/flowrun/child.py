"""The flow-run process our agents start: prefect's `execute flow-run`, behind an ownership check.

An agent that submits a run writes a Submitted state carrying a fresh submission id (in the state's
`context`), and starts `python -m agents.flowrun` with that id and its agent id in the environment. This
process then runs prefect's own `prefect execute flow-run` command, with a CloudFlowRunner subclass that
confirms, right before and right after it moves the run to Running, that the run still belongs to this
submission:

- before: the run is Submitted (or Running) by this agent, and the newest Submitted state is this
  submission's;
- after: the newest Submitted state is still this submission's (another agent's submission, written while
  this process was paused between the two, would be newer).

Otherwise the run was re-queued (agents.agent.recovery) while this process or its agent was cut off, and perhaps
taken by another agent: this process gives it up, writes a log line on the run saying so, and exits 0
without writing any (more) state; so does a process that cannot read the run to confirm (the run is then
re-queued like any stranded one). A process whose Running write was delayed past a re-queue and a new
submission leaves one extra Running state in the run's history, and no task run. Prefect Server enforces no state version lock, so this check is what makes a
late flow-run process harmless.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import prefect
from prefect.engine.cloud import CloudFlowRunner
from prefect.engine.runner import ENDRUN
from prefect.engine.state import State

from agents.flowrun import lease

# Environment of the flow-run process (set by agents.agent.hosting.DagsAgent).
AGENT_ID_ENV = "DAGS_AGENT_ID"
SUBMISSION_ENV = "DAGS_SUBMISSION_ID"
# Key of the submission id in the Submitted state's context.
SUBMISSION_KEY = "dags_submission"
RUNNER_CLASS = "agents.flowrun.child.OwnedFlowRunner"
LOG_NAME = "agents.flowrun"

OWNERSHIP_QUERY = """query($id: uuid!) {
  flow_run_by_pk(id: $id) { state agent_id }
  flow_run_state(where: {flow_run_id: {_eq: $id}, state: {_eq: "Submitted"}},
                 order_by: {timestamp: desc}, limit: 1) { serialized_state }
}"""


def latest_submission(client: Any, flow_run_id: str) -> dict:
    """The run's state, agent id and the submission id of its newest Submitted state (None if none)."""
    data = client.graphql(OWNERSHIP_QUERY, variables={"id": flow_run_id}).data
    run = data.flow_run_by_pk
    states = data.flow_run_state
    context = ((states[0].serialized_state or {}).get("context") or {}) if states else {}
    return {"state": run.state if run else None, "agent_id": run.agent_id if run else None,
            "submission": context.get(SUBMISSION_KEY)}


HISTORY_QUERY = """query($id: uuid!) {
  flow_run_state(where: {flow_run_id: {_eq: $id}}, order_by: {timestamp: desc}, limit: 2) {
    serialized_state version
  }
}"""


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
    """prefect's CloudFlowRunner that starts a run only while its agent's submission still owns it."""

    def _check(self, state: State, before_start: bool) -> None:
        agent_id = os.environ.get(AGENT_ID_ENV, "")
        submission = os.environ.get(SUBMISSION_ENV, "")
        if not submission:
            return  # started by an agent that is not ours (prefect's): nothing to check against
        flow_run_id = prefect.context.get("flow_run_id")
        try:
            problem = ownership_problem(latest_submission(self.client, flow_run_id), agent_id, submission,
                                        before_start)
        except Exception as exc:  # unconfirmed is not owned: a run left behind is re-queued, a double run is not undone
            problem = f"its ownership could not be confirmed ({type(exc).__name__}: {exc})"
        if problem is None:
            return
        message = (f"Flow-run process {os.getpid()} of agent {agent_id} gives this run up and does not "
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
        seconds = lease.lease_from_env()
        if not seconds or not os.environ.get(SUBMISSION_ENV):
            return
        flow_run_id = prefect.context.get("flow_run_id")
        client = prefect.Client()  # its own: the runner's client is used from the runner's thread
        lease.Lease(lambda: client.update_flow_run_heartbeat(flow_run_id), seconds,
                    float(prefect.config.cloud.heartbeat_interval)).start()


def main() -> None:
    """Runs prefect's `execute flow-run` command with OwnedFlowRunner as the flow runner."""
    from prefect.cli.execute import flow_run

    # prefect resolves the runner class by name among modules already imported: this one is
    prefect.config.engine.flow_runner.default_class = RUNNER_CLASS
    flow_run.main(args=[], prog_name="python -m agents.flowrun")

