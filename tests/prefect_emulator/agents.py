"""Real `prefect agent local start` subprocesses, and waiting for the runs they execute to finish."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Collection, Dict, List, Optional

from prefect import Client

from prefect_emulator.testing import REPO_ROOT
from tests.prefect_emulator.prefect_session import flow_run_rows

FINISHED_STATES = frozenset({"Success", "Failed", "Cancelled", "Skipped", "TimedOut"})


def agent_env(base: Dict[str, str], **extra: str) -> Dict[str, str]:
    """`base` (from prefect_emulator.testing.prefect_env) plus settings that keep agents and flow runs quick.

    Flow-run logs are shipped every second instead of every 5 s, and the cancellation check runs every
    second, so tests wait on the emulator rather than on prefect's defaults.
    """
    env = dict(base)
    env.update(
        PREFECT__CLOUD__LOGGING_HEARTBEAT="1",
        PREFECT__CLOUD__CHECK_CANCELLATION_INTERVAL="1",
        PREFECT__CLOUD__REQUEST_TIMEOUT="10",
    )
    env.update(extra)
    return env


def start_local_agent(env: Dict[str, str], labels: List[str], log_path: Path,
                      name: Optional[str] = None) -> subprocess.Popen:
    """Starts `prefect agent local start` with exactly `labels` (no hostname label) in its own session.

    Its flow-run children (`prefect execute flow-run`) stay in its process group, so
    `prefect_emulator.testing.stop` (or a killpg) ends them too.

    Args:
        env: the environment (see `agent_env`)
        labels: the agent's labels
        log_path: the agent's stdout and stderr go there
        name: the agent's name

    Returns:
        The agent process.
    """
    args = [sys.executable, "-m", "prefect", "agent", "local", "start", "--no-hostname-label",
            "--show-flow-logs", "--log-level", "DEBUG"]
    for label in labels:
        args += ["--label", label]
    if name:
        args += ["--name", name]
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_for_flow_runs(client: Client, run_ids: Collection[str], timeout: float,
                       states: Collection[str] = FINISHED_STATES, poll: float = 0.5,
                       agents: Collection[subprocess.Popen] = ()) -> Dict[str, dict]:
    """Polls the emulator until every run in `run_ids` is in one of `states`.

    Args:
        client: a client from `prefect_session`
        run_ids: the flow runs to watch
        timeout: seconds before giving up
        states: the state names that end the wait
        poll: seconds between queries
        agents: agent processes; the wait fails early if one of them dies

    Returns:
        The last rows read (see `flow_run_rows`).

    Raises:
        AssertionError: on timeout or a dead agent, listing the runs still pending and their states.
    """
    deadline = time.monotonic() + timeout
    rows: Dict[str, dict] = {}
    while True:
        rows = flow_run_rows(client, list(run_ids))
        pending = {i: rows.get(i, {}).get("state") for i in run_ids if rows.get(i, {}).get("state") not in states}
        if not pending:
            return rows
        dead = [a.args for a in agents if a.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} flow run(s) not in {sorted(states)} after {timeout}s "
                                 f"(dead agents: {dead}): {pending}")
        time.sleep(poll)
