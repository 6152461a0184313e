"""An emulator with a registered trivial DAG, the agents that run it (ours and prefect's stock), and the run
figures read back from the API: what the latency, burst and emulator sections share.

The trivial DAG appends one line to markers/<flow_run_id> each time it executes, so that "exactly once" is
checked from the files, not from what the API says.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from .report import REPO_ROOT
from prefect_emulator.testing import Emulator, free_port, graphql_data, prefect_env, stop, wait_for_http

FLOW = "bench-trivial"
DAG_SOURCE = '''"""Benchmark DAG: one task that records its execution in MARKERS/<flow_run_id> (one line per execution)."""
import os

import prefect
from prefect import Flow, task
from prefect.run_configs import LocalRun

MARKERS = {markers!r}


@task
def mark():
    run_id = prefect.context.get("flow_run_id") or "local"
    with open(os.path.join(MARKERS, run_id), "a") as fh:
        fh.write(str(os.getpid()) + "\\n")


with Flow({flow!r}, run_config=LocalRun(labels=["bench"])) as flow:
    mark()
'''


class Orchestra:
    """One emulator (its own log) with the benchmark DAG registered, in `workdir`.

    Args:
        workdir: a fresh folder for the emulator's log, prefect's home, the DAG folder and the markers
        name: tells this emulator's files apart from another's in the same folder
    """

    def __init__(self, workdir: Path, name: str) -> None:
        self.root = workdir / name
        self.markers = self.root / "markers"
        self.markers.mkdir(parents=True)
        (self.root / "home").mkdir()
        (self.root / "env").mkdir()
        dag = self.root / "dags" / FLOW / "bench_trivial.py"
        dag.parent.mkdir(parents=True)
        dag.write_text(DAG_SOURCE.format(markers=str(self.markers), flow=FLOW))
        self.emulator = Emulator(self.root)
        self.agents: List[subprocess.Popen] = []
        self.flow_id = ""

    def env(self, **extra: str) -> Dict[str, str]:
        """The environment of CLI and agent processes: this emulator, this DAG folder, no env files."""
        env = prefect_env(self.emulator.url, self.root / "home", DAGS_FOLDER=str(self.root / "dags"),
                          DAGS_ENV_DIR=str(self.root / "env"))
        env.pop("PREFECT__CLOUD__HEARTBEAT_INTERVAL", None)  # prefect's default, as in production
        env.update(extra)
        return env

    def start(self) -> "Orchestra":
        """Starts the emulator, creates the tenant and project, and registers the DAG."""
        self.emulator.start()
        for command in (["init", "--wait-timeout", "30"], ["register", FLOW]):
            done = subprocess.run([sys.executable, "-m", "agents"] + command, env=self.env(), cwd=str(REPO_ROOT),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"python -m agents {' '.join(command)} failed:\n{done.stdout[-2000:]}")
        self.flow_id = self.query('{ flow(where: {name: {_eq: "%s"}}) { id } }' % FLOW)["flow"][0]["id"]
        return self

    def start_agent(self, kind: str, label: str, extra_args: Optional[List[str]] = None,
                    extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """Starts an agent for `label` and waits until its health endpoint answers.

        Args:
            kind: "ours" (`python -m agents start`, its defaults) or "stock" (`prefect agent local start`)
            label: the one label it serves
            extra_args: more options (e.g. --limit N)
            extra_env: more environment variables (e.g. DAGS_FLOW_RUN_FORK=0)

        Returns:
            The agent's process (stopped by stop()).
        """
        port = free_port()
        if kind == "ours":
            args = [sys.executable, "-m", "agents", "start", "--label", label, "--name", f"ours-{label}"]
        else:
            args = [sys.executable, "-m", "prefect", "agent", "local", "start", "--label", label,
                    "--name", f"stock-{label}", "--no-hostname-label"]
        args += (extra_args or []) + ["--agent-address", f"http://127.0.0.1:{port}"]
        with open(self.root / f"agent-{kind}-{label}.log", "ab") as log:
            proc = subprocess.Popen(args, env=self.env(**(extra_env or {})), cwd=str(REPO_ROOT), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.agents.append(proc)
        wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=120, proc=proc)
        return proc

    def stop(self) -> None:
        """Stops the agents (and their flow runs), then the emulator."""
        for proc in self.agents:
            stop(proc)
        self.emulator.stop()

    def __enter__(self) -> "Orchestra":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ the API

    def query(self, text: str, variables: Optional[dict] = None) -> dict:
        """One GraphQL request; its data, raising on errors."""
        return graphql_data(self.emulator.url, text, variables)

    def create_runs(self, count: int, label: str = "bench", batch: int = 100) -> List[str]:
        """Creates `count` runs of the DAG with this label, `batch` create_flow_run mutations per request
        (aliases in one document: the fastest way through the public API). Returns their ids."""
        ids: List[str] = []
        while len(ids) < count:
            n = min(batch, count - len(ids))
            fields = " ".join('r%d: create_flow_run(input: {flow_id: "%s", labels: ["%s"]}) { id }'
                              % (i, self.flow_id, label) for i in range(n))
            data = self.query("mutation { %s }" % fields)
            ids += [data[f"r{i}"]["id"] for i in range(n)]
        return ids

    def runs(self, ids: List[str]) -> List[dict]:
        """The runs' state, created, start_time and end_time (datetimes; None where not set)."""
        data = self.query("query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) "
                          "{ id state created start_time end_time } }", {"ids": ids})["flow_run"]
        for run in data:
            for key in ("created", "start_time", "end_time"):
                run[key] = parse_time(run[key])
        return data

    def wait_finished(self, ids: List[str], timeout: float, poll: float = 0.5) -> List[dict]:
        """Waits until every run is Success or Failed (or the timeout passes); returns runs()."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(ids)
            if all(r["state"] in ("Success", "Failed", "Cancelled") for r in runs) or time.monotonic() > deadline:
                return runs
            time.sleep(poll)

    def executions(self, run_id: str) -> int:
        """How many times the DAG executed for this run (lines in its marker file)."""
        path = self.markers / run_id
        return len(path.read_text().splitlines()) if path.exists() else 0

    def graphql_requests(self) -> int:
        """GraphQL requests the emulator has logged so far (its GRAPHQL lines)."""
        return sum(1 for line in self.emulator.log().splitlines() if line.startswith("GRAPHQL "))


def parse_time(value: Optional[str]) -> Optional[dt.datetime]:
    """An API timestamp as an aware datetime (None stays None)."""
    if not value:
        return None
    import pendulum  # prefect's dependency: reads every ISO 8601 form on Python 3.8 too

    return pendulum.parse(value)


def cpu_seconds(pid: int) -> float:
    """CPU-seconds (user + system) used by process `pid` and everything below it, ended or not: each live
    process's own and its waited-for children's (/proc/PID/stat utime, stime, cutime, cstime); 0.0 for a
    process that is gone."""
    total = 0
    for each in [pid] + descendants(pid):
        try:
            with open(f"/proc/{each}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> List[int]:
    """The pids of every process below `pid` (from /proc; [] where there is none)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
