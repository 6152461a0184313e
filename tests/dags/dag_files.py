"""The DAG files under test, loaded and run the ways the runtime does: exec()ed by prefect's script storage
in this process, or as `python <dag>.py --local` in a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from prefect import Flow
from prefect.engine.state import State
from prefect.utilities.storage import extract_flow_from_file

REPO_ROOT = Path(__file__).resolve().parents[2]
ETL_DAG = REPO_ROOT / "dags" / "etl-seattle-weather" / "etl_seattle_weather.py"
PRIMES_DAG = REPO_ROOT / "dags" / "distributed-primes" / "distributed_primes.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WEATHER_CSV = REPO_ROOT / "data" / "seattle-weather.csv"


def load_flow(path: Path) -> Flow:
    """Loads the DAG's flow exactly as script storage does in a flow-run process (exec of the file).

    Args:
        path: the DAG file

    Returns:
        Its module-level Flow, built now (so module-level code sees the current environment).
    """
    return extract_flow_from_file(file_path=str(path))


# the ways a path parameter may point out of data/ (agents.dagkit.datafiles refuses each)
ESCAPES = ("absolute", "dot-dot", "symlink")


def escaping_path(kind: str, target: Path, data_dir: Path) -> str:
    """A path parameter that leads to `target`, outside `data_dir`, the `kind` way (ESCAPES)."""
    if kind == "absolute":
        return str(target)
    if kind == "dot-dot":
        return "data/" + "../" * 20 + str(target.relative_to("/"))  # climbs to / and back down to target
    target.mkdir()
    (data_dir / "out-link").symlink_to(target, target_is_directory=True)
    return str(data_dir / "out-link")


def task_state(state: State, name: str) -> State:
    """The state of the (unmapped) task called `name` in a finished flow run's state."""
    for task, task_state_ in state.result.items():
        if task.name == name:
            return task_state_
    raise KeyError(f"no task {name!r} in the flow run's result")


def dag_env(home: Path, **extra: str) -> Dict[str, str]:
    """Environment for a `python <dag>.py --local` subprocess: no PREFECT variables from outside,
    an isolated PREFECT__HOME_DIR, nothing inherited that would choose the executor or the agent name.

    Args:
        home: folder for PREFECT__HOME_DIR
        extra: more variables, verbatim

    Returns:
        The environment.
    """
    drop = ("PREFECT", "DASK_SCHEDULER_ADDRESS", "DAGS_AGENT_NAME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PREFECT__HOME_DIR=str(home), PREFECT__BACKEND="server", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_local(path: Path, params: Dict[str, Any], env: Dict[str, str], timeout: float = 300,
              preexec_fn: Optional[Callable[[], None]] = None) -> subprocess.CompletedProcess:
    """Runs `python <dag>.py --local --param k=v ...` (values as JSON) and returns the finished process.

    Args:
        path: the DAG file
        params: flow parameters
        env: the subprocess environment (see dag_env)
        timeout: seconds before the run is abandoned
        preexec_fn: called in the child before exec (e.g. to set resource limits)

    Returns:
        The CompletedProcess, stdout and stderr as text.
    """
    args = [sys.executable, str(path), "--local"]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value)}"]
    return subprocess.run(args, env=env, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec_fn)
