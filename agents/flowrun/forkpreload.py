"""Imported by an agent's fork server only (agents.flowrun.forkrun.PRELOAD): what it imports once for all the flow
runs it forks, and one change to multiprocessing in that process.

Every process the fork server forks is a flow run, which must not import the agent's `__main__` again:
multiprocessing prepares each child by running the parent's main script as `__mp_main__`, and a DAG script
hosting itself (`python test-hello.py`) would then run once more in every run, with the agent's environment
instead of the run's. `python -m agents.flowrun` does not do that, so neither does a forked run.
"""
from __future__ import annotations

from multiprocessing import spawn
from typing import Any, Dict

import prefect.cli.execute  # noqa: F401  (what `agents.flowrun.child.main` runs)

import agents.config  # noqa: F401  (agents.flowrun.forkrun reloads prefect's configuration with it)
import agents.flowrun.child  # noqa: F401
import agents.flowrun.forkrun  # noqa: F401

_prepare = spawn.prepare


def prepare(data: Dict[str, Any]) -> None:
    """multiprocessing's preparation of a child, without importing the parent's main module."""
    _prepare({key: value for key, value in data.items() if not key.startswith("init_main_from_")})


spawn.prepare = prepare
