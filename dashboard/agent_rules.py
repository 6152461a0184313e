"""The agents' own rules, reused (not copied): which agent may take a run, when an agent is stale, and
how to wake the agents that may take a new run (DAGS_POKE_ADDRESSES and this machine's agents)."""
from __future__ import annotations

from typing import Collection, Iterable, List, Optional, Tuple

import pendulum

from agents.agent.waking import wake_agents
from agents.cli.triggering import AGENT_FRESH_SECONDS
from agents.labels import covers

__all__ = ["covers", "AGENT_FRESH_SECONDS", "wake_agents", "is_stale", "missing_labels"]


def is_stale(last_queried: Optional[str], now: Optional[pendulum.DateTime] = None) -> bool:
    """True when the agent has not polled within AGENT_FRESH_SECONDS (the rule of `trigger --wait`)."""
    if not last_queried:
        return True
    now = now or pendulum.now("utc")
    return (now - pendulum.parse(last_queried)).total_seconds() > AGENT_FRESH_SECONDS


def missing_labels(run_labels: Collection[str], agents: Iterable[dict]) -> Optional[Tuple[List[str], str]]:
    """None when a live agent covers `run_labels`; else the labels the closest live agent lacks and the
    command that starts an agent for this run.

    Args:
        run_labels: the run's labels
        agents: rows with `labels` and `last_queried`
    """
    live = [sorted(a.get("labels") or []) for a in agents if not is_stale(a.get("last_queried"))]
    if any(covers(labels, run_labels) for labels in live):
        return None
    wanted = sorted(run_labels)
    missing = min((sorted(set(wanted) - set(labels)) for labels in live), key=len, default=wanted)
    command = "python -m agents start" + "".join(f" --label {label}" for label in wanted)
    return missing, command
