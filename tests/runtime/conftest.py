"""Fixtures of the runtime tests: one emulator per module, the CLI and agents as real subprocesses."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from prefect_emulator.testing import REPO_ROOT, Emulator, free_port, prefect_env, stop, wait_for_http

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DAGS = REPO_ROOT / "dags"
# Fast polling for tests (see agents/settings.py).
FAST = dict(DAGS_AGENT_MAX_POLL_INTERVAL="0.5", DAGS_WATCH_POLL_INTERVAL="0.3", DAGS_API_WAIT_TIMEOUT="10",
            PREFECT__CLOUD__LOGGING_HEARTBEAT="0.5")


def repo_dag_names() -> List[str]:
    """Every DAG folder in the repository's dags/ (the parametrization of the per-DAG tests)."""
    return sorted(p.name for p in DAGS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


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


def write_plain_dag(dags_folder: Path, name: str, labels: List[str], extra: str = "",
                    fixture: Path = FIXTURES / "plain_flow.py") -> Path:
    """Copies a flow fixture (the plain flow by default) into `dags_folder/<name>/<name>.py` with this name
    and labels (the fixture's FLOW_NAME and LABELS lines are rewritten)."""
    text = fixture.read_text()
    text = re.sub(r'^FLOW_NAME = .*$', f"FLOW_NAME = {name!r}", text, flags=re.M)
    text = re.sub(r'^LABELS = .*$', f"LABELS = {labels!r}", text, flags=re.M)
    folder = dags_folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name.replace("-", "_") + ".py")
    path.write_text(text + extra)
    return path


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


@pytest.fixture(scope="module")
def module_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One in-memory emulator per test module (2 cores: starting one per test is too slow)."""
    with Emulator(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture(scope="module")
def module_env(module_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Environment for the CLI and agents of a module, pointed at `module_emulator`, no env files."""
    return runtime_env(module_emulator.url, tmp_path_factory.mktemp("prefect-home"),
                       tmp_path_factory.mktemp("env-files"))


@pytest.fixture
def empty_env_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "env"
    folder.mkdir()
    return folder
