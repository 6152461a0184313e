"""The dashboard as a real subprocess (`python -m dashboard`) on a free port, and a world for the browser
tests: an emulator, `agents init`, real agents serving DAGs, and the dashboard in front of the emulator."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from agents.testing import Background, run_cli, runtime_env, start_agent
from prefect_emulator.testing import REPO_ROOT, Emulator, LoggedProcess, free_port, wait_for_http

PROJECT = "My Tests"
# An agent the world starts and kills at once (no clean-up), for the Agents page's stale rule.
DOOMED_AGENT = "doomed-agent"


class Dashboard(LoggedProcess):
    """`python -m dashboard --api URL --port N` with `env`; its output in a log file; always stopped."""

    def __init__(self, api_url: str, env: Dict[str, str], log: Path, port: Optional[int] = None) -> None:
        self.api_url = api_url
        self.env = env
        self.log_path = log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Dashboard":
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--api", self.api_url,
                                          "--port", str(self.port)], cwd=str(REPO_ROOT), env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_http(self.url + "/static/live.js", timeout=30, proc=self.proc)
        except BaseException:
            self.stop()
            raise AssertionError(f"the dashboard did not start:\n{self.log()}")
        return self


class World:
    """An emulator with the project "My Tests", agents serving `dags`, and a dashboard in front of it.

    Args:
        workdir: a temporary folder for everything the world writes
        dags: the DAGs to serve: the repository's flow-test-hello and etl-seattle-weather, or those of `extra`
        extra: more DAGs, name -> the flow file copied as the DAG's file (the tests' probe DAG)
    """

    def __init__(self, workdir: Path, dags: List[str], extra: Optional[Dict[str, Path]] = None) -> None:
        self.workdir = workdir
        self.dags = dags
        self.extra = extra or {}
        self.emulator = Emulator(workdir)
        self.agents: Dict[str, Background] = {}
        self.dashboard: Optional[Dashboard] = None
        self.dags_folder = workdir / "dags"
        self.env: Dict[str, str] = {}

    def start(self) -> "World":
        self.emulator.start()
        # the repository's DAGs plus the extra ones, in a folder of their own; the ETL DAG takes its data
        # folder from where its file is, so it reads a copy of the CSV and writes nothing in the checkout
        for name in ("flow-test-hello", "etl-seattle-weather"):
            shutil.copytree(REPO_ROOT / "dags" / name, self.dags_folder / name)
        (self.workdir / "data").mkdir()
        shutil.copy(REPO_ROOT / "data" / "seattle-weather.csv", self.workdir / "data")
        for name, flow_file in self.extra.items():
            (self.dags_folder / name).mkdir(parents=True)
            shutil.copy(flow_file, self.dags_folder / name / (name.replace("-", "_") + ".py"))
        env_dir = self.workdir / "env-files"
        env_dir.mkdir()
        self.env = runtime_env(self.emulator.url, self.workdir / "prefect-home", env_dir,
                               DAGS_FOLDER=str(self.dags_folder), DAGS_DEFAULT_PROJECT=PROJECT,
                               PREFECT__CLOUD__CHECK_CANCELLATION_INTERVAL="1")
        result = run_cli(["init"], self.env, timeout=120)
        assert result.returncode == 0, result.stdout
        self.start_doomed_agent()
        for name in self.dags:
            # named without this machine's hostname (prefect's default), which pages and screenshots would show
            self.agents[name] = start_agent(["serve", name, "--name", f"{name}-agent"], self.env,
                                            self.workdir / f"agent-{name}.log")
        self.dashboard = Dashboard(self.emulator.url, self.env, self.workdir / "dashboard.log").start()
        return self

    def start_doomed_agent(self) -> None:
        """Starts prefect's LocalAgent as DOOMED_AGENT, waits for its first poll, and kills it (SIGKILL)."""
        doomed = Background([sys.executable, "-m", "prefect", "agent", "local", "start", "--no-hostname-label",
                             "--name", DOOMED_AGENT, "--label", "doomed-label"], self.env,
                            self.workdir / "doomed-agent.log")
        try:
            doomed.wait_for_output("Waiting for flow runs...", timeout=60)
            os.killpg(doomed.proc.pid, signal.SIGKILL)
        finally:
            doomed.stop()

    def stop(self) -> None:
        if self.dashboard is not None:
            self.dashboard.stop()
        for agent in self.agents.values():
            agent.stop()
        self.emulator.stop()

    def graphql(self, query: str, variables: Optional[dict] = None) -> dict:
        """The API's answer's data (asserting there are no errors)."""
        answer = self.emulator.graphql(query, variables)
        assert not answer.get("errors"), answer
        return answer["data"]
