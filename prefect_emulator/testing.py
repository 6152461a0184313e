"""Real processes for tests and benchmarks: the Prefect Server emulator, and the environment that points prefect
at it (used by tests/ and scripts/benchmarks/, which is why it is part of the package).

Every process is started with its own PREFECT__HOME_DIR so that nothing is read from or written to the
developer's ~/.prefect, and is always stopped (terminate, then kill) when the test is done.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
NO_DOCKER = ("no Docker engine with Compose v2 answers: run scripts/prepare-offline.sh and start the "
             "Docker daemon")


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_env(api_url: str, home: Path, api_key: Optional[str] = None, **extra: str) -> Dict[str, str]:
    """Environment for a prefect process (CLI, agent, flow run) that talks to the API at `api_url`.

    Args:
        api_url: the GraphQL endpoint, e.g. http://127.0.0.1:4200
        home: a folder used as PREFECT__HOME_DIR (backend and auth files go there)
        api_key: when given, the cloud backend is used with this key
        extra: more variables, verbatim

    Returns:
        A copy of os.environ with the prefect variables set.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT")}
    env.update(
        PREFECT__HOME_DIR=str(home),
        PREFECT__BACKEND="server",
        PREFECT__SERVER__ENDPOINT=api_url,
        PREFECT__CLOUD__API=api_url,
        PREFECT__CLOUD__HEARTBEAT_INTERVAL="2",
        PREFECT__LOGGING__LEVEL="INFO",
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
    )
    if api_key is not None:
        env.update(PREFECT__BACKEND="cloud", PREFECT__CLOUD__API_KEY=api_key)
    env.update(extra)
    return env


def wait_for_http(url: str, timeout: float = 30.0, proc: Optional[subprocess.Popen] = None) -> None:
    """Waits until `url` answers 200, raising with the process output if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stops a process started with start_new_session=True, and all of its children."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


class LoggedProcess:
    """A server process of ours started by `start()` (subclasses), its output in `log_path`, always stopped:
    a context manager that starts it and stops it (terminate, then kill)."""

    log_path: Path
    proc: Optional[subprocess.Popen] = None

    def start(self) -> "LoggedProcess":
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Emulator(LoggedProcess):
    """The Prefect Server emulator (`python -m prefect_emulator`) as a subprocess on a free port.

    `extra_args` are added to its command line, `extra_env` to its environment (which otherwise holds no
    PREFECT_EMULATOR_ variable of the caller's).
    """

    def __init__(self, workdir: Path, db: Optional[Path] = None, api_key: Optional[str] = None,
                 heartbeat_timeout: Optional[float] = None, port: Optional[int] = None,
                 extra_args: Sequence[str] = (), extra_env: Optional[Dict[str, str]] = None) -> None:
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        self.db = db
        self.api_key = api_key
        self.heartbeat_timeout = heartbeat_timeout
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"emulator-{self.port}.log"
        self.proc: Optional[subprocess.Popen] = None

    def args(self) -> List[str]:
        args = [sys.executable, "-m", "prefect_emulator", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.db is not None:
            args += ["--db", str(self.db)]
        if self.heartbeat_timeout is not None:
            args += ["--heartbeat-timeout", str(self.heartbeat_timeout)]
        return args + self.extra_args

    def start(self) -> "Emulator":
        log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_EMULATOR_")}
        if self.api_key is not None:
            # the key goes through the environment: process arguments are visible to every user (ps)
            env["PREFECT_EMULATOR_API_KEY"] = self.api_key
        env.update(self.extra_env)
        self.proc = subprocess.Popen(self.args(), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        wait_for_http(self.url + "/health", proc=self.proc)
        return self

    def graphql(self, query: str, variables: Optional[dict] = None, headers: Optional[dict] = None) -> dict:
        """Posts one GraphQL request and returns the decoded JSON answer (data and/or errors)."""
        resp = requests.post(self.url, json={"query": query, "variables": variables or {}},
                             headers=headers or {}, timeout=10)
        return resp.json()


def graphql_data(url: str, query: str, variables: Optional[dict] = None, timeout: float = 120) -> dict:
    """Posts one GraphQL request to `url`; returns its `data`, raising RuntimeError naming its errors."""
    answer = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=timeout).json()
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


@functools.lru_cache(maxsize=None)
def docker_available() -> bool:
    """True when `docker compose version` (Compose v2) and the engine both answer (asked once a session)."""
    if shutil.which("docker") is None:
        return False
    try:
        for args in (["docker", "info"], ["docker", "compose", "version"]):
            if subprocess.run(args, capture_output=True, timeout=30).returncode != 0:
                return False
    except (OSError, subprocess.TimeoutExpired):
        return False
    return True
