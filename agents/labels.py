"""Labels: what a valid label is, a flow's labels, and Prefect Server's rule for which agent runs a run.

One rule is used everywhere a run is matched to an agent (recovery's sweep, `trigger`'s warning about
agents, waking the agents that may take a run), so they can never disagree.
"""
from __future__ import annotations

import re
from typing import Any, Collection, List, Optional

# A label travels through env vars, compose files and command lines: keep it to a safe alphabet.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


def flow_labels(flow: Any) -> List[str]:
    """The labels of a flow: its run_config labels, sorted (empty without a run_config)."""
    run_config = getattr(flow, "run_config", None)
    labels = getattr(run_config, "labels", None) or ()
    return sorted(str(label) for label in labels)


def label_problem(label: str) -> Optional[str]:
    """Returns why a label is invalid, or None when it is valid."""
    if not LABEL_PATTERN.match(label):
        return (f"invalid label {label!r}: a label starts with a letter or digit and holds only letters, "
                "digits and . _ : / - (no spaces or commas)")
    return None


def covers(agent_labels: Collection[str], run_labels: Collection[str]) -> bool:
    """Whether an agent with `agent_labels` may run a run with `run_labels` (Server's queue rule)."""
    if not run_labels:
        return not agent_labels
    return set(run_labels) <= set(agent_labels)
