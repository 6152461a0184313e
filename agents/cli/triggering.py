"""Triggering: create a run of a DAG's latest version, and optionally watch it to its end.

Exit codes of a watched run (`trigger --wait`): 0 Success, 1 a failed or cancelled state, 2 timeout.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from agents.errors import UserError
from agents.labels import covers
from agents.settings import WATCH_POLL_INTERVAL

EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_TIMEOUT = 2
# A flow-run process sends its logs in batches (prefect's cloud.logging_heartbeat, 5 s by default) and the
# last batch at exit, so the last logs can reach the API after the final state. Once the run is finished
# we keep reading logs until the flow runner's closing line arrives, for at most heartbeat + this margin.
LOG_GRACE_MARGIN = 3.0
CLOSING_LOG_PREFIXES = ("Flow run SUCCESS", "Flow run FAILED")
# An agent that has asked for runs within this many seconds is alive (prefect's idle poll tops at 10 s).
AGENT_FRESH_SECONDS = 60.0


def latest_flow_id(name: str, project: str) -> str:
    """The id of the newest version of flow `name` in `project` (as `prefect run --name` finds it).

    Raises:
        UserError: no such flow in that project; the message says how to register it.
    """
    from prefect.backend import FlowView

    try:
        return FlowView.from_flow_name(name, project_name=project, last_updated=True).flow_id
    except ValueError:
        raise UserError(
            f"DAG {name!r} is not registered in project {project!r}: run `python -m agents register {name}` "
            "(or start its dag service) first"
        ) from None


def create_run(name: str, project: str, parameters: Dict[str, Any]) -> str:
    """Creates a flow run of the DAG's latest version; agents whose labels match will pick it up.

    Returns:
        The flow run id.
    """
    from prefect import Client

    flow_id = latest_flow_id(name, project)
    return Client().create_flow_run(flow_id=flow_id, parameters=parameters or None)


def no_agent_warning(flow_run_id: str, dag_name: str) -> Optional[str]:
    """A warning when no agent that can run this flow run has polled the API lately, else None.

    It reads `agent { labels last_queried }` (what the UI's Agents page shows) and the run's labels, so a
    run that would sit at Scheduled forever says why.

    Args:
        flow_run_id: the run just created
        dag_name: its DAG, for the fix

    Returns:
        One line naming the run's labels and how to start an agent for them, or None (also when the API
        refuses the query).
    """
    import pendulum
    from prefect import Client
    from prefect.exceptions import ClientError
    from prefect.utilities.graphql import with_args

    query = {"query": {with_args("flow_run_by_pk", {"id": flow_run_id}): {"labels": True},
                       "agent": {"labels": True, "last_queried": True}}}
    try:
        data = Client().graphql(query).data
    except ClientError:
        return None  # only a hint: an API that refuses the agents query must not stop the wait
    run_labels = sorted(data.flow_run_by_pk.labels or [])
    now = pendulum.now("utc")
    for agent in data.agent:
        if agent.last_queried and covers(list(agent.labels or []), run_labels) \
                and (now - pendulum.parse(agent.last_queried)).total_seconds() <= AGENT_FRESH_SECONDS:
            return None
    start = "".join(f" --label {label}" for label in run_labels)
    return (f"warning: no agent with labels covering {run_labels} has polled the API in the last "
            f"{AGENT_FRESH_SECONDS:g}s: the run stays Scheduled until one does; start one with "
            f"`python -m agents serve {dag_name}` (in the stack: its service dag-{dag_name}) or "
            f"`python -m agents start{start}`")


def watch(flow_run_id: str, timeout: Optional[float], echo: Callable[[str], None],
          poll: float = WATCH_POLL_INTERVAL.default) -> int:
    """Prints a run's state changes and logs as they happen, until it finishes or time runs out.

    Lines look like `<timestamp> state Running: <message>` and `<timestamp> INFO <message>`.

    Args:
        flow_run_id: the run to watch
        timeout: seconds to wait for a finished state; None waits forever
        echo: prints one line
        poll: seconds between polls (`Settings.watch_poll_interval`, DAGS_WATCH_POLL_INTERVAL)

    Returns:
        EXIT_SUCCESS, EXIT_FAILED or EXIT_TIMEOUT.
    """
    import logging

    import pendulum
    import prefect
    from prefect.backend import FlowRunView

    deadline = None if timeout is None else time.monotonic() + timeout
    run = FlowRunView.from_flow_run_id(flow_run_id)
    states_seen = 0
    logs_seen = 0
    closed = False
    pending: List[Tuple[Any, str]] = []  # (timestamp, line) not printed yet

    def collect() -> None:
        """Adds the run's new states and logs to `pending`."""
        nonlocal states_seen, logs_seen, closed
        for state in run.states[states_seen:]:
            pending.append((state.timestamp, f"{state.timestamp} state {type(state).__name__}: "
                                             f"{state.message or ''}".rstrip()))
        states_seen = max(states_seen, len(run.states))
        # All logs so far, oldest first: reading from an index never drops two logs sharing a timestamp.
        logs = run.get_logs(end_time=pendulum.now("utc").add(seconds=1))
        for log in logs[logs_seen:]:
            pending.append((log.timestamp, f"{log.timestamp} {logging.getLevelName(log.level)} {log.message}"))
            closed = closed or str(log.message).startswith(CLOSING_LOG_PREFIXES)
        logs_seen = max(logs_seen, len(logs))

    def flush() -> None:
        """Prints what is pending, states and logs merged in time order."""
        for _, line in sorted(pending, key=lambda item: item[0]):
            echo(line)
        del pending[:]

    while True:
        collect()
        if run.state.is_finished():
            break
        flush()
        if deadline is not None and time.monotonic() >= deadline:
            echo(f"timed out after {timeout:g}s: flow run {flow_run_id} is still {type(run.state).__name__}")
            return EXIT_TIMEOUT
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
        run = run.get_latest()
    grace_end = time.monotonic() + float(prefect.config.cloud.get("logging_heartbeat", 5)) + LOG_GRACE_MARGIN
    while not closed and time.monotonic() < grace_end:
        time.sleep(min(poll, 0.5))
        collect()
    # The final state is printed with the last logs, so that it comes after the logs that preceded it.
    flush()
    name = type(run.state).__name__
    echo(f"flow run {flow_run_id} finished: {name}")
    return EXIT_SUCCESS if run.state.is_successful() else EXIT_FAILED
