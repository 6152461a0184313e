"""Forked flow runs (agents.flowrun.forkrun) behave as `prefect execute flow-run` in a fresh process: states, task
runs, logs shipped to the API, heartbeats, cancellation, and a run's own environment, parameters and working
directory; with a real agent, its real fork server and the emulator."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from agents.flowrun.forkrun import FLOW_RUN_ARGS, UNKNOWN_EXIT, FlowRunForker, when_ended
from agents.testing import Background, run_cli, start_agent
from tests.faults.faults import create_runs, flow_id, register, runs, wait_finished, wait_until
from prefect_emulator.testing import REPO_ROOT, Emulator, prefect_env
from tests.runtime.conftest import FIXTURES, write_plain_dag

pytestmark = pytest.mark.slow
PROBE = FIXTURES / "probe_flow.py"
LABEL = "forked"
# the main block of a DAG script: `python <file>` registers the DAG and hosts it (agents.cli.script)
MAIN_BLOCK = f"""

if __name__ == "__main__":
    from agents.cli.script import main
    main(flow, __file__)
"""


class Setup:
    """The module's emulator, DAGs (probe-plain; probe-own with an env and a working dir of its own) and agent."""

    def __init__(self, emu: Emulator, root: Path, env: Dict[str, str], agent: Background) -> None:
        self.emu, self.root, self.env, self.agent = emu, root, env, agent
        self.probes = root / "probes"
        self.workdir = root / "own-workdir"

    def run(self, dag: str, **parameters: object) -> str:
        [run_id] = create_runs(self.emu, flow_id(self.emu, dag), 1, parameters)
        return run_id

    def finished(self, run_id: str) -> dict:
        [row] = wait_finished(self.emu, [run_id], timeout=90)
        return row

    def probe(self, run_id: str) -> dict:
        return json.loads((self.probes / f"{run_id}.json").read_text())

    def wait_probe(self, run_id: str) -> dict:
        wait_until(lambda: (self.probes / f"{run_id}.json").exists(), 60, f"run {run_id}'s task started")
        return self.probe(run_id)

    def query(self, text: str, run_id: str) -> dict:
        answer = self.emu.graphql(text, {"id": run_id})
        assert "errors" not in answer, answer
        return answer["data"]


