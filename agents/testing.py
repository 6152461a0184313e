"""The command line and agents as real subprocesses, for the tests and the tools that measure or picture the
runtime (scripts/, dashboard.testing), which is why it is part of the package. Each process gets its own
PREFECT__HOME_DIR and env-file folder (never the developer's) and is always stopped."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from prefect_emulator.testing import REPO_ROOT, free_port, prefect_env, stop, wait_for_http

# Fast polling for tests (see agents/settings.py).
FAST = dict(DAGS_AGENT_MAX_POLL_INTERVAL="0.5", DAGS_WATCH_POLL_INTERVAL="0.3", DAGS_API_WAIT_TIMEOUT="10",
            PREFECT__CLOUD__LOGGING_HEARTBEAT="0.5")


def runtime_env(api_url: str, home: Path, env_dir: Path, **extra: str) -> Dict[str, str]:
    """Environment for `python -m agents` pointed at an API; env files come from `env_dir` (not the repo's)."""
    env = prefect_env(api_url, home, **FAST)
    env["DAGS_ENV_DIR"] = str(env_dir)
    env.update(extra)
    return env


def run_cli(args: List[str], env: Dict[str, str], timeout: float = 180, cwd: Optional[Path] = None
            ) -> subprocess.CompletedProcess:
    """Runs `python -m agents ARGS` to its end; output (stdout+stderr) in `.stdout`."""
    return subprocess.run([sys.executable, "-m", "agents"] + args, env=env, cwd=str(cwd or REPO_ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


class Background:
    """A long-running subprocess (an agent, a DAG script) with its output in a file; always stopped."""

    def __init__(self, args: List[str], env: Dict[str, str], log: Path, cwd: Optional[Path] = None) -> None:
        self.log_path = log
        self.health_url = ""
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, env=env, cwd=str(cwd or REPO_ROOT), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        """Waits until `text` appears in the output; fails with the output if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} before printing {text!r}:\n{self.output()}")
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not printed within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        stop(self.proc)

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_agent(args: List[str], env: Dict[str, str], log: Path, cwd: Optional[Path] = None,
                wait: bool = True) -> Background:
    """Starts `python -m agents <start|serve ...>` with a health endpoint (its URL in `.health_url`) and,
    with `wait`, waits until it answers."""
    port = free_port()
    agent = Background([sys.executable, "-m", "agents"] + args + ["--agent-address", f"http://127.0.0.1:{port}"],
                       env, log, cwd)
    agent.health_url = f"http://127.0.0.1:{port}/api/health"
    if not wait:
        return agent
    try:
        wait_for_http(agent.health_url, timeout=90, proc=agent.proc)
    except BaseException:
        agent.stop()
        raise AssertionError(f"agent {args} never served its health endpoint:\n{agent.output()}")
    return agent
