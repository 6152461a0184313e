"""The whole path through the emulator with real prefect processes, as a user of the project takes it:

`prefect server create-tenant` -> `prefect create project` -> `prefect register --path` (script storage,
LocalRun labels) -> `prefect agent local start --label ...` -> `prefect run --param k=v --watch` ends in
Success, and the run's task runs, states and logs can be read back through GraphQL.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

from prefect_emulator.testing import REPO_ROOT, Emulator, stop

pytestmark = pytest.mark.slow

LABEL = "whole-path"
PROJECT = "whole-path-project"

FLOW_SCRIPT = '''
import prefect
from prefect import Flow, Parameter, task
from prefect.run_configs import LocalRun
from prefect.storage import Local


@task
def greet(name):
    prefect.context.get("logger").info("Hello, %s!", name)
    return "hello " + name


@task
def write(text, folder):
    # proves the task ran in the agent's flow-run process, with the parameter the CLI gave
    with open(folder + "/" + prefect.context.get("flow_run_id") + ".txt", "w") as out:
        out.write(text)


with Flow("whole-path-flow", storage=Local(path=__file__, stored_as_script=True, add_default_labels=False),
          run_config=LocalRun(labels=[{label!r}])) as flow:
    name = Parameter("name", default="nobody")
    write(greet(name), {outdir!r})
'''


def prefect_cli(args: List[str], env: Dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the real prefect CLI (`python -m prefect ...`) and returns its finished process."""
    return subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def graphql_lines(log: str) -> List[dict]:
    """The emulator's GRAPHQL log lines, decoded."""
    return [json.loads(line[len("GRAPHQL "):]) for line in log.splitlines() if line.startswith("GRAPHQL ")]


def test_tenant_project_register_agent_and_watched_run_end_in_success(
        emulator: Emulator, penv: Dict[str, str], tmp_path: Path) -> None:
    env = dict(penv, PREFECT__CLOUD__LOGGING_HEARTBEAT="1", PREFECT__CLOUD__CHECK_CANCELLATION_INTERVAL="1")
    outdir = tmp_path / "out"
    outdir.mkdir()
    script = tmp_path / "whole_path_flow.py"
    script.write_text(textwrap.dedent(FLOW_SCRIPT.format(label=LABEL, outdir=str(outdir))))

    done = prefect_cli(["server", "create-tenant", "--name", "Whole Path", "--slug", "whole-path"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Tenant created with ID" in done.stdout

    done = prefect_cli(["create", "project", PROJECT], env)
    assert done.returncode == 0 and f"{PROJECT} created" in done.stdout, done.stdout + done.stderr
    done = prefect_cli(["create", "project", PROJECT, "--skip-if-exists"], env)
    assert done.returncode == 0 and "already exists" in done.stdout, done.stdout + done.stderr

    done = prefect_cli(["register", "--project", PROJECT, "--path", str(script)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 registered" in done.stdout
    # the same script again: prefect's idempotency key matches, so no second version is made
    done = prefect_cli(["register", "--project", PROJECT, "--path", str(script)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    flows = emulator.graphql('{ flow(where: {name: {_eq: "whole-path-flow"}}) { id version archived '
                             'run_config flow_group { labels } } }')["data"]["flow"]
    assert [f["version"] for f in flows] == [1] and flows[0]["archived"] is False
    assert flows[0]["run_config"]["labels"] == [LABEL]

    agent_log = tmp_path / "agent.log"
    with open(agent_log, "wb") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "prefect", "agent", "local", "start", "--label", LABEL, "--no-hostname-label",
             "--show-flow-logs"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        done = prefect_cli(["run", "--name", "whole-path-flow", "--project", PROJECT, "--param", "name=Ada",
                            "--watch"], env, timeout=180)
    finally:
        stop(agent)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output + "\nagent log:\n" + agent_log.read_text(errors="replace")
    assert "Flow run succeeded" in output
    # --watch streams the states it polls (the task's own log line may land after its last poll, so the
    # stored logs are checked through GraphQL below instead)
    assert "Entered state <Running>" in output and "Entered state <Success>" in output

    runs = emulator.graphql('''
        query WholePath($name: String!) {
          flow_run(where: {flow: {name: {_eq: $name}}}) {
            id state labels parameters version agent_id
            states(order_by: {version: asc}) { state version }
            task_runs(order_by: {task: {slug: asc}}) { state map_index task { slug } states { state } }
            logs(order_by: {timestamp: asc}) { message level task_run_id }
          }
        }''', {"name": "whole-path-flow"})
    assert "errors" not in runs, runs
    [run] = runs["data"]["flow_run"]
    assert run["state"] == "Success"
    assert run["labels"] == [LABEL]
    assert run["parameters"] == {"name": "Ada"}
    assert [s["state"] for s in run["states"]] == ["Scheduled", "Submitted", "Running", "Success"]
    assert [s["version"] for s in run["states"]] == [1, 2, 3, 4] and run["version"] == 4
    assert sorted(t["task"]["slug"] for t in run["task_runs"]) == ["greet-1", "name", "write-1"]
    for task_run in run["task_runs"]:
        assert task_run["state"] == "Success" and task_run["map_index"] == -1, task_run
        assert [s["state"] for s in task_run["states"]][-1] == "Success"
    messages = [entry["message"] for entry in run["logs"]]
    assert "Hello, Ada!" in messages
    assert any(entry["task_run_id"] for entry in run["logs"] if entry["message"] == "Hello, Ada!")
    assert (outdir / f"{run['id']}.txt").read_text() == "hello Ada"

    # every operation of the path was understood: the only refusal allowed is none at all
    failed = [line for line in graphql_lines(emulator.log()) if not line["ok"]]
    assert failed == [], failed
