"""Hosting: prefect LocalAgents that run the DAGs' flow runs in subprocesses of their container.

An agent is named after what it hosts and where (`<dag-or-labels>@<hostname>`), so every run shows
which container ran it, and passes `DAGS_AGENT_NAME=<agent name>` into the runs it spawns.
"""
from __future__ import annotations

import os
import socket
from typing import Dict, Iterable, List, Optional

from prefect.agent.local import LocalAgent

from agents.config import REPO_ROOT, seconds_from_env

# Seconds; caps the agent's idle poll backoff (prefect's own goes 0.25s .. 10s). Tests set it low.
POLL_ENV = "DAGS_AGENT_MAX_POLL_INTERVAL"


class DagsAgent(LocalAgent):
    """A LocalAgent whose idle polling backoff can be capped (prefect's `_loop_intervals`, per instance).

    Args:
        max_poll_interval: the longest sleep between two polls for ready runs, in seconds; None keeps
            prefect's schedule (0.25s doubling up to 10s)
        **kwargs: LocalAgent's arguments
    """

    def __init__(self, max_poll_interval: Optional[float] = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if max_poll_interval is not None:
            self._loop_intervals = {k: min(v, max_poll_interval) for k, v in LocalAgent._loop_intervals.items()}

    def start(self) -> None:
        """Polls for runs until interrupted, from the repository root: the runs it spawns inherit it as
        their working directory, where the relative script paths of `agents.registration` resolve."""
        os.chdir(REPO_ROOT)
        super().start()


def max_poll_interval_from_env() -> Optional[float]:
    """DAGS_AGENT_MAX_POLL_INTERVAL as a positive number of seconds, or None when unset."""
    return seconds_from_env(POLL_ENV, None)


def agent_name(what: str) -> str:
    """`<what>@<hostname>`: in a container the hostname is the container id or its compose hostname."""
    return f"{what}@{socket.gethostname()}"


def labels_name(labels: Iterable[str]) -> str:
    """The `what` of a shared agent's default name: its labels joined by '+', or 'unlabelled'."""
    labels = sorted(labels)
    return "+".join(labels) if labels else "unlabelled"


def build_agent(labels: List[str], name: str, agent_address: Optional[str] = None,
                show_flow_logs: bool = True, env_vars: Optional[Dict[str, str]] = None) -> DagsAgent:
    """Creates (does not start) a LocalAgent for the given labels.

    Args:
        labels: the agent's labels (a run goes to it only if these include all the run's labels)
        name: the agent's name, shown on every run it submits
        agent_address: where to serve the health endpoint (`http://0.0.0.0:PORT`); None reads
            prefect's PREFECT__CLOUD__AGENT__AGENT_ADDRESS
        show_flow_logs: print the runs' output in the agent's output (visible in `docker compose logs`)
        env_vars: more variables for the runs

    Returns:
        The agent; call `.start()` to run it until interrupted.
    """
    runs_env = {"DAGS_AGENT_NAME": name}
    runs_env.update(env_vars or {})
    return DagsAgent(
        max_poll_interval=max_poll_interval_from_env(),
        name=name,
        labels=sorted(labels),
        env_vars=runs_env,
        # the repo root on the runs' path, so a DAG may import shared code from the tree
        import_paths=[str(REPO_ROOT)],
        show_flow_logs=show_flow_logs,
        hostname_label=False,
        agent_address=agent_address or None,
    )