@pytest.fixture(scope="module")
def setup(module_emulator: Emulator, module_env: Dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("forked")
    (root / "probes").mkdir()
    (root / "own-workdir").mkdir()
    own = (f"\nflow.run_config = LocalRun(labels=LABELS, working_dir={str(root / 'own-workdir')!r}, "
           "env={'PROBE_ONLY_OWN': 'own', 'PREFECT__CLOUD__HEARTBEAT_MODE': 'process'})\n")
    write_plain_dag(root / "dags", "probe-plain", [LABEL], fixture=PROBE)
    write_plain_dag(root / "dags", "probe-own", [LABEL], extra=own, fixture=PROBE)
    env = dict(module_env, DAGS_FOLDER=str(root / "dags"), DAGS_TEST_PROBES=str(root / "probes"))
    register(env)
    with start_agent(["start", "--label", LABEL, "--name", "forking"], env, root / "agent.log") as agent:
        yield Setup(module_emulator, root, env, agent)


def states(row: dict) -> List[str]:
    return [s["state"] for s in row["states"]]


def process_line(pid: int) -> List[str]:
    """[command line, parent pid] of a live process."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    return [cmdline, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_forked_runs_have_prefects_states_task_runs_logs_and_their_own_env_params_and_dir(setup: Setup) -> None:
    first = setup.run("probe-plain", tag="first")
    first_row = setup.finished(first)
    second = setup.run("probe-own", tag="second")
    second_row = setup.finished(second)
    failing = setup.run("probe-plain", tag="third", fail=True)
    failing_row = setup.finished(failing)
    log = setup.agent.output()

    # prefect's states and task runs, as `prefect execute flow-run` writes them
    assert states(first_row)[-3:] == ["Submitted", "Running", "Success"], first_row
    assert states(second_row)[-3:] == ["Submitted", "Running", "Success"], second_row
    assert states(failing_row)[-3:] == ["Submitted", "Running", "Failed"], failing_row
    for run_id, expected in ((first, "Success"), (failing, "Failed")):
        tasks = setup.query("query($id: uuid!) { task_run(where: {flow_run_id: {_eq: $id}}) "
                            "{ state task { name } } }", run_id)["task_run"]
        assert sorted((t["task"]["name"], t["state"]) for t in tasks) == [
            ("fail", "Success"), ("probe", expected), ("seconds", "Success"), ("tag", "Success")]
    # logs shipped to the API by prefect's CloudHandler: the task's own line and the runner's
    messages = [entry["message"] for entry in first_row["logs"]]
    assert any(f"probe of run {first} says first" in m for m in messages), messages
    assert any("Flow run SUCCESS" in m for m in messages), messages
    assert any("probe failing as asked" in entry["message"] for entry in failing_row["logs"]), failing_row

    one, two, three = setup.probe(first), setup.probe(second), setup.probe(failing)
    # forked: each run's parent is the agent's fork server, not the agent
    server = one["ppid"]
    assert two["ppid"] == three["ppid"] == server
    cmdline, server_parent = process_line(server)
    assert "multiprocessing.forkserver" in cmdline and int(server_parent) == setup.agent.proc.pid
    assert len({one["pid"], two["pid"], three["pid"]}) == 3
    # each run its own: context, parameters, environment, working directory, submission
    assert [p["flow_run_id"] for p in (one, two, three)] == [first, second, failing]
    assert one["parameters"] == {"tag": "first", "seconds": 0, "fail": False}
    assert two["parameters"] == {"tag": "second", "seconds": 0, "fail": False}
    assert one["probe_env"] == {} and three["probe_env"] == {}, "an env var of another run leaked"
    assert two["probe_env"] == {"PROBE_ONLY_OWN": "own"}
    assert one["cwd"] == one["path0"] == str(REPO_ROOT) == three["cwd"]
    assert two["cwd"] == two["path0"] == str(setup.workdir)
    assert all(p["argv0"].endswith(os.path.join("agents", "flowrun", "__main__.py")) for p in (one, two, three))
    assert len({one["submission"], two["submission"], three["submission"]}) == 3 and one["submission"]
    # heartbeats from a thread, unless the run's env asks for prefect's heartbeat process
    assert (one["heartbeat_mode"], two["heartbeat_mode"]) == ("thread", "process")
    assert "returned non-zero exit code" not in log and "plain subprocess" not in log, log


def test_a_forked_run_sends_heartbeats_and_ends_cancelled_when_cancelled(setup: Setup) -> None:
    run_id = setup.run("probe-plain", tag="long", seconds=60)
    seen = setup.wait_probe(run_id)
    heartbeat = "query($id: uuid!) { flow_run_by_pk(id: $id) { heartbeat state } }"
    before = setup.query(heartbeat, run_id)["flow_run_by_pk"]
    assert before["state"] == "Running"
    # PREFECT__CLOUD__HEARTBEAT_INTERVAL is 2 s in the tests: a new heartbeat comes within a few seconds,
    # with no `prefect heartbeat` process
    wait_until(lambda: setup.query(heartbeat, run_id)["flow_run_by_pk"]["heartbeat"] != before["heartbeat"], 20,
               "a heartbeat while the task runs")
    children = [process_line(int(p))[0] for p in os.listdir("/proc") if p.isdigit() and alive(int(p))
                and process_line(int(p))[1] == str(seen["pid"])]
    assert not any("heartbeat" in c for c in children), children
    answer = setup.emu.graphql("mutation($id: UUID!) { cancel_flow_run(input: {flow_run_id: $id}) { state } }",
                               {"id": run_id})
    assert "errors" not in answer, answer
    row = setup.finished(run_id)
    assert row["state"] == "Cancelled", row
    wait_until(lambda: not alive(seen["pid"]), 30, "the cancelled run's process ends")


def test_a_killed_fork_server_is_replaced_and_its_running_run_still_finishes(setup: Setup) -> None:
    running = setup.run("probe-plain", tag="orphan", seconds=4)
    server = setup.wait_probe(running)["ppid"]
    os.kill(server, signal.SIGKILL)
    assert setup.finished(running)["state"] == "Success"
    after = setup.run("probe-plain", tag="after")
    assert setup.finished(after)["state"] == "Success"
    new_server = setup.probe(after)["ppid"]
    assert new_server != server and "multiprocessing.forkserver" in process_line(new_server)[0]
    setup.agent.wait_for_output(f"the fork server (pid {server}) had died", timeout=10)


def test_flow_run_fork_setting_is_checked_and_0_starts_plain_subprocesses(setup: Setup, tmp_path: Path) -> None:
    bad = run_cli(["start", "--label", "x"], dict(setup.env, DAGS_FLOW_RUN_FORK="maybe"))
    assert bad.returncode == 1
    assert "DAGS_FLOW_RUN_FORK must be 1 (fork flow runs from a pre-imported process, the default) or 0" in bad.stdout
    with start_agent(["start", "--label", "plain-only", "--name", "plain"], dict(setup.env, DAGS_FLOW_RUN_FORK="0"),
                     tmp_path / "plain.log") as plain:
        write_plain_dag(setup.root / "dags", "probe-unforked", ["plain-only"], fixture=PROBE)
        register(dict(setup.env, DAGS_FOLDER=str(setup.root / "dags")))
        run_id = setup.run("probe-unforked")
        assert setup.finished(run_id)["state"] == "Success"
        seen = setup.probe(run_id)
        assert seen["ppid"] == plain.proc.pid and seen["heartbeat_mode"] == "process"


def test_forked_runs_outlive_a_killed_agent_as_plain_subprocesses_do(setup: Setup, tmp_path: Path) -> None:
    write_plain_dag(setup.root / "dags", "probe-outliving", ["outliving"], fixture=PROBE)
    register(dict(setup.env, DAGS_FOLDER=str(setup.root / "dags")))
    with start_agent(["start", "--label", "outliving", "--name", "doomed"], setup.env, tmp_path / "doomed.log") as doomed:
        run_id = setup.run("probe-outliving", seconds=4)
        seen = setup.wait_probe(run_id)
        os.kill(doomed.proc.pid, signal.SIGKILL)  # the agent alone, not its process group
        assert setup.finished(run_id)["state"] == "Success"
        wait_until(lambda: not alive(seen["pid"]) and not alive(seen["ppid"]), 30,
                   "the run's process, then its fork server (no run left), end")


def test_a_dag_script_hosting_itself_is_not_run_again_in_its_forked_runs(setup: Setup, tmp_path: Path) -> None:
    path = write_plain_dag(setup.root / "dags", "probe-script", ["script-hosted"], fixture=PROBE)
    path.write_text(path.read_text() + MAIN_BLOCK)
    env = dict(setup.env, DAGS_FOLDER=str(setup.root / "dags"))
    with Background([sys.executable, str(path)], env, tmp_path / "script.log") as script:
        script.wait_for_output("polling for runs", timeout=90)
        run_id = setup.run("probe-script")
        assert setup.finished(run_id)["state"] == "Success", script.output()
    seen = setup.probe(run_id)
    assert seen["ppid"] != script.proc.pid  # forked (from the script's fork server)
    assert seen["main_file"] != str(path)  # multiprocessing did not run the script again as the run's __main__


# ------------------------------------------------------------------ the process handle, with a fork server of this test process

def silent_api_env(tmp_path: Path, port: int) -> Dict[str, str]:
    """A flow run's environment whose API accepts connections and never answers: its process waits."""
    return prefect_env(f"http://127.0.0.1:{port}", tmp_path / "home", PREFECT__CONTEXT__FLOW_RUN_ID=str(uuid.uuid4()),
                       PREFECT__CLOUD__REQUEST_TIMEOUT="60")


def test_a_forked_run_exits_with_the_code_of_a_fresh_process_and_minus_9_when_killed(tmp_path: Path) -> None:
    forker = FlowRunForker(logging.getLogger("test-forker"))
    no_run = prefect_env("http://127.0.0.1:9", tmp_path / "home")  # no flow run id: prefect's command fails
    fresh = subprocess.run(FLOW_RUN_ARGS, env=no_run, cwd=str(REPO_ROOT), capture_output=True, timeout=120)
    forked = forker.start(no_run, str(REPO_ROOT), show_logs=False)
    assert forked is not None and forked.args == FLOW_RUN_ARGS
    assert forked.wait(timeout=60) == fresh.returncode == 1, fresh.stdout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        waiting = forker.start(silent_api_env(tmp_path, silent.getsockname()[1]), None, show_logs=False)
        assert waiting is not None and waiting.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=0.5)
        ended = threading.Event()
        when_ended(waiting, ended.set)  # what wakes the agent's poll loop when a run slot frees
        assert not ended.is_set()
        waiting.kill()
        assert ended.wait(timeout=30)
        assert waiting.wait(timeout=30) == -signal.SIGKILL


def test_runs_outlive_a_dead_fork_server_and_the_next_run_gets_a_new_one(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    forker = FlowRunForker(logging.getLogger("test-forker"))
    with socket.socket() as silent, caplog.at_level(logging.INFO, logger="test-forker"):
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = silent_api_env(tmp_path, silent.getsockname()[1])
        orphan = forker.start(env, None, show_logs=False)
        assert orphan is not None
        server = int(process_line(orphan.pid)[1])
        assert "multiprocessing.forkserver" in process_line(server)[0]
        os.kill(server, signal.SIGKILL)
        wait_until(lambda: not alive(server), 10, "the fork server dies")
        assert orphan.poll() is None and alive(orphan.pid)  # the run goes on, still held
        assert "the fork server died while flow-run process" in caplog.text
        os.kill(orphan.pid, signal.SIGKILL)
        assert orphan.wait(timeout=30) == UNKNOWN_EXIT
        nxt = forker.start(env, None, show_logs=False)
        assert nxt is not None and int(process_line(nxt.pid)[1]) != server
        nxt.kill()
        nxt.wait(timeout=30)
    assert f"the fork server (pid {server}) had died" in caplog.text
